"""Template input and output models, and the bundle a template carries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, StringConstraints

from agentplane.models import Description, InputModel, LongText, Name, OutputModel

# The same bounds as the columns of public.skills and public.memory_nodes the bundle is
# copied into, so a bundle that validates here installs without a check violation.
MAX_BUNDLE_ITEMS = 100
MemoryKind = Literal["fact", "preference", "entity", "event", "note"]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Importance = Annotated[float, Field(ge=0, le=1)]


class BundleSkill(InputModel):
    """A skill a template installs (as a draft) into the installer's skills."""

    name: Name
    description: Description = ""
    instructions: LongText = ""


class BundleMemory(InputModel):
    """A memory node a template installs into the installer's memory graph."""

    kind: MemoryKind
    label: Label
    content: LongText = ""
    importance: Importance = 0.5


class Bundle(InputModel):
    """What a template installs: skills and seed memory, at most 100 of each."""

    skills: Annotated[list[BundleSkill], Field(max_length=MAX_BUNDLE_ITEMS)] = Field(
        default_factory=list
    )
    memory: Annotated[list[BundleMemory], Field(max_length=MAX_BUNDLE_ITEMS)] = Field(
        default_factory=list
    )


class TemplateCreate(InputModel):
    """A new template, authored by the caller (private unless `is_public`)."""

    name: Name
    description: Description = ""
    is_public: bool = False
    bundle: Bundle


class TemplateUpdate(InputModel):
    """Fields of a template its author can change (never `installs`)."""

    name: Name | None = None
    description: Description | None = None
    is_public: bool | None = None
    bundle: Bundle | None = None


class Template(OutputModel):
    """A template bundle."""

    id: UUID
    user_id: UUID
    name: str
    description: str
    is_public: bool
    bundle: Bundle
    installs: int
    created_at: datetime
    updated_at: datetime


class TemplateInstall(OutputModel):
    """The rows one install created in the installer's skills and memory graph."""

    template_id: UUID
    skills: list[UUID]
    memory_nodes: list[UUID]
