"""GET /me: who the token says you are, and the organizations you belong to."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from fastapi import APIRouter
from psycopg.rows import class_row
from pydantic import BaseModel

from agentplane.http.deps import UserDep, UserTx

router = APIRouter(tags=["identity"])


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


@router.get("/me", response_model=Me)
async def me(caller: UserDep, tx: UserTx) -> Me:
    """The verified identity and its memberships (read through RLS as the caller)."""
    async with tx.cursor(row_factory=class_row(Membership)) as cur:
        await cur.execute(
            """
            select m.organization_id, o.name, m.role
            from public.organization_members m
            join public.organizations o on o.id = m.organization_id
            where m.user_id = (select auth.uid())
            order by o.created_at, o.id
            """
        )
        memberships = await cur.fetchall()
    assert caller.user_id is not None
    email = caller.claims.get("email")
    return Me(
        user_id=caller.user_id,
        email=email if isinstance(email, str) else None,
        organizations=memberships,
    )
