"""Template input and output models, and the payload a template carries (the Mirari seed's
`{skills, seed_memory}`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import Field

from agentplane.memory.models import Category, Label, Source, Strength
from agentplane.models import Description, InputModel, JsonObject, LongText, Name, OutputModel

# The same bounds as the columns of public.skills and public.memory_nodes the payload is
# copied into, so a payload that validates here installs without a check violation.
MAX_PAYLOAD_ITEMS = 100


class PayloadSkill(InputModel):
    """A skill a template installs (as a draft) into the installer's skills."""

    name: Name
    description: Description | None = None
    category: Category | None = None
    template_prompt: LongText | None = None


class PayloadMemory(InputModel):
    """A memory node a template installs into the installer's memory graph."""

    label: Label
    category: Category | None = None
    strength: Strength = 0.5
    content: LongText = ""
    source: Source | None = None


class Payload(InputModel):
    """What a template installs: skills and seed memory, at most 100 of each."""

    skills: Annotated[list[PayloadSkill], Field(max_length=MAX_PAYLOAD_ITEMS)] = Field(
        default_factory=list
    )
    seed_memory: Annotated[list[PayloadMemory], Field(max_length=MAX_PAYLOAD_ITEMS)] = Field(
        default_factory=list
    )


class TemplateCreate(InputModel):
    """A new template, authored by the caller (private unless `is_public`)."""

    name: Name
    description: Description | None = None
    category: Category | None = None
    is_public: bool = False
    payload: Payload


class TemplateUpdate(InputModel):
    """Fields of a template its author can change (never `installs`)."""

    name: Name | None = None
    description: Description | None = None
    category: Category | None = None
    is_public: bool | None = None
    payload: Payload | None = None


class Template(OutputModel):
    """A template bundle; `payload` is returned as stored (`{skills, seed_memory}`).

    A client of the seed may have written any JSON object there, so it is read back
    as it is and checked against `Payload` only when someone installs it.
    """

    id: UUID
    author_id: UUID
    name: str
    description: str | None
    category: str | None
    is_public: bool
    payload: JsonObject
    installs: int
    created_at: datetime
    updated_at: datetime


class TemplateInstall(OutputModel):
    """The rows one install created in the installer's skills and memory graph."""

    template_id: UUID
    skills: list[UUID]
    memory_nodes: list[UUID]
