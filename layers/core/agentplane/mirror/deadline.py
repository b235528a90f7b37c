"""The heartbeat cron's part of the mirror: a report still `running` past its deadline
(its function died or timed out) is failed, saying so, which frees its connection for
the next report. Kept apart from mirror/service.py so the heartbeat function loads only
this query.
"""

from __future__ import annotations

from agentplane.db.rows import Tx

# A report still running this long after it started is failed by the heartbeat cron (the
# mirror function's timeout is 300 s).
RUNNING_DEADLINE_SECONDS = 900

# Reads mirror_reports_running_started_idx; SKIP LOCKED, so a report finishing right now
# (its row locked by the final update) is left alone.
FAIL_OVERDUE = """
update public.mirror_reports r
   set status = 'failed', finished_at = now(),
       error = 'the report ran past its deadline and was stopped; start a new one'
  from (
    select id from public.mirror_reports
     where status = 'running' and started_at <= now() - make_interval(secs => %s)
     order by started_at
     limit %s
       for update skip locked
  ) overdue
 where r.id = overdue.id
"""


async def fail_overdue_reports(
    tx: Tx, *, deadline_seconds: int = RUNNING_DEADLINE_SECONDS, limit: int
) -> int:
    """Fail up to `limit` reports still running past their deadline; how many."""
    cur = await tx.execute(FAIL_OVERDUE, (deadline_seconds, limit))
    return cur.rowcount
