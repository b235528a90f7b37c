"""`llm` nodes (one turn with the starter's key, through the fake provider on 127.0.0.1)
and `wait` nodes (Wait states) in runs through the real ASL; the dispatcher's heartbeats
of action waits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agentplane.runtime import Runtime
from agentplane.workflows.dispatcher import heartbeat
from agentplane.workflows.local import LocalWorkflows
from agentplane.workflows.sfn import StepFunctionsError
from tests.support.api import MakeOrg, Org
from tests.support.builders import (
    create_connection,
    create_project,
    new_agent,
    runner_for,
    store_key,
)
from tests.support.fake_provider import FakeProvider, Reply
from tests.support.workflows import (
    approve,
    node,
    node_is,
    save_workflow,
    start_run,
    wait_for_run,
    work,
)

ENDED = lambda run: run["status"] in ("succeeded", "failed", "cancelled")  # noqa: E731


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    """The model provider: a local OpenAI-compatible server."""
    with FakeProvider() as server:
        yield server


async def connected_agent(client: httpx.AsyncClient, org: Any, fake: FakeProvider) -> str:
    """An agent wired to the fake provider through the member's connection and key."""
    agent = await new_agent(client, org)
    connection = await create_connection(
        client, org.member, name="local", provider="custom", base_url=fake.base_url, model="m1"
    )
    resp = await client.put(
        f"/agents/{agent}/config",
        json={"model": "", "system_prompt": "Be brief.", "temperature": 0.2,
              "connection_id": connection["id"], "allowed_tools": ["write_file"]},
        headers=org.member.headers,
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    await store_key(client, org.member, org, "sk-member-1234", provider="custom")
    return agent


async def test_llm_nodes_answer_in_text_and_in_json_checked_against_their_schema(
    client: httpx.AsyncClient, make_org: MakeOrg, fake: FakeProvider, workflows: LocalWorkflows
) -> None:
    org = await make_org()
    agent = await connected_agent(client, org, fake)
    fake.script(
        Reply(body=FakeProvider.completion("Ship it on Tuesday.")),
        Reply(body=FakeProvider.completion('{"day": "Tuesday", "risk": 2}')),
    )
    schema = {"type": "object", "required": ["day", "risk"],
              "properties": {"day": {"type": "string"}, "risk": {"type": "integer"}}}  # fmt: skip
    wf = await save_workflow(client, org.member, await create_project(client, org), {
        "nodes": [
            {"id": "advise", "type": "llm",
             "config": {"agent_id": agent, "prompt": "When should {{ input.team }} ship?"}},
            {"id": "extract", "type": "llm",
             "config": {"agent_id": agent, "output_schema": schema,
                        "prompt": "As JSON: {{ nodes.advise.output.text }}"}},
        ],
        "edges": [{"from": "advise", "to": "extract"}],
    })  # fmt: skip
    run = await start_run(client, org.member, wf["id"], {"team": "payments"})
    run = await wait_for_run(client, org.member, run["id"], until=ENDED)

    assert run["status"] == "succeeded", run
    assert node(run, "advise")["output"]["text"] == "Ship it on Tuesday."
    assert node(run, "extract")["output"]["json"] == {"day": "Tuesday", "risk": 2}
    prompts = [r["json"]["messages"][-1]["content"] for r in fake.requests]
    assert prompts == ["When should payments ship?", "As JSON: Ship it on Tuesday."]
    assert {r["headers"]["authorization"] for r in fake.requests} == {"Bearer sk-member-1234"}
    assert workflows.calls[("run_node", "advise")] == 1


async def test_an_llm_reply_that_misses_its_schema_fails_the_node_naming_why(
    client: httpx.AsyncClient, make_org: MakeOrg, fake: FakeProvider
) -> None:
    org = await make_org()
    agent = await connected_agent(client, org, fake)
    fake.script(Reply(body=FakeProvider.completion('{"day": 3}')))
    wf = await save_workflow(client, org.member, await create_project(client, org), {
        "nodes": [{"id": "extract", "type": "llm",
                   "config": {"agent_id": agent, "prompt": "JSON please",
                              "output_schema": {"type": "object",
                                                "properties": {"day": {"type": "string"}}}}}],
        "edges": [],
    })  # fmt: skip
    run = await start_run(client, org.member, wf["id"])
    run = await wait_for_run(client, org.member, run["id"], until=ENDED)
    assert run["status"] == "failed"
    assert node(run, "extract")["error"]["Error"] == "Llm.SchemaMismatch"
    assert "$.day" in node(run, "extract")["error"]["Cause"]


async def test_wait_nodes_are_timers_alone_and_in_a_wave(
    client: httpx.AsyncClient, make_org: MakeOrg, workflows: LocalWorkflows
) -> None:
    org = await make_org()
    wf = await save_workflow(client, org.member, await create_project(client, org), {
        "nodes": [
            {"id": "pause", "type": "wait", "config": {"seconds_expression": "input.pause"}},
            {"id": "a", "type": "wait", "config": {"seconds": 0}},
            {"id": "b", "type": "wait", "config": {"seconds": 1}},
            {"id": "bad", "type": "wait", "config": {"seconds_expression": "input.missing"}},
        ],
        "edges": [{"from": "pause", "to": "a"}, {"from": "pause", "to": "b"},
                  {"from": "a", "to": "bad"}, {"from": "b", "to": "bad"}],
    })  # fmt: skip
    run = await start_run(client, org.member, wf["id"], {"pause": 1})
    run = await wait_for_run(client, org.member, run["id"], until=ENDED)
    # One timer alone, then two in a Map wave, all Wait states (no task was invoked for
    # them); the wait whose expression gave no number failed the run.
    assert [node(run, n)["status"] for n in ("pause", "a", "b")] == ["succeeded"] * 3
    assert run["status"] == "failed"
    assert node(run, "bad")["error"]["Error"] == "Wait.BadSeconds"
    assert not [op for op, _ in workflows.calls if op in ("run_node", "wait_node")]


async def write_node_waiting(client: httpx.AsyncClient, org: Org, agent: str) -> dict[str, Any]:
    """A run of one `write_file` action node, once the node waits for its action."""
    wf = await save_workflow(client, org.member, await create_project(client, org), {
        "nodes": [{"id": "write", "type": "action",
                   "config": {"agent_id": agent, "tool": "write_file",
                              "args": {"path": "a.txt", "content": "x"}}}],
        "edges": [],
    })  # fmt: skip
    run = await start_run(client, org.member, wf["id"])
    return await wait_for_run(client, org.member, run["id"], until=node_is("write", "waiting"))


async def age_waits(runtime: Runtime, run_id: str) -> None:
    """Make the run's waits a heartbeat interval old, as if the task had run that long."""
    interval = runtime.settings.workflow_heartbeat_seconds // 3
    async with runtime.database.service("test: an older wait") as tx:
        await tx.execute(
            "update public.workflow_waits set created_at = created_at - make_interval(secs => %s)"
            " where run_id = %s",
            (interval, run_id),
        )


def heartbeats_answered(runtime: Runtime, code: str) -> list[str]:
    """Step Functions answers every SendTaskHeartbeat with the error `code`; the tokens
    it was sent, in order."""
    tokens: list[str] = []

    async def refused(token: str) -> None:
        tokens.append(token)
        raise StepFunctionsError(code, f"{code} (the test's answer)")

    runtime.step_functions.heartbeat = refused  # type: ignore[method-assign]
    return tokens


async def test_the_dispatcher_heartbeats_the_waits_of_action_nodes(
    client: httpx.AsyncClient, make_org: MakeOrg, runtime: Runtime, workflows: LocalWorkflows
) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    await workflows.stop_dispatcher()
    sent: Counter[str] = Counter()
    original = runtime.step_functions.heartbeat

    async def counted(token: str) -> None:
        sent[token] += 1
        await original(token)

    runtime.step_functions.heartbeat = counted  # type: ignore[method-assign]
    run = await write_node_waiting(client, org, agent)
    # A task that has just started needs no heartbeat.
    assert await heartbeat(runtime) == 0
    assert not sent
    await age_waits(runtime, run["id"])
    assert await heartbeat(runtime) == 1
    # Not again within a third of HeartbeatSeconds.
    assert await heartbeat(runtime) == 0
    assert list(sent.values()) == [1]


async def test_a_heartbeat_answered_invalid_token_leaves_the_wait_open_for_the_result(
    client: httpx.AsyncClient, make_org: MakeOrg, runtime: Runtime, workflows: LocalWorkflows
) -> None:
    # Step Functions does not know the token at that moment (moto's interpreter arms a
    # task's heartbeat only after its Lambda returns): the action's result must still
    # reach the run.
    org = await make_org()
    agent = await new_agent(client, org)
    runner = await runner_for(client, agent, org.owner)
    session = await runner.register()
    answers = heartbeats_answered(runtime, "InvalidToken")
    run = await write_node_waiting(client, org, agent)
    await age_waits(runtime, run["id"])
    assert await heartbeat(runtime) == 0
    assert len(answers) == 1
    await approve(client, org, node(run, "write")["action_id"])
    await work(runner, session["id"])

    run = await wait_for_run(client, org.member, run["id"], until=ENDED)
    assert run["status"] == "succeeded", run
    assert node(run, "write")["output"] == {"done": "succeeded"}
    # And a failed heartbeat is not sent again at once
    assert await heartbeat(runtime) == 0
    assert len(answers) == 1


async def test_a_heartbeat_answered_task_timed_out_closes_the_wait(
    client: httpx.AsyncClient, make_org: MakeOrg, runtime: Runtime, workflows: LocalWorkflows
) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    await workflows.stop_dispatcher()

    heartbeats_answered(runtime, "TaskTimedOut")
    run = await write_node_waiting(client, org, agent)
    await age_waits(runtime, run["id"])
    assert await heartbeat(runtime) == 0
    async with runtime.database.service("test: the wait") as tx:
        cur = await tx.execute(
            "select resolved_at is not null from public.workflow_waits where run_id = %s",
            (run["id"],),
        )
        assert [row[0] for row in await cur.fetchall()] == [True]
