"""Projects of the organizations the caller belongs to, in the caller's transaction.

RLS decides who sees and changes what (viewers read, members write, admins delete).
"""

from __future__ import annotations

from uuid import UUID

from agentplane.db.crud import Table, require_visible
from agentplane.db.pagination import Page, PageRequest
from agentplane.db.rows import Tx
from agentplane.projects.models import Project, ProjectCreate, ProjectUpdate

projects = Table("projects", Project, "project")


async def create_project(tx: Tx, body: ProjectCreate) -> Project:
    """A new project of a visible organization (members and up); 404 otherwise."""
    await require_visible(tx, "organizations", body.organization_id, "organization")
    return await projects.insert(tx, body.model_dump())


async def find_project(tx: Tx, organization_id: UUID, name: str) -> Project | None:
    """The oldest visible project of the organization with this name, if any."""
    return await projects.find(tx, organization_id=organization_id, name=name)


async def list_projects(
    tx: Tx, page: PageRequest, organization_id: UUID | None = None
) -> Page[Project]:
    """A page of the projects the caller can see, optionally of one organization."""
    return await projects.page(tx, page, {"organization_id": organization_id})


async def get_project(tx: Tx, project_id: UUID) -> Project:
    """One project, or 404."""
    return await projects.require(tx, project_id)


async def update_project(tx: Tx, project_id: UUID, body: ProjectUpdate) -> Project:
    """Set the fields the body names (members and up)."""
    return await projects.update(tx, project_id, body.model_dump(exclude_unset=True))


async def delete_project(tx: Tx, project_id: UUID) -> None:
    """Delete a project and everything in it (admins and owners)."""
    await projects.delete(tx, project_id)
