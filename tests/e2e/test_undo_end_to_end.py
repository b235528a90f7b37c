"""Undo with real processes: `agentplane dev`, a person's HTTP calls, and real
`agentplane runner --once` processes writing a file on this machine, then restoring it
through an undo that a person approves like any action."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.dev_server import STARTUP_DEADLINE_S, dev_server, run_runner_once, stop

pytestmark = pytest.mark.e2e


def test_a_write_by_a_real_runner_is_restored_through_an_approved_undo(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    workspace = tmp_path / "workspace"
    with dev_server(data_dir) as server:
        agent_id = server.wait_for(r"^agent\s+(\S+)", STARTUP_DEADLINE_S).group(1)
        token = server.wait_for(r"AGENTPLANE_TOKEN=(\S+)", 10).group(1)
        server.wait_healthy(STARTUP_DEADLINE_S)
        api = httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        runner_token = api.post(f"/agents/{agent_id}/runner-tokens", json={"name": "e2e"})
        assert runner_token.status_code == 201, runner_token.text

        def approve(action_id: str) -> None:
            approved = api.post(f"/actions/{action_id}/approve", json={"reason": "e2e"})
            assert approved.status_code == 200, approved.text

        def propose_approved(payload: dict[str, Any]) -> str:
            proposal = api.post(f"/agents/{agent_id}/actions", json={"payload": payload})
            assert proposal.status_code == 201, proposal.text
            action_id: str = proposal.json()["id"]
            approve(action_id)
            return action_id

        def run_queue() -> None:
            """A real runner process works the agent's queue until it is empty."""
            run_runner_once(server.base_url, runner_token.json()["token"], data_dir, workspace)

        plan = workspace / "notes" / "plan.md"
        write = {"tool": "write_file", "args": {"path": "notes/plan.md"}}
        # Given v1 of a file written by a runner, then v2 written over it by another run
        v1 = propose_approved({**write, "args": {**write["args"], "content": "v1\n"}})
        run_queue()
        assert plan.read_text() == "v1\n"
        v2 = propose_approved({**write, "args": {**write["args"], "content": "v2\n"}})
        read = propose_approved({"tool": "read_file", "args": {"path": "notes/plan.md"}})
        run_queue()
        assert plan.read_text() == "v2\n"
        assert [api.get(f"/actions/{i}").json()["status"] for i in (v1, v2, read)] == [
            "succeeded"
        ] * 3

        # When a person asks to undo v2
        undo = api.post(f"/actions/{v2}/undo", json={"reason": "v2 was wrong"})

        # Then the inverse waits for approval like any proposal, and nothing changed yet
        assert undo.status_code == 201, undo.text
        assert undo.json()["status"] == "pending"
        assert undo.json()["undo_of"] == v2
        assert undo.json()["payload"] == {
            "tool": "write_file",
            "args": {"path": "notes/plan.md", "content": "v1\n"},
        }
        run_queue()
        assert plan.read_text() == "v2\n"

        # When it is approved and a runner runs it, the file is v1 again
        approve(undo.json()["id"])
        run_queue()
        assert plan.read_text() == "v1\n"
        done = api.get(f"/actions/{undo.json()['id']}").json()
        assert done["status"] == "succeeded"
        assert done["output"]["previous"]["content"] == "v2\n"

        # And a read cannot be undone (it changed nothing), nor v2 a second time
        refused = api.post(f"/actions/{read}/undo")
        assert refused.status_code == 409, refused.text
        assert "read_file is not reversible" in refused.json()["detail"]
        again = api.post(f"/actions/{v2}/undo")
        assert again.status_code == 409, again.text
        assert again.json()["undo_action_id"] == undo.json()["id"]
        assert stop(server) == 0
