"""Many runner sessions claiming one agent's queue at once: each action exactly once.

The sessions claim over the HTTP API concurrently (each claim one transaction on its
own pooled connection), so the only thing keeping two of them apart is the claim's
`FOR UPDATE SKIP LOCKED` and the fencing token on results.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

from agentplane.db.database import Database
from tests.support.api import MakeOrg, Org, assert_problem
from tests.support.builders import Runner, approved_action, new_agent, runner_for

ACTIONS = 200
SESSIONS = 8
BATCH = 7
# At most this many requests in flight while building data: the test pool has 8
# connections and each request holds one.
BUILDERS = 6


async def _approved_queue(client: httpx.AsyncClient, agent_id: str, org: Org) -> set[str]:
    """ACTIONS approved actions of the agent, built through the API."""
    gate = asyncio.Semaphore(BUILDERS)

    async def one() -> str:
        async with gate:
            action_id: str = (await approved_action(client, agent_id, org))["id"]
            return action_id

    return set(await asyncio.gather(*(one() for _ in range(ACTIONS))))


async def _status_counts(database: Database, agent_id: str) -> Counter[str]:
    async with database.service("test: count action statuses") as tx:
        cur = await tx.execute(
            "select status, count(*) from public.agent_actions where agent_id = %s group by status",
            (agent_id,),
        )
        return Counter({r[0]: r[1] for r in await cur.fetchall()})


async def test_concurrent_sessions_claim_every_action_exactly_once(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    # Given 200 approved actions and 8 sessions, each on its own runner token
    org = await make_org()
    agent_id = await new_agent(client, org)
    queued = await _approved_queue(client, agent_id, org)
    runners = [await runner_for(client, agent_id, org.member) for _ in range(SESSIONS)]
    sessions = [
        (r, (await r.register(socket_id=f"worker-{i}"))["id"]) for i, r in enumerate(runners)
    ]

    async def drain(runner: Runner, session_id: str) -> list[dict[str, Any]]:
        # Claim batches of 7 until a claim comes back empty (the queue is drained: a
        # claim skips only rows another claim is taking right now).
        mine: list[dict[str, Any]] = []
        while True:
            items = await runner.claimed(session_id, max=BATCH, lease_seconds=300)
            assert len(items) <= BATCH
            if not items:
                return mine
            mine.extend(items)

    # When all 8 drain the queue at once
    per_session = await asyncio.gather(*(drain(r, s) for r, s in sessions))

    # Then every action was handed out exactly once, none lost, none twice
    claimed = [item for items in per_session for item in items]
    assert len(claimed) == ACTIONS
    assert {i["id"] for i in claimed} == queued
    assert {(i["fencing_token"], i["attempt"]) for i in claimed} == {(1, 1)}
    assert await _status_counts(database, agent_id) == Counter({"claimed": ACTIONS})
    # More than one session got work (the claims really overlapped)
    assert sum(1 for items in per_session if items) > 1

    # When every holder reports at once, one of them with a stale token
    holder = {i["id"]: runners[n] for n, items in enumerate(per_session) for i in items}
    stale = claimed[ACTIONS // 2]
    results = await asyncio.gather(
        *(
            holder[i["id"]].result(
                i["id"],
                i["fencing_token"] - (1 if i is stale else 0),
                "succeeded",
                {"n": n},
            )
            for n, i in enumerate(claimed)
        )
    )

    # Then exactly that one is refused with the action's current state, the rest land
    codes = Counter(r.status_code for r in results)
    assert codes == Counter({200: ACTIONS - 1, 409: 1})
    (refused,) = [r for r in results if r.status_code == 409]
    body = assert_problem(refused, 409, "conflict")
    assert body["current_status"] == "claimed"
    assert refused.request.url.path == f"/runner/actions/{stale['id']}/result"
    assert await _status_counts(database, agent_id) == Counter(
        {"succeeded": ACTIONS - 1, "claimed": 1}
    )
    # And the holder with the current token can still finish it
    late = await holder[stale["id"]].result(stale["id"], stale["fencing_token"])
    assert late.status_code == 200, late.text
    assert await _status_counts(database, agent_id) == Counter({"succeeded": ACTIONS})
