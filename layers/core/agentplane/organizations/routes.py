"""/organizations and /organizations/{id}/members."""

from __future__ import annotations

from uuid import UUID, uuid4

from fastapi import APIRouter, Response
from psycopg import errors as pg
from psycopg.rows import class_row

from agentplane.db.crud import Table, require_visible
from agentplane.db.pagination import Page, fetch_page
from agentplane.errors import ForbiddenError, NotFoundError
from agentplane.http.deps import UserDep, UserTx
from agentplane.http.pagination import PageDep
from agentplane.organizations.models import (
    Member,
    MemberCreate,
    MemberUpdate,
    Organization,
    OrganizationCreate,
    OrganizationUpdate,
)

router = APIRouter(prefix="/organizations", tags=["organizations"])
organizations = Table("organizations", Organization, "organization")

MEMBER_SELECT = "select * from public.organization_members"


@router.post("", status_code=201, response_model=Organization)
async def create_organization(
    body: OrganizationCreate, caller: UserDep, tx: UserTx
) -> Organization:
    """Create an organization; the caller becomes its owner in the same transaction."""
    org_id = uuid4()
    # No RETURNING: the row is visible to its creator once the owner membership (an
    # AFTER INSERT trigger) exists, i.e. after this statement.
    await tx.execute(
        "insert into public.organizations (id, name, slug, created_by) values (%s, %s, %s, %s)",
        (org_id, body.name, body.slug, caller.user_id),
    )
    return await organizations.require(tx, org_id)


@router.get("", response_model=Page[Organization])
async def list_organizations(tx: UserTx, page: PageDep) -> Page[Organization]:
    """Organizations the caller belongs to."""
    return await organizations.page(tx, page)


@router.get("/{organization_id}", response_model=Organization)
async def get_organization(organization_id: UUID, tx: UserTx) -> Organization:
    """One organization."""
    return await organizations.require(tx, organization_id)


@router.patch("/{organization_id}", response_model=Organization)
async def update_organization(
    organization_id: UUID, body: OrganizationUpdate, tx: UserTx
) -> Organization:
    """Rename an organization (admins and owners)."""
    return await organizations.update(tx, organization_id, body.model_dump(exclude_unset=True))


@router.delete("/{organization_id}", status_code=204, response_class=Response)
async def delete_organization(organization_id: UUID, tx: UserTx) -> Response:
    """Delete an organization and everything in it (owners)."""
    await organizations.delete(tx, organization_id)
    return Response(status_code=204)


@router.get("/{organization_id}/members", response_model=Page[Member])
async def list_members(organization_id: UUID, tx: UserTx, page: PageDep) -> Page[Member]:
    """Members of an organization, oldest first."""
    await require_visible(tx, "organizations", organization_id, "organization")
    return await fetch_page(
        tx, Member, MEMBER_SELECT, page, ["organization_id = %s"], [organization_id], key="user_id"
    )


async def _member(tx: UserTx, organization_id: UUID, user_id: UUID) -> Member | None:
    async with tx.cursor(row_factory=class_row(Member)) as cur:
        await cur.execute(
            MEMBER_SELECT + " where organization_id = %s and user_id = %s",
            (organization_id, user_id),
        )
        return await cur.fetchone()


@router.post("/{organization_id}/members", status_code=201, response_model=Member)
async def add_member(organization_id: UUID, body: MemberCreate, tx: UserTx) -> Member:
    """Add a user (admins; only owners add owners). 409 if already a member."""
    await require_visible(tx, "organizations", organization_id, "organization")
    try:
        async with tx.cursor(row_factory=class_row(Member)) as cur:
            await cur.execute(
                "insert into public.organization_members (organization_id, user_id, role)"
                " values (%s, %s, %s) returning *",
                (organization_id, body.user_id, body.role),
            )
            row = await cur.fetchone()
    except pg.ForeignKeyViolation as exc:
        raise NotFoundError(f"user {body.user_id} not found") from exc
    assert row is not None
    return row


@router.patch("/{organization_id}/members/{user_id}", response_model=Member)
async def update_member(
    organization_id: UUID, user_id: UUID, body: MemberUpdate, tx: UserTx
) -> Member:
    """Change a member's role (admins; only owners touch owners; one owner stays)."""
    async with tx.cursor(row_factory=class_row(Member)) as cur:
        await cur.execute(
            "update public.organization_members set role = %s"
            " where organization_id = %s and user_id = %s returning *",
            (body.role, organization_id, user_id),
        )
        row = await cur.fetchone()
    if row is None:
        if await _member(tx, organization_id, user_id) is not None:
            raise ForbiddenError("your role does not allow changing this member")
        raise NotFoundError(f"member {user_id} not found")
    return row


@router.delete("/{organization_id}/members/{user_id}", status_code=204, response_class=Response)
async def remove_member(organization_id: UUID, user_id: UUID, tx: UserTx) -> Response:
    """Remove a member (admins; owners for owners; anyone may leave; one owner stays)."""
    cur = await tx.execute(
        "delete from public.organization_members where organization_id = %s and user_id = %s",
        (organization_id, user_id),
    )
    if cur.rowcount == 0:
        if await _member(tx, organization_id, user_id) is not None:
            raise ForbiddenError("your role does not allow removing this member")
        raise NotFoundError(f"member {user_id} not found")
    return Response(status_code=204)
