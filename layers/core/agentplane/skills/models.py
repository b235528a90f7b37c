"""Skill input and output models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from agentplane.models import (
    Description,
    InputModel,
    JsonObject,
    JsonObjectIn,
    LongText,
    Name,
    OutputModel,
)
from agentplane.skills.lifecycle import SkillStatus


class SkillCreate(InputModel):
    """A new skill: a draft unless it is created active."""

    name: Name
    description: Description = ""
    instructions: LongText = ""
    metadata: JsonObjectIn = Field(default_factory=dict)
    status: Literal["draft", "active"] = "draft"


class SkillUpdate(InputModel):
    """Fields of a skill that can change; status moves along the lifecycle only."""

    name: Name | None = None
    description: Description | None = None
    instructions: LongText | None = None
    metadata: JsonObjectIn | None = None
    status: SkillStatus | None = None


class Skill(OutputModel):
    """A skill; `version` counts changes of its instructions."""

    id: UUID
    user_id: UUID
    name: str
    description: str
    instructions: str
    metadata: JsonObject
    status: SkillStatus
    version: int
    source_template_id: UUID | None
    created_at: datetime
    updated_at: datetime
