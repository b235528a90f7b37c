"""Organizations and their members, in the caller's transaction.

RLS decides who sees and changes what (viewers read, admins manage members, owners
manage owners and delete); these functions add the explanation of a refusal (403/404).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from psycopg import errors as pg

from agentplane.db.crud import Table, require_visible
from agentplane.db.pagination import Page, PageRequest, fetch_page
from agentplane.db.rows import Tx, fetch_one
from agentplane.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationProblemError,
)
from agentplane.organizations.models import (
    Member,
    MemberCreate,
    MemberUpdate,
    Organization,
    OrganizationCreate,
    OrganizationDeleted,
    OrganizationUpdate,
)

organizations = Table("organizations", Organization, "organization")

# No RETURNING: the row is visible to its creator once the owner membership (an AFTER
# INSERT trigger) exists, i.e. after this statement.
INSERT_ORGANIZATION = (
    "insert into public.organizations (id, name, slug, created_by) values (%s, %s, %s, %s)"
)
MEMBER_SELECT = "select * from public.organization_members"
MEMBER = MEMBER_SELECT + " where organization_id = %s and user_id = %s"
INSERT_MEMBER = (
    "insert into public.organization_members (organization_id, user_id, role)"
    " values (%s, %s, %s) returning *"
)
UPDATE_MEMBER = (
    "update public.organization_members set role = %s"
    " where organization_id = %s and user_id = %s returning *"
)
# Asked with the function the delete policy uses, so "owners only" lives in one place.
DELETE_ACCESS = (
    "select coalesce(slug, id::text) as confirmation,"
    " id = any ((select private.org_ids('owner'))::uuid[]) as may_delete"
    " from public.organizations where id = %s"
)
# One statement: the counts read the snapshot the delete starts from, and the delete
# (owners only, by RLS) still requires the confirmation, should the slug change meanwhile.
DELETE_CONFIRMED = """
with gone as (
  delete from public.organizations
   where id = %(id)s and coalesce(slug, id::text) = %(confirm)s
  returning id, name, slug
)
select gone.id, gone.name, gone.slug,
       (select count(*) from public.projects where organization_id = %(id)s) as projects,
       (select count(*) from public.agents where organization_id = %(id)s) as agents,
       (select count(*) from public.agent_actions where organization_id = %(id)s) as actions
  from gone
"""
DELETE_MEMBER = (
    "delete from public.organization_members where organization_id = %s and user_id = %s"
)


async def create_organization(tx: Tx, created_by: UUID, body: OrganizationCreate) -> Organization:
    """A new organization; its creator becomes its owner in the same transaction."""
    org_id = uuid4()
    await tx.execute(INSERT_ORGANIZATION, (org_id, body.name, body.slug, created_by))
    return await organizations.require(tx, org_id)


async def find_organization(tx: Tx, slug: str) -> Organization | None:
    """The caller's organization with this slug, if they belong to one."""
    return await organizations.find(tx, slug=slug)


async def list_organizations(tx: Tx, page: PageRequest) -> Page[Organization]:
    """A page of the organizations the caller belongs to."""
    return await organizations.page(tx, page)


async def get_organization(tx: Tx, organization_id: UUID) -> Organization:
    """One organization, or 404."""
    return await organizations.require(tx, organization_id)


async def update_organization(
    tx: Tx, organization_id: UUID, body: OrganizationUpdate
) -> Organization:
    """Set the fields the body names (admins and owners)."""
    return await organizations.update(tx, organization_id, body.model_dump(exclude_unset=True))


@dataclass(frozen=True)
class _DeleteAccess:
    confirmation: str
    may_delete: bool


async def delete_organization(
    tx: Tx, organization_id: UUID, confirm: str | None
) -> OrganizationDeleted:
    """Delete an organization and everything in it (owners), once `confirm` repeats its
    slug (its id when it has none); 404, 403 for other members, 422 naming `confirm`."""
    access = await fetch_one(tx, _DeleteAccess, DELETE_ACCESS, (organization_id,))
    if access is None:
        raise NotFoundError(f"organization {organization_id} not found")
    if not access.may_delete:
        raise ForbiddenError(f"only an owner may delete organization {organization_id}")
    if confirm != access.confirmation:
        raise ValidationProblemError(
            [
                {
                    "field": "confirm",
                    "in": "query",
                    "rule": "missing" if confirm is None else "matches_organization",
                    "message": "repeat the organization's slug (its id when it has no slug)"
                    " to delete it with everything in it",
                }
            ]
        )
    deleted = await fetch_one(
        tx, OrganizationDeleted, DELETE_CONFIRMED, {"id": organization_id, "confirm": confirm}
    )
    if deleted is None:
        raise ConflictError(f"organization {organization_id} changed meanwhile; try again")
    return deleted


async def list_members(tx: Tx, organization_id: UUID, page: PageRequest) -> Page[Member]:
    """A page of an organization's members, oldest first; 404 if it is not visible."""
    await require_visible(tx, "organizations", organization_id, "organization")
    return await fetch_page(
        tx, Member, MEMBER_SELECT, page, ["organization_id = %s"], [organization_id], key="user_id"
    )


async def _member(tx: Tx, organization_id: UUID, user_id: UUID) -> Member | None:
    return await fetch_one(tx, Member, MEMBER, (organization_id, user_id))


async def add_member(tx: Tx, organization_id: UUID, body: MemberCreate) -> Member:
    """Add a user with a role (admins; only owners add owners); 404 for an unknown user."""
    await require_visible(tx, "organizations", organization_id, "organization")
    try:
        row = await fetch_one(tx, Member, INSERT_MEMBER, (organization_id, body.user_id, body.role))
    except pg.ForeignKeyViolation as exc:
        raise NotFoundError(f"user {body.user_id} not found") from exc
    assert row is not None
    return row


async def update_member(tx: Tx, organization_id: UUID, user_id: UUID, body: MemberUpdate) -> Member:
    """Change a member's role (admins; only owners touch owners; one owner stays)."""
    row = await fetch_one(tx, Member, UPDATE_MEMBER, (body.role, organization_id, user_id))
    if row is None:
        if await _member(tx, organization_id, user_id) is not None:
            raise ForbiddenError("your role does not allow changing this member")
        raise NotFoundError(f"member {user_id} not found")
    return row


async def remove_member(tx: Tx, organization_id: UUID, user_id: UUID) -> None:
    """Remove a member (admins; owners for owners; anyone may leave; one owner stays)."""
    cur = await tx.execute(DELETE_MEMBER, (organization_id, user_id))
    if cur.rowcount == 0:
        if await _member(tx, organization_id, user_id) is not None:
            raise ForbiddenError("your role does not allow removing this member")
        raise NotFoundError(f"member {user_id} not found")
