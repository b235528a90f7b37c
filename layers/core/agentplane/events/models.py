"""Webhook input and output models: the signing secret comes out once, on creation."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from agentplane.models import Description, InputModel, JsonObject, OutputModel, distinct

# An exact type (`action.approved`), every type under a prefix (`action.*`) or `*`; the
# migration's private.event_patterns_valid says the same.
PATTERN = re.compile(
    r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$"
)
DeliveryStatus = Literal["pending", "delivered", "failed"]


def _pattern(value: str) -> str:
    if len(value) > 100 or not PATTERN.match(value):
        raise PydanticCustomError(
            "event_pattern",
            "must be an event type (action.approved), a prefix pattern (action.*) or *",
        )
    return value


EventPattern = Annotated[str, AfterValidator(_pattern)]


class WebhookCreate(InputModel):
    """A webhook to register: where to POST, and which events."""

    organization_id: UUID
    url: Annotated[str, Field(min_length=10, max_length=2000)]
    events: Annotated[
        list[EventPattern], Field(min_length=1, max_length=50), AfterValidator(distinct)
    ]
    description: Description = ""


class Webhook(OutputModel):
    """A registered webhook, without its secret."""

    id: UUID
    organization_id: UUID
    url: str
    events: list[str]
    description: str
    created_by: UUID
    created_at: datetime
    updated_at: datetime


class WebhookCreated(Webhook):
    """The answer to a creation: the webhook and its signing secret, shown this once."""

    secret: str = Field(description="the `whsec_...` signing secret; it is never shown again")


class WebhookDelivery(OutputModel):
    """One event's delivery to one webhook."""

    id: UUID
    webhook_id: UUID
    event_id: UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class Event(OutputModel):
    """A published event, as the bus and the webhooks get it."""

    id: UUID
    organization_id: UUID
    type: str
    data: JsonObject
    created_at: datetime
