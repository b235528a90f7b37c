"""The heartbeat cron's session reaper: silent sessions go offline.

Reads only the partial index of live sessions (`status <> 'offline'`) in heartbeat
order, so its work follows what is stale, not the table; `SKIP LOCKED` lets two
reapers run at once without waiting on or double-counting each other's rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentplane.db.database import Database

DEFAULT_STALE_AFTER_SECONDS = 90
DEFAULT_BATCH = 1000


@dataclass(frozen=True)
class ReapResult:
    """What one reaper run changed."""

    sessions_offline: int


async def reap_stale_sessions(
    db: Database,
    *,
    stale_after_seconds: int = DEFAULT_STALE_AFTER_SECONDS,
    batch: int = DEFAULT_BATCH,
) -> ReapResult:
    """Mark sessions silent for longer than `stale_after_seconds` offline, in batches."""
    total = 0
    while True:
        # Server job: the reaper acts for no user, across every organization.
        async with db.service("heartbeat: reap stale runner sessions") as tx:
            cur = await tx.execute(
                """
                update public.agent_sessions s
                   set status = 'offline', ended_at = now()
                  from (
                    select id from public.agent_sessions
                     where status <> 'offline'
                       and last_heartbeat < now() - make_interval(secs => %s)
                     order by last_heartbeat
                     limit %s
                     for update skip locked
                  ) stale
                 where s.id = stale.id
                """,
                (stale_after_seconds, batch),
            )
            reaped = cur.rowcount
        total += reaped
        if reaped < batch:
            return ReapResult(sessions_offline=total)
