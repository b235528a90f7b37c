"""The whole loop with real processes: `agentplane dev`, a person's HTTP calls, and a real
`agentplane runner` on this machine, then `agentplane audit verify`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.dev_server import STARTUP_DEADLINE_S, dev_server, stop

pytestmark = pytest.mark.e2e

RUNNER_DEADLINE_S = 90


def test_propose_approve_run_and_verify(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    workspace = tmp_path / "workspace"
    with dev_server(data_dir) as server:
        # The banner prints the agent before the token; lines are read in order.
        agent_id = server.wait_for(r"^agent\s+(\S+)", STARTUP_DEADLINE_S).group(1)
        token = server.wait_for(r"AGENTPLANE_TOKEN=(\S+)", 10).group(1)
        server.wait_healthy(STARTUP_DEADLINE_S)
        api = httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

        # Given a runner token for the demo agent and an approved write_file action
        runner_token = api.post(f"/agents/{agent_id}/runner-tokens", json={"name": "e2e"})
        assert runner_token.status_code == 201, runner_token.text
        proposal = api.post(
            f"/agents/{agent_id}/actions",
            json={
                "payload": {
                    "tool": "write_file",
                    "args": {"path": "reports/hello.txt", "content": "hello from the runner"},
                }
            },
        )
        assert proposal.status_code == 201, proposal.text
        action_id = proposal.json()["id"]
        approved = api.post(f"/actions/{action_id}/approve", json={"reason": "e2e"})
        assert approved.status_code == 200, approved.text

        # When a real runner process works the queue until it is empty
        env = {
            **os.environ,
            "AGENTPLANE_RUNNER_TOKEN": runner_token.json()["token"],
            "AGENTPLANE_DATA_DIR": str(data_dir),
        }
        env.pop("DATABASE_URL", None)
        runner = subprocess.run(
            [
                sys.executable,
                "-m",
                "agentplane.cli",
                "runner",
                "--server",
                server.base_url,
                "--workspace",
                str(workspace),
                "--once",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=RUNNER_DEADLINE_S,
        )
        assert runner.returncode == 0, runner.stdout + runner.stderr
        assert runner_token.json()["token"] not in runner.stdout + runner.stderr

        # Then the file is in the workspace and the action succeeded with its output
        assert (workspace / "reports" / "hello.txt").read_text() == "hello from the runner"
        action = api.get(f"/actions/{action_id}").json()
        assert action["status"] == "succeeded"
        assert action["output"]["bytes"] == len("hello from the runner")
        events = api.get(f"/actions/{action_id}/events").json()["items"]
        assert [e["to_status"] for e in events] == ["pending", "approved", "claimed", "succeeded"]
        assert stop(server) == 0

    # And the audit chain verifies (the CLI attaches to the same embedded database)
    verify = subprocess.run(
        [sys.executable, "-m", "agentplane.cli", "audit", "verify"],
        env={
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "AGENTPLANE_DATA_DIR": str(data_dir),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "1 chains, 4 events: every chain verifies" in verify.stdout
