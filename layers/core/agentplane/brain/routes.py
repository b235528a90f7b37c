"""POST /agents/{id}/turns: the contract of an agent turn; 501 until the brain lands."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter
from pydantic import Field

from agentplane.http.deps import UserDep
from agentplane.http.models import InputModel
from agentplane.http.problems import NotImplementedYetError

router = APIRouter(tags=["brain"])


class TurnCreate(InputModel):
    """A user message to the agent, in a new or an existing conversation."""

    message: Annotated[str, Field(min_length=1, max_length=100_000)]
    conversation_id: UUID | None = None


@router.post("/agents/{agent_id}/turns", status_code=201)
async def create_turn(agent_id: UUID, body: TurnCreate, caller: UserDep) -> None:
    """Hold a turn with the agent (501 until the brain lands)."""
    raise NotImplementedYetError("agent turns are not available yet")
