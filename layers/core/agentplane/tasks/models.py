"""Task input and output models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints
from pydantic_core import PydanticCustomError

from agentplane.models import InputModel, OutputModel

# pending (the seed's default) -> in_progress -> done, with blocked and cancelled beside
# them; `done` stamps completed_at.
TaskStatus = Literal["pending", "in_progress", "blocked", "done", "cancelled"]
TaskTitle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
TaskDescription = Annotated[str, Field(max_length=20_000)]
Priority = Annotated[int, Field(ge=0, le=4)]


def _representable_in_utc(value: datetime) -> datetime:
    # Stored as UTC and read back as a Python datetime, which ends at year 9999: an
    # offset must not push the instant past either end.
    try:
        value.astimezone(UTC)
    except OverflowError as exc:
        raise PydanticCustomError(
            "datetime_range", "must fall within years 1 to 9999 once converted to UTC"
        ) from exc
    return value


DueAt = Annotated[AwareDatetime, AfterValidator(_representable_in_utc)]


class TaskCreate(InputModel):
    """A new task, optionally tied to a connection and a conversation."""

    title: TaskTitle
    description: TaskDescription | None = None
    status: TaskStatus = "pending"
    priority: Priority = 2
    due_at: DueAt | None = None
    connection_id: UUID | None = None
    conversation_id: UUID | None = None


class TaskUpdate(InputModel):
    """Fields of a task that can change; `done` stamps completed_at, leaving it clears it."""

    title: TaskTitle | None = None
    description: TaskDescription | None = None
    status: TaskStatus | None = None
    priority: Priority | None = None
    due_at: DueAt | None = None
    connection_id: UUID | None = None
    conversation_id: UUID | None = None


class Task(OutputModel):
    """A task."""

    id: UUID
    user_id: UUID
    title: str
    description: str | None
    status: TaskStatus
    priority: int
    due_at: datetime | None
    completed_at: datetime | None
    connection_id: UUID | None
    conversation_id: UUID | None
    created_at: datetime
    updated_at: datetime
