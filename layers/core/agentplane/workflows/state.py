"""A run's state, `workflow_runs.state`, and the rules that move it: which nodes are
ready, which edges are taken, when a failure is handled, retried or ends the run.

Pure functions over plain dicts (no database): the engine loads the state under the
run's row lock, calls these, and writes it back.

    state = {"nodes": {<id>: {status, attempts, output, error, action_id, action_status,
                              handled, started_at, finished_at, not_before}},
             "history_events": <estimated events of the current execution>}

A node is `pending` until every node before it is done; then it is `skipped` if none of
its incoming edges is taken, and ready otherwise. An edge without `when` is taken when
its source succeeded; an edge with `when` is taken when the expression is truthy, after
success or failure alike (that is how a failure is handled). A failed attempt is retried
(`max_attempts`, with doubling backoff); a failure no edge handles fails the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agentplane.workflows.definition import Edge, Graph, evaluate

DONE = ("succeeded", "failed", "skipped")


def now() -> datetime:
    """The clock the state is written with."""
    return datetime.now(UTC)


def initial_state(graph: Graph) -> dict[str, Any]:
    """Every node pending."""
    return {
        "nodes": {node_id: {"status": "pending", "attempts": 0} for node_id in graph.order},
        "history_events": 0,
    }


def context(run_input: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """What expressions see: `input`, and each node's status, output, action status and
    error under `nodes.<id>`."""
    return {
        "input": run_input,
        "nodes": {
            node_id: {
                "status": node.get("status"),
                "output": node.get("output"),
                "action_status": node.get("action_status"),
                "error": node.get("error"),
            }
            for node_id, node in state["nodes"].items()
        },
    }


def _truthy(edge: Edge, ctx: dict[str, Any]) -> bool:
    if edge.when is None:
        return True
    try:
        value = evaluate(edge.when, ctx)
    except ValueError:
        return False
    # JMESPath truthiness: false, null, "", [] and {} are false.
    return value not in (None, False, "", [], {})


def handled(graph: Graph, node_id: str, ctx: dict[str, Any]) -> bool:
    """Whether a failed node's failure is handled: an outgoing edge's `when` is true."""
    return any(e.when is not None and _truthy(e, ctx) for e in graph.outgoing[node_id])


def taken(graph: Graph, edge: Edge, state: dict[str, Any], ctx: dict[str, Any]) -> bool | None:
    """Whether the edge is taken; None while its source is not done (or failed with no
    edge handling it: what follows was never reached, the run fails)."""
    status = state["nodes"][edge.source]["status"]
    if status == "succeeded":
        return _truthy(edge, ctx)
    if status == "failed":
        if not handled(graph, edge.source, ctx):
            return None
        return edge.when is not None and _truthy(edge, ctx)
    if status == "skipped":
        return False
    return None


@dataclass
class Frontier:
    """What can happen next: nodes ready now, nodes waiting for their retry time, and
    failures no edge handles."""

    ready: list[str]
    delayed: dict[str, datetime]
    unhandled: list[str]
    done: bool


def frontier(graph: Graph, run_input: dict[str, Any], state: dict[str, Any]) -> Frontier:
    """Settle skips and handled failures, then say what is ready (topological order)."""
    nodes = state["nodes"]
    at = now()
    changed = True
    while changed:
        changed = False
        ctx = context(run_input, state)
        for node_id in graph.order:
            node = nodes[node_id]
            if node["status"] != "pending" or node.get("attempts", 0) > 0:
                continue
            decided = [taken(graph, e, state, ctx) for e in graph.incoming[node_id]]
            if decided and None not in decided and not any(decided):
                node["status"] = "skipped"
                node["finished_at"] = at.isoformat()
                changed = True
    ctx = context(run_input, state)
    ready: list[str] = []
    delayed: dict[str, datetime] = {}
    unhandled: list[str] = []
    for node_id in graph.order:
        node = nodes[node_id]
        if node["status"] == "failed":
            node["handled"] = handled(graph, node_id, ctx)
            if not node["handled"]:
                unhandled.append(node_id)
        if node["status"] != "pending":
            continue
        decided = [taken(graph, e, state, ctx) for e in graph.incoming[node_id]]
        if None in decided:
            continue
        not_before = node.get("not_before")
        if not_before and datetime.fromisoformat(not_before) > at:
            delayed[node_id] = datetime.fromisoformat(not_before)
        else:
            ready.append(node_id)
    done = all(nodes[n]["status"] in DONE for n in graph.order)
    return Frontier(ready, delayed, unhandled, done)


def start(node: dict[str, Any]) -> int:
    """Mark a ready node running; its attempt number."""
    node["attempts"] = node.get("attempts", 0) + 1
    node["status"] = "running"
    node["started_at"] = now().isoformat()
    node.pop("not_before", None)
    node.pop("error", None)
    return int(node["attempts"])


def succeed(node: dict[str, Any], output: Any, **extra: Any) -> None:
    """The node's attempt succeeded with `output`."""
    node.update(status="succeeded", output=output, finished_at=now().isoformat(), **extra)
    node.pop("error", None)


def fail(
    node: dict[str, Any],
    max_attempts: int,
    backoff_seconds: int,
    error: dict[str, Any],
    **extra: Any,
) -> None:
    """The node's attempt failed: back to pending for a retry if attempts remain
    (after `backoff_seconds`, doubling each time), else failed."""
    node.update(error=error, **extra)
    attempts = int(node.get("attempts", 0))
    if attempts < max_attempts:
        delay = backoff_seconds * (2 ** max(attempts - 1, 0))
        node["status"] = "pending"
        node["not_before"] = (now() + timedelta(seconds=delay)).isoformat()
    else:
        node["status"] = "failed"
        node["finished_at"] = now().isoformat()


def reset_unfinished(state: dict[str, Any]) -> list[str]:
    """For a resume: every node that did not succeed is pending again with no attempts
    (what succeeded keeps its output and is not run again); the ids reset."""
    reset = []
    for node_id, node in state["nodes"].items():
        if node["status"] != "succeeded":
            state["nodes"][node_id] = {"status": "pending", "attempts": 0}
            reset.append(node_id)
    state["history_events"] = 0
    return reset


def sinks_output(graph: Graph, state: dict[str, Any]) -> dict[str, Any]:
    """The run's output: each succeeded node with no outgoing edge, by id."""
    return {
        node_id: state["nodes"][node_id].get("output")
        for node_id in graph.order
        if not graph.outgoing[node_id] and state["nodes"][node_id]["status"] == "succeeded"
    }
