"""The heartbeat cron's reaper: silent sessions, lost leases, expired proposals and approvals.

One `reap` runs four steps, each in batches of its own service-role transactions:

(a) sessions silent past the threshold go offline, and what they held is requeued;
(b) claimed actions past their lease are requeued (`approved`), or `failed` after the
    last attempt;
(c) pending actions past their TTL expire;
(d) approved actions past their approval expiry expire;
(e) mirror reports still running past their deadline fail (their connection is free);
(f) pending actions past their approval policy's escalation time are marked escalated,
    once each, and the role it names is told (an `action.escalated` event);
(g) runner doorbells older than an hour are dropped (rung or not, the runners' slow
    poll has long found their actions).

Each batch reads one partial index (live sessions by heartbeat, claimed actions by lease
or by session, pending by TTL, approved by approval expiry), so the work follows what is
stale, not the size of the tables. Each batch picks its rows `FOR UPDATE SKIP LOCKED`:
two reapers at once never wait on each other and never both take a row, and a row a
runner is changing right now is left for a later run. A step stops when a batch comes
back short.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime

from psycopg.types.json import Jsonb

from agentplane.actions.service import (
    Escalation,
    escalate_waiting,
    expire_unclaimed_approvals,
    expire_undecided,
)
from agentplane.db.database import Database
from agentplane.db.rows import Tx
from agentplane.mirror.deadline import fail_overdue_reports
from agentplane.observability import logger
from agentplane.sessions.doorbells import prune
from agentplane.sessions.service import (
    offline_stale_sessions,
    requeue_expired_leases,
    requeue_session_actions,
)

DEFAULT_STALE_AFTER_SECONDS = 90
DEFAULT_BATCH = 1000
DOORBELL_RETENTION_SECONDS = 3600


@dataclass(frozen=True)
class ReapResult:
    """What one reaper run changed."""

    sessions_offline: int = 0
    # Actions whose lease was lost (expired, or their session went offline): back to
    # 'approved', or 'failed' after their last attempt.
    leases_requeued: int = 0
    leases_failed: int = 0
    # Pending actions past their TTL, and approved ones past their approval's expiry.
    actions_expired: int = 0
    approvals_expired: int = 0
    # Mirror reports that ran past their deadline.
    reports_failed: int = 0
    # Pending actions escalated by their approval policy.
    actions_escalated: int = 0
    # Runner doorbells dropped from the outbox.
    doorbells_pruned: int = 0

    def __add__(self, other: ReapResult) -> ReapResult:
        return ReapResult(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def as_counts(self) -> dict[str, int]:
        """The counts by name, as the heartbeat function returns them."""
        return asdict(self)

    def changed(self) -> dict[str, int]:
        """Only the counts that are not zero: what a log line reports (empty: nothing)."""
        return {name: count for name, count in asdict(self).items() if count}


# One batch: (how many rows it picked, what it changed).
Batch = Callable[[Tx], Awaitable[tuple[int, ReapResult]]]


async def _drain(db: Database, reason: str, batch: int, step: Batch) -> ReapResult:
    """Run `step` in fresh transactions until a batch picks fewer than `batch` rows."""
    total = ReapResult()
    while True:
        # Server job: the reaper acts for no user, across every organization. It runs every
        # 30 s to a minute, so its transactions log at debug; its caller logs what changed.
        async with db.service(reason, routine=True) as tx:
            picked, changed = await step(tx)
        total += changed
        if picked < batch:
            return total


async def reap_stale_sessions(
    db: Database,
    *,
    stale_after_seconds: int = DEFAULT_STALE_AFTER_SECONDS,
    batch: int = DEFAULT_BATCH,
) -> ReapResult:
    """(a) Sessions silent for longer than `stale_after_seconds` go offline, and the
    actions they still hold go through the requeue rule, in the same transaction."""

    async def step(tx: Tx) -> tuple[int, ReapResult]:
        offline = await offline_stale_sessions(tx, stale_after_seconds, limit=batch)
        requeued, failed = await requeue_session_actions(tx, offline, skip_locked=True)
        return len(offline), ReapResult(
            sessions_offline=len(offline), leases_requeued=requeued, leases_failed=failed
        )

    return await _drain(db, "heartbeat: reap stale runner sessions", batch, step)


async def reap_expired_leases(db: Database, *, batch: int = DEFAULT_BATCH) -> ReapResult:
    """(b) Claimed actions past `lease_expires_at` go back to 'approved', or 'failed'
    after their last attempt."""

    async def step(tx: Tx) -> tuple[int, ReapResult]:
        requeued, failed = await requeue_expired_leases(tx, limit=batch)
        return requeued + failed, ReapResult(leases_requeued=requeued, leases_failed=failed)

    return await _drain(db, "heartbeat: requeue expired leases", batch, step)


async def expire_pending(db: Database, *, batch: int = DEFAULT_BATCH) -> ReapResult:
    """(c) Pending actions past their TTL (`expires_at`) expire undecided."""

    async def step(tx: Tx) -> tuple[int, ReapResult]:
        expired = await expire_undecided(tx, limit=batch)
        return expired, ReapResult(actions_expired=expired)

    return await _drain(db, "heartbeat: expire undecided actions", batch, step)


async def expire_approvals(db: Database, *, batch: int = DEFAULT_BATCH) -> ReapResult:
    """(d) Approved actions nobody claimed before `approval_expires_at` expire."""

    async def step(tx: Tx) -> tuple[int, ReapResult]:
        expired = await expire_unclaimed_approvals(tx, limit=batch)
        return expired, ReapResult(approvals_expired=expired)

    return await _drain(db, "heartbeat: expire unclaimed approvals", batch, step)


async def fail_overdue(db: Database, *, batch: int = DEFAULT_BATCH) -> ReapResult:
    """(e) Mirror reports still running past their deadline fail."""

    async def step(tx: Tx) -> tuple[int, ReapResult]:
        failed = await fail_overdue_reports(tx, limit=batch)
        return failed, ReapResult(reports_failed=failed)

    return await _drain(db, "heartbeat: fail overdue mirror reports", batch, step)


async def escalate(
    db: Database, *, batch: int = DEFAULT_BATCH, now: datetime | None = None
) -> ReapResult:
    """(f) Pending actions past their policy's escalate_at are marked escalated (once),
    and each one's escalation is announced for the role its policy names."""

    async def step(tx: Tx) -> tuple[int, ReapResult]:
        escalated = await escalate_waiting(tx, limit=batch, now=now)
        for each in escalated:
            await announce_escalation(tx, each)
        return len(escalated), ReapResult(actions_escalated=len(escalated))

    return await _drain(db, "heartbeat: escalate waiting actions", batch, step)


async def prune_doorbells(db: Database, *, batch: int = DEFAULT_BATCH) -> ReapResult:
    """(g) Drop runner doorbells older than DOORBELL_RETENTION_SECONDS."""

    async def step(tx: Tx) -> tuple[int, ReapResult]:
        pruned = await prune(tx, DOORBELL_RETENTION_SECONDS, limit=batch)
        return pruned, ReapResult(doorbells_pruned=pruned)

    return await _drain(db, "heartbeat: prune runner doorbells", batch, step)


async def announce_escalation(tx: Tx, escalation: Escalation) -> None:
    """Tell the escalation's role: an `action.escalated` event in the same transaction
    (published after commit to EventBridge or the local bus, and to the organization's
    webhooks), naming the people of that role, and a log line for operators."""
    await tx.execute(
        "select private.emit_event(%s, 'action.escalated', %s)",
        (
            escalation.organization_id,
            Jsonb(
                {
                    "action_id": str(escalation.action_id),
                    "agent_id": str(escalation.agent_id),
                    "organization_id": str(escalation.organization_id),
                    "risk": escalation.risk,
                    "policy_id": str(escalation.policy_id) if escalation.policy_id else None,
                    "escalate_to_role": escalation.escalate_to_role,
                    "notify": [str(u) for u in escalation.notify],
                    "expires_at": escalation.expires_at.isoformat(),
                }
            ),
        ),
    )
    logger.info(
        "action escalated",
        extra={
            "action_id": str(escalation.action_id),
            "organization_id": str(escalation.organization_id),
            "escalate_to_role": escalation.escalate_to_role,
            "notify": [str(u) for u in escalation.notify],
            "expires_at": escalation.expires_at.isoformat(),
        },
    )


async def reap(
    db: Database,
    *,
    stale_after_seconds: int = DEFAULT_STALE_AFTER_SECONDS,
    batch: int = DEFAULT_BATCH,
) -> ReapResult:
    """One cron run: (a) to (g) in order, so an action requeued in (a) or (b) past its
    approval's expiry is expired by (d) in the same run, and one that expired in (c) is
    not escalated after."""
    return (
        await reap_stale_sessions(db, stale_after_seconds=stale_after_seconds, batch=batch)
        + await reap_expired_leases(db, batch=batch)
        + await expire_pending(db, batch=batch)
        + await expire_approvals(db, batch=batch)
        + await fail_overdue(db, batch=batch)
        + await escalate(db, batch=batch)
        + await prune_doorbells(db, batch=batch)
    )
