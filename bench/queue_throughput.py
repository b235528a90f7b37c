"""Queue throughput: approve → claim → complete of N actions with 4 workers, beside
procrastinate doing the same amount of work, and the bare SKIP LOCKED loop as the ceiling.

One embedded PostgreSQL (durability off, as in the tests), one database per contestant,
all in the same run. Each contestant's rows are created untimed; only the work is timed.

- agentplane: N pending actions of one agent (bulk insert through the audit trigger),
  run twice, each on its own database:
  * batches (the contestant): phase A, 4 workers approve N/4 each as a member of the
    organization, 50 actions per `POST /actions/decisions` transaction
    (`actions.service.decide_many`: RLS, an Ed25519 signature per action, one audit
    event each); phase B, 4 runner workers, each with its own registered session and
    connection, claim 50 at a time and report the 50 results in one `POST
    /runner/results` transaction (`sessions.service.report_results`, each fenced by its
    token), until a claim comes back empty;
  * single calls: the same, one transaction per decision and per result
    (`POST /actions/{id}/approve`, `POST /runner/actions/{id}/result`), claims of 50.
  Not counted in either: HTTP, JWT checks and the runner-token lookup.
- procrastinate: N no-op jobs deferred in bulk, then one worker with concurrency 4 and
  `wait=False`, which returns once the queue is empty.
- bare: a table (id bigint, status text) with a partial index on the ready rows (as the
  approved queue has), 4 workers each looping `UPDATE ... WHERE id IN (SELECT ... LIMIT 50
  FOR UPDATE SKIP LOCKED) RETURNING id` and one `UPDATE ... SET status = 'done'`.

After each contestant exactly N items must have finished (else the run stops). Client
CPU is this process's CPU time over the timed phase; server CPU is the PostgreSQL
processes' (from /proc, approximate). Both share the machine's cores with each other.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import procrastinate
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection

from agentplane.actions.service import decide, decide_many
from agentplane.actions.signing import ApprovalSigner
from agentplane.db.database import Database
from agentplane.db.embedded import as_role
from agentplane.db.migrate import migrate
from agentplane.sessions.models import SessionCreate
from agentplane.sessions.service import ResultItem, claim, register, report_result, report_results
from bench.pg import (
    Progress,
    create_database,
    drop_database,
    embedded_server,
    say,
    server_cpu_seconds,
    server_settings,
)
from bench.results_io import print_table, write_results
from bench.world import build_world, propose_bulk

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ACTIONS = 20_000
WORKERS = 4
CLAIM_MAX = 50  # the protocol's largest claim (sessions.models.MAX_CLAIM)
LEASE_SECONDS = 300
APPROVAL_TTL_SECONDS = 3600  # the Settings default
# Goals from the issue, printed beside the measured ratios.
GOAL_VS_PROCRASTINATE = 10.0
GOAL_VS_BARE = 0.5

COLUMNS = [
    "contestant",
    "items",
    "seconds",
    "items_per_s",
    "client_cpu_s",
    "server_cpu_s",
    "vs_procrastinate",
    "vs_bare",
]


class BenchmarkCheckError(RuntimeError):
    """A contestant did not finish exactly the items it was given."""


@dataclass
class Timed:
    """How long a phase took and what it cost."""

    items: int
    seconds: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float | None = None

    @property
    def rate(self) -> float:
        """Items per second."""
        return self.items / self.seconds


@dataclass
class QueueResults:
    """Every timed phase of one run."""

    approve: Timed
    claim_complete: Timed
    single_approve: Timed
    single_claim_complete: Timed
    procrastinate: Timed
    bare: Timed
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def agentplane(self) -> Timed:
        """Both batched phases as one: approve → claim → complete."""
        return _both(self.approve, self.claim_complete)

    @property
    def agentplane_single(self) -> Timed:
        """Both single-call phases as one."""
        return _both(self.single_approve, self.single_claim_complete)


def _both(a: Timed, b: Timed) -> Timed:
    server = None
    if a.server_cpu_s is not None and b.server_cpu_s is not None:
        server = a.server_cpu_s + b.server_cpu_s
    return Timed(a.items, a.seconds + b.seconds, a.client_cpu_s + b.client_cpu_s, server)


@contextmanager
def timed(admin_url: str, items: int) -> Iterator[Timed]:
    """Time the block: wall clock, this process's CPU and the server's CPU."""
    result = Timed(items)
    server_before = server_cpu_seconds(admin_url)
    cpu_before = time.process_time()
    started = time.perf_counter()
    yield result
    result.seconds = time.perf_counter() - started
    result.client_cpu_s = time.process_time() - cpu_before
    server_after = server_cpu_seconds(admin_url)
    if server_before is not None and server_after is not None:
        result.server_cpu_s = server_after - server_before


def _check(name: str, got: object, expected: object) -> None:
    if got != expected:
        raise BenchmarkCheckError(f"{name}: expected {expected!r}, got {got!r}")


# --- agentplane ----------------------------------------------------------------------


async def _open_pools(app_url: str, count: int) -> list[Database]:
    """One pool of one connection per worker, connected before any timing starts."""
    pools = [Database(app_url, min_size=1, max_size=1) for _ in range(count)]
    for db in pools:
        await db.open()
        assert await db.ping()
    return pools


async def run_agentplane(
    admin_url: str, app_url: str, actions: int, *, workers: int = WORKERS, batch: int = CLAIM_MAX
) -> tuple[Timed, Timed]:
    """Phase A (approve) and phase B (claim and complete) over `actions` actions;
    `batch` decisions or results per transaction (1: the single-call routes)."""
    world = build_world(admin_url)
    say(f"agentplane: proposing {actions:,} actions (bulk, untimed)")
    propose_bulk(admin_url, world, actions)
    with psycopg.connect(admin_url) as conn:
        ids: list[UUID] = [r[0] for r in conn.execute("select id from public.agent_actions")]
    _check("agentplane pending actions", len(ids), actions)
    signer = ApprovalSigner(Ed25519PrivateKey.generate())
    member, runner = world.member(), world.runner()
    agent_id = world.agent_ids[0]
    label = "batches" if batch > 1 else "single calls"
    pools = await _open_pools(app_url, workers)
    try:
        approving = Progress(f"agentplane approve ({label})", actions)

        async def approve(db: Database, mine: list[UUID]) -> None:
            for start in range(0, len(mine), batch):
                chunk = mine[start : start + batch]
                async with db.transaction(member) as tx:
                    if batch == 1:
                        await decide(
                            tx,
                            chunk[0],
                            "approve",
                            None,
                            signer=signer,
                            approval_ttl_seconds=APPROVAL_TTL_SECONDS,
                        )
                    else:
                        _, refused = await decide_many(
                            tx,
                            chunk,
                            "approve",
                            None,
                            signer=signer,
                            approval_ttl_seconds=APPROVAL_TTL_SECONDS,
                        )
                        _check("agentplane refused decisions", refused, [])
                approving.add(len(chunk))

        with timed(admin_url, actions) as phase_a:
            await asyncio.gather(*(approve(db, ids[i::workers]) for i, db in enumerate(pools)))
        approving.finish()

        sessions: list[UUID] = []
        for i, db in enumerate(pools):
            async with db.transaction(runner) as tx:
                session = await register(
                    tx, agent_id, runner.token_id, SessionCreate(socket_id=f"bench-{i}")
                )
            sessions.append(session.id)
        completing = Progress(f"agentplane claim+complete ({label})", actions)

        async def drain(db: Database, session_id: UUID) -> None:
            # Until a claim comes back empty: SKIP LOCKED passes over only rows another
            # worker is claiming at that moment, and that worker completes them.
            while True:
                async with db.transaction(runner) as tx:
                    items = await claim(
                        tx, agent_id, session_id, max_items=CLAIM_MAX, lease_seconds=LEASE_SECONDS
                    )
                if not items:
                    return
                if batch == 1:
                    for item in items:
                        async with db.transaction(runner) as tx:
                            await report_result(tx, item.id, item.fencing_token, "succeeded", {})
                        completing.add()
                    continue
                results = [ResultItem(i.id, i.fencing_token, "succeeded", {}) for i in items]
                async with db.transaction(runner) as tx:
                    _, stale = await report_results(tx, results)
                _check("agentplane refused results", stale, [])
                completing.add(len(items))

        with timed(admin_url, actions) as phase_b:
            await asyncio.gather(*(drain(db, s) for db, s in zip(pools, sessions, strict=True)))
        completing.finish()
    finally:
        for db in pools:
            await db.close()
    _verify_agentplane(admin_url, actions)
    return phase_a, phase_b


def _verify_agentplane(admin_url: str, actions: int) -> None:
    """Every action succeeded on its first and only claim, and the audit log holds
    exactly one event per transition."""
    with psycopg.connect(admin_url) as conn:
        rows = conn.execute(
            "select status, count(*), min(fencing_token), max(fencing_token), max(attempt)"
            " from public.agent_actions group by status"
        ).fetchall()
        events = conn.execute(
            "select to_status, count(*) from public.agent_action_events group by to_status"
        ).fetchall()
    _check("agentplane final statuses", rows, [("succeeded", actions, 1, 1, 1)])
    _check(
        "agentplane audit events",
        dict(events),
        {s: actions for s in ("pending", "approved", "claimed", "succeeded")},
    )


# --- procrastinate -------------------------------------------------------------------

DEFER_CHUNK = 5_000


async def run_procrastinate(
    url: str, admin_url: str, jobs: int, *, concurrency: int = WORKERS
) -> Timed:
    """`jobs` no-op jobs, deferred untimed, processed by one worker with `concurrency`."""
    progress = Progress("procrastinate", jobs)
    # A connection per concurrent job, plus the fetch loop and the worker's heartbeat.
    connector = procrastinate.PsycopgConnector(
        conninfo=url, min_size=concurrency + 2, max_size=concurrency + 2
    )
    app = procrastinate.App(connector=connector)

    @app.task(name="bench_noop")
    async def noop(n: int) -> None:
        progress.add()

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        say(f"procrastinate: deferring {jobs:,} jobs (bulk, untimed)")
        for start in range(0, jobs, DEFER_CHUNK):
            await noop.batch_defer_async(
                *({"n": n} for n in range(start, min(jobs, start + DEFER_CHUNK)))
            )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("analyze procrastinate_jobs")
        with timed(admin_url, jobs) as result:
            await app.run_worker_async(
                concurrency=concurrency,
                wait=False,
                install_signal_handlers=False,
                listen_notify=False,
            )
        progress.finish()
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select status::text, count(*) from procrastinate_jobs group by status"
        ).fetchall()
    _check("procrastinate final statuses", rows, [("succeeded", jobs)])
    _check("procrastinate task calls", progress.done, jobs)
    return result


# --- bare SQL ceiling ----------------------------------------------------------------

BARE_SCHEMA = """
create table bench_queue (id bigint primary key, status text not null);
create index bench_queue_ready_idx on bench_queue (id) where status = 'ready';
"""
BARE_CLAIM = """
update bench_queue set status = 'claimed'
 where id in (
   select id from bench_queue where status = 'ready' order by id limit %s
      for update skip locked)
returning id
"""
BARE_DONE = "update bench_queue set status = 'done' where id = any(%s)"


async def run_bare(url: str, admin_url: str, items: int, *, workers: int = WORKERS) -> Timed:
    """The least a SKIP LOCKED queue can do: claim 50, mark them done, repeat."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(BARE_SCHEMA.encode())
        conn.execute(
            "insert into bench_queue select g, 'ready' from generate_series(1, %s) g", (items,)
        )
        conn.execute("analyze bench_queue")
    progress = Progress("bare", items)
    conns = [await AsyncConnection.connect(url, autocommit=True) for _ in range(workers)]
    try:

        async def loop(conn: AsyncConnection[Any]) -> None:
            while True:
                cur = await conn.execute(BARE_CLAIM.encode(), (CLAIM_MAX,))
                ids = [r[0] for r in await cur.fetchall()]
                if not ids:
                    return
                await conn.execute(BARE_DONE.encode(), (ids,))
                progress.add(len(ids))

        with timed(admin_url, items) as result:
            await asyncio.gather(*(loop(c) for c in conns))
        progress.finish()
    finally:
        for conn in conns:
            await conn.close()
    with psycopg.connect(url) as conn:
        rows = conn.execute("select status, count(*) from bench_queue group by status").fetchall()
    _check("bare final statuses", rows, [("done", items)])
    return result


# --- the run -------------------------------------------------------------------------


async def measure(
    *,
    server_url: str,
    agentplane_admin_url: str,
    agentplane_app_url: str,
    single_admin_url: str,
    single_app_url: str,
    procrastinate_url: str,
    bare_url: str,
    actions: int,
    workers: int = WORKERS,
) -> QueueResults:
    """Run the three contestants one after the other on the given (empty) databases;
    `server_url` is a superuser URL of the server, for reading its CPU time."""
    approve, complete = await run_agentplane(
        agentplane_admin_url, agentplane_app_url, actions, workers=workers
    )
    single_approve, single_complete = await run_agentplane(
        single_admin_url, single_app_url, actions, workers=workers, batch=1
    )
    baseline = await run_procrastinate(procrastinate_url, server_url, actions, concurrency=workers)
    ceiling = await run_bare(bare_url, server_url, actions, workers=workers)
    return QueueResults(approve, complete, single_approve, single_complete, baseline, ceiling)


def rows(results: QueueResults, workers: int = WORKERS) -> list[dict[str, Any]]:
    """The table: each row's rate, and its ratio to procrastinate's and to bare's."""
    named = [
        ("agentplane approve→claim→complete, batches of 50", results.agentplane),
        ("  phase A: approve 50 per tx", results.approve),
        ("  phase B: claim 50 + 50 results per tx", results.claim_complete),
        ("agentplane, single calls", results.agentplane_single),
        ("  phase A: approve, 1 tx each", results.single_approve),
        ("  phase B: claim 50 + result, 1 tx each", results.single_claim_complete),
        (
            f"procrastinate {procrastinate.__version__}, concurrency {workers}",
            results.procrastinate,
        ),
        ("bare SKIP LOCKED loop (batches of 50)", results.bare),
    ]
    return [
        {
            "contestant": name,
            "items": t.items,
            "seconds": round(t.seconds, 2),
            "items_per_s": round(t.rate),
            "client_cpu_s": round(t.client_cpu_s, 2),
            "server_cpu_s": "" if t.server_cpu_s is None else round(t.server_cpu_s, 2),
            "vs_procrastinate": round(t.rate / results.procrastinate.rate, 2),
            "vs_bare": round(t.rate / results.bare.rate, 3),
        }
        for name, t in named
    ]


async def _run_on_embedded(actions: int, workers: int) -> tuple[QueueResults, dict[str, str]]:
    with embedded_server() as server_url:
        settings = server_settings(server_url)
        suffix = uuid.uuid4().hex[:8]
        kinds = ("agentplane", "single", "procrastinate", "bare")
        names = {k: f"bench_{k}_{suffix}" for k in kinds}
        urls = {k: create_database(server_url, n) for k, n in names.items()}
        try:
            say("agentplane: migrating its database")
            migrate(urls["agentplane"])
            migrate(urls["single"])
            results = await measure(
                server_url=server_url,
                agentplane_admin_url=urls["agentplane"],
                agentplane_app_url=as_role(urls["agentplane"]),
                single_admin_url=urls["single"],
                single_app_url=as_role(urls["single"]),
                procrastinate_url=urls["procrastinate"],
                bare_url=urls["bare"],
                actions=actions,
                workers=workers,
            )
        finally:
            for name in names.values():
                drop_database(server_url, name)
    return results, settings


def main(actions: int = DEFAULT_ACTIONS, workers: int = WORKERS) -> Path:
    """Run on a fresh embedded server, print the table, write the JSON."""
    print(
        f"queue throughput: {actions:,} items, {workers} workers, one embedded PostgreSQL"
        " with fsync, synchronous_commit and full_page_writes OFF (as in the tests)"
    )
    results, settings = asyncio.run(_run_on_embedded(actions, workers))
    table = rows(results, workers)
    print_table(table, COLUMNS)
    total = results.agentplane
    vs_p = total.rate / results.procrastinate.rate
    vs_b = total.rate / results.bare.rate
    verdict_p = "met" if vs_p >= GOAL_VS_PROCRASTINATE else "MISSED"
    verdict_b = "met" if vs_b >= GOAL_VS_BARE else "MISSED"
    print(
        f"agentplane {total.rate:,.0f} actions/s: {vs_p:.2f}x procrastinate"
        f" (goal {GOAL_VS_PROCRASTINATE:g}x: {verdict_p}),"
        f" {vs_b:.3f}x bare SQL (goal {GOAL_VS_BARE:g}x: {verdict_b})"
    )
    path = write_results(
        "queue_throughput",
        table,
        {
            "actions": actions,
            "workers": workers,
            "claim_max": CLAIM_MAX,
            "server": settings,
            "durability": "fsync, synchronous_commit, full_page_writes off",
            "timed": "only the work; rows and jobs are created untimed",
            "goals": {"vs_procrastinate": GOAL_VS_PROCRASTINATE, "vs_bare": GOAL_VS_BARE},
        },
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return path
