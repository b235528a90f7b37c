"""/approval-policies: approval policy as data (admins write, members read)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from agentplane.db.pagination import Page
from agentplane.http.deps import UserTx
from agentplane.http.pagination import PageDep
from agentplane.policies import service
from agentplane.policies.models import Evaluation, Policy, PolicyCreate, PolicyUpdate

router = APIRouter(prefix="/approval-policies", tags=["approval policies"])


@router.post("", status_code=201, response_model=Policy)
async def create_policy(body: PolicyCreate, tx: UserTx) -> Policy:
    """Create a policy for an agent, a project or a whole organization (admins)."""
    return await service.create_policy(tx, body)


@router.get("", response_model=Page[Policy])
async def list_policies(
    tx: UserTx, page: PageDep, organization_id: UUID | None = None
) -> Page[Policy]:
    """Policies the caller can see, optionally of one organization."""
    return await service.list_policies(tx, page, organization_id)


@router.get("/evaluate", response_model=Evaluation)
async def evaluate_policy(
    tx: UserTx,
    agent_id: UUID,
    tool: Annotated[str, Query(min_length=1, max_length=100)],
) -> Evaluation:
    """Which policy a proposal of `tool` for the agent would take, and why."""
    return await service.evaluate(tx, agent_id, tool)


@router.get("/{policy_id}", response_model=Policy)
async def get_policy(policy_id: UUID, tx: UserTx) -> Policy:
    """One policy."""
    return await service.get_policy(tx, policy_id)


@router.patch("/{policy_id}", response_model=Policy)
async def update_policy(policy_id: UUID, body: PolicyUpdate, tx: UserTx) -> Policy:
    """Change a policy's terms (admins); its version goes up. Actions already proposed
    keep the terms and version they were proposed under."""
    return await service.update_policy(tx, policy_id, body)


@router.delete("/{policy_id}", status_code=204, response_class=Response)
async def delete_policy(policy_id: UUID, tx: UserTx) -> Response:
    """Delete a policy (admins)."""
    await service.delete_policy(tx, policy_id)
    return Response(status_code=204)
