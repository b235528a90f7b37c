"""/projects: projects of the organizations the caller belongs to."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from agentplane.db.pagination import Page
from agentplane.http.deps import UserTx
from agentplane.http.pagination import PageDep
from agentplane.projects import service
from agentplane.projects.models import Project, ProjectCreate, ProjectUpdate

router = APIRouter(prefix="/projects", tags=["projects"])


@router.post("", status_code=201, response_model=Project)
async def create_project(body: ProjectCreate, tx: UserTx) -> Project:
    """Create a project (members and up)."""
    return await service.create_project(tx, body)


@router.get("", response_model=Page[Project])
async def list_projects(
    tx: UserTx, page: PageDep, organization_id: UUID | None = None
) -> Page[Project]:
    """Projects the caller can see, optionally of one organization."""
    return await service.list_projects(tx, page, organization_id)


@router.get("/{project_id}", response_model=Project)
async def get_project(project_id: UUID, tx: UserTx) -> Project:
    """One project."""
    return await service.get_project(tx, project_id)


@router.patch("/{project_id}", response_model=Project)
async def update_project(project_id: UUID, body: ProjectUpdate, tx: UserTx) -> Project:
    """Rename or describe a project (members and up)."""
    return await service.update_project(tx, project_id, body)


@router.delete("/{project_id}", status_code=204, response_class=Response)
async def delete_project(project_id: UUID, tx: UserTx) -> Response:
    """Delete a project and everything in it (admins and owners)."""
    await service.delete_project(tx, project_id)
    return Response(status_code=204)
