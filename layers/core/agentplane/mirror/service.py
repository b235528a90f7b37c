"""Mirror reports: the nightly enqueue and the per-report run (the mirror function's jobs).

The analyzers (LLM and heuristic) arrive with the mirror-report issue; until then a
report run finds its report and leaves it queued, saying so in the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from agentplane.db.database import Database
from agentplane.db.rows import fetch_value
from agentplane.observability import logger


@dataclass(frozen=True)
class EnqueueResult:
    """Reports queued by one nightly run."""

    report_ids: list[UUID]


async def enqueue_nightly_reports(db: Database) -> EnqueueResult:
    """Queue a report for every connection with messages newer than its latest report.

    A connection that already has a queued or running report gets no second one, so two
    runs at once, or a run after a slow night, queue each connection at most once: the
    NOT EXISTS skips the ones already open, and the partial unique index
    `mirror_reports_one_open_per_agent_connection` turns a concurrent run's insert of the same
    connection into a conflict that is skipped.
    """
    # Server job: the nightly schedule acts for every user's connections.
    async with db.service("mirror: queue nightly reports") as tx:
        cur = await tx.execute(
            """
            insert into public.mirror_reports (user_id, agent_connection_id, status)
            select c.user_id, c.id, 'queued'
              from public.agent_connections c
             where not exists (
                     select 1 from public.mirror_reports r
                      where r.agent_connection_id = c.id and r.status in ('queued', 'running'))
               and exists (
                     select 1
                       from public.conversations v
                       join public.messages m on m.conversation_id = v.id
                      where v.agent_connection_id = c.id
                        and m.created_at > coalesce(
                              (select max(r.created_at) from public.mirror_reports r
                                where r.agent_connection_id = c.id),
                              '-infinity'))
            on conflict (agent_connection_id) where status in ('queued', 'running') do nothing
            returning id
            """
        )
        ids = [row[0] for row in await cur.fetchall()]
    logger.info("mirror reports queued", extra={"count": len(ids)})
    return EnqueueResult(report_ids=ids)


async def run_report(db: Database, report_id: UUID) -> str:
    """Run one report; returns its status (`not_found` if there is no such report)."""
    async with db.service("mirror: run a report") as tx:
        status = await fetch_value(
            tx, "select status from public.mirror_reports where id = %s", (report_id,)
        )
    if status is None:
        logger.warning("mirror report not found", extra={"report_id": str(report_id)})
        return "not_found"
    logger.warning(
        "no mirror analyzer is available yet; the report stays as it is",
        extra={"report_id": str(report_id), "status": status},
    )
    return str(status)
