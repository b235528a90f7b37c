"""The action queue's rules in SQL: propose, decide, read. Each runs in the caller's
transaction (a member through RLS, or a server job through the service context)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from agentplane.actions.canonical import approval_message, payload_sha256
from agentplane.actions.models import Action, ActionPayload, Refused
from agentplane.actions.signing import ApprovalSigner
from agentplane.errors import ConflictError, ForbiddenError, NotFoundError, ProblemError

Tx = AsyncConnection[Any]
Source = Literal["user", "brain", "workflow"]

# Which states each decision may start from.
DECISIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "approve": ("approved", ("pending",)),
    "reject": ("rejected", ("pending",)),
    "cancel": ("cancelled", ("pending", "approved")),
}


async def _one(tx: Tx, query: str, args: Any) -> Action | None:
    async with tx.cursor(row_factory=class_row(Action)) as cur:
        await cur.execute(query.encode(), args)
        return await cur.fetchone()


async def get_action(tx: Tx, action_id: UUID) -> Action:
    """The action, or 404 if the caller cannot see it."""
    action = await _one(tx, "select * from public.agent_actions where id = %s", (action_id,))
    if action is None:
        raise NotFoundError(f"action {action_id} not found")
    return action


async def propose(
    tx: Tx,
    agent_id: UUID,
    payload: ActionPayload,
    *,
    ttl_seconds: int,
    idempotency_key: str | None = None,
    max_attempts: int = 3,
    source: Source = "user",
    workflow_run_id: UUID | None = None,
    message_id: UUID | None = None,
) -> tuple[Action, bool]:
    """Write a pending action; returns (action, created). A retry with the same key
    returns the first action (created False); the same key with another payload is 409."""
    # The agent's organization, and the payload as jsonb will hand it back (jsonb rewrites
    # some numbers, e.g. 1e16 becomes 10000000000000000): that is what runners receive and
    # re-hash, so it is what is hashed. One round trip.
    cur = await tx.execute(
        "select organization_id, %s::jsonb from public.agents where id = %s",
        (Jsonb(payload.model_dump(mode="json")), agent_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"agent {agent_id} not found")
    body: dict[str, Any] = row[1]
    digest = payload_sha256(body)
    created = await _one(
        tx,
        """
        insert into public.agent_actions
          (organization_id, agent_id, payload, payload_sha256, idempotency_key, source,
           expires_at, max_attempts, workflow_run_id, message_id)
        values (%s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s), %s, %s, %s)
        on conflict (agent_id, idempotency_key) where idempotency_key is not null
        do nothing
        returning *
        """,
        (
            row[0],
            agent_id,
            Jsonb(body),
            digest,
            idempotency_key,
            source,
            ttl_seconds,
            max_attempts,
            workflow_run_id,
            message_id,
        ),
    )
    if created is not None:
        return created, True
    first = await _one(
        tx,
        "select * from public.agent_actions where agent_id = %s and idempotency_key = %s",
        (agent_id, idempotency_key),
    )
    if first is None:  # the conflicting row is not visible to this caller
        raise NotFoundError(f"agent {agent_id} not found")
    if first.payload_sha256 != digest:
        raise ConflictError(
            f"idempotency key {idempotency_key!r} was used for a different payload",
            action_id=str(first.id),
        )
    return first, False


class Refusal(NamedTuple):
    """One item of a batch that was not done, and why (what the single call raises)."""

    action_id: UUID
    error: ProblemError

    def refused(self) -> Refused:
        """The refusal as a batch response reports it."""
        return Refused(
            action_id=self.action_id,
            status=self.error.status,
            title=self.error.title,
            detail=self.error.detail,
            current_status=self.error.extra.get("current_status"),
        )


async def decide(
    tx: Tx,
    action_id: UUID,
    decision: str,
    reason: str | None,
    *,
    signer: ApprovalSigner,
    approval_ttl_seconds: int,
) -> Action:
    """Approve, reject or cancel as one conditional UPDATE: of concurrent decisions
    exactly one wins; the others get 409 with the current state."""
    decided, refused = await decide_many(
        tx,
        [action_id],
        decision,
        reason,
        signer=signer,
        approval_ttl_seconds=approval_ttl_seconds,
    )
    if refused:
        raise refused[0].error
    return decided[0]


# One decision on a batch of actions. The WHERE clause is the whole race: the row lock
# makes a second decision re-check `status` after the first commits, and find it no
# longer pending. The rows are found by primary key: `(a.status = any(...)) is true`
# means the same as without `is true`, but does not match the predicate of the partial
# indexes on pending or approved rows, which statistics taken while few rows were in
# that state make look cheaper than a lookup per id (and then every pending action of
# every organization is read and joined against the batch).
# Arrays are sent in binary (%b): psycopg's text array dumper quotes every element in
# Python, about 9 us each, which a batch of 50 pays twice over.
DECIDE = b"""
update public.agent_actions a
   set status = %s,
       decided_by = auth.uid(),
       decided_at = %s,
       decision_reason = %s,
       approval_expires_at = case when d.signature is null
                                  then a.approval_expires_at else %s end,
       approval_signature = coalesce(d.signature, a.approval_signature)
  from unnest(%b::uuid[], %b::text[]) as d(id, signature)
 where a.id = d.id
   and (a.status = any(%s)) is true
   and (a.status <> 'pending' or a.expires_at > now())
   and (%s <> 'approved' or d.signature is not null)
returning a.*
"""


# The same decision on one action, shaped for one row. A single decision (the approve,
# reject and cancel routes) runs this rather than DECIDE, whose generic plan guesses a
# batch from its arrays: that guess always looked costlier than a plan for one row, so
# the server planned every single decision afresh. This one's generic plan is the same
# primary-key lookup as any custom one, and the server settles on it after five runs.
DECIDE_ONE = b"""
update public.agent_actions a
   set status = %(to)s,
       decided_by = auth.uid(),
       decided_at = %(now)s,
       decision_reason = %(reason)s,
       approval_expires_at = case when %(signature)s::text is null
                                  then a.approval_expires_at else %(expires)s end,
       approval_signature = coalesce(%(signature)s::text, a.approval_signature)
 where a.id = %(id)s
   and (a.status = any(%(from)s)) is true
   and (a.status <> 'pending' or a.expires_at > now())
   and (%(to)s <> 'approved' or %(signature)s::text is not null)
returning a.*
"""
# What an approval signs, read first (see decide_many): one row by `id = %s`, a batch by
# `id = any(%b)`, for the same reason as DECIDE_ONE. With both, a single approve went
# from about 1,430 to 1,000 us of server CPU (one connection, 2,000 approvals among
# 20,000 actions; tests/integration/test_database.py checks that both settle).
SIGNED_FACTS_ONE = b"select id, agent_id, payload_sha256 from public.agent_actions where id = %s"
SIGNED_FACTS = b"select id, agent_id, payload_sha256 from public.agent_actions where id = any(%b)"


async def decide_many(
    tx: Tx,
    action_ids: Sequence[UUID],
    decision: str,
    reason: str | None,
    *,
    signer: ApprovalSigner,
    approval_ttl_seconds: int,
) -> tuple[list[Action], list[Refusal]]:
    """The same decision on each of `action_ids` (distinct), in one UPDATE: each action
    is decided on its own terms (a conditional update per row), so the ones another
    decision already took are refused with the reason and the rest are decided.
    Returns (decided in the order asked, refused in the order asked)."""
    to_status, from_states = DECISIONS[decision]
    ids = list(action_ids)
    now = datetime.now(UTC)
    approval_expires = now + timedelta(seconds=approval_ttl_seconds)
    signatures: list[str | None] = [None] * len(ids)
    if to_status == "approved":
        # agent_id and payload_sha256 never change (a trigger refuses it), so reading them
        # first races with nothing; the status is decided by the UPDATE below alone.
        if len(ids) == 1:
            cur = await tx.execute(SIGNED_FACTS_ONE, (ids[0],))
        else:
            cur = await tx.execute(SIGNED_FACTS, (ids,))
        signed = {
            row[0]: signer.sign(approval_message(row[0], row[1], row[2], now, approval_expires))
            for row in await cur.fetchall()
        }
        signatures = [signed.get(i) for i in ids]
    # Rows are locked in id order, so two batches over the same actions wait for each
    # other instead of deadlocking.
    by_id = sorted(zip(ids, signatures, strict=True))
    async with tx.cursor(row_factory=class_row(Action)) as cur:
        if len(ids) == 1:
            await cur.execute(
                DECIDE_ONE,
                {
                    "to": to_status,
                    "now": now,
                    "reason": reason,
                    "signature": signatures[0],
                    "expires": approval_expires,
                    "id": ids[0],
                    "from": list(from_states),
                },
            )
        else:
            await cur.execute(
                DECIDE,
                (
                    to_status,
                    now,
                    reason,
                    approval_expires,
                    [i for i, _ in by_id],
                    [sig for _, sig in by_id],
                    list(from_states),
                    to_status,
                ),
            )
        rows = {a.id: a for a in await cur.fetchall()}
    decided = [rows[i] for i in ids if i in rows]
    missing = [i for i in ids if i not in rows]
    if not missing:
        return decided, []
    cur = await tx.execute(
        "select id, status, expires_at from public.agent_actions where id = any(%s)",
        (missing,),
    )
    current = {row[0]: (row[1], row[2]) for row in await cur.fetchall()}
    refused: list[Refusal] = []
    for action_id in missing:
        if action_id not in current:
            error: ProblemError = NotFoundError(f"action {action_id} not found")
        else:
            status, expires_at = current[action_id]
            if status in from_states and (status != "pending" or expires_at > now):
                error = ForbiddenError(f"your role does not allow deciding action {action_id}")
            else:
                error = ConflictError(
                    f"action {action_id} is {status}; it cannot be {to_status}",
                    current_status=status,
                )
        refused.append(Refusal(action_id, error))
    return decided, refused
