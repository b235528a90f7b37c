"""The callback dispatcher: a decision committed while it is down is delivered when it
comes back, exactly once; two dispatchers at once send each token once; an answer that
settles a callback for good is recorded as its outcome."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest

from agentplane.runtime import Runtime
from agentplane.workflows.dispatcher import dispatch
from agentplane.workflows.local import LocalWorkflows
from tests.support.api import MakeOrg, Org
from tests.support.builders import create_project, new_agent
from tests.support.workflows import (
    get_run,
    node,
    save_workflow,
    start_run,
    status_is,
    wait_for_run,
)


@pytest.fixture
def sent(runtime: Runtime, workflows: LocalWorkflows) -> Counter[str]:
    """Every SendTaskSuccess the dispatcher makes, by token (slowed a little, so two
    dispatchers overlap)."""
    sfn = runtime.step_functions
    counts: Counter[str] = Counter()
    original = sfn.success

    async def success(token: str, output: dict[str, Any]) -> None:
        counts[token] += 1
        await asyncio.sleep(0.05)
        await original(token, output)

    sfn.success = success  # type: ignore[method-assign]
    return counts


def gates(agent: str, n: int) -> dict[str, Any]:
    """n approval gates side by side, joined by a transform."""
    ids = [f"g{i}" for i in range(n)]
    return {
        "nodes": [
            {"id": i, "type": "approval", "config": {"agent_id": agent, "title": i}} for i in ids
        ]
        + [{"id": "join", "type": "transform", "config": {"expression": "`true`"}}],
        "edges": [{"from": i, "to": "join"} for i in ids],
    }


async def waiting_gates(
    client: httpx.AsyncClient, make_org: MakeOrg, workflows: LocalWorkflows, n: int
) -> tuple[Org, dict[str, Any]]:
    """A run whose n gates all wait for a decision, with the dispatcher then taken down."""
    org = await make_org()
    agent = await new_agent(client, org)
    wf = await save_workflow(client, org.member, await create_project(client, org), gates(agent, n))
    run = await start_run(client, org.member, wf["id"])
    run = await wait_for_run(
        client,
        org.member,
        run["id"],
        until=lambda r: all(node(r, f"g{i}")["status"] == "waiting" for i in range(n)),
    )
    await workflows.stop_dispatcher()
    return org, run


async def test_a_decision_made_while_the_dispatcher_is_down_is_delivered_once_when_it_is_back(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    workflows: LocalWorkflows,
    runtime: Runtime,
    sent: Counter[str],
) -> None:
    org, run = await waiting_gates(client, make_org, workflows, 1)

    resp = await client.post(
        f"/actions/{node(run, 'g0')['action_id']}/approve", headers=org.admin.headers
    )
    assert resp.status_code == 200
    await asyncio.sleep(1.0)
    run = await get_run(client, org.member, run["id"])
    assert node(run, "g0")["status"] == "waiting"
    [callback] = [c for c in run["callbacks"] if c["kind"] == "success"]
    assert callback["delivered_at"] is None
    assert callback["attempts"] == 0
    assert not sent

    first = await dispatch(runtime)
    again = await dispatch(runtime)
    assert (first.delivered, again.delivered) == (1, 0)
    run = await wait_for_run(client, org.member, run["id"], until=status_is("succeeded", "failed"))
    assert run["status"] == "succeeded"
    assert list(sent.values()) == [1]
    [callback] = [c for c in run["callbacks"] if c["kind"] == "success"]
    assert callback["outcome"] == "delivered"
    assert callback["attempts"] == 1


async def test_two_dispatchers_at_once_send_each_token_once(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    workflows: LocalWorkflows,
    runtime: Runtime,
    sent: Counter[str],
) -> None:
    org, run = await waiting_gates(client, make_org, workflows, 6)
    ids = [node(run, f"g{i}")["action_id"] for i in range(6)]
    resp = await client.post(
        "/actions/decisions",
        json={"action_ids": ids, "decision": "approve"},
        headers=org.admin.headers,
    )
    assert resp.status_code == 200
    assert len(resp.json()["decided"]) == 6

    # Batches of three: each dispatcher locks rows the other skips.
    one, two = await asyncio.gather(dispatch(runtime, limit=3), dispatch(runtime, limit=3))
    assert (one.delivered, two.delivered) == (3, 3)
    assert (await dispatch(runtime)).delivered == 0
    assert len(sent) == 6
    assert set(sent.values()) == {1}
    run = await wait_for_run(client, org.member, run["id"], until=status_is("succeeded", "failed"))
    assert run["status"] == "succeeded"


async def test_a_callback_for_a_task_that_is_gone_is_settled_with_its_outcome(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    workflows: LocalWorkflows,
    runtime: Runtime,
) -> None:
    org, run = await waiting_gates(client, make_org, workflows, 1)
    # The token no longer names a task (as after the task timed out in Step Functions).
    async with runtime.database.service("test: a token Step Functions forgot") as tx:
        await tx.execute("update public.workflow_waits set task_token = 'not-a-token'")
    resp = await client.post(
        f"/actions/{node(run, 'g0')['action_id']}/approve", headers=org.admin.headers
    )
    assert resp.status_code == 200

    result = await dispatch(runtime)
    assert result.delivered == 0
    assert sum(result.settled.values()) == 1
    run = await get_run(client, org.member, run["id"])
    [callback] = [c for c in run["callbacks"] if c["kind"] == "success"]
    assert callback["outcome"] in ("invalid_token", "task_does_not_exist")
    assert callback["delivered_at"] is not None
    assert callback["last_error"]
    assert (await dispatch(runtime)).settled == {}
