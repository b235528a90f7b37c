"""/conversations and /conversations/{id}/messages: the caller's own conversations."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from agentplane.conversations import service
from agentplane.conversations.models import (
    Conversation,
    ConversationCreate,
    ConversationUpdate,
    Message,
    MessageCreate,
)
from agentplane.db.pagination import Page
from agentplane.http.deps import UserTx
from agentplane.http.pagination import PageDep

router = APIRouter(prefix="/conversations", tags=["conversations"])


@router.post("", status_code=201, response_model=Conversation)
async def create_conversation(body: ConversationCreate, tx: UserTx) -> Conversation:
    """Start a conversation owned by the caller."""
    return await service.create(tx, body)


@router.get("", response_model=Page[Conversation])
async def list_conversations(
    tx: UserTx,
    page: PageDep,
    agent_connection_id: UUID | None = None,
    agent_id: UUID | None = None,
    archived: bool | None = None,
) -> Page[Conversation]:
    """The caller's conversations, optionally by connection, agent or archived flag."""
    filters = {"agent_connection_id": agent_connection_id, "agent_id": agent_id}
    return await service.page(tx, page, {**filters, "archived": archived})


@router.get("/{conversation_id}", response_model=Conversation)
async def get_conversation(conversation_id: UUID, tx: UserTx) -> Conversation:
    """One conversation."""
    return await service.get(tx, conversation_id)


@router.patch("/{conversation_id}", response_model=Conversation)
async def update_conversation(
    conversation_id: UUID, body: ConversationUpdate, tx: UserTx
) -> Conversation:
    """Retitle, archive, or change the connection or agent of a conversation."""
    return await service.update(tx, conversation_id, body.model_dump(exclude_unset=True))


@router.delete("/{conversation_id}", status_code=204, response_class=Response)
async def delete_conversation(conversation_id: UUID, tx: UserTx) -> Response:
    """Delete a conversation and its messages; tasks that pointed at it lose the link."""
    await service.delete(tx, conversation_id)
    return Response(status_code=204)


@router.post("/{conversation_id}/messages", status_code=201, response_model=Message)
async def append_message(conversation_id: UUID, body: MessageCreate, tx: UserTx) -> Message:
    """Append a message and set the conversation's last_message_at, in one statement."""
    return await service.append_message(tx, conversation_id, body)


@router.get("/{conversation_id}/messages", response_model=Page[Message])
async def list_messages(conversation_id: UUID, tx: UserTx, page: PageDep) -> Page[Message]:
    """Messages of a conversation, oldest first."""
    return await service.messages(tx, conversation_id, page)
