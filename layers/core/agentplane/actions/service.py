"""The action queue's rules in SQL: propose, decide, read. Each runs in the caller's
transaction (a member through RLS, or a server job through the service context)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from agentplane.actions.canonical import approval_message, payload_sha256
from agentplane.actions.models import (
    Action,
    ActionEvent,
    ActionPayload,
    ActionStatus,
    Refused,
)
from agentplane.db.crud import Table
from agentplane.db.pagination import Page, PageRequest
from agentplane.db.rows import Tx, fetch_all, fetch_one
from agentplane.errors import ConflictError, ForbiddenError, NotFoundError, ProblemError
from agentplane.tools.service import require_proposable

if TYPE_CHECKING:  # the signer is handed in; the reaper, which signs nothing, skips Ed25519
    from agentplane.actions.signing import ApprovalSigner

actions = Table("agent_actions", Action, "action")
Source = Literal["user", "brain", "workflow"]

# Which states each decision may start from.
DECISIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "approve": ("approved", ("pending",)),
    "reject": ("rejected", ("pending",)),
    "cancel": ("cancelled", ("pending", "approved")),
}


ACTION = "select * from public.agent_actions where id = %s"
EVENTS = "select * from public.agent_action_events where action_id = %s order by id"


async def get_action(tx: Tx, action_id: UUID) -> Action:
    """The action, or 404 if the caller cannot see it."""
    action = await fetch_one(tx, Action, ACTION, (action_id,))
    if action is None:
        raise NotFoundError(f"action {action_id} not found")
    return action


async def list_actions(
    tx: Tx,
    page: PageRequest,
    agent_id: UUID | None = None,
    status: ActionStatus | None = None,
) -> Page[Action]:
    """A page of the actions the caller can see, oldest first, optionally of one agent
    or in one status."""
    return await actions.page(tx, page, {"agent_id": agent_id, "status": status})


async def action_events(tx: Tx, action_id: UUID) -> list[ActionEvent]:
    """Every transition of a visible action, oldest first; 404 otherwise."""
    await get_action(tx, action_id)
    return await fetch_all(tx, ActionEvent, EVENTS, (action_id,))


# The agent's organization and allowed tools, and the payload as jsonb hands it back
# (jsonb rewrites some numbers, e.g. 1e16), since that is what runners receive and
# re-hash, in one round trip
# (test_actions.py::test_the_hash_covers_the_payload_as_runners_will_receive_it).
AGENT_AND_PAYLOAD = """
select a.organization_id, %s::jsonb, coalesce(c.allowed_tools, '{}')
  from public.agents a
  left join public.agent_configs c on c.agent_id = a.id
 where a.id = %s
"""
# A retry with the same key inserts nothing and reads the first action instead.
PROPOSE = """
insert into public.agent_actions
  (organization_id, agent_id, payload, payload_sha256, idempotency_key, source,
   expires_at, max_attempts, workflow_run_id, message_id, workflow_node_id, kind,
   proposed_by, undo_of, undo_reason)
values (%s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s), %s, %s, %s, %s, %s,
        coalesce(%s, auth.uid()), %s, %s)
on conflict (agent_id, idempotency_key) where idempotency_key is not null
do nothing
returning *
"""
BY_IDEMPOTENCY_KEY = (
    "select * from public.agent_actions where agent_id = %s and idempotency_key = %s"
)


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
    workflow_node_id: str | None = None,
    message_id: UUID | None = None,
    gate: bool = False,
    proposed_by: UUID | None = None,
    undo_of: UUID | None = None,
    undo_reason: str | None = None,
) -> tuple[Action, bool]:
    """Write a pending action; returns (action, created). A retry with the same key
    returns the first action (created False); the same key with another payload is 409.
    A tool outside the catalog or the agent's `allowed_tools`, or arguments that miss its
    schema, are 422 (test_actions.py::test_a_proposal_must_name_an_allowed_catalog_tool).
    A `gate` (a workflow's approval node, tool `workflow.approval`) is decided like any
    action and never run, so the catalog does not apply; `proposed_by` names the person
    a server job proposes for (a workflow run's starter); `undo_of` the action this one
    undoes and `undo_reason` why (agentplane.actions.undo)."""
    cur = await tx.execute(AGENT_AND_PAYLOAD, (Jsonb(payload.model_dump(mode="json")), agent_id))
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"agent {agent_id} not found")
    body: dict[str, Any] = row[1]
    if not gate:
        require_proposable(payload.tool, body.get("args", {}), row[2])
    digest = payload_sha256(body)
    created = await fetch_one(
        tx,
        Action,
        PROPOSE,
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
            workflow_node_id,
            "approval" if gate else "tool",
            proposed_by,
            undo_of,
            undo_reason,
        ),
    )
    if created is not None:
        return created, True
    first = await fetch_one(tx, Action, BY_IDEMPOTENCY_KEY, (agent_id, idempotency_key))
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


# One decision on a batch. The WHERE clause is the whole race: the row lock makes a second
# decision re-check `status` and find it taken (test_batches.py); `is true` keeps the rows
# found by primary key (test_lookup_plans.py); arrays go in binary (docs/architecture.md).
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


# The same decision shaped for one row: DECIDE's generic plan guesses a batch, so a single
# decision was planned afresh every time; this one settles on one plan
# (test_database.py::test_single_decisions_settle_on_one_plan; docs/architecture.md).
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
# `id = any(%b)`, for DECIDE_ONE's reason (the same test pins both).
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
    if len(ids) == 1:
        changed = await fetch_all(
            tx,
            Action,
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
        changed = await fetch_all(
            tx,
            Action,
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
    rows = {a.id: a for a in changed}
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


# Each locks a batch of one status past its deadline, in its partial index's order; the
# lock re-checks status, so a decision or claim that committed meanwhile wins
# (tests/integration/test_session_reaper.py). Parameters: (limit,).
_EXPIRE = sql.SQL("""
update public.agent_actions a
   set status = 'expired'
  from (
    select id from public.agent_actions
     where status = {status} and {deadline} <= now(){only}
     order by {deadline}
     limit %s
       for update skip locked
  ) due
 where a.id = due.id
""")
# They read agent_actions_pending_ttl_idx and agent_actions_approved_expiry_idx.
EXPIRE_PENDING = _EXPIRE.format(
    status=sql.Literal("pending"), deadline=sql.Identifier("expires_at"), only=sql.SQL("")
).as_string()
# An approved gate (a workflow's approval node) is done: only tools wait for a runner.
EXPIRE_APPROVALS = _EXPIRE.format(
    status=sql.Literal("approved"),
    deadline=sql.Identifier("approval_expires_at"),
    only=sql.SQL(" and kind = 'tool'"),
).as_string()


async def expire_undecided(tx: Tx, *, limit: int) -> int:
    """Expire up to `limit` pending actions past their TTL; how many."""
    cur = await tx.execute(EXPIRE_PENDING, (limit,))
    return cur.rowcount


async def expire_unclaimed_approvals(tx: Tx, *, limit: int) -> int:
    """Expire up to `limit` approved actions nobody claimed before the approval's expiry."""
    cur = await tx.execute(EXPIRE_APPROVALS, (limit,))
    return cur.rowcount
