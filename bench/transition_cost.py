"""Transition cost: the CPU that each step of the action loop costs per action, on the
database server and in the Python that drives it, beside a bare UPDATE of the same rows.

Where `queue_throughput` says how fast the loop goes, this says where its time goes. One
connection, no concurrency, batches of 50:

- approve: `actions.service.decide_many` as an organization member (RLS, an Ed25519
  signature per action, the audit event);
- claim: `sessions.service.claim` as the agent's runner (SKIP LOCKED, lease, fencing);
- result: `sessions.service.report_results` as the runner, each fenced by its token.

Each step runs twice, on two migrated databases: as shipped, and with the audit log's
UPDATE trigger disabled, so the difference is what the audit log costs per transition.
The baseline, in the same run: a bare table (id bigint, status text, an index on status
as the queue has) whose rows are updated in the same batches, one UPDATE ... WHERE id =
ANY(...) per batch, as the superuser.

Server CPU is the backend's own (user + system time from /proc, which counts in clock
ticks: summed over hundreds of batches, so each step is read to about 1%). Client CPU is
this process's CPU time over the same calls. Durability is off, as in the tests.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentplane.actions.service import decide_many
from agentplane.actions.signing import ApprovalSigner
from agentplane.db.database import Database
from agentplane.db.embedded import as_role
from agentplane.db.migrate import migrate
from agentplane.sessions.models import SessionCreate
from agentplane.sessions.service import ResultItem, claim, register, report_results
from bench.pg import create_database, drop_database, embedded_server, say, server_settings
from bench.results_io import print_table, write_results
from bench.world import build_world, propose_bulk

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ACTIONS = 10_000
BATCH = 50
STEPS = ("approve", "claim", "result")
COLUMNS = [
    "step",
    "server_us",
    "server_us_no_audit",
    "audit_us",
    "client_us",
    "server_vs_bare_update",
]
NO_AUDIT = "alter table public.agent_actions disable trigger agent_actions_record_events_updated"


class BenchmarkCheckError(RuntimeError):
    """A step did not move exactly the actions it was given."""


def backend_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one server process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Cost:
    """CPU seconds one step used, and over how many actions."""

    actions: int = 0
    server_s: float = 0.0
    client_s: float = 0.0

    def per_action_us(self, seconds: float) -> float:
        """Microseconds per action."""
        return seconds / self.actions * 1e6


async def _measured(cost: Cost, pid: int, n: int, work: Awaitable[Any]) -> Any:
    """Await `work` (a coroutine not yet started) and add what it cost to `cost`."""
    server, client = backend_cpu_seconds(pid), time.process_time()
    result = await work
    cost.server_s += backend_cpu_seconds(pid) - server
    cost.client_s += time.process_time() - client
    cost.actions += n
    return result


async def run_loop(admin_url: str, app_url: str, actions: int) -> dict[str, Cost]:
    """Approve, claim and report `actions` actions in batches on one connection."""
    world = build_world(admin_url)
    propose_bulk(admin_url, world, actions)
    with psycopg.connect(admin_url) as conn:
        ids: list[UUID] = [r[0] for r in conn.execute("select id from public.agent_actions")]
    signer = ApprovalSigner(Ed25519PrivateKey.generate())
    member, runner = world.member(), world.runner()
    agent_id = world.agent_ids[0]
    costs = {step: Cost() for step in STEPS}
    db = Database(app_url, min_size=1, max_size=1)
    await db.open()
    try:
        async with db.transaction(member) as tx:
            row = await (await tx.execute("select pg_backend_pid()")).fetchone()
        assert row is not None
        pid: int = row[0]

        async def approve(chunk: list[UUID]) -> None:
            async with db.transaction(member) as tx:
                _, refused = await decide_many(
                    tx, chunk, "approve", None, signer=signer, approval_ttl_seconds=3600
                )
            if refused:
                raise BenchmarkCheckError(f"approve refused {len(refused)} actions")

        for start in range(0, actions, BATCH):
            chunk = ids[start : start + BATCH]
            await _measured(costs["approve"], pid, len(chunk), approve(chunk))

        async with db.transaction(runner) as tx:
            session = await register(tx, agent_id, runner.token_id, SessionCreate(socket_id="b"))

        async def claim_batch() -> list[Any]:
            async with db.transaction(runner) as tx:
                return await claim(tx, agent_id, session.id, max_items=BATCH, lease_seconds=300)

        async def report(items: list[Any]) -> None:
            results = [ResultItem(i.id, i.fencing_token, "succeeded", {}) for i in items]
            async with db.transaction(runner) as tx:
                _, stale = await report_results(tx, results)
            if stale:
                raise BenchmarkCheckError(f"{len(stale)} results refused")

        while True:
            remaining = actions - costs["claim"].actions
            items = await _measured(costs["claim"], pid, min(BATCH, remaining), claim_batch())
            if not items:
                break
            await _measured(costs["result"], pid, len(items), report(items))
    finally:
        await db.close()
    with psycopg.connect(admin_url) as conn:
        done = conn.execute(
            "select count(*) from public.agent_actions where status = 'succeeded'"
        ).fetchone()
    if done != (actions,):
        raise BenchmarkCheckError(f"expected {actions} succeeded actions, got {done}")
    return costs


BARE_SCHEMA = """
create table bench_rows (id bigint primary key, status text not null);
create index bench_rows_status_idx on bench_rows (status, id);
"""


def run_bare(url: str, actions: int) -> float:
    """Backend CPU seconds to update `actions` bare rows, in batches, three times over
    (one per transition); returns seconds per row update."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(BARE_SCHEMA.encode())
        conn.execute(
            "insert into bench_rows select g, 'pending' from generate_series(1, %s) g",
            (actions,),
        )
        conn.execute("vacuum analyze bench_rows")
        pid = conn.info.backend_pid
        before = backend_cpu_seconds(pid)
        for status in ("approved", "claimed", "succeeded"):
            for start in range(1, actions + 1, BATCH):
                ids = list(range(start, min(actions, start + BATCH - 1) + 1))
                with conn.transaction():
                    conn.execute(
                        "update bench_rows set status = %s where id = any(%s)", (status, ids)
                    )
        seconds = backend_cpu_seconds(pid) - before
        done = conn.execute("select count(*) from bench_rows where status = 'succeeded'")
        if done.fetchone() != (actions,):
            raise BenchmarkCheckError("bare rows did not all finish")
    return seconds / (3 * actions)


async def measure(
    full: tuple[str, str], no_audit: tuple[str, str], bare_url: str, actions: int
) -> list[dict[str, Any]]:
    """The table, from three databases: (admin, app) URLs of two migrated ones (the
    second gets the audit's UPDATE trigger disabled here) and an empty one for the bare
    baseline."""
    say("transition cost: the loop as shipped")
    shipped = await run_loop(*full, actions)
    with psycopg.connect(no_audit[0], autocommit=True) as conn:
        conn.execute(NO_AUDIT.encode())
    say("transition cost: the loop without the audit trigger on updates")
    bare_of_audit = await run_loop(*no_audit, actions)
    say("transition cost: bare updates")
    bare_us = run_bare(bare_url, actions) * 1e6
    rows = []
    for step in STEPS:
        a, b = shipped[step], bare_of_audit[step]
        server = a.per_action_us(a.server_s)
        without = b.per_action_us(b.server_s)
        rows.append(
            {
                "step": step,
                "server_us": round(server),
                "server_us_no_audit": round(without),
                "audit_us": round(server - without),
                "client_us": round(a.per_action_us(a.client_s)),
                # Empty when the baseline took less than a clock tick (tiny runs).
                "server_vs_bare_update": round(server / bare_us, 1) if bare_us else "",
            }
        )
    rows.append(
        {
            "step": "bare UPDATE of one row (baseline)",
            "server_us": round(bare_us, 1),
            "server_vs_bare_update": 1.0,
        }
    )
    return rows


async def _run_on_embedded(actions: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    with embedded_server() as server_url:
        settings = server_settings(server_url)
        suffix = uuid.uuid4().hex[:8]
        names = {k: f"bench_{k}_{suffix}" for k in ("full", "no_audit", "bare")}
        urls = {k: create_database(server_url, n) for k, n in names.items()}
        try:
            migrate(urls["full"])
            migrate(urls["no_audit"])
            rows = await measure(
                (urls["full"], as_role(urls["full"])),
                (urls["no_audit"], as_role(urls["no_audit"])),
                urls["bare"],
                actions,
            )
        finally:
            for name in names.values():
                drop_database(server_url, name)
    return rows, settings


def main(actions: int = DEFAULT_ACTIONS) -> Path:
    """Run on a fresh embedded server, print the table, write the JSON."""
    print(
        f"transition cost: CPU per action of each step, {actions:,} actions in batches of"
        f" {BATCH} on one connection; baseline: a bare one-row UPDATE, same batches;"
        " embedded PostgreSQL with fsync, synchronous_commit and full_page_writes OFF"
    )
    rows, settings = asyncio.run(_run_on_embedded(actions))
    print_table(rows, COLUMNS)
    path = write_results(
        "transition_cost",
        rows,
        {
            "actions": actions,
            "batch": BATCH,
            "server": settings,
            "cpu": "backend user+system from /proc; client: this process's CPU time",
            "durability": "fsync, synchronous_commit, full_page_writes off",
        },
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return path
