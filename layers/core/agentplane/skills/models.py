"""Skill input and output models (the Mirari seed's columns)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, StringConstraints

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

Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


# How well the skill does (0 until measured); a real number, as the seed has it.
Score = Annotated[float, AfterValidator(_finite)]


class SkillCreate(InputModel):
    """A new skill: `suggested` (the seed's default), `draft` (by hand) or `active`."""

    name: Name
    description: Description | None = None
    category: Category | None = None
    template_prompt: LongText | None = None
    score: Score = 0
    metadata: JsonObjectIn = Field(default_factory=dict)
    status: Literal["suggested", "draft", "active"] = "suggested"


class SkillUpdate(InputModel):
    """Fields of a skill that can change; status moves along the lifecycle only."""

    name: Name | None = None
    description: Description | None = None
    category: Category | None = None
    template_prompt: LongText | None = None
    score: Score | None = None
    metadata: JsonObjectIn | None = None
    status: SkillStatus | None = None


class Skill(OutputModel):
    """A skill; `version` counts edits of its name, description, category or prompt."""

    id: UUID
    user_id: UUID
    name: str
    description: str | None
    category: str | None
    status: SkillStatus
    score: float
    version: int
    template_prompt: str | None
    metadata: JsonObject
    source_template_id: UUID | None
    # The message/action ids a mirror report found it in, and that report.
    evidence: list[str]
    source_report_id: UUID | None
    created_at: datetime
    updated_at: datetime


class SkillVersion(OutputModel):
    """One version of a skill's content, as it was when that version was made."""

    id: UUID
    skill_id: UUID
    user_id: UUID
    version: int
    name: str
    description: str | None
    category: str | None
    template_prompt: str | None
    score: float
    created_at: datetime


class SuggestedSkill(InputModel):
    """A skill a mirror report suggests, with the ids of what it was found in."""

    name: Name
    description: Description | None = None
    category: Category | None = None
    template_prompt: LongText | None = None
    score: Score = 0
    evidence: Annotated[list[UUID], Field(max_length=1000)] = Field(default_factory=list)
