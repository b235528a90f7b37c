"""/templates: template bundles, their public catalog, and installing one."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from agentplane.db.pagination import Page
from agentplane.http.deps import UserDep, UserTx
from agentplane.http.pagination import PageDep
from agentplane.templates import service
from agentplane.templates.models import (
    Template,
    TemplateCreate,
    TemplateInstall,
    TemplateUpdate,
)

router = APIRouter(prefix="/templates", tags=["templates"])


@router.post("", status_code=201, response_model=Template)
async def create_template(body: TemplateCreate, tx: UserTx) -> Template:
    """Create a template authored by the caller."""
    return await service.create(tx, body)


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
    return await service.page(tx, page, public=public, caller_id=caller.user_id)


@router.get("/{template_id}", response_model=Template)
async def get_template(template_id: UUID, tx: UserTx) -> Template:
    """One template: the caller's own, or a public one."""
    return await service.get(tx, template_id)


@router.patch("/{template_id}", response_model=Template)
async def update_template(template_id: UUID, body: TemplateUpdate, tx: UserTx) -> Template:
    """Change a template (its author; 403 for others on a public one, 404 on a private one)."""
    return await service.update(tx, template_id, body)


@router.delete("/{template_id}", status_code=204, response_class=Response)
async def delete_template(template_id: UUID, tx: UserTx) -> Response:
    """Delete a template (its author); installed copies stay, their source set to null."""
    await service.delete(tx, template_id)
    return Response(status_code=204)


@router.post("/{template_id}/install", status_code=201, response_model=TemplateInstall)
async def install_template(template_id: UUID, tx: UserTx) -> TemplateInstall:
    """Copy a template's skills (as drafts) and seed memory into the caller's rows; count it."""
    return await service.install(tx, template_id)
