"""/templates: template bundles, their public catalog, and installing one."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response
from psycopg import AsyncConnection

from agentplane.db.crud import Table
from agentplane.db.pagination import Page
from agentplane.errors import NotFoundError
from agentplane.http.deps import UserDep, UserTx
from agentplane.http.pagination import PageDep
from agentplane.templates.models import (
    Template,
    TemplateCreate,
    TemplateInstall,
    TemplateUpdate,
)

router = APIRouter(prefix="/templates", tags=["templates"])
templates = Table("templates", Template, "template")

# The installer may not update the author's row, so the count goes through a security
# definer function (migration 20261122000100) that also refuses templates the caller
# cannot see. Its UPDATE takes the row lock: concurrent installs queue on it, each adds
# one to the committed count, and the bundle read after it cannot change until commit.
RECORD_INSTALL = "select private.record_template_install(%s)"
# user_id defaults to auth.uid(): the copies belong to the installer, and RLS checks it.
INSERT_SKILL = (
    "insert into public.skills (name, description, instructions, status, source_template_id)"
    " values (%s, %s, %s, 'draft', %s) returning id"
)
INSERT_MEMORY = (
    "insert into public.memory_nodes (kind, label, content, importance)"
    " values (%s, %s, %s, %s) returning id"
)


@router.post("", status_code=201, response_model=Template)
async def create_template(body: TemplateCreate, tx: UserTx) -> Template:
    """Create a template authored by the caller."""
    return await templates.insert(tx, body.model_dump(exclude_unset=True))


@router.get("", response_model=Page[Template])
async def list_templates(
    tx: UserTx,
    caller: UserDep,
    page: PageDep,
    public: Annotated[
        bool, Query(description="true: every author's public templates, not your own")
    ] = False,
) -> Page[Template]:
    """The caller's own templates, or with `?public=true` every author's public ones."""
    if public:
        return await templates.page(tx, page, {"is_public": True})
    return await templates.page(tx, page, {"user_id": caller.user_id})


@router.get("/{template_id}", response_model=Template)
async def get_template(template_id: UUID, tx: UserTx) -> Template:
    """One template: the caller's own, or a public one."""
    return await templates.require(tx, template_id)


@router.patch("/{template_id}", response_model=Template)
async def update_template(template_id: UUID, body: TemplateUpdate, tx: UserTx) -> Template:
    """Change a template (its author; 403 for others on a public one, 404 on a private one)."""
    return await templates.update(tx, template_id, body.model_dump(exclude_unset=True))


@router.delete("/{template_id}", status_code=204, response_class=Response)
async def delete_template(template_id: UUID, tx: UserTx) -> Response:
    """Delete a template (its author); installed copies stay, their source set to null."""
    await templates.delete(tx, template_id)
    return Response(status_code=204)


async def _insert_each(
    tx: AsyncConnection[Any], query: str, rows: list[tuple[Any, ...]]
) -> list[UUID]:
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


@router.post("/{template_id}/install", status_code=201, response_model=TemplateInstall)
async def install_template(template_id: UUID, tx: UserTx) -> TemplateInstall:
    """Copy a template's skills (as drafts) and memory into the caller's rows; count it."""
    cur = await tx.execute(RECORD_INSTALL, [template_id])
    counted = await cur.fetchone()
    if counted is None or counted[0] is None:
        raise NotFoundError(f"template {template_id} not found")
    bundle = (await templates.require(tx, template_id)).bundle
    skills = await _insert_each(
        tx,
        INSERT_SKILL,
        [(s.name, s.description, s.instructions, template_id) for s in bundle.skills],
    )
    memory = await _insert_each(
        tx,
        INSERT_MEMORY,
        [(m.kind, m.label, m.content, m.importance) for m in bundle.memory],
    )
    return TemplateInstall(template_id=template_id, skills=skills, memory_nodes=memory)
