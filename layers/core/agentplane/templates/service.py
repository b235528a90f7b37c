"""Template bundles: their SQL, the public catalog, and installing one as copies."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from agentplane.db.crud import Table
from agentplane.db.pagination import Page, PageRequest
from agentplane.db.rows import Tx, fetch_value
from agentplane.errors import NotFoundError
from agentplane.templates.models import Template, TemplateCreate, TemplateInstall

templates = Table("templates", Template, "template")

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


async def create(tx: Tx, body: TemplateCreate) -> Template:
    """A template authored by the caller (author_id defaults to auth.uid())."""
    return await templates.insert(tx, body.model_dump(exclude_unset=True))


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


async def update(tx: Tx, template_id: UUID, values: dict[str, Any]) -> Template:
    """Change a template (its author; 403 for others on a public one, 404 on a private one)."""
    return await templates.update(tx, template_id, values)


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
    payload = (await templates.require(tx, template_id)).payload
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
