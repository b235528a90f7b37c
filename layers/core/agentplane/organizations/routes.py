"""/organizations and /organizations/{id}/members."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from agentplane.db.pagination import Page
from agentplane.http.deps import UserDep, UserTx
from agentplane.http.pagination import PageDep
from agentplane.organizations import service
from agentplane.organizations.models import (
    Member,
    MemberCreate,
    MemberUpdate,
    Organization,
    OrganizationCreate,
    OrganizationDeleted,
    OrganizationUpdate,
)

router = APIRouter(prefix="/organizations", tags=["organizations"])


@router.post("", status_code=201, response_model=Organization)
async def create_organization(
    body: OrganizationCreate, caller: UserDep, tx: UserTx
) -> Organization:
    """Create an organization; the caller becomes its owner in the same transaction."""
    assert caller.user_id is not None  # UserDep builds only user callers
    return await service.create_organization(tx, caller.user_id, body)


@router.get("", response_model=Page[Organization])
async def list_organizations(tx: UserTx, page: PageDep) -> Page[Organization]:
    """Organizations the caller belongs to."""
    return await service.list_organizations(tx, page)


@router.get("/{organization_id}", response_model=Organization)
async def get_organization(organization_id: UUID, tx: UserTx) -> Organization:
    """One organization."""
    return await service.get_organization(tx, organization_id)


@router.patch("/{organization_id}", response_model=Organization)
async def update_organization(
    organization_id: UUID, body: OrganizationUpdate, tx: UserTx
) -> Organization:
    """Rename an organization (admins and owners)."""
    return await service.update_organization(tx, organization_id, body)


@router.delete("/{organization_id}", response_model=OrganizationDeleted)
async def delete_organization(
    organization_id: UUID,
    tx: UserTx,
    confirm: Annotated[
        str | None,
        Query(
            max_length=200,
            description="The organization's slug (its id when it has none), to confirm.",
        ),
    ] = None,
) -> OrganizationDeleted:
    """Delete an organization with all its projects, agents, actions and audit log
    (owners), once `?confirm=` repeats its slug, or its id when it has no slug (422
    naming `confirm` otherwise). Says how many projects, agents and actions went."""
    return await service.delete_organization(tx, organization_id, confirm)


@router.get("/{organization_id}/members", response_model=Page[Member])
async def list_members(organization_id: UUID, tx: UserTx, page: PageDep) -> Page[Member]:
    """Members of an organization, oldest first."""
    return await service.list_members(tx, organization_id, page)


@router.post("/{organization_id}/members", status_code=201, response_model=Member)
async def add_member(organization_id: UUID, body: MemberCreate, tx: UserTx) -> Member:
    """Add a user (admins; only owners add owners). 409 if already a member."""
    return await service.add_member(tx, organization_id, body)


@router.patch("/{organization_id}/members/{user_id}", response_model=Member)
async def update_member(
    organization_id: UUID, user_id: UUID, body: MemberUpdate, tx: UserTx
) -> Member:
    """Change a member's role (admins; only owners touch owners; one owner stays)."""
    return await service.update_member(tx, organization_id, user_id, body)


@router.delete("/{organization_id}/members/{user_id}", status_code=204, response_class=Response)
async def remove_member(organization_id: UUID, user_id: UUID, tx: UserTx) -> Response:
    """Remove a member (admins; owners for owners; anyone may leave; one owner stays)."""
    await service.remove_member(tx, organization_id, user_id)
    return Response(status_code=204)
