"""POST /agents/{id}/turns: a user talks to an agent; its tool calls become pending
actions."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from agentplane.brain.models import Turn, TurnCreate
from agentplane.brain.service import hold_turn
from agentplane.http.deps import RuntimeDep, UserDep

router = APIRouter(tags=["brain"])


@router.post("/agents/{agent_id}/turns", status_code=201, response_model=Turn)
async def create_turn(
    agent_id: UUID, body: TurnCreate, caller: UserDep, runtime: RuntimeDep
) -> Turn:
    """Send a message to the agent (members and up): the reply is stored with the
    message, and each tool call the model makes is written as a pending action for a
    person to approve. 409 if you have no key for the agent's provider; 502/504 when
    the provider fails, with nothing written."""
    return await hold_turn(
        runtime.database,
        runtime.vault,
        runtime.chat,
        caller,
        agent_id,
        body,
        history_limit=runtime.settings.turn_history_messages,
        signer=lambda: runtime.signer,
        approval_ttl_seconds=runtime.settings.approval_ttl_seconds,
    )
