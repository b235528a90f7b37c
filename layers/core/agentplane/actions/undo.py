"""Undo: the inverse of an action that succeeded, proposed as a new pending action of the
same agent through the ordinary propose path (so the same approval applies to it)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from agentplane.actions import service
from agentplane.actions.models import Action, ActionPayload
from agentplane.db.rows import Tx, fetch_one
from agentplane.errors import ConflictError, ForbiddenError, NotFoundError
from agentplane.tools.catalog import CATALOG
from agentplane.tools.models import UNDO_CONTENT_LIMIT_BYTES

if TYPE_CHECKING:
    from agentplane.actions.signing import ApprovalSigner

# The action, and whether the caller may propose for its organization (members and up),
# so a viewer gets 403 before any 409.
ORIGINAL = """
select a.*, a.organization_id = any ((select private.org_ids('member'))::uuid[]) as may_propose
  from public.agent_actions a
 where a.id = %s
"""
# Two undos of one action wait here for each other, and the second, reading after the
# first committed, names it (the unique index on undo_of is the backstop). No key update:
# the undo's own foreign key check (key share) does not wait on it.
LOCK_ORIGINAL = "select from public.agent_actions where id = %s for no key update"
EXISTING_UNDO = "select * from public.agent_actions where undo_of = %s"


class _Original(Action):
    may_propose: bool


async def undo(
    tx: Tx,
    action_id: UUID,
    *,
    reason: str | None,
    ttl_seconds: int,
    idempotency_key: str | None = None,
    signer: Callable[[], ApprovalSigner] | None = None,
    approval_ttl_seconds: int = 3600,
) -> tuple[Action, bool]:
    """Propose the inverse of `action_id`; returns (the undo action, created). 404 when the
    caller cannot see it, 403 for a viewer, 409 when it cannot be undone (the detail says
    why) or has been already (naming that undo); a retry with the same idempotency key
    returns the first undo (test_undo.py)."""
    original = await fetch_one(tx, _Original, ORIGINAL, (action_id,))
    if original is None:
        raise NotFoundError(f"action {action_id} not found")
    if not original.may_propose:
        raise ForbiddenError(f"your role does not allow proposing an undo of action {action_id}")
    await tx.execute(LOCK_ORIGINAL, (action_id,))
    existing = await fetch_one(tx, Action, EXISTING_UNDO, (action_id,))
    if existing is not None:
        if idempotency_key is not None and existing.idempotency_key == idempotency_key:
            return existing, False
        raise ConflictError(
            f"action {action_id} was already undone by action {existing.id}",
            undo_action_id=str(existing.id),
        )
    payload = inverse_payload(original)
    action, created = await service.propose(
        tx,
        original.agent_id,
        payload,
        ttl_seconds=ttl_seconds,
        idempotency_key=idempotency_key,
        max_attempts=original.max_attempts,
        undo_of=action_id,
        undo_reason=reason,
        signer=signer,
        approval_ttl_seconds=approval_ttl_seconds,
    )
    if action.undo_of != action_id:  # the key named another proposal of the same payload
        raise ConflictError(
            f"idempotency key {idempotency_key!r} was used for action {action.id},"
            f" which is not an undo of action {action_id}",
            action_id=str(action.id),
        )
    return action, created


def inverse_payload(action: Action) -> ActionPayload:
    """The payload that undoes `action`, or a 409 saying why there is none."""
    tool_name = action.payload.get("tool")
    tool = CATALOG.get(tool_name) if isinstance(tool_name, str) else None
    if action.kind != "tool" or tool is None or not tool.reversible:
        why = tool.reversibility if tool is not None else "it is not a tool of the catalog"
        raise ConflictError(
            f"action {action.id} cannot be undone: {tool_name} is not reversible ({why})",
            tool=tool_name,
        )
    if action.status != "succeeded":
        raise ConflictError(
            f"action {action.id} is {action.status}; only an action that succeeded can be undone",
            current_status=action.status,
        )
    # write_file is the one reversible tool: write back what the runner says it replaced.
    args: dict[str, Any] = action.payload.get("args", {})
    output = action.output if isinstance(action.output, dict) else {}
    previous = output.get("previous")
    if not isinstance(previous, dict) or not isinstance(previous.get("existed"), bool):
        raise _not_kept(action, "the runner did not report what the write replaced")
    if not previous["existed"]:
        # Writing empty content would leave a file where there was none: no delete tool.
        raise _not_kept(
            action,
            f"{args.get('path')!r} did not exist before it was written, so there is nothing"
            " to restore (there is no tool that deletes a file)",
        )
    content, sha256 = previous.get("content"), previous.get("sha256")
    if not isinstance(content, str):
        size = previous.get("bytes")
        if isinstance(size, int) and size > UNDO_CONTENT_LIMIT_BYTES:
            what = f"was {size} bytes, more than the {UNDO_CONTENT_LIMIT_BYTES} kept"
        else:
            what = "was not UTF-8 text"
        raise _not_kept(
            action,
            f"the previous content of {args.get('path')!r} {what}, so it was not kept"
            f" (only its sha256, {sha256})",
        )
    if hashlib.sha256(content.encode("utf-8")).hexdigest() != sha256:
        raise _not_kept(action, "the previous content the runner reported misses its sha256")
    return ActionPayload(tool="write_file", args={"path": args.get("path"), "content": content})


def _not_kept(action: Action, why: str) -> ConflictError:
    return ConflictError(
        f"action {action.id} cannot be undone: {why}", current_status=action.status
    )
