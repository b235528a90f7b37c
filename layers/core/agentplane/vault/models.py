"""Vault input and output models: a key goes in, only its last four characters come out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, SecretStr

from agentplane.models import InputModel, OutputModel

Provider = Literal["hermes", "openrouter", "nous", "custom"]


class KeyCreate(InputModel):
    """A provider API key to store. `organization_id` may be left out by someone who
    belongs to exactly one organization."""

    provider: Provider
    key: Annotated[SecretStr, Field(min_length=8, max_length=4096)]
    label: Annotated[str, Field(max_length=200)] = ""
    organization_id: UUID | None = None


class KeyInfo(OutputModel):
    """A stored key, described: never its material."""

    id: UUID
    organization_id: UUID
    provider: Provider
    label: str
    last4: str
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
