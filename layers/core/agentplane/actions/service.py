"""The action queue's rules in SQL: propose, decide, read. Each runs in the caller's
transaction (a member through RLS, or a server job through the service context)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    Approval,
    Refused,
)
from agentplane.db.crud import Table
from agentplane.db.pagination import Page, PageRequest
from agentplane.db.rows import Tx, fetch_all, fetch_one
from agentplane.errors import ConflictError, ForbiddenError, NotFoundError, ProblemError
from agentplane.tools.catalog import default_risk
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


APPROVALS = (
    "select approver_id, approver_role, reason, created_at from public.action_approvals"
    " where action_id = %s order by id"
)


async def get_action_with_approvals(tx: Tx, action_id: UUID) -> Action:
    """The action and each approval so far, or 404."""
    action = await get_action(tx, action_id)
    action.approvals = await fetch_all(tx, Approval, APPROVALS, (action_id,))
    return action


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
   proposed_by, risk, undo_of, undo_reason)
values (%s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s), %s, %s, %s, %s, %s,
        coalesce(%s, auth.uid()), %s, %s, %s)
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
    signer: Callable[[], ApprovalSigner] | None = None,
    approval_ttl_seconds: int = 3600,
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
            # What no policy overrides (the proposal's trigger applies the policy).
            default_risk(payload.tool),
            undo_of,
            undo_reason,
        ),
    )
    if created is not None:
        if created.auto_approve and signer is not None:
            created = await _approve_by_policy(tx, created, signer(), approval_ttl_seconds)
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


# The policy approves by itself (the transition trigger allows it only when the action's
# auto_approve, decided by the proposal's trigger from the policy's constraints, is true).
AUTO_APPROVE = b"""
update public.agent_actions a
   set status = 'approved',
       approved_by_policy = a.policy_id,
       decided_at = %(now)s,
       decision_reason = 'approved by policy ' || a.policy_id || ' version ' || a.policy_version,
       approval_expires_at = %(expires)s,
       approval_signature = %(signature)s
 where a.id = %(id)s and a.status = 'pending' and a.auto_approve
returning a.*
"""


async def _approve_by_policy(
    tx: Tx, action: Action, signer: ApprovalSigner, approval_ttl_seconds: int
) -> Action:
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=approval_ttl_seconds)
    signature = signer.sign(
        approval_message(
            action.id,
            action.agent_id,
            action.payload_sha256,
            now,
            expires,
            risk=action.risk,
            policy_id=action.policy_id,
            policy_version=action.policy_version,
        )
    )
    approved = await fetch_one(
        tx,
        Action,
        AUTO_APPROVE,
        {"now": now, "expires": expires, "signature": signature, "id": action.id},
    )
    return approved or action


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
   and (%s <> 'rejected' or private.may_reject(a.organization_id, a.approver_roles))
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
   and (%(to)s <> 'rejected' or private.may_reject(a.organization_id, a.approver_roles))
returning a.*
"""


# An approval is recorded per person (action_approvals), under the action's lock: first
# the lock (LOCK_ACTIONS), then, in a fresh snapshot that sees every approval committed
# before it, the rows of those whose policy lets the caller approve (the table's trigger
# is the rule; this filter only keeps a batch from failing whole on one refusal). The M-th
# approval is the one that approves
# (test_approval_policies.py::test_two_person_rule_under_contention).
LOCK_ACTIONS = b"select id from public.agent_actions where id = any(%s) order by id for update"
RECORD_APPROVALS = b"""
with recorded as (
  insert into public.action_approvals
    (organization_id, action_id, approver_id, approver_role, reason)
  select a.organization_id, a.id, auth.uid(), m.role, %s
    from public.agent_actions a
    join public.organization_members m
      on m.organization_id = a.organization_id and m.user_id = auth.uid()
   where a.id = any(%s)
     and a.status = 'pending'
     and a.expires_at > now()
     and m.role = any (a.approver_roles)
     and (a.proposer_may_approve or a.proposed_by is distinct from auth.uid())
     and not exists (
       select from public.action_approvals x
        where x.action_id = a.id and x.approver_id = auth.uid()
     )
   order by a.id
  returning action_id
)
-- This statement's snapshot holds every approval but its own (one per action): + 1.
select a.id, a.agent_id, a.payload_sha256, a.risk, a.policy_id, a.policy_version,
       (select count(*) from public.action_approvals x where x.action_id = a.id) + 1
         >= a.required_approvals
  from recorded r
  join public.agent_actions a on a.id = r.action_id
"""
# Why an approval was not recorded: the action's state and the caller's standing.
APPROVAL_STANDING = b"""
select a.id, a.status, a.expires_at, a.approver_roles, a.proposer_may_approve,
       a.proposed_by = auth.uid(), m.role,
       exists (select from public.action_approvals x
                where x.action_id = a.id and x.approver_id = auth.uid())
  from public.agent_actions a
  left join public.organization_members m
    on m.organization_id = a.organization_id and m.user_id = auth.uid()
 where a.id = any(%s)
"""
# The same for one action, by `id = %s`: `= any(%s)`'s generic plan guesses a batch, so a
# single approval was planned afresh every time (as DECIDE_ONE for DECIDE; the same test
# pins both: test_database.py::test_single_decisions_settle_on_one_plan).
RECORD_APPROVAL_ONE = RECORD_APPROVALS.replace(b"where a.id = any(%s)", b"where a.id = %s")
LOCK_ACTION_ONE = b"select id from public.agent_actions where id = %s for update"
RECOUNT = "select * from private.recount_approvals(%s)"


def _approval_refusal(action_id: UUID, row: Any, now: datetime) -> ProblemError:
    """What to say to an approval that was not recorded (row: APPROVAL_STANDING's)."""
    if row is None:
        return NotFoundError(f"action {action_id} not found")
    _, status, expires_at, roles, proposer_may, is_proposer, role, already = row
    if status != "pending" or expires_at <= now:
        current = status if status != "pending" else "expired"
        return ConflictError(
            f"action {action_id} is {current}; it cannot be approved", current_status=status
        )
    if already:
        return ForbiddenError(
            f"you have approved action {action_id} already; another person must approve it",
            rule="one_approval_per_person",
        )
    if role not in roles:
        return ForbiddenError(
            f"a {role or 'non-member'} may not approve action {action_id}: its policy allows"
            f" {', '.join(roles)}",
            rule="approver_roles",
        )
    if is_proposer and not proposer_may:
        return ForbiddenError(
            f"you proposed action {action_id}; its policy needs someone else to approve it",
            rule="proposer_may_not_approve",
        )
    return ForbiddenError(f"your role does not allow approving action {action_id}")


class Recorded(NamedTuple):
    """An approval just recorded: what a signature of its action covers, and whether it
    was the one that brings the action to its policy's number."""

    action_id: UUID
    agent_id: UUID
    payload_sha256: str
    risk: str
    policy_id: UUID | None
    policy_version: int | None
    reached: bool


async def _record_approvals(
    tx: Tx, ids: list[UUID], reason: str | None, now: datetime
) -> tuple[list[Recorded], dict[UUID, ProblemError]]:
    """Record the caller's approval of each action that takes it (locked already); (the
    approvals recorded, the refusals of the rest)."""
    if len(ids) == 1:
        cur = await tx.execute(RECORD_APPROVAL_ONE, (reason, ids[0]))
    else:
        cur = await tx.execute(RECORD_APPROVALS, (reason, ids))
    recorded = {row[0]: Recorded(*row) for row in await cur.fetchall()}
    refused: dict[UUID, ProblemError] = {}
    rest = [i for i in ids if i not in recorded]
    if rest:
        cur = await tx.execute(APPROVAL_STANDING, (rest,))
        standing = {row[0]: row for row in await cur.fetchall()}
        refused = {i: _approval_refusal(i, standing.get(i), now) for i in rest}
    return [recorded[i] for i in ids if i in recorded], refused


async def decide_many(
    tx: Tx,
    action_ids: Sequence[UUID],
    decision: str,
    reason: str | None,
    *,
    signer: ApprovalSigner,
    approval_ttl_seconds: int,
) -> tuple[list[Action], list[Refusal]]:
    """The same decision on each of `action_ids` (distinct), each on its own terms (a
    conditional update per row), so the ones another decision already took are refused
    with the reason and the rest are decided. An approval is recorded first; only the
    one that brings an action to its policy's number of approvals approves it (and signs
    it); the others leave it pending with one more approval.
    Returns (decided or approved-so-far in the order asked, refused in the order asked)."""
    to_status, from_states = DECISIONS[decision]
    ids = list(action_ids)
    now = datetime.now(UTC)
    approval_expires = now + timedelta(seconds=approval_ttl_seconds)
    early: dict[UUID, ProblemError] = {}
    pending_still: list[UUID] = []
    targets = ids
    # Every decision locks its actions first, in id order (ORDER BY sorts before FOR
    # UPDATE locks), so two decisions over the same actions wait for each other instead
    # of deadlocking whatever order their UPDATEs' plans visit the rows in.
    await tx.execute(LOCK_ACTIONS, (ids,))
    facts: list[Recorded] | None = None
    if to_status == "approved":
        recorded, early = await _record_approvals(tx, ids, reason, now)
        if not recorded:
            return [], [Refusal(i, early[i]) for i in ids]
        facts = [r for r in recorded if r.reached]
        targets = [r.action_id for r in facts]
        pending_still = [r.action_id for r in recorded if not r.reached]
    changed: list[Action] = []
    if targets:
        changed = await _transition(
            tx, targets, to_status, from_states, reason, now, approval_expires, signer, facts
        )
    rows = {a.id: a for a in changed}
    if pending_still:
        for action in await fetch_all(tx, Action, RECOUNT, (pending_still,)):
            rows[action.id] = action
    decided = [rows[i] for i in ids if i in rows]
    missing = [i for i in targets if i not in rows]
    refused: list[Refusal] = [Refusal(i, early[i]) for i in ids if i in early]
    if not missing:
        order = {i: n for n, i in enumerate(ids)}
        return decided, sorted(refused, key=lambda r: order[r.action_id])
    cur = await tx.execute(
        "select id, status, expires_at from public.agent_actions where id = any(%s)",
        (missing,),
    )
    current = {row[0]: (row[1], row[2]) for row in await cur.fetchall()}
    for action_id in missing:
        if action_id not in current:
            error: ProblemError = NotFoundError(f"action {action_id} not found")
        else:
            status, expires_at = current[action_id]
            if status in from_states and (status != "pending" or expires_at > now):
                error = ForbiddenError(
                    f"your role does not allow deciding action {action_id}",
                    rule="approver_roles",
                )
            else:
                error = ConflictError(
                    f"action {action_id} is {status}; it cannot be {to_status}",
                    current_status=status,
                )
        refused.append(Refusal(action_id, error))
    order = {i: n for n, i in enumerate(ids)}
    return decided, sorted(refused, key=lambda r: order[r.action_id])


async def _transition(
    tx: Tx,
    ids: list[UUID],
    to_status: str,
    from_states: tuple[str, ...],
    reason: str | None,
    now: datetime,
    approval_expires: datetime,
    signer: ApprovalSigner,
    facts: list[Recorded] | None = None,
) -> list[Action]:
    """One conditional UPDATE of `ids` to `to_status` (signed when approving, over the
    `facts` the approvals were recorded with); the rows it changed."""
    signatures: list[str | None] = [None] * len(ids)
    if to_status == "approved":
        # agent_id, payload_sha256 and the policy terms never change (triggers refuse it),
        # so reading them with the approval races with nothing; the status is decided by
        # the UPDATE below alone.
        signed = {
            f.action_id: signer.sign(
                approval_message(
                    f.action_id,
                    f.agent_id,
                    f.payload_sha256,
                    now,
                    approval_expires,
                    risk=f.risk,
                    policy_id=f.policy_id,
                    policy_version=f.policy_version,
                )
            )
            for f in facts or []
        }
        signatures = [signed.get(i) for i in ids]
    # Rows are locked in id order, so two batches over the same actions wait for each
    # other instead of deadlocking.
    by_id = sorted(zip(ids, signatures, strict=True))
    if len(ids) == 1:
        return await fetch_all(
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
    return await fetch_all(
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
            to_status,
        ),
    )


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


# Pending actions past their policy's escalation time, once each (escalated_at is set in
# the same statement), soonest first, with the people of the role to tell (that role and
# the ones above it). Reads agent_actions_escalation_idx. Parameters: now (null: the
# database clock) and limit.
ESCALATE = b"""
with due as (
  select id from public.agent_actions
   where status = 'pending' and escalated_at is null
     and escalate_at <= coalesce(%(now)s::timestamptz, now())
   order by escalate_at
   limit %(limit)s
     for update skip locked
), escalated as (
  update public.agent_actions a
     set escalated_at = coalesce(%(now)s::timestamptz, now())
    from due
   where a.id = due.id
  returning a.id, a.organization_id, a.agent_id, a.escalate_to_role, a.risk, a.policy_id,
            a.expires_at
)
select e.id, e.organization_id, e.agent_id, e.escalate_to_role, e.risk, e.policy_id,
       e.expires_at,
       coalesce(array(select m.user_id from public.organization_members m
                       where m.organization_id = e.organization_id
                         and private.role_rank(m.role) >= private.role_rank(e.escalate_to_role)
                       order by m.user_id), '{}')
  from escalated e
"""


class Escalation(NamedTuple):
    """A pending action that waited past its policy's escalation time."""

    action_id: UUID
    organization_id: UUID
    agent_id: UUID
    escalate_to_role: str
    risk: str
    policy_id: UUID | None
    expires_at: datetime
    notify: list[UUID]


async def escalate_waiting(tx: Tx, *, limit: int, now: datetime | None = None) -> list[Escalation]:
    """Mark up to `limit` pending actions due for escalation (at `now`, the database's
    clock by default) as escalated, once each; who to tell about each."""
    cur = await tx.execute(ESCALATE, {"now": now, "limit": limit})
    return [Escalation(*row) for row in await cur.fetchall()]
