"""Workflows in tests: the local Step Functions interpreter on the test's runtime, and
helpers that save workflows, start runs and wait for them through the HTTP API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from agentplane.runtime import Runtime
from agentplane.workflows.local import LocalWorkflows
from tests.support.api import Org, User
from tests.support.builders import Runner

# A run that is not where the test expects it within this long has hung: fail, saying
# where it is.
RUN_DEADLINE_SECONDS = 60.0


@asynccontextmanager
async def local_workflows(
    runtime: Runtime, *, dispatcher: bool = True
) -> AsyncIterator[LocalWorkflows]:
    """moto's interpreter running the real ASL for `runtime`, with the in-process
    dispatcher unless `dispatcher` is False (the test dispatches, or takes it down)."""
    local = LocalWorkflows(runtime, dispatch_interval=0.5)
    local.start()
    if dispatcher:
        local.run_dispatcher()
    try:
        yield local
    finally:
        await local.stop_dispatcher()
        local.stop()


async def save_workflow(
    client: httpx.AsyncClient, user: User, project_id: str, definition: dict[str, Any],
    name: str = "flow",
) -> dict[str, Any]:  # fmt: skip
    """A workflow saved through the API (201)."""
    resp = await client.post(
        "/workflows",
        json={"project_id": project_id, "name": name, "definition": definition},
        headers=user.headers,
    )
    assert resp.status_code == 201, resp.text
    workflow: dict[str, Any] = resp.json()
    return workflow


async def start_run(
    client: httpx.AsyncClient, user: User, workflow_id: str, run_input: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A run started through the API (201)."""
    resp = await client.post(
        f"/workflows/{workflow_id}/runs", json={"input": run_input or {}}, headers=user.headers
    )
    assert resp.status_code == 201, resp.text
    run: dict[str, Any] = resp.json()
    return run


async def get_run(client: httpx.AsyncClient, user: User, run_id: str) -> dict[str, Any]:
    """The run as the API shows it."""
    resp = await client.get(f"/workflow-runs/{run_id}", headers=user.headers)
    assert resp.status_code == 200, resp.text
    run: dict[str, Any] = resp.json()
    return run


def node(run: dict[str, Any], node_id: str) -> dict[str, Any]:
    """One node's state in a run."""
    return next(n for n in run["nodes"] if n["id"] == node_id)


async def wait_for_run(
    client: httpx.AsyncClient, user: User, run_id: str, *, until: Any,
    deadline: float = RUN_DEADLINE_SECONDS,
) -> dict[str, Any]:  # fmt: skip
    """Poll the run until `until(run)` is true; fail with the run's state after
    `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        run = await get_run(client, user, run_id)
        if until(run):
            return run
        if time.monotonic() > end:
            raise AssertionError(f"run {run_id} did not get there in {deadline} s: {run}")
        await asyncio.sleep(0.1)


def status_is(*statuses: str) -> Any:
    """A `wait_for_run` condition: the run's status is one of `statuses`."""
    return lambda run: run["status"] in statuses


def node_is(node_id: str, *statuses: str) -> Any:
    """A `wait_for_run` condition: the node's status is one of `statuses`."""
    return lambda run: node(run, node_id)["status"] in statuses


async def execution_status(
    runtime: Any, execution_arn: str, *wanted: str, deadline: float = 10.0
) -> str:
    """The execution's status once it is one of `wanted` (the interpreter's threads
    settle a stopped execution's status a moment after StopExecution returns)."""
    end = time.monotonic() + deadline
    while True:
        status = str((await runtime.step_functions.describe(execution_arn))["status"])
        if status in wanted or time.monotonic() > end:
            return status
        await asyncio.sleep(0.05)


async def work(runner: Runner, session_id: str, status: str = "succeeded") -> dict[str, Any]:
    """Claim the one approved action and report `status` for it, as a runner would."""
    items = await runner.claimed(session_id, max=1, lease_seconds=60)
    assert len(items) == 1, items
    item = items[0]
    resp = await runner.result(item["id"], item["fencing_token"], status, {"done": status})
    assert resp.status_code == 200, resp.text
    return item


async def approve(client: httpx.AsyncClient, org: Org, action_id: str, reason: str = "ok") -> None:
    """The organization's admin approves the action (200)."""
    resp = await client.post(
        f"/actions/{action_id}/approve", json={"reason": reason}, headers=org.admin.headers
    )
    assert resp.status_code == 200, resp.text
