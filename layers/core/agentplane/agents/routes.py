"""/agents: agents of a project, their config and their runner tokens."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from agentplane.agents import service
from agentplane.agents.models import (
    Agent,
    AgentConfig,
    AgentConfigUpdate,
    AgentCreate,
    AgentUpdate,
    RunnerToken,
    RunnerTokenCreate,
    RunnerTokenCreated,
)
from agentplane.agents.tokens import issue_runner_token
from agentplane.db.crud import Table, require_visible
from agentplane.db.pagination import Page
from agentplane.errors import NotFoundError
from agentplane.http.deps import UserTx
from agentplane.http.pagination import PageDep

router = APIRouter(prefix="/agents", tags=["agents"])
agents = Table("agents", Agent, "agent")
configs = Table("agent_configs", AgentConfig, "config of agent", key="agent_id")


@router.post("", status_code=201, response_model=Agent)
async def create_agent(body: AgentCreate, tx: UserTx) -> Agent:
    """Create an agent and its default config (members and up)."""
    organization_id = await service.project_organization(tx, body.project_id)
    agent = await agents.insert(tx, {"organization_id": organization_id, **body.model_dump()})
    await configs.insert(tx, {"agent_id": agent.id, "organization_id": organization_id})
    return agent


@router.get("", response_model=Page[Agent])
async def list_agents(
    tx: UserTx,
    page: PageDep,
    project_id: UUID | None = None,
    organization_id: UUID | None = None,
) -> Page[Agent]:
    """Agents the caller can see, optionally of one project or organization."""
    return await agents.page(
        tx, page, {"project_id": project_id, "organization_id": organization_id}
    )


@router.get("/{agent_id}", response_model=Agent)
async def get_agent(agent_id: UUID, tx: UserTx) -> Agent:
    """One agent."""
    return await agents.require(tx, agent_id)


@router.patch("/{agent_id}", response_model=Agent)
async def update_agent(agent_id: UUID, body: AgentUpdate, tx: UserTx) -> Agent:
    """Rename, describe, pause or archive an agent (members and up)."""
    return await agents.update(tx, agent_id, body.model_dump(exclude_unset=True))


@router.delete("/{agent_id}", status_code=204, response_class=Response)
async def delete_agent(agent_id: UUID, tx: UserTx) -> Response:
    """Delete an agent with its config and runner tokens (admins and owners)."""
    await agents.delete(tx, agent_id)
    return Response(status_code=204)


@router.get("/{agent_id}/config", response_model=AgentConfig)
async def get_agent_config(agent_id: UUID, tx: UserTx) -> AgentConfig:
    """The agent's config (anyone who sees the agent)."""
    config = await configs.get(tx, agent_id)
    if config is None:
        await require_visible(tx, "agents", agent_id, "agent")
        # An agent made outside this API (seed data, SQL) may have none until a PUT.
        raise NotFoundError(f"agent {agent_id} has no config yet")
    return config


@router.put("/{agent_id}/config", response_model=AgentConfig)
async def replace_agent_config(agent_id: UUID, body: AgentConfigUpdate, tx: UserTx) -> AgentConfig:
    """Replace the agent's config (members and up); the connection must be the caller's."""
    current = await configs.get(tx, agent_id)
    # No config row (an agent made outside this API): the agent must be visible, and the
    # PUT creates the row.
    organization_id = await service.agent_organization(tx, agent_id) if current is None else None
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


@router.post("/{agent_id}/runner-tokens", status_code=201, response_model=RunnerTokenCreated)
async def create_runner_token(
    agent_id: UUID, tx: UserTx, response: Response, body: RunnerTokenCreate | None = None
) -> RunnerTokenCreated:
    """Issue a runner token (members and up); the token is in this response only. The
    body is optional: without one the token has no name and lasts until revoked."""
    body = body or RunnerTokenCreate()
    organization_id = await service.require_runner_token_access(tx, agent_id)
    created = await service.insert_runner_token(
        tx,
        organization_id=organization_id,
        agent_id=agent_id,
        name=body.name,
        issued=issue_runner_token(),
        expires_in_seconds=body.expires_in_seconds,
    )
    response.headers["Cache-Control"] = "no-store"
    return created


@router.get("/{agent_id}/runner-tokens", response_model=Page[RunnerToken])
async def list_runner_tokens(agent_id: UUID, tx: UserTx, page: PageDep) -> Page[RunnerToken]:
    """The agent's runner tokens without their secret (members and up; viewers get 403)."""
    await service.require_runner_token_access(tx, agent_id)
    return await service.list_runner_tokens(tx, agent_id, page)


@router.delete("/{agent_id}/runner-tokens/{token_id}", status_code=204, response_class=Response)
async def revoke_runner_token(agent_id: UUID, token_id: UUID, tx: UserTx) -> Response:
    """Revoke a runner token (members and up); 404 if it is not one of this agent's.

    Revoking an already revoked token is a 204 too and keeps its first revoked_at, so a
    retried DELETE is safe.
    """
    await service.require_runner_token_access(tx, agent_id)
    await service.revoke_runner_token(tx, agent_id, token_id)
    return Response(status_code=204)
