"""Runs through the real ASL in moto's Step Functions interpreter, with the in-process
dispatcher: human gates, actions done by a runner (speaking the protocol over HTTP),
retries, handled failures, resume, cancel, and fresh executions before the history
limit."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from agentplane.runtime import Runtime
from agentplane.workflows.local import LocalWorkflows
from tests.support.api import MakeOrg, Org
from tests.support.builders import Runner, create_project, new_agent, runner_for
from tests.support.workflows import (
    approve,
    execution_status,
    get_run,
    node,
    node_is,
    save_workflow,
    start_run,
    status_is,
    wait_for_run,
    work,
)

ENDED = status_is("succeeded", "failed", "cancelled")


def action_node(node_id: str, agent: str, path: str, **config: Any) -> dict[str, Any]:
    """An action node that writes `path` (its content templated from the input)."""
    return {
        "id": node_id,
        "type": "action",
        "config": {
            "agent_id": agent,
            "tool": "write_file",
            "args": {"path": path, "content": "{{ input.text }}"},
            **config,
        },
    }


def chain(*ids: str) -> list[dict[str, str]]:
    """Edges a -> b -> c ..."""
    return [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]


async def setup(client: httpx.AsyncClient, make_org: MakeOrg) -> tuple[Org, str, str, Runner]:
    """An organization, its agent (every tool allowed), a project and a runner session."""
    org = await make_org()
    agent = await new_agent(client, org)
    project = await create_project(client, org, "flows")
    runner = await runner_for(client, agent, org.owner)
    return org, agent, project, runner


async def test_an_action_node_runs_when_approved_and_its_output_is_the_runners_result(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org, agent, project, runner = await setup(client, make_org)
    session = await runner.register()
    wf = await save_workflow(client, org.member, project, {
        "nodes": [action_node("write", agent, "notes/{{ input.name }}.txt"),
                  {"id": "report", "type": "transform",
                   "config": {"expression": "{wrote: nodes.write.output}"}}],
        "edges": chain("write", "report"),
    })  # fmt: skip
    run = await start_run(client, org.member, wf["id"], {"name": "hello", "text": "hi"})

    run = await wait_for_run(client, org.member, run["id"], until=node_is("write", "waiting"))
    action = (await client.get(f"/actions/{node(run, 'write')['action_id']}",
                               headers=org.member.headers)).json()  # fmt: skip
    assert action["status"] == "pending"
    assert action["source"] == "workflow"
    assert action["payload"] == {"tool": "write_file",
                                 "args": {"path": "notes/hello.txt", "content": "hi"}}  # fmt: skip
    assert action["workflow_run_id"] == run["id"]
    assert action["workflow_node_id"] == "write"
    assert action["proposed_by"] == str(org.member.id)
    await approve(client, org, action["id"])
    await work(runner, session["id"])

    run = await wait_for_run(client, org.member, run["id"], until=ENDED)
    assert run["status"] == "succeeded", run
    assert node(run, "write")["output"] == {"done": "succeeded"}
    assert node(run, "write")["action_status"] == "succeeded"
    assert run["output"] == {"report": {"wrote": {"done": "succeeded"}}}
    delivered = [c for c in run["callbacks"] if c["kind"] == "success"]
    assert [c["outcome"] for c in delivered] == ["delivered"]


async def test_a_rejected_gate_fails_the_run_with_the_reason(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org, agent, project, _ = await setup(client, make_org)
    wf = await save_workflow(client, org.member, project, {
        "nodes": [{"id": "gate", "type": "approval",
                   "config": {"agent_id": agent, "title": "Deploy {{ input.v }}?"}},
                  {"id": "after", "type": "transform", "config": {"expression": "`1`"}}],
        "edges": chain("gate", "after"),
    })  # fmt: skip
    run = await start_run(client, org.member, wf["id"], {"v": "1.2"})
    run = await wait_for_run(client, org.member, run["id"], until=node_is("gate", "waiting"))
    gate_id = node(run, "gate")["action_id"]
    gate = (await client.get(f"/actions/{gate_id}", headers=org.viewer.headers)).json()
    assert gate["kind"] == "approval"
    assert gate["payload"]["tool"] == "workflow.approval"
    assert gate["payload"]["args"]["title"] == "Deploy 1.2?"
    # It is in the same inbox as every pending action.
    inbox = (await client.get("/actions?status=pending", headers=org.viewer.headers)).json()
    assert gate_id in [a["id"] for a in inbox["items"]]

    resp = await client.post(f"/actions/{gate_id}/reject", json={"reason": "not on a Friday"},
                             headers=org.admin.headers)  # fmt: skip
    assert resp.status_code == 200, resp.text

    run = await wait_for_run(client, org.member, run["id"], until=ENDED)
    assert run["status"] == "failed"
    assert "not on a Friday" in run["error"]
    assert "Action.Rejected" in run["error"]
    assert node(run, "gate")["status"] == "failed"
    assert node(run, "gate")["action_status"] == "rejected"
    assert node(run, "after")["status"] == "pending"
    events = (await client.get(f"/actions/{gate_id}/events", headers=org.admin.headers)).json()
    assert [e["to_status"] for e in events["items"]] == ["pending", "rejected"]


async def test_an_edge_whose_when_matches_the_status_handles_a_failure(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org, agent, project, _ = await setup(client, make_org)
    wf = await save_workflow(client, org.member, project, {
        "nodes": [{"id": "gate", "type": "approval", "config": {"agent_id": agent, "title": "?"}},
                  {"id": "ship", "type": "transform", "config": {"expression": "'shipped'"}},
                  {"id": "fallback", "type": "transform", "config": {"expression": "'held'"}}],
        "edges": [{"from": "gate", "to": "ship"},
                  {"from": "gate", "to": "fallback",
                   "when": "nodes.gate.action_status == 'rejected'"}],
    })  # fmt: skip
    run = await start_run(client, org.member, wf["id"])
    run = await wait_for_run(client, org.member, run["id"], until=node_is("gate", "waiting"))
    resp = await client.post(f"/actions/{node(run, 'gate')['action_id']}/reject",
                             headers=org.admin.headers)  # fmt: skip
    assert resp.status_code == 200

    run = await wait_for_run(client, org.member, run["id"], until=ENDED)
    assert run["status"] == "succeeded", run
    assert node(run, "gate")["status"] == "failed"
    assert node(run, "gate")["handled"] is True
    assert node(run, "ship")["status"] == "skipped"
    assert run["output"] == {"fallback": "held"}


async def test_a_failed_attempt_is_retried_as_a_new_action(
    client: httpx.AsyncClient, make_org: MakeOrg, workflows: LocalWorkflows
) -> None:
    org, agent, project, runner = await setup(client, make_org)
    session = await runner.register()
    wf = await save_workflow(client, org.member, project, {
        "nodes": [action_node("write", agent, "a.txt", max_attempts=2, backoff_seconds=1)],
        "edges": [],
    })  # fmt: skip
    run = await start_run(client, org.member, wf["id"], {"text": "x"})
    run = await wait_for_run(client, org.member, run["id"], until=node_is("write", "waiting"))
    first = node(run, "write")["action_id"]
    await approve(client, org, first)
    await work(runner, session["id"], "failed")

    run = await wait_for_run(client, org.member, run["id"],
                             until=lambda r: node(r, "write")["action_id"] not in (None, first)
                             and node(r, "write")["status"] == "waiting")  # fmt: skip
    assert node(run, "write")["attempts"] == 2
    await approve(client, org, node(run, "write")["action_id"])
    await work(runner, session["id"])
    run = await wait_for_run(client, org.member, run["id"], until=ENDED)
    assert run["status"] == "succeeded", run
    assert workflows.calls[("wait_node", "write")] == 2


async def test_resume_reruns_only_the_failed_node_and_what_follows(
    client: httpx.AsyncClient, make_org: MakeOrg, workflows: LocalWorkflows
) -> None:
    org, agent, project, runner = await setup(client, make_org)
    session = await runner.register()
    wf = await save_workflow(client, org.member, project, {
        "nodes": [action_node("a", agent, "a.txt"), action_node("b", agent, "b.txt"),
                  action_node("c", agent, "c.txt")],
        "edges": chain("a", "b", "c"),
    })  # fmt: skip
    run = await start_run(client, org.member, wf["id"], {"text": "t"})
    for name, outcome in (("a", "succeeded"), ("b", "failed")):
        run = await wait_for_run(client, org.member, run["id"], until=node_is(name, "waiting"))
        await approve(client, org, node(run, name)["action_id"])
        await work(runner, session["id"], outcome)
    run = await wait_for_run(client, org.member, run["id"], until=ENDED)
    assert run["status"] == "failed"
    assert "node b failed" in run["error"]
    assert node(run, "c")["status"] == "pending"
    a_output = node(run, "a")["output"]

    resp = await client.post(f"/workflow-runs/{run['id']}/resume", headers=org.member.headers)
    assert resp.status_code == 200, resp.text
    resumed = resp.json()
    assert resumed["status"] in ("running", "waiting")
    assert resumed["executions"] == 2
    for name in ("b", "c"):
        run = await wait_for_run(client, org.member, run["id"], until=node_is(name, "waiting"))
        await approve(client, org, node(run, name)["action_id"])
        await work(runner, session["id"])
    run = await wait_for_run(client, org.member, run["id"], until=ENDED)
    assert run["status"] == "succeeded", run
    assert run["execution_arn"].endswith(f"{run['id']}-2")
    # a ran once, in the first execution; b in both; c only after the resume.
    assert workflows.calls[("wait_node", "a")] == 1
    assert workflows.calls[("wait_node", "b")] == 2
    assert workflows.calls[("wait_node", "c")] == 1
    assert node(run, "a")["output"] == a_output
    assert node(run, "a")["attempts"] == 1


async def test_cancel_during_a_human_wait_stops_the_execution_and_cancels_the_action(
    client: httpx.AsyncClient, make_org: MakeOrg, runtime: Runtime
) -> None:
    org, agent, project, _ = await setup(client, make_org)
    wf = await save_workflow(client, org.member, project, {
        "nodes": [{"id": "gate", "type": "approval", "config": {"agent_id": agent, "title": "?"}}],
        "edges": [],
    })  # fmt: skip
    run = await start_run(client, org.member, wf["id"])
    run = await wait_for_run(client, org.member, run["id"], until=node_is("gate", "waiting"))
    gate_id = node(run, "gate")["action_id"]

    viewer = await client.post(f"/workflow-runs/{run['id']}/cancel", headers=org.viewer.headers)
    assert viewer.status_code == 403
    resp = await client.post(f"/workflow-runs/{run['id']}/cancel", headers=org.member.headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "cancelled"

    gate = (await client.get(f"/actions/{gate_id}", headers=org.member.headers)).json()
    assert gate["status"] == "cancelled"
    late = await client.post(f"/actions/{gate_id}/approve", headers=org.admin.headers)
    assert late.status_code == 409
    assert late.json()["current_status"] == "cancelled"
    # The execution was stopped (AWS reports ABORTED; moto's interpreter, whose waiting
    # thread the local client releases after StopExecution, may end it as FAILED).
    stopped = await execution_status(runtime, run["execution_arn"], "ABORTED", "FAILED")
    assert stopped in ("ABORTED", "FAILED")
    run = await get_run(client, org.member, run["id"])
    stops = [c for c in run["callbacks"] if c["kind"] == "stop"]
    assert [c["outcome"] for c in stops] == ["delivered"]
    # The cancelled gate sent no callback: the execution was stopped instead.
    assert not [c for c in run["callbacks"] if c["kind"] in ("success", "failure")]
    again = await client.post(f"/workflow-runs/{run['id']}/cancel", headers=org.member.headers)
    assert again.status_code == 409


async def test_a_long_run_continues_in_a_fresh_execution_before_the_history_limit(
    client: httpx.AsyncClient, make_org: MakeOrg, runtime: Runtime
) -> None:
    # A budget of 50 estimated events (14 a single-node wave): three timers an
    # execution, so a chain of eight needs three executions.
    runtime.settings = runtime.settings.model_copy(update={"workflow_history_budget": 50})
    org, _, project, _ = await setup(client, make_org)
    ids = [f"w{i}" for i in range(8)]
    wf = await save_workflow(client, org.member, project, {
        "nodes": [{"id": i, "type": "wait", "config": {"seconds": 0}} for i in ids],
        "edges": chain(*ids),
    })  # fmt: skip
    run = await start_run(client, org.member, wf["id"])
    run = await wait_for_run(client, org.member, run["id"], until=ENDED)
    assert run["status"] == "succeeded", run
    assert run["executions"] == 3
    sfn = runtime.step_functions
    arns = [
        run["execution_arn"].rsplit("-", 1)[0] + f"-{n}" for n in range(1, run["executions"] + 1)
    ]
    statuses = [await execution_status(runtime, arn, "SUCCEEDED") for arn in arns]
    assert statuses == ["SUCCEEDED"] * len(arns)
    for arn in arns:
        events = await sfn.history(arn)
        assert len(events) < 100, (arn, len(events))


async def test_a_gate_obeys_the_approval_policy_like_any_action(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    # Given a policy that a workflow's approval gates need two people, never the starter
    org, agent, project, _ = await setup(client, make_org)
    policy = await client.post(
        "/approval-policies",
        json={"organization_id": str(org.id), "tool_pattern": "workflow.approval",
              "risk": "high", "required_approvals": 2},
        headers=org.admin.headers,
    )  # fmt: skip
    assert policy.status_code == 201, policy.text
    wf = await save_workflow(client, org.member, project, {
        "nodes": [{"id": "gate", "type": "approval",
                   "config": {"agent_id": agent, "title": "Ship it?"}},
                  {"id": "after", "type": "transform", "config": {"expression": "`1`"}}],
        "edges": chain("gate", "after"),
    })  # fmt: skip
    run = await start_run(client, org.member, wf["id"], {})
    run = await wait_for_run(client, org.member, run["id"], until=node_is("gate", "waiting"))
    gate_id = node(run, "gate")["action_id"]
    gate = (await client.get(f"/actions/{gate_id}", headers=org.viewer.headers)).json()
    assert (gate["policy_id"], gate["risk"], gate["required_approvals"]) == (
        policy.json()["id"], "high", 2,
    )  # fmt: skip

    # The run's starter may not approve it; one approval leaves the run waiting
    own = await client.post(f"/actions/{gate_id}/approve", json={}, headers=org.member.headers)
    assert own.json()["rule"] == "proposer_may_not_approve"
    first = await client.post(f"/actions/{gate_id}/approve", json={}, headers=org.admin.headers)
    assert first.json()["status"] == "pending"
    waiting = await wait_for_run(client, org.member, run["id"], until=node_is("gate", "waiting"))
    assert waiting["status"] == "waiting"
    # the second goes on
    second = await client.post(f"/actions/{gate_id}/approve", json={}, headers=org.owner.headers)
    assert second.json()["status"] == "approved"
    run = await wait_for_run(client, org.member, run["id"], until=ENDED)
    assert run["status"] == "succeeded", run


async def test_an_action_node_its_policy_approves_by_itself_runs_without_a_person(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    # Given a low-risk policy that approves reads by itself, and a workflow that reads
    org, agent, project, _ = await setup(client, make_org)
    policy = await client.post(
        "/approval-policies",
        json={"organization_id": str(org.id), "tool_pattern": "read_file", "risk": "low",
              "auto_approve": True, "auto_approve_constraints": {"path": {"path_within": "."}}},
        headers=org.admin.headers,
    )  # fmt: skip
    assert policy.status_code == 201, policy.text
    wf = await save_workflow(client, org.member, project, {
        "nodes": [{"id": "read", "type": "action",
                   "config": {"agent_id": agent, "tool": "read_file",
                              "args": {"path": "notes.txt"}}}],
        "edges": [],
    })  # fmt: skip
    run = await start_run(client, org.member, wf["id"], {})
    run = await wait_for_run(client, org.member, run["id"], until=node_is("read", "waiting"))

    # Then its action is approved by the policy as soon as it is proposed
    action = (
        await client.get(f"/actions/{node(run, 'read')['action_id']}", headers=org.viewer.headers)
    ).json()
    assert (action["status"], action["approved_by_policy"]) == ("approved", policy.json()["id"])
    assert action["approval_signature"]
