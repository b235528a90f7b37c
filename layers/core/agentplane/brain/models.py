"""Agent turn input and output models."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import Field

from agentplane.actions.models import Action
from agentplane.conversations.models import Message
from agentplane.models import InputModel, OutputModel


class TurnCreate(InputModel):
    """A user message to the agent, in a new or an existing conversation with it."""

    message: Annotated[str, Field(min_length=1, max_length=100_000)]
    conversation_id: UUID | None = None


class RefusedToolCall(OutputModel):
    """A tool call of the model that did not become an action, and why (the model is
    told the same on the next turn)."""

    tool_call_id: str
    tool: str
    reason: str


class Turn(OutputModel):
    """What a turn did: both messages, and the pending actions the reply proposed."""

    conversation_id: UUID
    user_message: Message
    reply: Message
    actions: list[Action]
    refused_tool_calls: list[RefusedToolCall]
