"""/agents: agents of a project, their config and their runner tokens."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Response

from agentplane.agents import service
from agentplane.agents.models import (
    Agent,
    AgentConfig,
    AgentConfigUpdate,
    AgentCreate,
    AgentUpdate,
    PromptVersion,
    RunnerToken,
    RunnerTokenCreate,
    RunnerTokenCreated,
)
from agentplane.db.pagination import Page
from agentplane.http.deps import RuntimeDep, UserTx
from agentplane.http.pagination import PageDep

router = APIRouter(prefix="/agents", tags=["agents"])

# A prompt version's number (an integer column: larger ones do not exist).
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("", status_code=201, response_model=Agent)
async def create_agent(body: AgentCreate, tx: UserTx) -> Agent:
    """Create an agent and its default config (members and up)."""
    return await service.create_agent(tx, body)


@router.get("", response_model=Page[Agent])
async def list_agents(
    tx: UserTx,
    page: PageDep,
    project_id: UUID | None = None,
    organization_id: UUID | None = None,
) -> Page[Agent]:
    """Agents the caller can see, optionally of one project or organization."""
    return await service.list_agents(tx, page, project_id, organization_id)


@router.get("/{agent_id}", response_model=Agent)
async def get_agent(agent_id: UUID, tx: UserTx) -> Agent:
    """One agent."""
    return await service.get_agent(tx, agent_id)


@router.patch("/{agent_id}", response_model=Agent)
async def update_agent(agent_id: UUID, body: AgentUpdate, tx: UserTx) -> Agent:
    """Rename, describe, pause or archive an agent (members and up)."""
    return await service.update_agent(tx, agent_id, body)


@router.delete("/{agent_id}", status_code=204, response_class=Response)
async def delete_agent(agent_id: UUID, tx: UserTx) -> Response:
    """Delete an agent with its config and runner tokens (admins and owners)."""
    await service.delete_agent(tx, agent_id)
    return Response(status_code=204)


@router.get("/{agent_id}/config", response_model=AgentConfig)
async def get_agent_config(agent_id: UUID, tx: UserTx) -> AgentConfig:
    """The agent's config (anyone who sees the agent)."""
    return await service.get_config(tx, agent_id)


@router.put("/{agent_id}/config", response_model=AgentConfig)
async def replace_agent_config(agent_id: UUID, body: AgentConfigUpdate, tx: UserTx) -> AgentConfig:
    """Replace the agent's config (members and up); the connection must be the caller's."""
    return await service.replace_config(tx, agent_id, body)


@router.get("/{agent_id}/config/versions", response_model=Page[PromptVersion])
async def list_prompt_versions(agent_id: UUID, tx: UserTx, page: PageDep) -> Page[PromptVersion]:
    """The history of the agent's system prompt, oldest (version 1) first: each version's
    prompt, who made it and why (`edit`, `adopt` of a mirror report, `restore`)."""
    return await service.list_prompt_versions(tx, agent_id, page)


@router.post(
    "/{agent_id}/config/versions/{n}/restore", status_code=201, response_model=PromptVersion
)
async def restore_prompt_version(agent_id: UUID, n: VersionNumber, tx: UserTx) -> PromptVersion:
    """Make version n's prompt the current one again, as a new version with source
    `restore` and source_id n (members and up; 404 for an unknown n)."""
    return await service.restore_prompt_version(tx, agent_id, n)


@router.post("/{agent_id}/runner-tokens", status_code=201, response_model=RunnerTokenCreated)
async def create_runner_token(
    agent_id: UUID,
    tx: UserTx,
    runtime: RuntimeDep,
    response: Response,
    body: RunnerTokenCreate | None = None,
) -> RunnerTokenCreated:
    """Issue a runner token (members and up); the token is in this response only. The
    body is optional: without one the token has no name and the default lifetime (90
    days). It is revoked when the member who issued it leaves the organization."""
    created = await service.create_runner_token(
        tx,
        agent_id,
        body or RunnerTokenCreate(),
        default_lifetime_days=runtime.settings.runner_token_lifetime_days,
    )
    response.headers["Cache-Control"] = "no-store"
    return created


@router.get("/{agent_id}/runner-tokens", response_model=Page[RunnerToken])
async def list_runner_tokens(agent_id: UUID, tx: UserTx, page: PageDep) -> Page[RunnerToken]:
    """The agent's runner tokens without their secret (members and up; viewers get 403)."""
    return await service.list_runner_tokens(tx, agent_id, page)


@router.delete("/{agent_id}/runner-tokens/{token_id}", status_code=204, response_class=Response)
async def revoke_runner_token(agent_id: UUID, token_id: UUID, tx: UserTx) -> Response:
    """Revoke a runner token (members and up); 404 if it is not one of this agent's.

    Revoking an already revoked token is a 204 too and keeps its first revoked_at, so a
    retried DELETE is safe.
    """
    await service.revoke_runner_token(tx, agent_id, token_id)
    return Response(status_code=204)
