"""Workflow cost: Step Functions state transitions per DAG node, and wall time per node
through moto's local interpreter, for four shapes of N nodes each:

- transform_chain: N `transform` nodes in a line, run inline by the `step` op (the
  baseline: no state of the ASL per node);
- wait_chain: N `wait` nodes (`seconds: 0`) in a line, each its own Wait state (the
  heavy path: step, route, wait per node);
- wait_fanout: a `transform` root, N `wait` nodes after it, a `transform` join: one Map;
- approval_fanout: the same with N `approval` gates, approved through
  POST /actions/decisions as they come (the Map runs at most its MaxConcurrency items at
  once, so N above it takes more than one batch).

Transitions are the `*StateEntered` events of every execution of the run (names
`<run_id>-<n>`, n = 1 .. `workflow_runs.executions`), what Step Functions bills; the goal
is at most 4 per node. Time is wall time from POST /workflows/{id}/runs to the run's
status `succeeded` (polled every 5 ms on its own connection), median of `repeat` runs,
divided by N; the ratio is that over the transform chain's, measured in the same run.

Everything runs in this process, as `make dev` runs it: the HTTP app through
httpx.ASGITransport, the real ASL in moto's interpreter (`LocalWorkflows`), its Lambda
tasks answered by `engine.handle` on this event loop, the in-process dispatcher. One
migrated database on an embedded PostgreSQL, durability off, as in the tests. Service
log lines go to stderr so the table stays readable.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg

from agentplane.actions.models import MAX_DECISION_BATCH
from agentplane.apps import build_local_app
from agentplane.auth.tokens import mint_token
from agentplane.db.database import Database
from agentplane.db.embedded import as_role
from agentplane.db.migrate import migrate
from agentplane.runtime import Runtime
from agentplane.settings import Settings
from agentplane.workflows.local import LocalWorkflows, asl_path, history_transitions
from bench.pg import create_database, drop_database, embedded_server, say, server_settings
from bench.reaper_cost import logs_to_stderr
from bench.results_io import print_table, write_results
from bench.world import World, build_world

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NODES = 50
DEFAULT_REPEAT = 3
GOAL_TRANSITIONS_PER_NODE = 4
BASELINE = "transform_chain"
SHAPES = (BASELINE, "wait_chain", "wait_fanout", "approval_fanout")
POLL_SECONDS = 0.005
RUN_DEADLINE_SECONDS = 120.0
COLUMNS = [
    "shape",
    "nodes",
    "executions",
    "transitions",
    "transitions_per_node",
    "goal",
    "ms_per_node",
    "ratio_to_baseline",
]


class BenchmarkCheckError(RuntimeError):
    """A run did not succeed, or not in time."""


def map_max_concurrency() -> int:
    """The Wave Map's MaxConcurrency in the shipped ASL (how many gates wait at once)."""
    asl = json.loads(asl_path().read_text())
    return int(asl["States"]["Wave"].get("MaxConcurrency", 0))


def definition(shape: str, nodes: int, agent_id: UUID) -> dict[str, Any]:
    """The DAG of one shape with `nodes` nodes of the measured type."""
    ids = [f"n{i}" for i in range(nodes)]
    configs = {
        BASELINE: ("transform", {"expression": "input.n"}),
        "wait_chain": ("wait", {"seconds": 0}),
        "wait_fanout": ("wait", {"seconds": 0}),
        "approval_fanout": ("approval", {"agent_id": str(agent_id), "title": "gate"}),
    }
    if shape not in configs:
        raise ValueError(f"unknown shape {shape!r}; shapes: {', '.join(SHAPES)}")
    node_type, config = configs[shape]
    body = [{"id": i, "type": node_type, "config": config} for i in ids]
    if shape.endswith("_chain"):
        edges = [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]
        return {"nodes": body, "edges": edges}
    root = {"id": "root", "type": "transform", "config": {"expression": "input.n"}}
    join = {"id": "join", "type": "transform", "config": {"expression": "input.n"}}
    edges = [{"from": "root", "to": i} for i in ids] + [{"from": i, "to": "join"} for i in ids]
    return {"nodes": [root, *body, join], "edges": edges}


@dataclass
class Sample:
    """One run of one shape."""

    seconds: float
    executions: int
    transitions: int
    peak_threads: int
    decision_batches: int = 0


@dataclass
class ShapeResult:
    """Every run of one shape."""

    shape: str
    nodes: int
    samples: list[Sample] = field(default_factory=list)
    warmup: Sample | None = None


class Bench:
    """The app, the interpreter and the polling connection of one measurement."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        runtime: Runtime,
        poll: psycopg.AsyncConnection[Any],
        starter: dict[str, str],
        decider: dict[str, str],
    ) -> None:
        self.client = client
        self.runtime = runtime
        self.poll = poll
        self.starter = starter
        self.decider = decider
        self.concurrency = map_max_concurrency()

    async def save(self, project_id: UUID, name: str, dag: dict[str, Any]) -> str:
        """A workflow saved through the API; its id."""
        resp = await self.client.post(
            "/workflows",
            json={"project_id": str(project_id), "name": name, "definition": dag},
            headers=self.starter,
        )
        if resp.status_code != 201:
            raise BenchmarkCheckError(f"saving {name}: {resp.status_code} {resp.text}")
        return str(resp.json()["id"])

    async def _status(self, run_id: str) -> str:
        cur = await self.poll.execute(
            "select status from public.workflow_runs where id = %s", (run_id,)
        )
        row = await cur.fetchone()
        return str(row[0]) if row else "missing"

    async def _pending_gates(self, run_id: str) -> list[str]:
        cur = await self.poll.execute(
            "select id from public.agent_actions"
            " where workflow_run_id = %s and status = 'pending' order by id",
            (run_id,),
        )
        return [str(r[0]) for r in await cur.fetchall()]

    async def _approve(self, action_ids: list[str]) -> None:
        for start in range(0, len(action_ids), MAX_DECISION_BATCH):
            chunk = action_ids[start : start + MAX_DECISION_BATCH]
            resp = await self.client.post(
                "/actions/decisions",
                json={"decision": "approve", "action_ids": chunk, "reason": "bench"},
                headers=self.decider,
            )
            body = resp.json()
            if resp.status_code != 200 or body["refused"]:
                raise BenchmarkCheckError(f"batch approval: {resp.status_code} {resp.text}")

    async def run_once(self, workflow_id: str, nodes: int, *, gates: bool) -> Sample:
        """Start a run, approve its gates as they wait (if `gates`), wait for success."""
        peak = threading.active_count()
        batches = decided = 0
        started = time.perf_counter()
        resp = await self.client.post(
            f"/workflows/{workflow_id}/runs", json={"input": {"n": 1}}, headers=self.starter
        )
        if resp.status_code != 201:
            raise BenchmarkCheckError(f"starting a run: {resp.status_code} {resp.text}")
        run_id = str(resp.json()["id"])
        deadline = started + RUN_DEADLINE_SECONDS
        while True:
            status = await self._status(run_id)
            peak = max(peak, threading.active_count())
            if status == "succeeded":
                break
            if status in ("failed", "cancelled"):
                raise BenchmarkCheckError(f"run {run_id} {status}")
            if time.perf_counter() > deadline:
                raise BenchmarkCheckError(f"run {run_id} still {status} after the deadline")
            if gates:
                # The Map runs `concurrency` items at once: wait for as many gates as can
                # be waiting, then approve them in one batch.
                expected = min(nodes - decided, self.concurrency or nodes)
                pending = await self._pending_gates(run_id)
                if pending and len(pending) >= expected:
                    await self._approve(pending)
                    decided += len(pending)
                    batches += 1
                    continue
            await asyncio.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
        executions, transitions = await self.transitions(run_id)
        return Sample(seconds, executions, transitions, peak, batches)

    async def _ended(self, execution_arn: str) -> None:
        """Wait for the execution to end: the run is `succeeded` in PostgreSQL inside the
        last step task, before the interpreter has entered the states after it."""
        deadline = time.perf_counter() + RUN_DEADLINE_SECONDS
        while (await self.runtime.step_functions.describe(execution_arn))["status"] == "RUNNING":
            if time.perf_counter() > deadline:
                raise BenchmarkCheckError(f"execution {execution_arn} did not end")
            await asyncio.sleep(POLL_SECONDS)

    async def transitions(self, run_id: str) -> tuple[int, int]:
        """(executions, state transitions summed over all of them) of a run."""
        cur = await self.poll.execute(
            "select executions, execution_arn from public.workflow_runs where id = %s", (run_id,)
        )
        row = await cur.fetchone()
        assert row is not None
        executions, arn = int(row[0]), str(row[1])
        await self._ended(arn)
        prefix = arn.rsplit(":", 1)[0]
        total = 0
        for n in range(1, executions + 1):
            events = await self.runtime.step_functions.history(f"{prefix}:{run_id}-{n}")
            total += history_transitions(events)
        return executions, total


async def measure(
    admin_url: str,
    app_url: str,
    nodes: int = DEFAULT_NODES,
    repeat: int = DEFAULT_REPEAT,
    shapes: tuple[str, ...] = SHAPES,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The table and what it was measured with, on a migrated database ((admin, app)
    URLs): every shape `repeat` times, N = `nodes`."""
    world = build_world(admin_url)
    with psycopg.connect(admin_url) as conn:
        row = conn.execute(
            "select id from public.projects where organization_id = %s",
            (world.organization_id,),
        ).fetchone()
    assert row is not None
    project_id: UUID = row[0]
    results = await _measure_shapes(admin_url, app_url, world, project_id, nodes, repeat, shapes)
    rows = table(results)
    meta = {
        "nodes": nodes,
        "repeat": repeat,
        "goal_transitions_per_node": GOAL_TRANSITIONS_PER_NODE,
        "map_max_concurrency": map_max_concurrency(),
        "cpus": _cpus(),
        "warmup_seconds": {
            r.shape: round(r.warmup.seconds, 4) for r in results if r.warmup is not None
        },
        "samples": {
            r.shape: [
                {
                    "seconds": round(s.seconds, 4),
                    "executions": s.executions,
                    "transitions": s.transitions,
                    "peak_threads": s.peak_threads,
                    "decision_batches": s.decision_batches,
                }
                for s in r.samples
            ]
            for r in results
        },
    }
    return rows, meta


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


async def _measure_shapes(
    admin_url: str,
    app_url: str,
    world: World,
    project_id: UUID,
    nodes: int,
    repeat: int,
    shapes: tuple[str, ...],
) -> list[ShapeResult]:
    with tempfile.TemporaryDirectory(prefix="apbench-wf-") as tmp, logs_to_stderr():
        settings = Settings(
            stage="test", jwt_secret=secrets.token_hex(32), data_dir=Path(tmp) / ".agentplane"
        )
        database = Database(app_url, max_size=8)
        runtime = Runtime(settings, database)
        local = LocalWorkflows(runtime, dispatch_interval=0.5)
        local.start()
        local.run_dispatcher()
        starter = {"Authorization": f"Bearer {mint_token(settings, world.member_id)}"}
        decider = {"Authorization": f"Bearer {mint_token(settings, world.owner_id)}"}
        transport = httpx.ASGITransport(app=build_local_app(runtime))
        try:
            async with (
                httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
                await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as poll,
            ):
                bench = Bench(client, runtime, poll, starter, decider)
                results = []
                for shape in shapes:
                    dag = definition(shape, nodes, world.agent_ids[0])
                    workflow_id = await bench.save(project_id, shape, dag)
                    result = ShapeResult(shape, nodes)
                    # One untimed run first: the first execution of a process pays for
                    # imports, the pool's connections and moto's parser.
                    gates = shape == "approval_fanout"
                    result.warmup = await bench.run_once(workflow_id, nodes, gates=gates)
                    for i in range(repeat):
                        sample = await bench.run_once(workflow_id, nodes, gates=gates)
                        result.samples.append(sample)
                        say(
                            f"workflow cost: {shape} run {i + 1}/{repeat}:"
                            f" {sample.seconds:.2f} s, {sample.transitions} transitions,"
                            f" {sample.peak_threads} threads at most"
                        )
                    results.append(result)
        finally:
            await local.stop_dispatcher()
            local.stop()
            await database.close()
    return results


def table(results: list[ShapeResult]) -> list[dict[str, Any]]:
    """A row per shape: transitions of its first run (each run of a shape takes the same
    path), median ms per node, and the ratio to the baseline's."""
    ms = {
        r.shape: statistics.median(s.seconds for s in r.samples) * 1000 / r.nodes for r in results
    }
    base = ms.get(BASELINE)
    rows = []
    for r in results:
        first = r.samples[0]
        per_node = first.transitions / r.nodes
        rows.append(
            {
                "shape": r.shape,
                "nodes": r.nodes,
                "executions": first.executions,
                "transitions": first.transitions,
                "transitions_per_node": round(per_node, 2),
                "goal": "met" if per_node <= GOAL_TRANSITIONS_PER_NODE else "missed",
                "ms_per_node": round(ms[r.shape], 2),
                "ratio_to_baseline": round(ms[r.shape] / base, 1) if base else "",
                "transitions_vary": len({s.transitions for s in r.samples}) > 1,
                "peak_threads": max(s.peak_threads for s in r.samples),
                "decision_batches": max(s.decision_batches for s in r.samples),
            }
        )
    return rows


async def _run_on_embedded(
    nodes: int, repeat: int
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, str]]:
    with embedded_server() as server_url:
        settings = server_settings(server_url)
        name = f"bench_workflows_{uuid.uuid4().hex[:8]}"
        url = create_database(server_url, name)
        try:
            migrate(url)
            rows, meta = await measure(url, as_role(url), nodes, repeat)
        finally:
            drop_database(server_url, name)
    return rows, meta, settings


def main(nodes: int = DEFAULT_NODES, repeat: int = DEFAULT_REPEAT) -> Path:
    """Run on a fresh embedded server, print the table, write the JSON."""
    print(
        f"workflow cost: state transitions and wall time per node, {nodes} nodes per shape,"
        f" median of {repeat} runs, through moto's Step Functions interpreter in-process;"
        f" goal <= {GOAL_TRANSITIONS_PER_NODE} transitions per node; ratio = ms/node over"
        f" {BASELINE}'s; embedded PostgreSQL with fsync, synchronous_commit and"
        " full_page_writes OFF"
    )
    rows, meta, settings = asyncio.run(_run_on_embedded(nodes, repeat))
    print_table(rows, COLUMNS)
    path = write_results("workflow_cost", rows, {**meta, "server": settings})
    print(f"wrote {path.relative_to(ROOT)}")
    return path
