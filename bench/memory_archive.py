"""Memory archive cost: one nightly `memory.service.archive_faded` over 1,000,000 live
memory nodes of which 0, 1,000 and 100,000 have faded below the threshold, beside a full
sequential scan that computes the decay of every row.

One migrated database on an embedded PostgreSQL (durability off, as in the tests). Set-up,
untimed, as the superuser: one user's nodes (strength 0.9, used now, so they fade in
about 20 days), bulk-inserted with `generate_series` (the fades_at trigger runs for each),
then `vacuum analyze`. Each round:

1. opens the job's pool (one connection, as `authenticator`) and runs one archive step
   while nothing has faded, so the connection is warm;
2. backdates the last use of F nodes by 30 days (the trigger moves their fades_at into
   the past) and vacuums;
3. times the baseline: `count(*)` of the rows whose decayed strength is below the
   threshold, by a plain sequential scan in one backend (median of 3);
4. times ONE `archive_faded(db)` with the defaults (threshold 0.05, batches of 1,000,
   each its own service-role transaction) and checks it archived exactly F nodes;
5. brings the archived nodes back (live, used now) for the next round.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from agentplane.db.database import Database
from agentplane.db.embedded import as_role
from agentplane.db.migrate import migrate
from agentplane.memory.decay import FADE_THRESHOLD
from agentplane.memory.service import archive_faded
from bench.pg import create_database, drop_database, embedded_server, say, server_settings
from bench.reaper_cost import SCAN_SETTINGS, logs_to_stderr
from bench.results_io import print_table, write_results

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NODES = 1_000_000
FADED_COUNTS = (0, 1_000, 100_000)
BATCH = 1000
INSERT_CHUNK = 100_000
SCANS = 3

COLUMNS = ["faded", "archived", "archive_ms", "scan_ms", "archive_vs_scan"]


class BenchmarkCheckError(RuntimeError):
    """The archive step did not archive exactly the faded nodes."""


def insert_nodes(admin_url: str, count: int) -> uuid.UUID:
    """One user with `count` live nodes, all used now; returns the user's id."""
    user_id = uuid.uuid4()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, email) values (%s, 'memory@bench.local')", (user_id,)
        )
        for start in range(1, count + 1, INSERT_CHUNK):
            end = min(count, start + INSERT_CHUNK - 1)
            conn.execute(
                """
                insert into public.memory_nodes (user_id, label, content, strength)
                select %s, 'node ' || g, 'remembered thing number ' || g, 0.9
                  from generate_series(%s::int, %s::int) g
                """,
                (user_id, start, end),
            )
            say(f"memory: inserted {end:,}/{count:,} nodes")
        say("memory: vacuum analyze")
        conn.execute("vacuum analyze public.memory_nodes")
    return user_id


def mark_faded(admin_url: str, count: int) -> None:
    """Backdate the last use of `count` live nodes (scattered, by their random ids)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            """
            update public.memory_nodes set last_used_at = now() - interval '30 days'
             where id in (select id from public.memory_nodes where archived_at is null
                           order by id limit %s)
            """,
            (count,),
        )
        conn.execute("vacuum analyze public.memory_nodes")


def reset(admin_url: str) -> int:
    """Bring every archived node back, used now; how many there were."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        cur = conn.execute(
            "update public.memory_nodes set archived_at = null, last_used_at = now()"
            " where archived_at is not null"
        )
        conn.execute("vacuum analyze public.memory_nodes")
        return cur.rowcount


SCAN = (
    "select count(*) from public.memory_nodes where archived_at is null and"
    " private.decayed_strength(strength, last_used_at, stability_seconds, now()) < %s"
)


def time_full_scan(admin_url: str, faded: int, scans: int = SCANS) -> float:
    """Median seconds of the sequential scan that computes every row's decay."""
    samples = []
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for setting in SCAN_SETTINGS:
            conn.execute(setting)
        plan = "\n".join(
            r[0] for r in conn.execute("explain " + SCAN, (FADE_THRESHOLD,)).fetchall()
        )
        if "Seq Scan on memory_nodes" not in plan or "Parallel" in plan:
            raise BenchmarkCheckError(f"the baseline is not a plain sequential scan:\n{plan}")
        for _ in range(scans):
            started = time.perf_counter()
            row = conn.execute(SCAN, (FADE_THRESHOLD,)).fetchone()
            samples.append(time.perf_counter() - started)
            if row is None or row[0] != faded:
                raise BenchmarkCheckError(f"expected {faded} faded nodes, counted {row}")
    return statistics.median(samples)


async def time_archive(db: Database) -> tuple[float, int]:
    """Seconds of one `archive_faded(db)` with the defaults, and the nodes it archived."""
    with logs_to_stderr():
        started = time.perf_counter()
        archived = await archive_faded(db, limit=BATCH)
        elapsed = time.perf_counter() - started
    return elapsed, archived


def count_archived(admin_url: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from public.memory_nodes where archived_at is not null"
        ).fetchone()
    return row[0] if row else -1


async def measure(
    admin_url: str,
    app_url: str,
    *,
    nodes: int = DEFAULT_NODES,
    faded_counts: Sequence[int] = FADED_COUNTS,
) -> list[dict[str, Any]]:
    """Fill the (migrated, empty) database, then one round per faded count."""
    if max(faded_counts) > nodes:
        raise ValueError(f"cannot fade {max(faded_counts)} of {nodes} nodes")
    insert_nodes(admin_url, nodes)
    rows = []
    for count in faded_counts:
        db = Database(app_url, min_size=1, max_size=1)
        await db.open()
        try:
            _, warm = await time_archive(db)
            if warm:
                raise BenchmarkCheckError(f"nothing has faded yet, but {warm} were archived")
            mark_faded(admin_url, count)
            scan = time_full_scan(admin_url, count)
            seconds, archived = await time_archive(db)
        finally:
            await db.close()
        touched = count_archived(admin_url)
        if archived != count or touched != count:
            raise BenchmarkCheckError(
                f"{count} faded nodes, but {archived} reported and {touched} archived"
            )
        reset(admin_url)
        say(f"memory: {count:,} faded: archive {seconds * 1000:.1f} ms, scan {scan * 1000:.1f} ms")
        rows.append(
            {
                "faded": count,
                "archived": archived,
                "archive_ms": round(seconds * 1000, 1),
                "scan_ms": round(scan * 1000, 1),
                "archive_vs_scan": round(seconds / scan, 3),
            }
        )
    return rows


async def _run_on_embedded(nodes: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    with embedded_server() as server_url:
        settings = server_settings(server_url)
        name = f"bench_memory_{uuid.uuid4().hex[:8]}"
        admin_url = create_database(server_url, name)
        try:
            say("memory: migrating its database")
            migrate(admin_url)
            counts = tuple(c for c in FADED_COUNTS if c <= nodes)
            rows = await measure(admin_url, as_role(admin_url), nodes=nodes, faded_counts=counts)
        finally:
            drop_database(server_url, name)
    return rows, settings


def main(nodes: int = DEFAULT_NODES) -> Path:
    """Run on a fresh embedded server, print the table, write the JSON."""
    print(
        f"memory archive cost: one archive_faded() over {nodes:,} live memory nodes,"
        f" threshold {FADE_THRESHOLD}, batches of {BATCH:,}; baseline: one full sequential"
        " scan computing every row's decayed strength (one backend, median of 3); embedded"
        " PostgreSQL with fsync, synchronous_commit and full_page_writes OFF (as in the tests)"
    )
    rows, settings = asyncio.run(_run_on_embedded(nodes))
    print_table(rows, COLUMNS)
    path = write_results(
        "memory_archive",
        rows,
        {
            "nodes": nodes,
            "threshold": FADE_THRESHOLD,
            "batch": BATCH,
            "scan": f"{SCAN}: sequential, not parallel, median of {SCANS}",
            "server": settings,
            "durability": "fsync, synchronous_commit, full_page_writes off",
        },
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return path
