"""A remote-brain session with real processes: `agentplane dev` wired to a model provider
(a local OpenAI-compatible server), a person holding turns, and a real runner.

The person asks for a file; the model's tool call waits in the queue; the person
approves it; the runner writes the file; the next turn tells the model the result.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.dev_server import STARTUP_DEADLINE_S, dev_server, stop
from tests.support.fake_provider import FakeProvider, demo_reply

pytestmark = pytest.mark.e2e

KEY = "sk-e2e-provider-key-5150"


def test_turn_approve_run_and_the_next_turn_sees_the_result(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    workspace = tmp_path / "workspace"
    with (
        FakeProvider(responder=demo_reply) as provider,
        dev_server(
            data_dir,
            {
                "AGENTPLANE_DEV_PROVIDER_URL": provider.base_url,
                "AGENTPLANE_DEV_PROVIDER_MODEL": "hermes-e2e",
                "AGENTPLANE_DEV_PROVIDER_KEY": KEY,
            },
        ) as server,
    ):
        agent_id = server.wait_for(r"^agent\s+(\S+)", STARTUP_DEADLINE_S).group(1)
        token = server.wait_for(r"AGENTPLANE_TOKEN=(\S+)", 10).group(1)
        server.wait_for(r"the agent talks to", 10)
        server.wait_healthy(STARTUP_DEADLINE_S)
        api = httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )

        # Given a turn in which the model asks to write a file
        first = api.post(f"/agents/{agent_id}/turns", json={"message": "please write a note"})
        assert first.status_code == 201, first.text
        [action] = first.json()["actions"]
        assert action["status"] == "pending"
        assert action["payload"]["tool"] == "write_file"
        assert provider.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"
        assert provider.requests[0]["json"]["model"] == "hermes-e2e"

        # When the person approves it and a real runner works the queue
        approved = api.post(f"/actions/{action['id']}/approve", json={"reason": "looks fine"})
        assert approved.status_code == 200, approved.text
        runner_token = api.post(f"/agents/{agent_id}/runner-tokens", json={"name": "e2e"})
        env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "AGENTPLANE_RUNNER_TOKEN": runner_token.json()["token"],
            "AGENTPLANE_DATA_DIR": str(data_dir),
        }
        runner = subprocess.run(
            [sys.executable, "-m", "agentplane.cli", "runner", "--server", server.base_url,
             "--workspace", str(workspace), "--once"],
            env=env, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert runner.returncode == 0, runner.stdout + runner.stderr
        assert (workspace / action["payload"]["args"]["path"]).read_text() == (
            action["payload"]["args"]["content"]
        )

        # Then the next turn gives the model the action's result, and it says so
        second = api.post(
            f"/agents/{agent_id}/turns",
            json={"message": "did it work?", "conversation_id": first.json()["conversation_id"]},
        )
        assert second.status_code == 201, second.text
        tool_notes = [m for m in provider.requests[1]["json"]["messages"] if m["role"] == "tool"]
        assert [json.loads(m["content"])["status"] for m in tool_notes] == ["succeeded"]
        assert second.json()["reply"]["content"].startswith("The runner reported:")
        assert '"succeeded"' in second.json()["reply"]["content"]
        assert stop(server) == 0
        # And the key never shows in the server's output (its logs included)
        while True:
            try:
                server.output.append(server.lines.get(timeout=2))
            except queue.Empty:
                break
        logged = "".join(server.output)
        assert "vault key decrypted" in logged
        assert KEY not in logged
