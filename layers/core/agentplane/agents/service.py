"""Agents, their configs and their runner tokens, in the caller's transaction.

RLS decides what every statement sees and touches; these functions only add the lookups
a write needs first (a parent's organization) and the explanation of a refusal (403/404).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from psycopg import sql

from agentplane.agents.models import (
    Agent,
    AgentConfig,
    AgentConfigUpdate,
    AgentCreate,
    AgentUpdate,
    PromptSource,
    PromptVersion,
    RunnerToken,
    RunnerTokenCreate,
    RunnerTokenCreated,
)
from agentplane.agents.tokens import IssuedToken, issue_runner_token
from agentplane.db.crud import Table, require_visible
from agentplane.db.pagination import Page, PageRequest, fetch_page
from agentplane.db.rows import Tx, fetch_one, fetch_value, table
from agentplane.errors import ForbiddenError, NotFoundError

agents = Table("agents", Agent, "agent")
configs = Table("agent_configs", AgentConfig, "config of agent", key="agent_id")

# Listed columns are spelled out, so the hash never leaves the database by accident.
RUNNER_CREDENTIAL_SELECT = (
    "select id, agent_id, name, token_prefix, created_by, created_at, expires_at,"
    " last_used_at, revoked_at from public.agent_runner_tokens"
)
# Asked with the function the member-write policies use, so the rule lives in one place.
MEMBER_ACCESS = (
    "select organization_id,"
    " organization_id = any ((select private.org_ids('member'))::uuid[]) as may_manage"
    " from public.agents where id = %s"
)
# expires_at counts from the same now() as created_at (the transaction's start).
INSERT_CREDENTIAL = (
    "insert into public.agent_runner_tokens"
    " (organization_id, agent_id, name, token_hash, token_prefix, expires_at)"
    " values (%s, %s, %s, %s, %s, now() + make_interval(secs => %s::integer))"
    " returning id, created_at, expires_at"
)
# Conditional: the row lock serialises concurrent revocations and the first revoked_at
# wins (test_agents.py::test_revoking_a_runner_token).
REVOKE_CREDENTIAL = (
    "update public.agent_runner_tokens set revoked_at = now()"
    " where id = %s and agent_id = %s and revoked_at is null"
)
CREDENTIAL_EXISTS = "select 1 from public.agent_runner_tokens where id = %s and agent_id = %s"

PROMPT_VERSION_SELECT = "select * from public.agent_prompt_versions"
PROMPT_VERSION = PROMPT_VERSION_SELECT + " where agent_id = %s and version = %s"
# Read by the trigger on agent_configs, which records why the next version is made and
# clears both (migration 20261204000100_agent_prompt_versions.sql).
PROMPT_SOURCE = (
    "select set_config('agentplane.prompt_source', %s, true),"
    " set_config('agentplane.prompt_source_id', %s, true)"
)
# The UPDATE locks the config row, so concurrent writers get consecutive numbers
# (test_prompt_versions.py::test_concurrent_puts_get_distinct_versions).
SET_PROMPT = (
    "update public.agent_configs set system_prompt = %s where agent_id = %s"
    " returning prompt_version"
)
INSERT_PROMPT = (
    "insert into public.agent_configs (agent_id, organization_id, system_prompt)"
    " values (%s, %s, %s) returning prompt_version"
)


@dataclass(frozen=True)
class _MemberAccess:
    organization_id: UUID
    may_manage: bool


@dataclass(frozen=True)
class _StoredToken:
    id: UUID
    created_at: datetime
    expires_at: datetime | None


async def _organization_of(tx: Tx, table_name: str, noun: str, row_id: UUID) -> UUID:
    query = sql.SQL("select organization_id from {} where id = %s").format(table(table_name))
    organization_id: UUID | None = await fetch_value(tx, query, (row_id,))
    if organization_id is None:
        raise NotFoundError(f"{noun} {row_id} not found")
    return organization_id


async def project_organization(tx: Tx, project_id: UUID) -> UUID:
    """The organization of a project the caller can see; 404 otherwise."""
    return await _organization_of(tx, "projects", "project", project_id)


async def agent_organization(tx: Tx, agent_id: UUID) -> UUID:
    """The organization of an agent the caller can see; 404 otherwise."""
    return await _organization_of(tx, "agents", "agent", agent_id)


# --- agents -------------------------------------------------------------------------------


async def create_agent(tx: Tx, body: AgentCreate) -> Agent:
    """A new agent in a visible project, with its default config (members and up)."""
    organization_id = await project_organization(tx, body.project_id)
    agent = await agents.insert(tx, {"organization_id": organization_id, **body.model_dump()})
    await configs.insert(tx, {"agent_id": agent.id, "organization_id": organization_id})
    return agent


async def find_agent(tx: Tx, project_id: UUID, name: str) -> Agent | None:
    """The oldest visible agent of the project with this name, if any."""
    return await agents.find(tx, project_id=project_id, name=name)


async def list_agents(
    tx: Tx,
    page: PageRequest,
    project_id: UUID | None = None,
    organization_id: UUID | None = None,
) -> Page[Agent]:
    """A page of the agents the caller can see, optionally of one project or organization."""
    return await agents.page(
        tx, page, {"project_id": project_id, "organization_id": organization_id}
    )


async def get_agent(tx: Tx, agent_id: UUID) -> Agent:
    """One agent, or 404."""
    return await agents.require(tx, agent_id)


async def update_agent(tx: Tx, agent_id: UUID, body: AgentUpdate) -> Agent:
    """Set the fields the body names (members and up)."""
    return await agents.update(tx, agent_id, body.model_dump(exclude_unset=True))


async def delete_agent(tx: Tx, agent_id: UUID) -> None:
    """Delete an agent with its config and runner tokens (admins and owners)."""
    await agents.delete(tx, agent_id)


# --- config -------------------------------------------------------------------------------


async def get_config(tx: Tx, agent_id: UUID) -> AgentConfig:
    """The agent's config; 404 if the agent is not visible or has none yet."""
    config = await configs.get(tx, agent_id)
    if config is None:
        await require_visible(tx, "agents", agent_id, "agent")
        # An agent made outside this API (seed data, SQL) may have none until a PUT.
        raise NotFoundError(f"agent {agent_id} has no config yet")
    return config


async def replace_config(tx: Tx, agent_id: UUID, body: AgentConfigUpdate) -> AgentConfig:
    """Replace the agent's config whole (members and up); creates the row if it has none."""
    current = await configs.get(tx, agent_id)
    # No config row (an agent made outside this API): the agent must be visible, and the
    # PUT creates the row.
    organization_id = await agent_organization(tx, agent_id) if current is None else None
    current_connection = current.connection_id if current is not None else None
    # Like the database's trigger, only a connection being set or changed must be the
    # caller's: a teammate's connection already on the config may stay while others edit.
    if body.connection_id is not None and body.connection_id != current_connection:
        await require_visible(tx, "agent_connections", body.connection_id, "connection")
    values = body.model_dump()
    if organization_id is not None:
        return await configs.insert(
            tx, {"agent_id": agent_id, "organization_id": organization_id, **values}
        )
    return await configs.update(tx, agent_id, values)


async def require_member(tx: Tx, agent_id: UUID, doing: str) -> UUID:
    """The agent's organization if the caller is a member and up there; 404, or 403.

    `doing` completes "your role does not allow ... agent <id>" in the 403.
    """
    access = await fetch_one(tx, _MemberAccess, MEMBER_ACCESS, (agent_id,))
    if access is None:
        raise NotFoundError(f"agent {agent_id} not found")
    if not access.may_manage:
        raise ForbiddenError(f"your role does not allow {doing} agent {agent_id}")
    return access.organization_id


# --- prompt versions ----------------------------------------------------------------------


async def list_prompt_versions(tx: Tx, agent_id: UUID, page: PageRequest) -> Page[PromptVersion]:
    """A page of the agent's prompt versions, oldest (version 1) first; 404 for strangers."""
    await require_visible(tx, "agents", agent_id, "agent")
    return await fetch_page(
        tx, PromptVersion, PROMPT_VERSION_SELECT, page, ["agent_id = %s"], [agent_id]
    )


async def _new_prompt(
    tx: Tx,
    agent_id: UUID,
    organization_id: UUID,
    system_prompt: str,
    source: PromptSource,
    source_id: str,
) -> PromptVersion:
    """Make `system_prompt` the agent's current prompt as a new version from `source`."""
    await tx.execute(PROMPT_SOURCE, (source, source_id))
    number = await fetch_value(tx, SET_PROMPT, (system_prompt, agent_id))
    if number is None:
        # An agent made outside this API has no config until its first prompt.
        number = await fetch_value(tx, INSERT_PROMPT, (agent_id, organization_id, system_prompt))
    version = await fetch_one(tx, PromptVersion, PROMPT_VERSION, (agent_id, number))
    assert version is not None
    return version


async def restore_prompt_version(tx: Tx, agent_id: UUID, number: int) -> PromptVersion:
    """Make version `number`'s prompt current again, as a new version with source
    'restore' (members and up); 404 for an unknown version or agent, 403 for viewers."""
    organization_id = await require_member(tx, agent_id, "restoring prompts of")
    restored = await fetch_one(tx, PromptVersion, PROMPT_VERSION, (agent_id, number))
    if restored is None:
        raise NotFoundError(f"agent {agent_id} has no prompt version {number}")
    return await _new_prompt(
        tx, agent_id, organization_id, restored.system_prompt, "restore", str(number)
    )


async def adopt_prompt(
    tx: Tx, agent_id: UUID, system_prompt: str, *, source_id: UUID
) -> PromptVersion:
    """Make a mirror report's suggested prompt the agent's current one, as a new version
    with source 'adopt' naming the report (`source_id`), in the caller's transaction
    (members and up); 404 for strangers, 403 for viewers."""
    organization_id = await require_member(tx, agent_id, "adopting prompts for")
    return await _new_prompt(tx, agent_id, organization_id, system_prompt, "adopt", str(source_id))


# --- runner tokens ------------------------------------------------------------------------


async def require_runner_token_access(tx: Tx, agent_id: UUID) -> UUID:
    """The agent's organization if the caller may manage its runner tokens; 404, or 403.

    Viewers see the agent but RLS hides its tokens; rather than an empty list or a 404 for
    a token they cannot see, they get a 403. The question is asked with the function the
    runner-token policies use (`private.org_ids('member')`), so the rule lives in one place
    and RLS still enforces it on every statement that follows.
    """
    return await require_member(tx, agent_id, "managing runner tokens of")


async def insert_runner_token(
    tx: Tx,
    *,
    organization_id: UUID,
    agent_id: UUID,
    name: str,
    issued: IssuedToken,
    expires_in_seconds: int,
) -> RunnerTokenCreated:
    """Store a token's hash and prefix; return the row with the token itself, this once."""
    stored = await fetch_one(
        tx,
        _StoredToken,
        INSERT_CREDENTIAL,
        (
            organization_id,
            agent_id,
            name,
            issued.token_hash,
            issued.token_prefix,
            expires_in_seconds,
        ),
    )
    assert stored is not None
    return RunnerTokenCreated(
        id=stored.id,
        agent_id=agent_id,
        token=issued.token,
        name=name,
        token_prefix=issued.token_prefix,
        created_at=stored.created_at,
        expires_at=stored.expires_at,
    )


async def create_runner_token(
    tx: Tx, agent_id: UUID, body: RunnerTokenCreate, *, default_lifetime_days: int
) -> RunnerTokenCreated:
    """Issue a runner token for the agent (members and up); 404, or 403 for viewers.

    A body without a lifetime gets `default_lifetime_days`: no token lasts for ever.
    """
    organization_id = await require_runner_token_access(tx, agent_id)
    lifetime = body.expires_in_seconds or default_lifetime_days * 24 * 3600
    return await insert_runner_token(
        tx,
        organization_id=organization_id,
        agent_id=agent_id,
        name=body.name,
        issued=issue_runner_token(),
        expires_in_seconds=lifetime,
    )


async def list_runner_tokens(tx: Tx, agent_id: UUID, page: PageRequest) -> Page[RunnerToken]:
    """A page of an agent's runner tokens, revoked ones included, oldest first; 404, or
    403 for viewers."""
    await require_runner_token_access(tx, agent_id)
    return await fetch_page(
        tx, RunnerToken, RUNNER_CREDENTIAL_SELECT, page, ["agent_id = %s"], [agent_id]
    )


async def revoke_runner_token(tx: Tx, agent_id: UUID, token_id: UUID) -> None:
    """Revoke a token of this agent; an already revoked one stays as it was; 404
    otherwise (and 403 for viewers)."""
    await require_runner_token_access(tx, agent_id)
    cur = await tx.execute(REVOKE_CREDENTIAL, (token_id, agent_id))
    if cur.rowcount == 1:
        return
    if await fetch_value(tx, CREDENTIAL_EXISTS, (token_id, agent_id)) is None:
        raise NotFoundError(f"runner token {token_id} not found")
