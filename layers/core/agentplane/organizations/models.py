"""Organization and membership models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import StringConstraints

from agentplane.models import InputModel, Name, OutputModel

Role = Literal["owner", "admin", "member", "viewer"]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]


class OrganizationCreate(InputModel):
    """A new organization; its creator becomes its owner."""

    name: Name
    slug: Slug | None = None


class OrganizationUpdate(InputModel):
    """Fields of an organization that can change (admins and owners)."""

    name: Name | None = None
    slug: Slug | None = None


class Organization(OutputModel):
    """An organization."""

    id: UUID
    name: str
    slug: str | None
    created_by: UUID
    created_at: datetime
    updated_at: datetime


class OrganizationDeleted(OutputModel):
    """An organization just deleted, and how much went with it."""

    id: UUID
    name: str
    slug: str | None
    projects: int
    agents: int
    actions: int


class MemberCreate(InputModel):
    """Add a user to an organization with a role (admins; owners for `owner`)."""

    user_id: UUID
    role: Role = "member"


class MemberUpdate(InputModel):
    """Change a member's role."""

    role: Role


class Member(OutputModel):
    """A user's membership of an organization."""

    organization_id: UUID
    user_id: UUID
    role: Role
    created_at: datetime
    updated_at: datetime
