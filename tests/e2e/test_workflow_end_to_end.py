"""A workflow DAG with real processes: `agentplane dev` (the real ASL on its local Step
Functions interpreter, the in-process dispatcher), a person deciding over HTTP, and a
real `agentplane runner` doing the action node's work.

The diamond: prepare (transform) -> { review (approval), write (action) } -> report
(transform). Approved, it succeeds with each node's output; its gate rejected, the run
fails with the reviewer's reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.dev_server import STARTUP_DEADLINE_S, DevServer, dev_server, stop

pytestmark = pytest.mark.e2e

RUN_DEADLINE_S = 60
RUNNER_DEADLINE_S = 90


def diamond(agent_id: str) -> dict[str, Any]:
    return {
        "nodes": [
            {"id": "prepare", "type": "transform",
             "config": {"expression": "{path: join('', ['reports/', input.name, '.txt']),"
                                      " text: input.text}"}},
            {"id": "review", "type": "approval",
             "config": {"agent_id": agent_id, "title": "Write {{ nodes.prepare.output.path }}?"}},
            {"id": "write", "type": "action",
             "config": {"agent_id": agent_id, "tool": "write_file",
                        "args": {"path": "{{ nodes.prepare.output.path }}",
                                 "content": "{{ nodes.prepare.output.text }}"}}},
            {"id": "report", "type": "transform",
             "config": {"expression": "{approved_by: nodes.review.output.approved_by,"
                                      " bytes: nodes.write.output.bytes}"}},
        ],
        "edges": [
            {"from": "prepare", "to": "review"}, {"from": "prepare", "to": "write"},
            {"from": "review", "to": "report"}, {"from": "write", "to": "report"},
        ],
    }  # fmt: skip


def node(run: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in run["nodes"] if n["id"] == node_id)


def wait_for(api: httpx.Client, run_id: str, until: Any) -> dict[str, Any]:
    end = time.monotonic() + RUN_DEADLINE_S
    while True:
        run = api.get(f"/workflow-runs/{run_id}").json()
        if until(run):
            return run
        assert time.monotonic() < end, f"run {run_id} never got there: {run}"
        time.sleep(0.2)


def run_runner(server: DevServer, token: str, data_dir: Path, workspace: Path) -> None:
    """A real runner process that works the queue until it is empty."""
    env = {**os.environ, "AGENTPLANE_RUNNER_TOKEN": token, "AGENTPLANE_DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    runner = subprocess.run(
        [sys.executable, "-m", "agentplane.cli", "runner", "--server", server.base_url,
         "--workspace", str(workspace), "--once"],
        env=env, capture_output=True, text=True, timeout=RUNNER_DEADLINE_S,
    )  # fmt: skip
    assert runner.returncode == 0, runner.stdout + runner.stderr


def test_a_diamond_waits_for_a_person_and_a_runner_then_succeeds_or_fails(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    workspace = tmp_path / "workspace"
    with dev_server(data_dir) as server:
        # The banner's lines are read in order: the project, the agent, the token.
        project_id = server.wait_for(r"^project\s+(\S+)", STARTUP_DEADLINE_S).group(1)
        agent_id = server.wait_for(r"^agent\s+(\S+)", 10).group(1)
        token = server.wait_for(r"AGENTPLANE_TOKEN=(\S+)", 10).group(1)
        server.wait_healthy(STARTUP_DEADLINE_S)
        api = httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        runner_token = api.post(f"/agents/{agent_id}/runner-tokens", json={"name": "e2e"})
        assert runner_token.status_code == 201, runner_token.text
        saved = api.post("/workflows", json={"project_id": project_id, "name": "diamond",
                                             "definition": diamond(agent_id)})  # fmt: skip
        assert saved.status_code == 201, saved.text
        workflow_id = saved.json()["id"]

        # Given a run waiting on both branches (the gate and the action's approval)
        started = api.post(f"/workflows/{workflow_id}/runs",
                           json={"input": {"name": "weekly", "text": "all green"}})  # fmt: skip
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        run = wait_for(api, run_id, lambda r: node(r, "review")["status"] == "waiting"
                       and node(r, "write")["status"] == "waiting")  # fmt: skip
        assert node(run, "prepare")["output"] == {"path": "reports/weekly.txt", "text": "all green"}
        pending = api.get("/actions", params={"status": "pending"}).json()["items"]
        assert {a["id"] for a in pending} == {node(run, "review")["action_id"],
                                              node(run, "write")["action_id"]}  # fmt: skip
        assert run["status"] == "waiting"

        # When a person approves both over HTTP and a real runner does the write
        for name in ("review", "write"):
            resp = api.post(f"/actions/{node(run, name)['action_id']}/approve",
                            json={"reason": "e2e"})  # fmt: skip
            assert resp.status_code == 200, resp.text
        run_runner(server, runner_token.json()["token"], data_dir, workspace)

        # Then the run succeeds with each node's output
        run = wait_for(api, run_id, lambda r: r["status"] in ("succeeded", "failed"))
        assert run["status"] == "succeeded", run
        assert (workspace / "reports" / "weekly.txt").read_text() == "all green"
        assert node(run, "write")["output"]["bytes"] == len("all green")
        assert node(run, "review")["output"]["reason"] == "e2e"
        approver = node(run, "review")["output"]["approved_by"]
        assert run["output"] == {"report": {"approved_by": approver, "bytes": len("all green")}}
        assert all(n["status"] == "succeeded" for n in run["nodes"])

        # And the same DAG with its gate rejected fails with the reason
        started = api.post(f"/workflows/{workflow_id}/runs",
                           json={"input": {"name": "friday", "text": "deploy"}})  # fmt: skip
        run_id = started.json()["id"]
        run = wait_for(api, run_id, lambda r: node(r, "review")["status"] == "waiting"
                       and node(r, "write")["status"] == "waiting")  # fmt: skip
        resp = api.post(f"/actions/{node(run, 'review')['action_id']}/reject",
                        json={"reason": "not on a Friday"})  # fmt: skip
        assert resp.status_code == 200, resp.text
        resp = api.post(f"/actions/{node(run, 'write')['action_id']}/approve", json={})
        assert resp.status_code == 200, resp.text
        run_runner(server, runner_token.json()["token"], data_dir, workspace)
        run = wait_for(api, run_id, lambda r: r["status"] in ("succeeded", "failed"))
        assert run["status"] == "failed", run
        assert "node review failed" in run["error"]
        assert "not on a Friday" in run["error"]
        assert node(run, "write")["status"] == "succeeded"
        assert node(run, "report")["status"] == "pending"
        assert stop(server) == 0
