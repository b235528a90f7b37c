"""statemachines/workflow.asl.json: no execution can hang silently, timers are Wait
states, and every task calls the workflows function with an op it handles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentplane.workflows import engine

ASL = Path(__file__).resolve().parents[2] / "statemachines" / "workflow.asl.json"
OPS = {"step", "run_node", "wait_node", "fail"}


def states(machine: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, the Map's item processor's included."""
    for name, state in machine["States"].items():
        yield name, state
        if "ItemProcessor" in state:
            yield from states(state["ItemProcessor"])


@pytest.fixture(scope="module")
def machine() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(ASL.read_text())
    return loaded


def test_every_wait_for_a_task_token_has_a_timeout(machine: dict[str, Any]) -> None:
    waits = [
        (n, s) for n, s in states(machine) if s.get("Resource", "").endswith("waitForTaskToken")
    ]
    assert {n for n, _ in waits} == {"SingleAction", "SingleApproval", "ItemAction", "ItemApproval"}
    for name, state in waits:
        assert state.get("TimeoutSecondsPath", "").endswith(".timeout_seconds"), name
        assert state["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token", name
        assert state["Parameters"]["Payload"]["op"] == "wait_node", name
        assert state["Catch"], name


def test_a_runner_working_on_an_action_heartbeats_its_wait(machine: dict[str, Any]) -> None:
    by_name = dict(states(machine))
    for name in ("SingleAction", "ItemAction"):
        assert by_name[name]["HeartbeatSecondsPath"].endswith(".heartbeat_seconds")
    for name in ("SingleApproval", "ItemApproval"):
        assert "HeartbeatSecondsPath" not in by_name[name]


def test_timers_are_wait_states_not_sleeping_lambdas(machine: dict[str, Any]) -> None:
    by_name = dict(states(machine))
    for name in ("SingleWait", "ItemWait", "Backoff"):
        assert by_name[name]["Type"] == "Wait"
        assert "SecondsPath" in by_name[name]


def test_every_task_invokes_the_workflows_function_with_an_op_it_handles(
    machine: dict[str, Any],
) -> None:
    tasks = [(n, s) for n, s in states(machine) if s["Type"] == "Task"]
    assert tasks
    for name, state in tasks:
        assert state["Resource"].startswith("arn:aws:states:::lambda:invoke"), name
        assert state["Parameters"]["FunctionName"] == "${WorkflowsFunctionArn}", name
        assert state["Parameters"]["Payload"]["op"] in OPS, name
        assert state["Retry"][0]["MaxAttempts"] >= 1, name


def test_the_route_knows_every_status_and_node_type_step_returns(machine: dict[str, Any]) -> None:
    route = machine["States"]["Route"]
    seen: set[str] = set()
    for choice in route["Choices"]:
        for rule in choice.get("Or", [choice]):
            if "StringEquals" in rule:
                seen.add(f"{rule['Variable']}={rule['StringEquals']}")
    statuses = {"succeeded", "failed", "backoff", "cancelled", "superseded", "continued"}
    assert {f"$.status={s}" for s in statuses} <= seen
    node_types = {"wait", "action", "approval", "llm"}
    assert {f"$.single.type={t}" for t in node_types} <= seen
    # transform nodes never reach the state machine: step runs them inline.
    assert "$.single.type=transform" not in seen
    assert engine.NONE["type"] == "none"
