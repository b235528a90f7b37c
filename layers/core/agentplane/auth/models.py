"""Identity output models: who the caller is, and the organizations they belong to."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel


class Membership(BaseModel):
    """One organization the caller belongs to, with their role in it."""

    organization_id: UUID
    name: str
    role: Literal["owner", "admin", "member", "viewer"]


class Me(BaseModel):
    """The caller."""

    user_id: UUID
    email: str | None
    organizations: list[Membership]
