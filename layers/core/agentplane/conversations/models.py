"""Conversation and message input and output models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from agentplane.models import InputModel, JsonObject, JsonObjectIn, OutputModel, Title

Role = Literal["user", "assistant", "system", "tool"]
MessageContent = Annotated[str, Field(max_length=200_000)]


class ConversationCreate(InputModel):
    """A new conversation, optionally with one of the caller's connections and an agent."""

    title: Title | None = None
    agent_connection_id: UUID | None = None
    agent_id: UUID | None = None
    archived: bool = False


class ConversationUpdate(InputModel):
    """Fields of a conversation that can change (null clears a title, a connection or an agent)."""

    title: Title | None = None
    agent_connection_id: UUID | None = None
    agent_id: UUID | None = None
    archived: bool | None = None


class Conversation(OutputModel):
    """A conversation."""

    id: UUID
    user_id: UUID
    title: str | None
    agent_connection_id: UUID | None
    agent_id: UUID | None
    archived: bool
    last_message_at: datetime | None
    created_at: datetime
    updated_at: datetime


class MessageCreate(InputModel):
    """A message appended to a conversation."""

    role: Role
    content: MessageContent
    tool_calls: list[JsonObjectIn] | None = None
    metadata: JsonObjectIn = Field(default_factory=dict)


class Message(OutputModel):
    """A message of a conversation."""

    id: UUID
    user_id: UUID
    conversation_id: UUID
    role: Role
    content: str
    tool_calls: list[JsonObject] | None
    metadata: JsonObject
    # The agent's prompt version that wrote an assistant message of a turn.
    prompt_version: int | None = None
    created_at: datetime
