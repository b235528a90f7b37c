"""Memory node input and output models (the Mirari seed's columns, and our graph)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import Field, StringConstraints

from agentplane.models import InputModel, JsonObject, JsonObjectIn, LongText, OutputModel

Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
# Free text: 'preference', 'fact', 'project', ... whatever the client files memory under.
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Strength = Annotated[float, Field(ge=0, le=1)]
# Where the memory came from: a conversation, a template, a report, a person.
Source = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class MemoryNodeCreate(InputModel):
    """A new memory node, optionally under a parent node and tied to a connection."""

    label: Label
    category: Category | None = None
    strength: Strength = 0.5
    source: Source | None = None
    content: LongText = ""
    metadata: JsonObjectIn = Field(default_factory=dict)
    parent_id: UUID | None = None
    connection_id: UUID | None = None


class MemoryNodeUpdate(InputModel):
    """Fields of a memory node that can change (null clears an optional one)."""

    label: Label | None = None
    category: Category | None = None
    strength: Strength | None = None
    source: Source | None = None
    content: LongText | None = None
    metadata: JsonObjectIn | None = None
    parent_id: UUID | None = None
    connection_id: UUID | None = None


class MemoryNodeRow(OutputModel):
    """A stored row of public.memory_nodes (what the shared CRUD helpers return)."""

    id: UUID
    user_id: UUID
    label: str
    category: str | None
    strength: float
    source: str | None
    content: str
    metadata: JsonObject
    parent_id: UUID | None
    connection_id: UUID | None
    last_used_at: datetime
    stability_seconds: float
    reinforcements: int
    archived_at: datetime | None
    fades_at: datetime
    created_at: datetime
    updated_at: datetime


class MemoryNode(MemoryNodeRow):
    """A node of the caller's memory graph: `strength` as stored, `decayed_strength` as
    of the read (memory/decay.py)."""

    decayed_strength: float
