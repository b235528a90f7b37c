"""Template bundles: their SQL, the public catalog, and installing one as copies."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import ValidationError

from agentplane.db.crud import Table
from agentplane.db.pagination import Page, PageRequest
from agentplane.db.rows import Tx, fetch_value
from agentplane.errors import ConflictError, NotFoundError
from agentplane.templates.models import (
    Payload,
    Template,
    TemplateCreate,
    TemplateInstall,
    TemplateUpdate,
)

templates = Table("templates", Template, "template")


class TemplateNotInstallableError(ConflictError):
    """The stored payload (written past the API) does not fit what an install copies."""

    type_slug = "template-not-installable"
    title = "Template cannot be installed"


# The installer may not update the author's row, so the count goes through a security
# definer function that also refuses templates the caller cannot see; its row lock
# queues concurrent installs (tests/integration/api/test_templates.py).
RECORD_INSTALL = "select private.record_template_install(%s)"
# user_id defaults to auth.uid(): the copies belong to the installer, and RLS checks it.
INSERT_SKILL = (
    "insert into public.skills"
    " (name, description, category, template_prompt, status, source_template_id)"
    " values (%s, %s, %s, %s, 'draft', %s) returning id"
)
INSERT_MEMORY = (
    "insert into public.memory_nodes (label, category, strength, content, source)"
    " values (%s, %s, %s, %s, %s) returning id"
)


def _row(values: dict[str, Any], payload: Payload | None) -> dict[str, Any]:
    """Column values; a payload is stored whole, in the seed's shape, defaults included."""
    if payload is not None:
        values["payload"] = payload.model_dump()
    return values


async def create(tx: Tx, body: TemplateCreate) -> Template:
    """A template authored by the caller (author_id defaults to auth.uid())."""
    return await templates.insert(tx, _row(body.model_dump(), body.payload))


async def page(
    tx: Tx, request: PageRequest, *, public: bool, caller_id: UUID | None
) -> Page[Template]:
    """Every author's public templates, or the caller's own."""
    if public:
        return await templates.page(tx, request, {"is_public": True})
    return await templates.page(tx, request, {"author_id": caller_id})


async def get(tx: Tx, template_id: UUID) -> Template:
    """A template the caller can see (their own, or a public one), or 404."""
    return await templates.require(tx, template_id)


async def update(tx: Tx, template_id: UUID, body: TemplateUpdate) -> Template:
    """Change a template (its author; 403 for others on a public one, 404 on a private one)."""
    values = _row(body.model_dump(exclude_unset=True), body.payload)
    return await templates.update(tx, template_id, values)


def _installable(template: Template) -> Payload:
    """The stored payload as `Payload`, or 409 naming each field that does not fit."""
    try:
        return Payload.model_validate(template.payload)
    except ValidationError as exc:
        raise TemplateNotInstallableError(
            f"template {template.id} has a payload that cannot be installed",
            errors=[
                {
                    "field": ".".join(["payload", *map(str, e["loc"])]),
                    "rule": e["type"],
                    "message": e["msg"],
                }
                for e in exc.errors()
            ],
        ) from exc


async def delete(tx: Tx, template_id: UUID) -> None:
    """Delete a template (its author); installed copies stay, their source set to null."""
    await templates.delete(tx, template_id)


async def _insert_each(tx: Tx, query: str, rows: list[tuple[Any, ...]]) -> list[UUID]:
    """Run an `insert ... returning id` once per row (pipelined); the ids in row order."""
    if not rows:
        return []
    ids: list[UUID] = []
    async with tx.cursor() as cur:
        await cur.executemany(query, rows, returning=True)
        while True:
            row = await cur.fetchone()
            assert row is not None
            ids.append(row[0])
            if not cur.nextset():
                return ids


async def install(tx: Tx, template_id: UUID) -> TemplateInstall:
    """Copy a template's skills (as drafts) and seed memory into the caller's rows; count it.

    Each installed memory node's `source` names the template it came from.
    """
    if await fetch_value(tx, RECORD_INSTALL, [template_id]) is None:
        raise NotFoundError(f"template {template_id} not found")
    payload = _installable(await templates.require(tx, template_id))
    skills = await _insert_each(
        tx,
        INSERT_SKILL,
        [
            (s.name, s.description, s.category, s.template_prompt, template_id)
            for s in payload.skills
        ],
    )
    source = f"template:{template_id}"
    memory = await _insert_each(
        tx,
        INSERT_MEMORY,
        [
            (m.label, m.category, m.strength, m.content, m.source or source)
            for m in payload.seed_memory
        ],
    )
    return TemplateInstall(template_id=template_id, skills=skills, memory_nodes=memory)
