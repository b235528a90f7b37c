"""An agent turn: a user message in, the model's reply out, its tool calls into the
approval queue as pending actions (shadow mode: nothing runs until a person approves).

Three steps, so no database connection is held while the model thinks:
1. In the caller's transaction: the agent's endpoint (a member's only; a stranger gets
   404 before any provider is called), the conversation and its history with the
   current state of every action it proposed, and the caller's key from the vault.
2. The provider call, outside any transaction.
3. In one more transaction of the caller: the conversation (if new), the user message,
   the assistant message and one pending action per accepted tool call. A provider
   failure in step 2 leaves nothing written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from psycopg.types.json import Jsonb

from agentplane.actions.models import DEFAULT_TTL_SECONDS, Action, ActionPayload
from agentplane.actions.service import propose
from agentplane.auth.caller import Caller
from agentplane.brain.models import RefusedToolCall, Turn, TurnCreate
from agentplane.brain.tools import (
    ToolCallRefusedError,
    check_call,
    storable_text,
    tool_specs,
)
from agentplane.connections import service as connections
from agentplane.connections.models import DEFAULT_BASE_URLS
from agentplane.conversations.models import Conversation, Message
from agentplane.db.crud import require_visible
from agentplane.db.database import Database
from agentplane.db.rows import Tx, fetch_all, fetch_one
from agentplane.errors import ConflictError, ForbiddenError, NotFoundError
from agentplane.memory.service import recall_for_turn, remembered_note
from agentplane.observability import logger
from agentplane.skills import service as skills
from agentplane.vault.service import Vault

if TYPE_CHECKING:  # the provider client (and httpx) load on the first turn, not at import
    from collections.abc import Callable

    from agentplane.actions.signing import ApprovalSigner
    from agentplane.brain.provider import ChatClient, Completion

TITLE_LENGTH = 80
# messages.content holds at most 200,000 characters; a longer reply is cut, not refused.
MAX_REPLY_CHARS = 200_000
# Tool call ids become part of an action's idempotency key (200 characters at most).
MAX_TOOL_CALL_ID = 100
# What the model is told of an action it proposed, by the action's status.
STATUS_NOTES = {
    "pending": "waiting for a person to approve it",
    "approved": "approved; waiting for the runner to pick it up",
    "claimed": "running on the user's machine",
    "rejected": "a person rejected it",
    "cancelled": "a person cancelled it",
    "expired": "nobody approved it in time",
    "succeeded": "done",
    "failed": "it failed",
}


class AgentNotConnectedError(ConflictError):
    """The agent's config names no usable model connection."""


class ForeignEndpointError(ConflictError):
    """The agent's connection sets a base URL, and it is not the caller's connection."""


class ConversationOfAnotherAgentError(ConflictError):
    """The conversation is the caller's, but with another agent (or none)."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how the agent's model is called."""

    organization_id: UUID
    provider: str
    base_url: str
    model: str
    # The connection, when it is the caller's own: a conversation the turn starts links
    # to it (the seed's agent_connection_id), so the mirror analyzes it.
    connection_id: UUID | None
    system_prompt: str
    temperature: float
    allowed_tools: list[str]
    # The config's prompt version: the assistant message records which one answered.
    prompt_version: int | None = None


@dataclass(frozen=True)
class Context:
    """What step 1 gathered."""

    endpoint: Endpoint
    conversation: Conversation | None
    messages: list[dict[str, Any]]
    api_key: str = field(repr=False)


async def agent_endpoint(tx: Tx, agent_id: UUID) -> Endpoint:
    """Where the agent's model is called for the caller; 409 when their key must not go there."""
    cur = await tx.execute(
        "select organization_id, model, system_prompt, temperature, allowed_tools,"
        " connection_id, provider, base_url, connection_model, connection_is_callers,"
        " prompt_version from private.agent_model_endpoint(%s)",
        (agent_id,),
    )
    row = await cur.fetchone()
    if row is None:
        await require_visible(tx, "agents", agent_id, "agent")  # 404 for strangers
        raise ForbiddenError(f"your role does not allow holding turns with agent {agent_id}")
    (org, model, prompt, temperature, tools, connection_id, provider, base_url, conn_model,
     callers, prompt_version) = row  # fmt: skip
    if connection_id is None or provider is None:
        raise AgentNotConnectedError(
            f"agent {agent_id} has no model connection: set connection_id in its config",
            agent_id=str(agent_id),
        )
    public = DEFAULT_BASE_URLS.get(provider)
    if not callers and base_url != public:
        # The caller's key goes to this URL: only the URL's owner may send theirs there.
        # A named provider's public endpoint is no one's to point elsewhere.
        raise ForeignEndpointError(
            f"agent {agent_id} talks to a {provider} endpoint at a base URL another user"
            " set; your key is not sent there. Point the agent at a connection of your own"
            " (PUT /agents/{id}/config) to hold turns with it",
            agent_id=str(agent_id),
            provider=provider,
        )
    return Endpoint(
        organization_id=org,
        provider=provider,
        base_url=base_url,
        model=model or conn_model,
        connection_id=connection_id if callers else None,
        system_prompt=prompt,
        temperature=float(temperature),
        allowed_tools=list(tools),
        prompt_version=prompt_version,
    )


async def _conversation(tx: Tx, conversation_id: UUID, agent_id: UUID) -> Conversation:
    conversation = await fetch_one(
        tx, Conversation, "select * from public.conversations where id = %s", (conversation_id,)
    )
    if conversation is None:
        raise NotFoundError(f"conversation {conversation_id} not found")
    if conversation.agent_id != agent_id:
        raise ConversationOfAnotherAgentError(
            f"conversation {conversation_id} is not with agent {agent_id}",
            conversation_id=str(conversation_id),
        )
    return conversation


def _tool_note(call_id: str, refused: dict[str, str], actions: dict[str, Action]) -> str:
    """What the model learns of one of its earlier tool calls."""
    if call_id in refused:
        return json.dumps({"status": "refused", "reason": refused[call_id]})
    action = actions.get(call_id)
    if action is None:
        return json.dumps({"status": "unknown", "note": "no action was recorded for this call"})
    note: dict[str, Any] = {
        "action_id": str(action.id),
        "status": action.status,
        "note": STATUS_NOTES.get(action.status, action.status),
    }
    if action.output is not None:
        note["output"] = action.output
    if action.decision_reason and action.status in ("rejected", "cancelled"):
        note["reason"] = action.decision_reason
    return json.dumps(note, ensure_ascii=False)


async def _history(tx: Tx, conversation_id: UUID, limit: int) -> list[dict[str, Any]]:
    """The conversation's last `limit` messages as chat messages, each assistant tool
    call followed by a tool message with its action's current state."""
    stored = await fetch_all(
        tx,
        Message,
        "select * from (select * from public.messages where conversation_id = %s"
        " order by created_at desc, id desc limit %s) m order by created_at, id",
        (conversation_id, limit),
    )
    assistant_ids = [m.id for m in stored if m.role == "assistant" and m.tool_calls]
    actions: dict[str, Action] = {}
    if assistant_ids:
        proposed = await fetch_all(
            tx,
            Action,
            "select * from public.agent_actions where message_id = any(%s)",
            (assistant_ids,),
        )
        for action in proposed:
            prefix = f"turn:{action.message_id}:"
            key = action.idempotency_key or ""
            if key.startswith(prefix):
                actions[key.removeprefix(prefix)] = action
    chat: list[dict[str, Any]] = []
    for message in stored:
        if message.role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": message.content}
            if message.tool_calls:
                entry["tool_calls"] = message.tool_calls
            chat.append(entry)
            refused = message.metadata.get("refused_tool_calls")
            if not isinstance(refused, dict):  # messages can also be written by hand
                refused = {}
            for call in message.tool_calls or []:
                call_id = str(call.get("id", "")) if isinstance(call, dict) else ""
                chat.append(
                    {
                        "role": "tool",
                        "tool_call_id": call_id,
                        "content": _tool_note(call_id, refused, actions),
                    }
                )
        elif message.role in ("user", "system"):
            chat.append({"role": message.role, "content": message.content})
    # A window that starts inside a tool exchange would begin with orphaned tool notes.
    while chat and chat[0]["role"] == "tool":
        chat.pop(0)
    return chat


async def _gather(
    tx: Tx,
    vault: Vault,
    caller: Caller,
    agent_id: UUID,
    body: TurnCreate,
    history_limit: int,
) -> Context:
    endpoint = await agent_endpoint(tx, agent_id)
    conversation = None
    history: list[dict[str, Any]] = []
    if body.conversation_id is not None:
        conversation = await _conversation(tx, body.conversation_id, agent_id)
        history = await _history(tx, conversation.id, history_limit)
    assert caller.user_id is not None
    api_key = await vault.key_for(
        tx,
        user_id=caller.user_id,
        organization_id=endpoint.organization_id,
        provider=endpoint.provider,
        purpose=f"turn with agent {agent_id}",
    )
    # The caller's own memory (RLS), reinforced as used by this turn.
    remembered = await recall_for_turn(tx, caller.user_id, body.message)
    system = endpoint.system_prompt
    if remembered:
        system = "\n\n".join(p for p in (system, remembered_note(remembered)) if p)
    messages: list[dict[str, Any]] = []
    # The caller's active skills ride along in the system message (RLS: their own).
    system = await skills.with_active_skills(tx, caller.user_id, system)
    if system:
        messages.append({"role": "system", "content": system})
    messages += history
    messages.append({"role": "user", "content": body.message})
    return Context(endpoint, conversation, messages, api_key)


async def _insert_message(
    tx: Tx, conversation_id: UUID, role: str, content: str, **columns: Any
) -> Message:
    message = await fetch_one(
        tx,
        Message,
        # clock_timestamp(), not now(): both messages of a turn share a transaction,
        # and history is read back in created_at order.
        "insert into public.messages"
        " (conversation_id, role, content, tool_calls, metadata, prompt_version, created_at)"
        " values (%s, %s, %s, %s, %s, %s, clock_timestamp()) returning *",
        (
            conversation_id,
            role,
            content,
            Jsonb(columns["tool_calls"]) if columns.get("tool_calls") else None,
            Jsonb(columns.get("metadata", {})),
            columns.get("prompt_version"),
        ),
    )
    assert message is not None
    return message


async def _record(
    tx: Tx,
    agent_id: UUID,
    body: TurnCreate,
    context: Context,
    completion: Completion,
    signer: Callable[[], ApprovalSigner] | None = None,
    approval_ttl_seconds: int = 3600,
) -> Turn:
    conversation = context.conversation
    if conversation is None:
        conversation = await fetch_one(
            tx,
            Conversation,
            "insert into public.conversations (agent_id, agent_connection_id, title)"
            " values (%s, %s, %s) returning *",
            (agent_id, context.endpoint.connection_id, body.message.strip()[:TITLE_LENGTH]),
        )
        assert conversation is not None
    user_message = await _insert_message(tx, conversation.id, "user", body.message)
    allowed = context.endpoint.allowed_tools
    accepted: list[tuple[str, str, dict[str, Any]]] = []
    refused: list[RefusedToolCall] = []
    seen: set[str] = set()
    tool_calls: list[dict[str, Any]] = []
    for number, call in enumerate(completion.tool_calls, start=1):
        # The model's text is stored as text: no NUL, no lone surrogates, bounded.
        call_id = storable_text(call.id, MAX_TOOL_CALL_ID) or f"call_{number}"
        if call_id in seen or call_id != call.id:
            call_id = f"call_{number}_{len(seen)}"
        seen.add(call_id)
        name = storable_text(call.name, 200)
        tool_calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": storable_text(call.arguments)},
            }
        )
        try:
            accepted.append((call_id, name, check_call(call.name, call.arguments, allowed)))
        except ToolCallRefusedError as exc:
            refused.append(RefusedToolCall(tool_call_id=call_id, tool=name, reason=str(exc)))
    reply = await _insert_message(
        tx,
        conversation.id,
        "assistant",
        storable_text(completion.content, MAX_REPLY_CHARS),
        tool_calls=tool_calls,
        prompt_version=context.endpoint.prompt_version,
        metadata={
            "provider": context.endpoint.provider,
            "model": completion.model,
            "finish_reason": completion.finish_reason,
            "usage": completion.usage,
            "refused_tool_calls": {r.tool_call_id: r.reason for r in refused},
        },
    )
    actions: list[Action] = []
    for call_id, name, args in accepted:
        action, _ = await propose(
            tx,
            agent_id,
            ActionPayload.model_validate({"tool": name, "args": args}),
            ttl_seconds=DEFAULT_TTL_SECONDS,
            idempotency_key=f"turn:{reply.id}:{call_id}",
            source="brain",
            message_id=reply.id,
            signer=signer,
            approval_ttl_seconds=approval_ttl_seconds,
        )
        actions.append(action)
    await tx.execute(
        "update public.conversations set last_message_at = now() where id = %s",
        (conversation.id,),
    )
    return Turn(
        conversation_id=conversation.id,
        user_message=user_message,
        reply=reply,
        actions=actions,
        refused_tool_calls=refused,
    )


async def hold_turn(
    database: Database,
    vault: Vault,
    chat: ChatClient,
    caller: Caller,
    agent_id: UUID,
    body: TurnCreate,
    *,
    history_limit: int,
    signer: Callable[[], ApprovalSigner] | None = None,
    approval_ttl_seconds: int = 3600,
) -> Turn:
    """One turn of `caller` with the agent (see the module docstring). With a `signer`,
    a tool call that its low-risk policy approves by itself is approved at once."""
    async with database.transaction(caller) as tx:
        context = await _gather(tx, vault, caller, agent_id, body, history_limit)
    from agentplane.brain.provider import ProviderError

    endpoint = context.endpoint
    try:
        completion = await chat.complete(
            provider=endpoint.provider,
            base_url=endpoint.base_url,
            api_key=context.api_key,
            model=endpoint.model,
            messages=context.messages,
            tools=tool_specs(endpoint.allowed_tools) or None,
            temperature=endpoint.temperature,
        )
    except ProviderError:
        # The turn writes nothing, but the caller's connection says its provider failed.
        if endpoint.connection_id is not None:
            async with database.transaction(caller) as tx:
                await connections.mark(tx, endpoint.connection_id, "error")
        raise
    async with database.transaction(caller) as tx:
        turn = await _record(tx, agent_id, body, context, completion, signer, approval_ttl_seconds)
        if endpoint.connection_id is not None:
            await connections.mark(tx, endpoint.connection_id, "online")
    logger.info(
        "agent turn",
        extra={
            "agent_id": str(agent_id),
            "conversation_id": str(turn.conversation_id),
            "provider": endpoint.provider,
            "model": completion.model,
            "tool_calls": len(completion.tool_calls),
            "actions": len(turn.actions),
            "refused_tool_calls": len(turn.refused_tool_calls),
        },
    )
    return turn
