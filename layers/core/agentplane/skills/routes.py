"""/skills: the caller's skills, their lifecycle and template prompt versions."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Response

from agentplane.db.pagination import Page
from agentplane.http.deps import UserTx
from agentplane.http.pagination import PageDep
from agentplane.skills import service
from agentplane.skills.lifecycle import SkillStatus
from agentplane.skills.models import Skill, SkillCreate, SkillUpdate, SkillVersion

router = APIRouter(prefix="/skills", tags=["skills"])


@router.post("", status_code=201, response_model=Skill)
async def create_skill(body: SkillCreate, tx: UserTx) -> Skill:
    """Create a skill (version 1), `suggested` unless another status is given."""
    return await service.create(tx, body)


@router.get("", response_model=Page[Skill])
async def list_skills(tx: UserTx, page: PageDep, status: SkillStatus | None = None) -> Page[Skill]:
    """The caller's skills, optionally in one status."""
    return await service.page(tx, page, status)


@router.get("/{skill_id}", response_model=Skill)
async def get_skill(skill_id: UUID, tx: UserTx) -> Skill:
    """One skill."""
    return await service.get(tx, skill_id)


@router.patch("/{skill_id}", response_model=Skill)
async def update_skill(skill_id: UUID, body: SkillUpdate, tx: UserTx) -> Skill:
    """Change a skill in one conditional UPDATE; 409 if its status cannot move as asked."""
    return await service.update(tx, skill_id, body.model_dump(exclude_unset=True), body.status)


@router.delete("/{skill_id}", status_code=204, response_class=Response)
async def delete_skill(skill_id: UUID, tx: UserTx) -> Response:
    """Delete a skill."""
    await service.delete(tx, skill_id)
    return Response(status_code=204)


@router.post("/{skill_id}/promote", response_model=Skill)
async def promote_skill(skill_id: UUID, tx: UserTx) -> Skill:
    """Make a skill active; 409 naming its current status if the lifecycle forbids it."""
    return await service.promote(tx, skill_id)


@router.post("/{skill_id}/dismiss", response_model=Skill)
async def dismiss_skill(skill_id: UUID, tx: UserTx) -> Skill:
    """Archive a suggested, draft or deprecated skill; 409 naming its status otherwise."""
    return await service.dismiss(tx, skill_id)


@router.get("/{skill_id}/versions", response_model=Page[SkillVersion])
async def list_skill_versions(skill_id: UUID, tx: UserTx, page: PageDep) -> Page[SkillVersion]:
    """The skill's versions, oldest first, each with the content it had."""
    return await service.versions(tx, skill_id, page)


@router.get("/{skill_id}/versions/{number}", response_model=SkillVersion)
async def get_skill_version(
    skill_id: UUID, number: Annotated[int, Path(ge=1)], tx: UserTx
) -> SkillVersion:
    """One version of the skill, as it was."""
    return await service.version(tx, skill_id, number)
