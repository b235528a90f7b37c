"""`agentplane audit verify`: recompute every action's hash chain and name broken rows.

The hash is recomputed here in Python from the stored fields, in the same layout as
`private.action_event_hash` (see the audit-chain migration), so a row edited after the
fact, a row removed from the middle of a chain, or a reordered chain is found.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_hash(
    prev_hash: str | None,
    action_id: UUID,
    from_status: str | None,
    to_status: str,
    actor_id: UUID | None,
    actor_role: str,
    created_at: datetime,
    detail_text: str,
) -> str:
    """The hash of one event, exactly as the database computes it."""
    micros = (created_at - EPOCH) // timedelta(microseconds=1)
    layout = "|".join(
        [
            prev_hash or "",
            str(action_id),
            from_status or "",
            to_status,
            str(actor_id) if actor_id else "",
            actor_role,
            str(micros),
            detail_text,
        ]
    )
    return hashlib.sha256(layout.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class BrokenEvent:
    """One row whose chain does not hold, and why."""

    event_id: int
    action_id: UUID
    reason: str


@dataclass
class AuditReport:
    """What a verification found."""

    chains: int = 0
    events: int = 0
    broken: list[BrokenEvent] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every chain verifies."""
        return not self.broken


def verify_rows(rows: Iterable[tuple[Any, ...]]) -> AuditReport:
    """Verify rows ordered by (action_id, id):
    (id, action_id, actor_id, actor_role, from_status, to_status, detail_text, created_at,
    prev_hash, hash)."""
    report = AuditReport()
    current: UUID | None = None
    expected_prev: str | None = None
    expected_from: str | None = None
    for (event_id, action_id, actor_id, actor_role, from_status, to_status, detail_text,
         created_at, prev_hash, stored) in rows:  # fmt: skip
        if action_id != current:
            current, expected_prev, expected_from = action_id, None, None
            report.chains += 1
        report.events += 1
        if prev_hash != expected_prev:
            report.broken.append(
                BrokenEvent(event_id, action_id, "prev_hash does not match the previous row")
            )
        elif from_status != expected_from:
            report.broken.append(
                BrokenEvent(event_id, action_id, "from_status does not follow the previous row")
            )
        recomputed = event_hash(
            prev_hash,
            action_id,
            from_status,
            to_status,
            actor_id,
            actor_role,
            created_at,
            detail_text,
        )
        if recomputed != stored:
            report.broken.append(BrokenEvent(event_id, action_id, "hash does not match the row"))
        expected_prev, expected_from = stored, to_status
    return report


def verify_database(
    conninfo: str, *, progress: Callable[[int], None] | None = None, batch: int = 5000
) -> AuditReport:
    """Stream every event (as the service role) and verify each action's chain."""
    with psycopg.connect(conninfo) as conn, conn.transaction():
        # Server job: verification reads every organization's log.
        conn.execute("select set_config('role', 'service_role', true)")
        with conn.cursor(name="audit_events") as cur:
            cur.itersize = batch
            cur.execute(
                "select id, action_id, actor_id, actor_role, from_status, to_status,"
                " detail::text, created_at, prev_hash, hash"
                " from public.agent_action_events order by action_id, id"
            )

            def rows() -> Iterable[tuple[Any, ...]]:
                for n, row in enumerate(cur, 1):
                    if progress is not None and n % batch == 0:
                        progress(n)
                    yield row

            return verify_rows(rows())
