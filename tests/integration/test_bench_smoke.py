"""The benchmarks' core functions at tiny sizes, on the test server: every item is done
exactly once, the reaper takes exactly the stale sessions, every workflow shape succeeds.
Counts only, never timings (the machine is shared and noisy; the benchmarks report
times, tests do not judge them)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from bench import (
    memory_archive,
    mirror_heuristic,
    queue_throughput,
    reaper_cost,
    transition_cost,
    workflow_cost,
)
from bench.pg import create_database, drop_database
from tests.support.database import ProvisionedDatabase

ACTIONS = 60
SESSIONS = 2_000
STALE_COUNTS = (0, 10, 100)


@pytest.fixture
def scratch_databases(pg_server_url: str) -> Iterator[Callable[[str], str]]:
    """Empty databases on the test server (not migrated), dropped after the test."""
    created: list[str] = []

    def make(label: str) -> str:
        name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
        created.append(name)
        return create_database(pg_server_url, name)

    yield make
    for name in created:
        drop_database(pg_server_url, name)


def _counts(url: str, query: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {r[0]: r[1] for r in conn.execute(query).fetchall()}


async def test_queue_throughput_finishes_every_item_exactly_once(
    make_database: Callable[[], ProvisionedDatabase],
    scratch_databases: Callable[[str], str],
    pg_server_url: str,
) -> None:
    # Given a migrated database for agentplane and empty ones for the baselines
    agentplane = make_database()
    single = make_database()
    procrastinate_url = scratch_databases("procrastinate")
    bare_url = scratch_databases("bare")

    # When the three contestants run with a tiny queue
    results = await queue_throughput.measure(
        server_url=pg_server_url,
        agentplane_admin_url=agentplane.admin_url,
        agentplane_app_url=agentplane.app_url,
        single_admin_url=single.admin_url,
        single_app_url=single.app_url,
        procrastinate_url=procrastinate_url,
        bare_url=bare_url,
        actions=ACTIONS,
        workers=4,
    )

    # Then each finished exactly its items: one claim and one result per action, one
    # audit event per transition, every job succeeded, every bare row done
    for database in (agentplane, single):
        assert _counts(
            database.admin_url,
            "select status || ':' || fencing_token || ':' || attempt, count(*)"
            " from public.agent_actions group by 1",
        ) == {"succeeded:1:1": ACTIONS}
        assert _counts(
            database.admin_url,
            "select to_status, count(*) from public.agent_action_events group by to_status",
        ) == dict.fromkeys(("pending", "approved", "claimed", "succeeded"), ACTIONS)
    assert _counts(
        procrastinate_url, "select status::text, count(*) from procrastinate_jobs group by 1"
    ) == {"succeeded": ACTIONS}
    assert _counts(bare_url, "select status, count(*) from bench_queue group by 1") == {
        "done": ACTIONS
    }
    # And the table has a row per phase and contestant, each over the same items
    table = queue_throughput.rows(results)
    assert len(table) == 8
    assert {row["items"] for row in table} == {ACTIONS}


async def test_reaper_cost_reaps_exactly_the_stale_sessions(
    make_database: Callable[[], ProvisionedDatabase],
) -> None:
    # Given a migrated database
    database = make_database()

    # When the benchmark fills it and runs one reap per stale count
    rows = await reaper_cost.measure(
        database.admin_url, database.app_url, sessions=SESSIONS, stale_counts=STALE_COUNTS
    )

    # Then each round reaped exactly the sessions it made stale
    assert [(row["stale"], row["reaped"]) for row in rows] == [(s, s) for s in STALE_COUNTS]
    # And every round was reset: all sessions are online again, none lost
    assert _counts(
        database.admin_url,
        "select status, count(*) from public.agent_sessions group by status",
    ) == {"online": SESSIONS}


async def test_transition_cost_takes_every_action_through_the_loop(
    make_database: Callable[[], ProvisionedDatabase],
    scratch_databases: Callable[[str], str],
) -> None:
    # Given two migrated databases and an empty one for the bare baseline
    full, no_audit = make_database(), make_database()

    # When the loop runs on both (measure raises unless every action succeeded)
    rows = await transition_cost.measure(
        (full.admin_url, full.app_url),
        (no_audit.admin_url, no_audit.app_url),
        scratch_databases("bare"),
        ACTIONS,
    )

    # Then a row per step and the baseline, and the audit log was written only where the
    # trigger was left on: four events per action there, the proposal's alone here
    assert [r["step"] for r in rows] == [*transition_cost.STEPS, rows[-1]["step"]]
    events = "select to_status, count(*) from public.agent_action_events group by to_status"
    assert _counts(full.admin_url, events) == dict.fromkeys(
        ("pending", "approved", "claimed", "succeeded"), ACTIONS
    )
    assert _counts(no_audit.admin_url, events) == {"pending": ACTIONS}


async def test_workflow_cost_runs_every_shape_to_success(
    make_database: Callable[[], ProvisionedDatabase],
) -> None:
    # Given a migrated database
    database = make_database()

    # When every shape runs once with three nodes (measure raises unless each run
    # succeeded, its gates approved through the API)
    rows, meta = await workflow_cost.measure(
        database.admin_url, database.app_url, nodes=3, repeat=1
    )

    # Then a row per shape, in the JSON as written, each with its transitions counted
    # from the execution history and a positive time per node
    body = json.loads(json.dumps({"meta": meta, "rows": rows}))
    assert [r["shape"] for r in body["rows"]] == list(workflow_cost.SHAPES)
    for row in body["rows"]:
        assert row["nodes"] == 3
        assert row["executions"] >= 1
        assert row["transitions"] > 0
        assert row["transitions_per_node"] > 0
        assert row["ms_per_node"] > 0
        assert row["ratio_to_baseline"] > 0
        assert row["goal"] in ("met", "missed")
    # And the gates were approved in one batch (three fit in the Map at once)
    approvals = body["meta"]["samples"]["approval_fanout"]
    assert [s["decision_batches"] for s in approvals] == [1]


def test_mirror_heuristic_analyzes_every_generated_message() -> None:
    # Given a generated corpus of 500 messages (no database needed)
    corpus = mirror_heuristic.generate_corpus(500)
    assert len(corpus.messages) == 500

    # When the benchmark measures the analyzer beside the bare pass
    rows, analysis = mirror_heuristic.measure(500, repeat=1)

    # Then a row per contestant, each over the same 500 messages and actions, and the
    # analysis found weaknesses whose evidence is all in the corpus
    assert [r["contestant"] for r in rows] == ["bare lowercase+tokenize", "heuristic"]
    assert {(r["messages"], r["actions"]) for r in rows} == {(500, len(corpus.actions))}
    assert analysis.weaknesses
    cited = {i for f in analysis.weaknesses + analysis.strengths for i in f.evidence}
    assert cited <= corpus.evidence_ids()


async def test_memory_archive_archives_exactly_the_faded_nodes(
    make_database: Callable[[], ProvisionedDatabase],
) -> None:
    # Given a migrated database
    database = make_database()

    # When the benchmark fills it and runs one archive step per faded count (measure
    # raises unless each step archived exactly the nodes it faded)
    rows = await memory_archive.measure(
        database.admin_url, database.app_url, nodes=SESSIONS, faded_counts=STALE_COUNTS
    )

    # Then each round archived exactly its faded nodes
    assert [(row["faded"], row["archived"]) for row in rows] == [(s, s) for s in STALE_COUNTS]
    # And every round was reset: all nodes are live again, none lost
    assert _counts(
        database.admin_url,
        "select (archived_at is null)::text, count(*) from public.memory_nodes group by 1",
    ) == {"true": SESSIONS}
