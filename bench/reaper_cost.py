"""Reaper cost: one heartbeat-cron run (`sessions.reaper.reap`) over 1,000,000 live
sessions of which 0, 1,000 and 100,000 are stale, beside a full scan of the table.

One migrated database on an embedded PostgreSQL (durability off, as in the tests). Set-up,
untimed, as the superuser: the sessions of a few agents, bulk-inserted with
`generate_series`, then `vacuum analyze`. Each round:

1. opens the cron's pool (one connection, as `authenticator`) and runs one reap while
   nothing is stale, so the connection is as warm as a Lambda's that ran the cron before;
2. marks S sessions stale (last heartbeat ten minutes ago) and vacuums;
3. times the baseline, a plain sequential `select count(*)` in one backend (median of 3);
4. times ONE `reap(db)` with the production defaults (90 s threshold, batches of 1,000,
   each batch its own service-role transaction);
5. puts the sessions back online for the next round.

The live sessions' heartbeats lie a minute wide, an hour ahead: the run lasts longer
than the 90 s threshold, and refreshing a million heartbeats between rounds would take
longer than the benchmark. The reaper's index scan stops at the first live heartbeat
whichever way ahead it lies, so this does not change what it reads.

The reaper logs one line per service-role transaction; during the timed call those go
to stderr instead of stdout, so the table stays readable at the same cost.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from agentplane.db.database import Database
from agentplane.db.embedded import as_role
from agentplane.db.migrate import migrate
from agentplane.observability import logger
from agentplane.sessions.reaper import DEFAULT_BATCH, DEFAULT_STALE_AFTER_SECONDS, reap
from bench.pg import create_database, drop_database, embedded_server, say, server_settings
from bench.results_io import print_table, write_results
from bench.world import build_world

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SESSIONS = 1_000_000
STALE_COUNTS = (0, 1_000, 100_000)
AGENTS = 4
INSERT_CHUNK = 100_000
SCANS = 3

COLUMNS = ["stale", "reaped", "reap_ms", "scan_ms", "reap_vs_scan"]


class BenchmarkCheckError(RuntimeError):
    """The reaper did not take exactly the stale sessions offline."""


def insert_sessions(
    admin_url: str, organization_id: UUID, agent_ids: Sequence[UUID], count: int
) -> None:
    """`count` online sessions spread over the agents, heartbeats a minute wide, an hour
    ahead (see the module docstring)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for start in range(1, count + 1, INSERT_CHUNK):
            end = min(count, start + INSERT_CHUNK - 1)
            conn.execute(
                """
                insert into public.agent_sessions
                  (organization_id, agent_id, socket_id, last_heartbeat)
                select %s, (%s::uuid[])[1 + mod(g, %s)], 'bench-' || g,
                       now() + interval '1 hour' - mod(g, 60000) * interval '1 millisecond'
                  from generate_series(%s::int, %s::int) g
                """,
                (organization_id, list(agent_ids), len(agent_ids), start, end),
            )
            say(f"reaper: inserted {end:,}/{count:,} sessions")
        say("reaper: vacuum analyze")
        conn.execute("vacuum analyze public.agent_sessions")


def mark_stale(admin_url: str, count: int) -> list[UUID]:
    """Backdate the heartbeats of `count` online sessions (scattered over the table, by
    their random ids) ten minutes; vacuum afterwards so every round starts clean."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        cur = conn.execute(
            """
            update public.agent_sessions
               set last_heartbeat = now() - interval '10 minutes'
             where id in (
               select id from public.agent_sessions where status = 'online' order by id limit %s)
            returning id
            """,
            (count,),
        )
        stale = [r[0] for r in cur.fetchall()]
        conn.execute("vacuum analyze public.agent_sessions")
    return stale


def reset(admin_url: str, stale: list[UUID]) -> None:
    """Put the reaped sessions back online, heartbeats an hour ahead like the rest."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            """
            update public.agent_sessions
               set status = 'online', ended_at = null,
                   last_heartbeat = now() + interval '1 hour'
             where id = any(%s)
            """,
            (stale,),
        )


# The baseline reads every row once, in one backend, as the reaper's one backend would
# if it had no index to follow: no index-only scan of a small index, no parallel workers.
SCAN = "select count(*) from public.agent_sessions"
SCAN_SETTINGS = (
    "set enable_indexscan = off",
    "set enable_indexonlyscan = off",
    "set enable_bitmapscan = off",
    "set max_parallel_workers_per_gather = 0",
)


def time_full_scan(admin_url: str, sessions: int, scans: int = SCANS) -> float:
    """Median seconds of a sequential `select count(*)` over the whole table."""
    samples = []
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for setting in SCAN_SETTINGS:
            conn.execute(setting)
        plan = "\n".join(r[0] for r in conn.execute("explain " + SCAN).fetchall())
        if "Seq Scan on agent_sessions" not in plan or "Parallel" in plan:
            raise BenchmarkCheckError(f"the baseline is not a plain sequential scan:\n{plan}")
        for _ in range(scans):
            started = time.perf_counter()
            row = conn.execute(SCAN).fetchone()
            samples.append(time.perf_counter() - started)
            if row is None or row[0] != sessions:
                raise BenchmarkCheckError(f"expected {sessions} sessions, counted {row}")
    return statistics.median(samples)


@contextmanager
def logs_to_stderr() -> Iterator[None]:
    """The service-role log lines go to stderr for a while (same cost, clean stdout)."""
    handler = logger.registered_handler
    previous = handler.setStream(sys.stderr)
    try:
        yield
    finally:
        if previous is not None:
            handler.setStream(previous)


async def time_reap(db: Database) -> tuple[float, int]:
    """Seconds of one `reap(db)` with the production defaults, and the sessions it took
    offline."""
    with logs_to_stderr():
        started = time.perf_counter()
        result = await reap(db)
        elapsed = time.perf_counter() - started
    return elapsed, result.sessions_offline


async def warm_pool(app_url: str) -> Database:
    """The cron's pool as a warm Lambda holds it: connected, and its connection has run
    the reaper before (catalog caches loaded), here over a table with nothing stale."""
    db = Database(app_url, min_size=1, max_size=1)
    await db.open()
    _, reaped = await time_reap(db)
    if reaped:
        raise BenchmarkCheckError(f"nothing is stale yet, but the reaper took {reaped}")
    return db


async def measure(
    admin_url: str,
    app_url: str,
    *,
    sessions: int = DEFAULT_SESSIONS,
    stale_counts: Sequence[int] = STALE_COUNTS,
    agents: int = AGENTS,
) -> list[dict[str, Any]]:
    """Fill the (migrated, empty) database, then one round per stale count."""
    if max(stale_counts) > sessions:
        raise ValueError(f"cannot mark {max(stale_counts)} of {sessions} sessions stale")
    world = build_world(admin_url, agents=agents)
    insert_sessions(admin_url, world.organization_id, world.agent_ids, sessions)
    rows = []
    for count in stale_counts:
        db = await warm_pool(app_url)
        try:
            stale = mark_stale(admin_url, count)
            scan = time_full_scan(admin_url, sessions)
            seconds, reaped = await time_reap(db)
        finally:
            await db.close()
        if reaped != count:
            raise BenchmarkCheckError(f"{count} stale sessions, but the reaper took {reaped}")
        reset(admin_url, stale)
        say(f"reaper: {count:,} stale: reap {seconds * 1000:.1f} ms, scan {scan * 1000:.1f} ms")
        rows.append(
            {
                "stale": count,
                "reaped": reaped,
                "reap_ms": round(seconds * 1000, 1),
                "scan_ms": round(scan * 1000, 1),
                "reap_vs_scan": round(seconds / scan, 3),
            }
        )
    return rows


async def _run_on_embedded(sessions: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    with embedded_server() as server_url:
        settings = server_settings(server_url)
        name = f"bench_reaper_{uuid.uuid4().hex[:8]}"
        admin_url = create_database(server_url, name)
        try:
            say("reaper: migrating its database")
            migrate(admin_url)
            counts = tuple(c for c in STALE_COUNTS if c <= sessions)
            rows = await measure(
                admin_url, as_role(admin_url), sessions=sessions, stale_counts=counts
            )
        finally:
            drop_database(server_url, name)
    return rows, settings


def main(sessions: int = DEFAULT_SESSIONS) -> Path:
    """Run on a fresh embedded server, print the table, write the JSON."""
    print(
        f"reaper cost: one reap() over {sessions:,} live sessions, stale after"
        f" {DEFAULT_STALE_AFTER_SECONDS} s, batches of {DEFAULT_BATCH:,}; baseline: one full"
        " sequential count(*) of the table (one backend, median of 3); embedded PostgreSQL"
        " with fsync, synchronous_commit and full_page_writes OFF (as in the tests)"
    )
    rows, settings = asyncio.run(_run_on_embedded(sessions))
    print_table(rows, COLUMNS)
    path = write_results(
        "reaper_cost",
        rows,
        {
            "sessions": sessions,
            "agents": AGENTS,
            "stale_after_seconds": DEFAULT_STALE_AFTER_SECONDS,
            "batch": DEFAULT_BATCH,
            "scan": f"{SCAN}: sequential, not parallel, median of {SCANS}",
            "server": settings,
            "durability": "fsync, synchronous_commit, full_page_writes off",
        },
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return path
