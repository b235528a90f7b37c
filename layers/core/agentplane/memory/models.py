"""Memory node input and output models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, StringConstraints

from agentplane.models import InputModel, JsonObject, JsonObjectIn, LongText, OutputModel

Kind = Literal["fact", "preference", "entity", "event", "note"]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Importance = Annotated[float, Field(ge=0, le=1)]


class MemoryNodeCreate(InputModel):
    """A new memory node, optionally under a parent node and tied to a connection."""

    kind: Kind = "note"
    label: Label
    content: LongText = ""
    importance: Importance = 0.5
    metadata: JsonObjectIn = Field(default_factory=dict)
    parent_id: UUID | None = None
    connection_id: UUID | None = None


class MemoryNodeUpdate(InputModel):
    """Fields of a memory node that can change (null detaches a parent or connection)."""

    kind: Kind | None = None
    label: Label | None = None
    content: LongText | None = None
    importance: Importance | None = None
    metadata: JsonObjectIn | None = None
    parent_id: UUID | None = None
    connection_id: UUID | None = None


class MemoryNode(OutputModel):
    """A node of the caller's memory graph."""

    id: UUID
    user_id: UUID
    kind: Kind
    label: str
    content: str
    importance: float
    metadata: JsonObject
    parent_id: UUID | None
    connection_id: UUID | None
    last_used_at: datetime | None
    created_at: datetime
    updated_at: datetime
