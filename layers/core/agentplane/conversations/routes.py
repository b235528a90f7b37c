"""/conversations and /conversations/{id}/messages: the caller's own conversations."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from agentplane.conversations.models import (
    Conversation,
    ConversationCreate,
    ConversationUpdate,
    Message,
    MessageCreate,
)
from agentplane.db.crud import Table, require_visible
from agentplane.db.pagination import Page, fetch_page
from agentplane.errors import NotFoundError
from agentplane.http.deps import UserTx
from agentplane.http.pagination import PageDep

router = APIRouter(prefix="/conversations", tags=["conversations"])
conversations = Table("conversations", Conversation, "conversation")

MESSAGE_SELECT = "select * from public.messages"

# One statement: the UPDATE finds the conversation (RLS: only the caller's) and locks its
# row until commit, so posts to one conversation queue up and last_message_at only moves
# forward; the INSERT writes the message only if that row was found.
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


async def _require_references(
    tx: UserTx, connection_id: UUID | None, agent_id: UUID | None
) -> None:
    """404 naming a connection or agent the caller cannot see."""
    if connection_id is not None:
        await require_visible(tx, "agent_connections", connection_id, "connection")
    if agent_id is not None:
        await require_visible(tx, "agents", agent_id, "agent")


@router.post("", status_code=201, response_model=Conversation)
async def create_conversation(body: ConversationCreate, tx: UserTx) -> Conversation:
    """Start a conversation owned by the caller."""
    await _require_references(tx, body.connection_id, body.agent_id)
    return await conversations.insert(tx, body.model_dump())


@router.get("", response_model=Page[Conversation])
async def list_conversations(
    tx: UserTx,
    page: PageDep,
    connection_id: UUID | None = None,
    agent_id: UUID | None = None,
    archived: bool | None = None,
) -> Page[Conversation]:
    """The caller's conversations, optionally by connection, agent or archived flag."""
    return await conversations.page(
        tx, page, {"connection_id": connection_id, "agent_id": agent_id, "archived": archived}
    )


@router.get("/{conversation_id}", response_model=Conversation)
async def get_conversation(conversation_id: UUID, tx: UserTx) -> Conversation:
    """One conversation."""
    return await conversations.require(tx, conversation_id)


@router.patch("/{conversation_id}", response_model=Conversation)
async def update_conversation(
    conversation_id: UUID, body: ConversationUpdate, tx: UserTx
) -> Conversation:
    """Retitle, archive, or change the connection or agent of a conversation."""
    await _require_references(tx, body.connection_id, body.agent_id)
    return await conversations.update(tx, conversation_id, body.model_dump(exclude_unset=True))


@router.delete("/{conversation_id}", status_code=204, response_class=Response)
async def delete_conversation(conversation_id: UUID, tx: UserTx) -> Response:
    """Delete a conversation and its messages; tasks that pointed at it lose the link."""
    await conversations.delete(tx, conversation_id)
    return Response(status_code=204)


@router.post("/{conversation_id}/messages", status_code=201, response_model=Message)
async def append_message(conversation_id: UUID, body: MessageCreate, tx: UserTx) -> Message:
    """Append a message and set the conversation's last_message_at, in one statement."""
    params: dict[str, Any] = {
        "conversation_id": conversation_id,
        "role": body.role,
        "content": body.content,
        "tool_calls": None if body.tool_calls is None else Jsonb(body.tool_calls),
        "metadata": Jsonb(body.metadata),
    }
    async with tx.cursor(row_factory=class_row(Message)) as cur:
        await cur.execute(APPEND_MESSAGE, params)
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"conversation {conversation_id} not found")
    return row


@router.get("/{conversation_id}/messages", response_model=Page[Message])
async def list_messages(conversation_id: UUID, tx: UserTx, page: PageDep) -> Page[Message]:
    """Messages of a conversation, oldest first."""
    await require_visible(tx, "conversations", conversation_id, "conversation")
    return await fetch_page(
        tx, Message, MESSAGE_SELECT, page, ["conversation_id = %s"], [conversation_id]
    )
