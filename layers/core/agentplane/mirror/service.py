"""Mirror reports: start, read, run, adopt; the nightly enqueue and the deadline reaper.

A report reads its owner's connection's messages and the linked agents' actions through
RLS, as the owner (never as the service role), so it can only ever see what its owner
sees. It runs off the request: an async invocation of the mirror function in AWS, a task
on the server's loop locally (`Runtime.start_mirror_report`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from agentplane.auth.caller import Caller
from agentplane.db.crud import Table
from agentplane.db.database import Database
from agentplane.db.pagination import Page, PageRequest
from agentplane.db.rows import Tx, fetch_one, fetch_value
from agentplane.errors import ConflictError, NotFoundError, ProblemError
from agentplane.mirror.analysis import (
    Analysis,
    Analyzer,
    Corpus,
    CorpusAction,
    CorpusMessage,
    keep_known_evidence,
)
from agentplane.mirror.models import Report, ReportCreate
from agentplane.observability import logger
from agentplane.runtime import Runtime

reports = Table("mirror_reports", Report, "mirror report")

# The most a report analyzes; older messages of a longer period are left out (noted).
MAX_MESSAGES = 100_000
MAX_ACTIONS = 20_000


@dataclass(frozen=True)
class EnqueueResult:
    """Reports queued by one nightly run (and memory nodes it archived)."""

    report_ids: list[UUID]
    archived: int = 0


# --- for people --------------------------------------------------------------------------

OPEN_REPORT = """
select id from public.mirror_reports
 where agent_connection_id = %s and status in ('queued', 'running')
"""
QUEUE = """
insert into public.mirror_reports
  (user_id, agent_connection_id, status, since, until, requested_analyzer)
values ((select auth.uid()), %s, 'queued', %s, %s, %s)
on conflict (agent_connection_id) where status in ('queued', 'running') do nothing
returning *
"""


async def queue_report(tx: Tx, body: ReportCreate) -> Report:
    """Queue a report of one of the caller's connections (404 for another's); 409 naming
    the open report when one is already queued or running."""
    connection = await fetch_value(
        tx, "select id from public.agent_connections where id = %s", (body.agent_connection_id,)
    )
    if connection is None:
        raise NotFoundError(f"connection {body.agent_connection_id} not found")
    report = await fetch_one(
        tx, Report, QUEUE, (body.agent_connection_id, body.since, body.until, body.analyzer)
    )
    if report is None:
        open_id = await fetch_value(tx, OPEN_REPORT, (body.agent_connection_id,))
        raise ConflictError(
            f"connection {body.agent_connection_id} already has a report in progress",
            report_id=str(open_id),
        )
    return report


async def list_reports(
    tx: Tx, page: PageRequest, agent_connection_id: UUID | None = None
) -> Page[Report]:
    """A page of the caller's reports, oldest first."""
    return await reports.page(tx, page, {"agent_connection_id": agent_connection_id})


async def get_report(tx: Tx, report_id: UUID) -> Report:
    """One of the caller's reports, or 404."""
    return await reports.require(tx, report_id)


ADOPTED = """
update public.mirror_reports set adopted_at = now(), adopted_prompt_version = %s
 where id = %s and adopted_at is null
returning *
"""


async def adopt(tx: Tx, report_id: UUID) -> Report:
    """Make the report's suggested prompt its agent's next prompt version, in the caller's
    transaction (their own report; members of the agent's organization only, which RLS
    on the agent's config decides: 403 for a viewer). The version records who and which
    report; adopting twice is a 409."""
    from agentplane.agents.service import adopt_prompt

    report = await reports.require(tx, report_id)
    if report.status != "succeeded" or not report.suggested_prompt:
        raise ConflictError(
            f"mirror report {report_id} has no suggested prompt to adopt (it is {report.status})",
            current_status=report.status,
        )
    if report.agent_id is None:
        raise ConflictError(f"mirror report {report_id} analyzed no agent's conversations")
    if report.adopted_at is not None:
        raise ConflictError(
            f"mirror report {report_id} was adopted as prompt version"
            f" {report.adopted_prompt_version}",
            adopted_prompt_version=report.adopted_prompt_version,
        )
    version = await adopt_prompt(tx, report.agent_id, report.suggested_prompt, source_id=report.id)
    adopted = await fetch_one(tx, Report, ADOPTED, (version.version, report_id))
    if adopted is None:  # a concurrent adopt won
        raise ConflictError(f"mirror report {report_id} was adopted meanwhile")
    logger.info(
        "mirror report adopted",
        extra={
            "report_id": str(report_id),
            "agent_id": str(report.agent_id),
            "prompt_version": version.version,
        },
    )
    return adopted


# --- running a report --------------------------------------------------------------------

CLAIM = """
update public.mirror_reports
   set status = 'running', started_at = now(), error = null,
       progress = '{"phase": "reading"}'
 where id = %s and status = 'queued'
returning user_id, agent_connection_id, since, until, requested_analyzer
"""
CONNECTION = """
select c.name, c.provider, c.base_url, c.model from public.agent_connections c where c.id = %s
"""
LAST_UNTIL = """
select max(coalesce(until, created_at)) from public.mirror_reports
 where agent_connection_id = %s and status = 'succeeded'
"""
MESSAGES = """
select m.id, m.conversation_id, m.role, m.content, m.created_at, v.agent_id
  from public.conversations v
  join public.messages m on m.conversation_id = v.id
 where v.agent_connection_id = %s
   and m.created_at > coalesce(%s, '-infinity'::timestamptz) and m.created_at <= %s
   and m.role in ('system', 'user', 'assistant')
 order by m.created_at desc, m.id desc
 limit %s
"""
ACTIONS = """
select id, status, payload ->> 'tool', coalesce(payload -> 'args', '{}'), decision_reason,
       output, attempt, created_at, message_id
  from public.agent_actions
 where agent_id = any(%s)
   and created_at > coalesce(%s, '-infinity'::timestamptz) and created_at <= %s
 order by created_at, id
 limit %s
"""
PROMPT = "select coalesce(system_prompt, '') from public.agent_configs where agent_id = %s"
FINISH = """
update public.mirror_reports
   set status = 'succeeded', finished_at = now(), analyzer = %s, title = %s,
       since = %s, until = %s, agent_id = %s,
       strengths = %s, weaknesses = %s, recommendations = %s,
       suggested_prompt = %s, suggested_prompt_diff = %s, prompt_changes = %s,
       notes = %s, dropped_evidence = %s, message_count = %s, action_count = %s,
       progress = %s
 where id = %s and status = 'running'
"""
FAIL = """
update public.mirror_reports
   set status = 'failed', finished_at = now(), error = %s,
       progress = progress || '{"phase": "failed"}'
 where id = %s and status in ('queued', 'running')
"""


async def build_corpus(
    tx: Tx, connection_id: UUID, name: str, since: datetime | None, until: datetime
) -> tuple[Corpus, list[str]]:
    """The connection's messages in (since, until] and its agents' actions, read in the
    caller's transaction (the owner's: RLS decides), with notes on what was left out."""
    notes: list[str] = []
    cur = await tx.execute(MESSAGES, (connection_id, since, until, MAX_MESSAGES))
    rows = list(reversed(await cur.fetchall()))
    if len(rows) == MAX_MESSAGES:
        notes.append(f"only the latest {MAX_MESSAGES} messages of the period were analyzed")
    messages = [CorpusMessage(r[0], r[1], r[2], r[3], r[4]) for r in rows]
    agents = Counter(r[5] for r in rows if r[5] is not None)
    agent_id = agents.most_common(1)[0][0] if agents else None
    actions: list[CorpusAction] = []
    prompt = ""
    if agents:
        cur = await tx.execute(ACTIONS, (list(agents), since, until, MAX_ACTIONS))
        actions = [
            CorpusAction(r[0], r[1], r[2] or "", r[3], r[4], r[5], r[6], r[7], r[8])
            for r in await cur.fetchall()
        ]
        prompt = str(await fetch_value(tx, PROMPT, (agent_id,)) or "")
    corpus = Corpus(
        connection_id=connection_id,
        connection_name=name,
        agent_id=agent_id,
        system_prompt=prompt,
        since=since,
        until=until,
        messages=messages,
        actions=actions,
    )
    return corpus, notes


def report_title(name: str, since: datetime | None, until: datetime) -> str:
    """`<connection>: <since> to <until>` (dates in UTC)."""
    start = since.astimezone(UTC).strftime("%Y-%m-%d") if since else "the beginning"
    return f"{name}: {start} to {until.astimezone(UTC).strftime('%Y-%m-%d')}"


ORGANIZATION = """
select coalesce(
  (select organization_id from public.agents where id = %s),
  (select organization_id from public.organization_members where user_id = %s
    order by created_at limit 1))
"""


async def _analyzer(
    runtime: Runtime,
    tx: Tx,
    requested: str,
    owner: UUID,
    connection: tuple[Any, ...],
    agent_id: UUID | None,
) -> tuple[Analyzer, list[str]]:
    """The analyzer to use and why: the LLM one with the owner's key for the
    connection's provider (asked for, or `auto` with a key), else the heuristic one."""
    from agentplane.mirror.heuristic import HeuristicAnalyzer

    heuristic = HeuristicAnalyzer()
    if requested == "heuristic":
        return heuristic, []
    _, provider, base_url, model = connection
    # The key of the organization the analyzed agent belongs to (as a turn uses it).
    organization = await fetch_value(tx, ORGANIZATION, (agent_id, owner))
    try:
        if organization is None:
            raise NotFoundError("the report's owner belongs to no organization")
        key = await runtime.vault.key_for(
            tx,
            user_id=owner,
            organization_id=organization,
            provider=provider,
            purpose="mirror report",
        )
    except ProblemError as exc:
        note = f"used the heuristic analyzer: no usable {provider} key ({exc.detail})"
        return heuristic, [note]
    from agentplane.mirror.llm_analyzer import LlmAnalyzer

    chat = runtime.chat

    async def complete(messages: list[dict[str, Any]]) -> str:
        answer = await chat.complete(
            provider=provider, base_url=base_url, api_key=key, model=model, messages=messages
        )
        return answer.content or ""

    return LlmAnalyzer(complete, fallback=heuristic), []


async def run_report(runtime: Runtime, report_id: UUID) -> str:
    """Run one queued report to its end; its final status (`not_found` when there is no
    such report; the current status when it is not queued)."""
    db = runtime.database
    async with db.service("mirror: start a report") as tx:
        claimed = await tx.execute(CLAIM, (report_id,))
        row = await claimed.fetchone()
        if row is None:
            status = await fetch_value(
                tx, "select status from public.mirror_reports where id = %s", (report_id,)
            )
    if row is None:
        if status is None:
            logger.warning("mirror report not found", extra={"report_id": str(report_id)})
            return "not_found"
        return str(status)
    owner, connection_id, since, until, requested = row
    started = datetime.now(UTC)
    try:
        async with db.transaction(Caller.acting_for(owner)) as tx:
            cur = await tx.execute(CONNECTION, (connection_id,))
            connection = await cur.fetchone()
            if connection is None:
                raise NotFoundError(f"connection {connection_id} is gone")
            until = until or datetime.now(UTC)
            if since is None:
                since = await fetch_value(tx, LAST_UNTIL, (connection_id,))
            corpus, notes = await build_corpus(tx, connection_id, connection[0], since, until)
            analyzer, why = await _analyzer(
                runtime, tx, requested, owner, tuple(connection), corpus.agent_id
            )
        analysis: Analysis = await analyzer.analyze(corpus)
        analysis = keep_known_evidence(analysis, corpus)
        notes = [*notes, *why, *analysis.notes]
        if analysis.dropped_evidence:
            notes.append(
                f"{analysis.dropped_evidence} evidence ids not in the analyzed set were dropped"
            )
        await _finish(db, report_id, owner, corpus, analysis, notes, started)
    except Exception as exc:
        reason = exc.detail if isinstance(exc, ProblemError) else f"{type(exc).__name__}: {exc}"
        async with db.service("mirror: a report failed") as tx:
            await tx.execute(FAIL, (reason[:2000], report_id))
        logger.exception("mirror report failed", extra={"report_id": str(report_id)})
        return "failed"
    return "succeeded"


def _dump(items: list[Any]) -> Jsonb:
    return Jsonb([i.model_dump(mode="json") for i in items])


async def _finish(
    db: Database,
    report_id: UUID,
    owner: UUID,
    corpus: Corpus,
    analysis: Analysis,
    notes: list[str],
    started: datetime,
) -> None:
    prompt = analysis.suggested_prompt
    seconds = (datetime.now(UTC) - started).total_seconds()
    progress = {"phase": "done", "messages": len(corpus.messages), "seconds": round(seconds, 3)}
    async with db.service("mirror: write a report") as tx:
        await tx.execute(
            FINISH,
            (
                analysis.analyzer,
                report_title(corpus.connection_name, corpus.since, corpus.until),
                corpus.since,
                corpus.until,
                corpus.agent_id,
                _dump(analysis.strengths),
                _dump(analysis.weaknesses),
                _dump(analysis.recommendations),
                prompt.prompt if prompt else None,
                prompt.diff if prompt else None,
                _dump(prompt.changes if prompt else []),
                Jsonb(notes),
                analysis.dropped_evidence,
                len(corpus.messages),
                len(corpus.actions),
                Jsonb(progress),
                report_id,
            ),
        )
        if analysis.skills:
            from agentplane.skills.service import suggest_skills

            await suggest_skills(
                tx, owner, report_id, [s.model_dump(mode="json") for s in analysis.skills]
            )
    logger.info(
        "mirror report written",
        extra={
            "report_id": str(report_id),
            "analyzer": analysis.analyzer,
            "messages": len(corpus.messages),
            "actions": len(corpus.actions),
            "weaknesses": len(analysis.weaknesses),
            "seconds": round(seconds, 3),
        },
    )


# --- server jobs -------------------------------------------------------------------------


async def enqueue_nightly_reports(db: Database) -> EnqueueResult:
    """Queue a report for every connection with messages newer than its latest report.

    A connection that already has a queued or running report gets no second one, so two
    runs at once, or a run after a slow night, queue each connection at most once: the
    NOT EXISTS skips the ones already open, and the partial unique index
    `mirror_reports_one_open_per_agent_connection` turns a concurrent run's insert of the
    same connection into a conflict that is skipped.
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


def local_runner(runtime: Runtime) -> Callable[[UUID], None]:
    """What runs a started report in one process (`make dev`, tests): a task on the
    running loop, kept referenced until it ends."""
    tasks: set[asyncio.Task[str]] = set()

    def start(report_id: UUID) -> None:
        task = asyncio.get_running_loop().create_task(run_report(runtime, report_id))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return start


async def run_nightly(runtime: Runtime) -> EnqueueResult:
    """The nightly job: queue a report per connection with new messages, start each, and
    archive the memory nodes that faded (only those: through their `fades_at` index)."""
    from agentplane.memory.service import archive_faded

    queued = await enqueue_nightly_reports(runtime.database)
    for report_id in queued.report_ids:
        await runtime.start_mirror_report(report_id)
    archived = await archive_faded(runtime.database)
    return EnqueueResult(queued.report_ids, archived)
