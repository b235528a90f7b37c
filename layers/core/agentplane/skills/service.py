"""The caller's skills: their SQL, lifecycle moves and prompt versions."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from agentplane.db.crud import Table, jsonb_params
from agentplane.db.pagination import Page, PageRequest
from agentplane.db.rows import Tx, fetch_one, fetch_value
from agentplane.errors import ConflictError, NotFoundError
from agentplane.skills.lifecycle import SkillStatus, SkillTransitionError, allowed_from
from agentplane.skills.models import Skill, SkillCreate, SkillVersion, SuggestedSkill

skill_rows = Table("skills", Skill, "skill")
skill_versions = Table("skill_versions", SkillVersion, "skill version")

# An edit of any of these makes a new version (recorded in skill_versions by a trigger).
CONTENT_COLUMNS = ("name", "description", "category", "template_prompt")
# How many active skills a turn offers the model, best first.
MAX_TURN_SKILLS = 10


def _update_query(values: dict[str, Any], *, status_guard: bool) -> sql.Composed:
    """`update skills set <values> [, version] where id [and status = any] returning *`.

    Column names come from SkillUpdate's fields. The right-hand sides of SET see the row
    as it was, so `version` moves only when the content really changes; a concurrent edit
    waits for the row lock and then adds its own 1 (test_concurrent_edits_...).
    """
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column))
        for column in values
    ]
    content = [column for column in CONTENT_COLUMNS if column in values]
    if content:
        assignments.append(
            sql.SQL("version = version + (({}) is distinct from ({}))::int").format(
                sql.SQL(", ").join(map(sql.Identifier, content)),
                sql.SQL(", ").join(map(sql.Placeholder, content)),
            )
        )
    guard = sql.SQL(" and status = any(%(allowed_from)s)") if status_guard else sql.SQL("")
    return sql.SQL("update public.skills set {} where id = %(skill_id)s{} returning *").format(
        sql.SQL(", ").join(assignments), guard
    )


async def create(tx: Tx, body: SkillCreate) -> Skill:
    """A new skill of the caller's (version 1)."""
    return await skill_rows.insert(tx, body.model_dump())


async def page(tx: Tx, request: PageRequest, status: SkillStatus | None) -> Page[Skill]:
    """The caller's skills, optionally in one status."""
    return await skill_rows.page(tx, request, {"status": status})


async def get(tx: Tx, skill_id: UUID) -> Skill:
    """One of the caller's skills, or 404."""
    return await skill_rows.require(tx, skill_id)


async def update(
    tx: Tx, skill_id: UUID, changes: dict[str, Any], requested: SkillStatus | None
) -> Skill:
    """Change a skill in one conditional UPDATE; 409 if its status cannot move as asked."""
    values = jsonb_params(changes)
    if not values:
        return await skill_rows.require(tx, skill_id)
    # An explicit null status is left to the NOT NULL constraint (422 naming status).
    params = {**values, "skill_id": skill_id}
    if requested is not None:
        params["allowed_from"] = allowed_from(requested)
    query = _update_query(values, status_guard=requested is not None)
    row = await fetch_one(tx, Skill, query, params)
    if row is not None:
        return row
    # No row: either not the caller's (404) or in a status the move cannot start from.
    current = await skill_rows.require(tx, skill_id)
    if requested is not None and current.status not in params["allowed_from"]:
        raise SkillTransitionError(current.status, requested)
    # The row matched when read again, so it changed between the two statements.
    raise ConflictError(f"skill {skill_id} changed while being updated; retry")


async def delete(tx: Tx, skill_id: UUID) -> None:
    """Delete one of the caller's skills."""
    await skill_rows.delete(tx, skill_id)


async def promote(tx: Tx, skill_id: UUID) -> Skill:
    """Make a skill active (a person adopting a suggestion); 409 if it cannot be."""
    return await update(tx, skill_id, {"status": "active"}, "active")


async def dismiss(tx: Tx, skill_id: UUID) -> Skill:
    """Archive a suggestion or draft (or a deprecated skill); 409 from any other status."""
    return await update(tx, skill_id, {"status": "archived"}, "archived")


async def versions(tx: Tx, skill_id: UUID, request: PageRequest) -> Page[SkillVersion]:
    """A page of one skill's versions, oldest first; 404 if the skill is not the caller's."""
    await skill_rows.require(tx, skill_id)
    return await skill_versions.page(tx, request, {"skill_id": skill_id})


async def version(tx: Tx, skill_id: UUID, number: int) -> SkillVersion:
    """Version `number` of one of the caller's skills, or 404."""
    row = await skill_versions.find(tx, skill_id=skill_id, version=number)
    if row is not None:
        return row
    await skill_rows.require(tx, skill_id)
    raise NotFoundError(f"skill {skill_id} has no version {number}")


async def suggest_skills(
    tx: Tx, user_id: UUID, report_id: UUID, skills: list[dict[str, Any]]
) -> list[Skill]:
    """Insert a mirror report's suggested skills for its owner, each with its evidence.

    The report runner calls this as service_role, so `user_id` is written explicitly; the
    report must be that user's (the composite foreign key says so too).
    """
    suggestions = [SuggestedSkill.model_validate(skill) for skill in skills]
    owned = await fetch_value(
        tx,
        "select 1 from public.mirror_reports where id = %s and user_id = %s",
        [report_id, user_id],
    )
    if owned is None:
        raise NotFoundError(f"mirror report {report_id} not found")
    created: list[Skill] = []
    for suggestion in suggestions:
        values = suggestion.model_dump(exclude={"evidence"})
        values |= {
            "user_id": user_id,
            "status": "suggested",
            "evidence": Jsonb([str(item) for item in suggestion.evidence]),
            "source_report_id": report_id,
        }
        created.append(await skill_rows.insert(tx, values))
    return created


async def active_skill_prompts(tx: Tx, user_id: UUID) -> list[tuple[str, str]]:
    """(name, template_prompt) of the user's active skills with a prompt, best first."""
    cur = await tx.execute(
        "select name, template_prompt from public.skills"
        " where user_id = %s and status = 'active' and btrim(coalesce(template_prompt, '')) <> ''"
        " order by score desc, name limit %s",
        [user_id, MAX_TURN_SKILLS],
    )
    return [(name, prompt) for name, prompt in await cur.fetchall()]


async def with_active_skills(tx: Tx, user_id: UUID, system_prompt: str) -> str:
    """The system prompt of a turn, followed by the user's active skills if they have any."""
    prompts = await active_skill_prompts(tx, user_id)
    if not prompts:
        return system_prompt
    section = "Skills you have:\n" + "\n".join(f"- {name}: {prompt}" for name, prompt in prompts)
    return f"{system_prompt}\n\n{section}" if system_prompt else section
