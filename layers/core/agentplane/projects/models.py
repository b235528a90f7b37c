"""Project input and output models."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from agentplane.models import Description, InputModel, Name, OutputModel


class ProjectCreate(InputModel):
    """A new project in an organization the caller is a member of."""

    organization_id: UUID
    name: Name
    description: Description = ""


class ProjectUpdate(InputModel):
    """Fields of a project that can change."""

    name: Name | None = None
    description: Description | None = None


class Project(OutputModel):
    """A project."""

    id: UUID
    organization_id: UUID
    name: str
    description: str
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
