"""The caller's skills: their SQL, lifecycle moves and prompt versions."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import sql

from agentplane.db.crud import Table, jsonb_params
from agentplane.db.pagination import Page, PageRequest
from agentplane.db.rows import Tx, fetch_one
from agentplane.errors import ConflictError
from agentplane.skills.lifecycle import SkillStatus, SkillTransitionError, allowed_from
from agentplane.skills.models import Skill, SkillCreate

skills = Table("skills", Skill, "skill")


def _update_query(values: dict[str, Any], *, status_guard: bool) -> sql.Composed:
    """`update skills set <values> [, version] where id [and status = any] returning *`.

    Column names come from SkillUpdate's fields. The right-hand sides of SET see the row
    as it was, so `version` moves only when the template prompt really changes.
    """
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column))
        for column in values
    ]
    if "template_prompt" in values:
        assignments.append(
            sql.SQL(
                "version = version + (template_prompt is distinct from %(template_prompt)s)::int"
            )
        )
    guard = sql.SQL(" and status = any(%(allowed_from)s)") if status_guard else sql.SQL("")
    return sql.SQL("update public.skills set {} where id = %(skill_id)s{} returning *").format(
        sql.SQL(", ").join(assignments), guard
    )


async def create(tx: Tx, body: SkillCreate) -> Skill:
    """A new skill of the caller's (version 1)."""
    return await skills.insert(tx, body.model_dump())


async def page(tx: Tx, request: PageRequest, status: SkillStatus | None) -> Page[Skill]:
    """The caller's skills, optionally in one status."""
    return await skills.page(tx, request, {"status": status})


async def get(tx: Tx, skill_id: UUID) -> Skill:
    """One of the caller's skills, or 404."""
    return await skills.require(tx, skill_id)


async def update(
    tx: Tx, skill_id: UUID, changes: dict[str, Any], requested: SkillStatus | None
) -> Skill:
    """Change a skill in one conditional UPDATE; 409 if its status cannot move as asked."""
    values = jsonb_params(changes)
    if not values:
        return await skills.require(tx, skill_id)
    # An explicit null status is left to the NOT NULL constraint (422 naming status).
    params = {**values, "skill_id": skill_id}
    if requested is not None:
        params["allowed_from"] = allowed_from(requested)
    query = _update_query(values, status_guard=requested is not None)
    row = await fetch_one(tx, Skill, query, params)
    if row is not None:
        return row
    # No row: either not the caller's (404) or in a status the move cannot start from.
    current = await skills.require(tx, skill_id)
    if requested is not None and current.status not in params["allowed_from"]:
        raise SkillTransitionError(current.status, requested)
    # The row matched when read again, so it changed between the two statements.
    raise ConflictError(f"skill {skill_id} changed while being updated; retry")


async def delete(tx: Tx, skill_id: UUID) -> None:
    """Delete one of the caller's skills."""
    await skills.delete(tx, skill_id)
