"""The caller's conversations and their messages: SQL and rules, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from agentplane.conversations.models import (
    Conversation,
    ConversationCreate,
    Message,
    MessageCreate,
)
from agentplane.db.crud import Table, require_references, require_visible
from agentplane.db.pagination import Page, PageRequest, fetch_page
from agentplane.db.rows import Tx, fetch_one
from agentplane.errors import NotFoundError

conversations = Table("conversations", Conversation, "conversation")


def _references(tx: Tx, agent_connection_id: UUID | None, agent_id: UUID | None) -> Awaitable[None]:
    """404 naming a connection or agent the caller cannot see."""
    return require_references(
        tx,
        ("agent_connections", agent_connection_id, "connection"),
        ("agents", agent_id, "agent"),
    )


MESSAGE_SELECT = "select * from public.messages"

# One statement: the UPDATE finds the conversation (RLS: only the caller's) and locks its
# row until commit, so posts to one conversation queue up and last_message_at only moves
# forward (tests/integration/api/test_conversations.py).
APPEND_MESSAGE = """
with conversation as (
  update public.conversations
     set last_message_at = greatest(last_message_at, now())
   where id = %(conversation_id)s
  returning id
)
insert into public.messages (conversation_id, role, content, tool_calls, metadata)
select id, %(role)s, %(content)s, %(tool_calls)s, %(metadata)s from conversation
returning *
"""


async def create(tx: Tx, body: ConversationCreate) -> Conversation:
    """Start a conversation owned by the caller."""
    await _references(tx, body.agent_connection_id, body.agent_id)
    return await conversations.insert(tx, body.model_dump())


async def page(tx: Tx, request: PageRequest, filters: dict[str, Any]) -> Page[Conversation]:
    """The caller's conversations, with equality filters on the given columns."""
    return await conversations.page(tx, request, filters)


async def get(tx: Tx, conversation_id: UUID) -> Conversation:
    """One of the caller's conversations, or 404."""
    return await conversations.require(tx, conversation_id)


async def update(tx: Tx, conversation_id: UUID, values: dict[str, Any]) -> Conversation:
    """Change a conversation; a new connection or agent must be one the caller can see."""
    await _references(tx, values.get("agent_connection_id"), values.get("agent_id"))
    return await conversations.update(tx, conversation_id, values)


async def delete(tx: Tx, conversation_id: UUID) -> None:
    """Delete a conversation and its messages."""
    await conversations.delete(tx, conversation_id)


async def append_message(tx: Tx, conversation_id: UUID, body: MessageCreate) -> Message:
    """Append a message and move the conversation's last_message_at, in one statement."""
    params: dict[str, Any] = {
        "conversation_id": conversation_id,
        "role": body.role,
        "content": body.content,
        "tool_calls": None if body.tool_calls is None else Jsonb(body.tool_calls),
        "metadata": Jsonb(body.metadata),
    }
    row = await fetch_one(tx, Message, APPEND_MESSAGE, params)
    if row is None:
        raise NotFoundError(f"conversation {conversation_id} not found")
    return row


async def messages(tx: Tx, conversation_id: UUID, request: PageRequest) -> Page[Message]:
    """Messages of one of the caller's conversations, oldest first."""
    await require_visible(tx, "conversations", conversation_id, "conversation")
    return await fetch_page(
        tx, Message, MESSAGE_SELECT, request, ["conversation_id = %s"], [conversation_id]
    )
