"""/skills: the caller's skills, their lifecycle and instruction versions."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from psycopg import sql
from psycopg.rows import class_row

from agentplane.db.crud import Table, jsonb_params
from agentplane.db.pagination import Page
from agentplane.errors import ConflictError
from agentplane.http.deps import UserTx
from agentplane.http.pagination import PageDep
from agentplane.skills.lifecycle import SkillStatus, SkillTransitionError, allowed_from
from agentplane.skills.models import Skill, SkillCreate, SkillUpdate

router = APIRouter(prefix="/skills", tags=["skills"])
skills = Table("skills", Skill, "skill")


def _update_query(values: dict[str, Any], *, status_guard: bool) -> sql.Composed:
    """`update skills set <values> [, version] where id [and status = any] returning *`.

    Column names come from SkillUpdate's fields. The right-hand sides of SET see the row
    as it was, so `version` moves only when the instructions really change.
    """
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column))
        for column in values
    ]
    if "instructions" in values:
        assignments.append(
            sql.SQL("version = version + (instructions is distinct from %(instructions)s)::int")
        )
    guard = sql.SQL(" and status = any(%(allowed_from)s)") if status_guard else sql.SQL("")
    return sql.SQL("update public.skills set {} where id = %(skill_id)s{} returning *").format(
        sql.SQL(", ").join(assignments), guard
    )


@router.post("", status_code=201, response_model=Skill)
async def create_skill(body: SkillCreate, tx: UserTx) -> Skill:
    """Create a skill (version 1)."""
    return await skills.insert(tx, body.model_dump())


@router.get("", response_model=Page[Skill])
async def list_skills(tx: UserTx, page: PageDep, status: SkillStatus | None = None) -> Page[Skill]:
    """The caller's skills, optionally in one status."""
    return await skills.page(tx, page, {"status": status})


@router.get("/{skill_id}", response_model=Skill)
async def get_skill(skill_id: UUID, tx: UserTx) -> Skill:
    """One skill."""
    return await skills.require(tx, skill_id)


@router.patch("/{skill_id}", response_model=Skill)
async def update_skill(skill_id: UUID, body: SkillUpdate, tx: UserTx) -> Skill:
    """Change a skill in one conditional UPDATE; 409 if its status cannot move as asked."""
    values = jsonb_params(body.model_dump(exclude_unset=True))
    if not values:
        return await skills.require(tx, skill_id)
    # An explicit null status is left to the NOT NULL constraint (422 naming status).
    requested = body.status
    params = {**values, "skill_id": skill_id}
    if requested is not None:
        params["allowed_from"] = allowed_from(requested)
    query = _update_query(values, status_guard=requested is not None)
    async with tx.cursor(row_factory=class_row(Skill)) as cur:
        await cur.execute(query, params)
        row = await cur.fetchone()
    if row is not None:
        return row
    # No row: either not the caller's (404) or in a status the move cannot start from.
    current = await skills.require(tx, skill_id)
    if requested is not None and current.status not in params["allowed_from"]:
        raise SkillTransitionError(current.status, requested)
    # The row matched when read again, so it changed between the two statements.
    raise ConflictError(f"skill {skill_id} changed while being updated; retry")


@router.delete("/{skill_id}", status_code=204, response_class=Response)
async def delete_skill(skill_id: UUID, tx: UserTx) -> Response:
    """Delete a skill."""
    await skills.delete(tx, skill_id)
    return Response(status_code=204)
