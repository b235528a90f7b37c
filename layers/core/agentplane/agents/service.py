"""The agents domain's SQL beyond single-row CRUD, run in the caller's transaction.

RLS decides what every statement sees and touches; these queries only add the lookups a
route needs first (a parent's organization) and the explanation of a refusal (403/404).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import AsyncConnection, sql

from agentplane.agents.models import RunnerToken, RunnerTokenCreated
from agentplane.agents.tokens import IssuedToken
from agentplane.db.pagination import Page, PageRequest, fetch_page
from agentplane.errors import ForbiddenError, NotFoundError

# Listed columns are spelled out, so the hash never leaves the database by accident.
RUNNER_CREDENTIAL_SELECT = (
    "select id, agent_id, name, token_prefix, created_by, created_at, expires_at,"
    " last_used_at, revoked_at from public.agent_runner_tokens"
)


async def _organization_of(tx: AsyncConnection[Any], table: str, noun: str, row_id: UUID) -> UUID:
    query = sql.SQL("select organization_id from public.{} where id = %s").format(
        sql.Identifier(table)
    )
    cur = await tx.execute(query, (row_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"{noun} {row_id} not found")
    organization_id: UUID = row[0]
    return organization_id


async def project_organization(tx: AsyncConnection[Any], project_id: UUID) -> UUID:
    """The organization of a project the caller can see; 404 otherwise."""
    return await _organization_of(tx, "projects", "project", project_id)


async def agent_organization(tx: AsyncConnection[Any], agent_id: UUID) -> UUID:
    """The organization of an agent the caller can see; 404 otherwise."""
    return await _organization_of(tx, "agents", "agent", agent_id)


async def require_runner_token_access(tx: AsyncConnection[Any], agent_id: UUID) -> UUID:
    """The agent's organization if the caller may manage its runner tokens; 404, or 403.

    Viewers see the agent but RLS hides its tokens; rather than an empty list or a 404 for
    a token they cannot see, they get a 403. The question is asked with the function the
    runner-token policies use (`private.org_ids('member')`), so the rule lives in one place
    and RLS still enforces it on every statement that follows.
    """
    cur = await tx.execute(
        "select organization_id,"
        " organization_id = any ((select private.org_ids('member'))::uuid[]) as may_manage"
        " from public.agents where id = %s",
        (agent_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"agent {agent_id} not found")
    organization_id, may_manage = row
    if not may_manage:
        raise ForbiddenError(f"your role does not allow managing runner tokens of agent {agent_id}")
    assert isinstance(organization_id, UUID)
    return organization_id


async def insert_runner_token(
    tx: AsyncConnection[Any],
    *,
    organization_id: UUID,
    agent_id: UUID,
    name: str,
    issued: IssuedToken,
    expires_in_seconds: int | None,
) -> RunnerTokenCreated:
    """Store a token's hash and prefix; return the row with the token itself, this once."""
    async with tx.cursor() as cur:
        # expires_at counts from the same now() as created_at (the transaction's start).
        await cur.execute(
            "insert into public.agent_runner_tokens"
            " (organization_id, agent_id, name, token_hash, token_prefix, expires_at)"
            " values (%s, %s, %s, %s, %s, now() + make_interval(secs => %s::integer))"
            " returning id, created_at, expires_at",
            (
                organization_id,
                agent_id,
                name,
                issued.token_hash,
                issued.token_prefix,
                expires_in_seconds,
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    token_id, created_at, expires_at = row
    return RunnerTokenCreated(
        id=token_id,
        agent_id=agent_id,
        token=issued.token,
        name=name,
        token_prefix=issued.token_prefix,
        created_at=created_at,
        expires_at=expires_at,
    )


async def list_runner_tokens(
    tx: AsyncConnection[Any], agent_id: UUID, page: PageRequest
) -> Page[RunnerToken]:
    """A page of an agent's runner tokens, revoked ones included, oldest first."""
    return await fetch_page(
        tx, RunnerToken, RUNNER_CREDENTIAL_SELECT, page, ["agent_id = %s"], [agent_id]
    )


async def revoke_runner_token(tx: AsyncConnection[Any], agent_id: UUID, token_id: UUID) -> None:
    """Revoke a token of this agent; an already revoked one stays as it was; 404 otherwise."""
    # A conditional update: the row lock serialises concurrent revocations, and the first
    # revoked_at wins (a second one finds `revoked_at is null` false and changes nothing).
    cur = await tx.execute(
        "update public.agent_runner_tokens set revoked_at = now()"
        " where id = %s and agent_id = %s and revoked_at is null",
        (token_id, agent_id),
    )
    if cur.rowcount == 1:
        return
    cur = await tx.execute(
        "select 1 from public.agent_runner_tokens where id = %s and agent_id = %s",
        (token_id, agent_id),
    )
    if await cur.fetchone() is None:
        raise NotFoundError(f"runner token {token_id} not found")
