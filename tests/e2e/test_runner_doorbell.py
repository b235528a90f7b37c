"""The runner doorbell with real processes: `agentplane dev` serving /runner/ws, real
`agentplane runner` processes in `ws` and `auto` mode, and a test socket beside them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.dev_server import (
    STARTUP_DEADLINE_S,
    DevServer,
    dev_server,
    stop,
    wait_until,
)

pytestmark = pytest.mark.e2e

DEADLINE_S = 30.0


@dataclass
class Plane:
    """A dev server, a person's client and the demo agent."""

    server: DevServer
    api: httpx.Client
    agent_id: str
    project_id: str
    data_dir: Path

    def runner_token(self, agent_id: str | None = None) -> dict[str, Any]:
        made = self.api.post(
            f"/agents/{agent_id or self.agent_id}/runner-tokens", json={"name": "doorbell"}
        )
        assert made.status_code == 201, made.text
        return dict(made.json())

    def approve(self, payload: dict[str, Any], agent_id: str | None = None) -> str:
        proposal = self.api.post(
            f"/agents/{agent_id or self.agent_id}/actions", json={"payload": payload}
        )
        assert proposal.status_code == 201, proposal.text
        action_id = str(proposal.json()["id"])
        approved = self.api.post(f"/actions/{action_id}/approve", json={"reason": "e2e"})
        assert approved.status_code == 200, approved.text
        return action_id

    def status(self, action_id: str) -> str:
        return str(self.api.get(f"/actions/{action_id}").json()["status"])


class RunnerProcess:
    """`agentplane runner` as a process, its stderr collected line by line."""

    def __init__(
        self, plane: Plane, token: str, workspace: Path, *args: str, server: DevServer | None = None
    ) -> None:
        env = {**os.environ, "AGENTPLANE_RUNNER_TOKEN": token}
        env.pop("DATABASE_URL", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentplane.cli",
                "runner",
                "--server",
                (server or plane.server).base_url,
                "--workspace",
                str(workspace),
                "--log-level",
                "DEBUG",
                *args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, pattern: str, deadline_s: float = DEADLINE_S) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            return next((m for line in self.lines if (m := re.search(pattern, line))), None)

        try:
            return wait_until(f"runner line {pattern!r}", found, deadline_s)  # type: ignore[no-any-return]
        except AssertionError as exc:
            raise AssertionError(f"{exc}; runner output:\n{''.join(self.lines)}") from None

    def claims(self) -> list[str]:
        return [m.group(1) for line in self.lines if (m := re.search(r"claim \((.+?)\)", line))]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    data_dir = tmp_path_factory.mktemp("doorbell") / "state"
    with dev_server(data_dir) as server:
        agent_id = server.wait_for(r"^agent\s+(\S+)", STARTUP_DEADLINE_S).group(1)
        token = server.wait_for(r"AGENTPLANE_TOKEN=(\S+)", 10).group(1)
        project_id = ""
        server.wait_healthy(STARTUP_DEADLINE_S)
        api = httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        project_id = api.get(f"/agents/{agent_id}").json()["project_id"]
        yield Plane(server, api, agent_id, project_id, data_dir)
        assert stop(server) == 0


def test_a_ws_runner_claims_on_the_doorbell_not_by_polling(plane: Plane, tmp_path: Path) -> None:
    # Given a runner in ws mode whose socket is open (and whose slow poll is far off)
    token = plane.runner_token()["token"]
    runner = RunnerProcess(plane, token, tmp_path, "--transport", "ws")
    try:
        runner.wait_for(r"doorbell socket connected")
        # When a person approves an action over HTTP
        action_id = plane.approve(
            {"tool": "write_file", "args": {"path": "rung.txt", "content": "ding"}}
        )
        # Then the runner runs it at once, having claimed on the doorbell
        wait_until("the action succeeded", lambda: plane.status(action_id) == "succeeded")
        assert (tmp_path / "rung.txt").read_text() == "ding"
        runner.wait_for(rf"action {action_id} tool=write_file status=succeeded")
    finally:
        runner.stop()
    claims = runner.claims()
    # One at start, one when the socket opened, one per doorbell, one draining after the
    # action; none from polling (the slow poll is 30 s away).
    assert "poll" not in claims, claims
    assert claims.count("doorbell") == 1, claims
    assert len(claims) <= 4, claims


def test_a_doorbell_rung_by_one_dev_process_reaches_a_socket_of_another(
    plane: Plane, tmp_path: Path
) -> None:
    # Given a second `agentplane dev` on the same database (it attaches to the first's
    # embedded PostgreSQL) and a ws runner whose socket is open to that second process
    with dev_server(plane.data_dir) as other:
        other.wait_healthy(STARTUP_DEADLINE_S)
        token = plane.runner_token()["token"]
        runner = RunnerProcess(plane, token, tmp_path, "--transport", "ws", server=other)
        try:
            runner.wait_for(r"doorbell socket connected")
            session_id = runner.wait_for(r"session (\S+) registered").group(1)
            # When a person approves an action through the first process
            action_id = plane.approve(
                {"tool": "write_file", "args": {"path": "across.txt", "content": "both"}}
            )
            # Then the second process heard the NOTIFY and rang its socket: the runner
            # claimed on the doorbell and ran it, with no poll in between
            wait_until("the action succeeded", lambda: plane.status(action_id) == "succeeded")
            runner.wait_for(rf"action {action_id} tool=write_file status=succeeded")
            assert (tmp_path / "across.txt").read_text() == "both"
        finally:
            runner.stop()
        assert stop(other) == 0
    claims = runner.claims()
    assert "poll" not in claims, claims
    assert claims.count("doorbell") == 1, claims
    ran = plane.api.get(f"/actions/{action_id}").json()
    assert ran["session_id"] == session_id
    # And the first process still serves (the second's exit left the database running)
    assert plane.api.get("/health").status_code == 200


@pytest.fixture
def slow_page() -> Iterator[str]:
    """A page on 127.0.0.1 that takes a second to answer: a tool call that lasts."""

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(1.0)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"slow")

        def log_message(self, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{http.server_address[1]}/slow"
    finally:
        http.shutdown()


def test_a_killed_runner_goes_offline_at_once_and_its_claim_moves_on(
    plane: Plane, tmp_path: Path, slow_page: str
) -> None:
    # Given a runner in ws mode holding a claimed action whose tool is still running
    token = plane.runner_token()["token"]
    flags = ("--transport", "ws", "--allow-private-network")
    first = RunnerProcess(plane, token, tmp_path / "one", *flags)
    second: RunnerProcess | None = None
    try:
        first.wait_for(r"doorbell socket connected")
        session_id = first.wait_for(r"session (\S+) registered").group(1)
        action_id = plane.approve({"tool": "http_get", "args": {"url": slow_page}})
        wait_until("the action is claimed", lambda: plane.status(action_id) == "claimed")

        # When the runner process is killed outright
        first.stop(signal.SIGKILL)

        # Then its session is offline and the action back in the queue, without the cron
        def session_status() -> str:
            items = plane.api.get(f"/agents/{plane.agent_id}/sessions?limit=200").json()
            return next(s["status"] for s in items["items"] if s["id"] == session_id)

        wait_until("the session is offline", lambda: session_status() == "offline", 5)
        wait_until("the action is requeued", lambda: plane.status(action_id) == "approved", 5)

        # And a second runner gets it and runs it
        second = RunnerProcess(plane, token, tmp_path / "two", *flags)
        wait_until("the second run succeeded", lambda: plane.status(action_id) == "succeeded")
        events = plane.api.get(f"/actions/{action_id}/events").json()["items"]
        assert [e["to_status"] for e in events] == [
            "pending",
            "approved",
            "claimed",
            "approved",
            "claimed",
            "succeeded",
        ]
    finally:
        first.stop(signal.SIGKILL)
        if second is not None:
            second.stop()


def _socket_url(plane: Plane) -> str:
    return plane.server.base_url.replace("http://", "ws://") + "/runner/ws"


def _register(plane: Plane, token: str) -> dict[str, Any]:
    made = httpx.post(
        f"{plane.server.base_url}/runner/sessions",
        json={"metadata": {}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def _open(plane: Plane, token: str, session_id: str) -> Any:
    return connect(
        f"{_socket_url(plane)}?session_id={session_id}",
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=5,
    )


def _refused(plane: Plane, token: str, session_id: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        _open(plane, token, session_id).close()
    return int(refused.value.response.status_code)


def test_sockets_hear_only_their_own_agent_and_bad_tokens_are_refused(plane: Plane) -> None:
    # Given agents A (the demo agent) and B, each with a runner token and a session
    other = plane.api.post("/agents", json={"project_id": plane.project_id, "name": "bell-b"})
    assert other.status_code == 201, other.text
    agent_b = other.json()["id"]
    config = plane.api.put(
        f"/agents/{agent_b}/config",
        json={
            "model": "m",
            "system_prompt": "",
            "temperature": 0,
            "connection_id": None,
            "allowed_tools": ["read_file"],
        },
    )
    assert config.status_code == 200, config.text
    token_a, token_b = plane.runner_token()["token"], plane.runner_token(agent_b)["token"]
    session_a, session_b = _register(plane, token_a), _register(plane, token_b)
    assert session_a["websocket_url"] == _socket_url(plane)

    # Then a socket for A's session with B's token is refused, and so is a revoked token
    assert _refused(plane, token_b, session_a["id"]) == 403
    revoked = plane.runner_token()
    revoked_session = _register(plane, revoked["token"])
    gone = plane.api.delete(f"/agents/{plane.agent_id}/runner-tokens/{revoked['id']}")
    assert gone.status_code == 204, gone.text
    assert _refused(plane, revoked["token"], revoked_session["id"]) == 403
    assert _refused(plane, token_a, "not-a-session") == 403

    # When both sockets are open and an action of B is approved
    with (
        _open(plane, token_a, session_a["id"]) as socket_a,
        _open(plane, token_b, session_b["id"]) as socket_b,
    ):
        socket_a.send(json.dumps({"type": "ping"}))
        assert json.loads(socket_a.recv(timeout=5)) == {"type": "pong"}
        action_b = plane.approve({"tool": "read_file", "args": {"path": "x"}}, agent_b)

        # Then B's socket hears of it and A's hears nothing
        assert json.loads(socket_b.recv(timeout=5)) == {"type": "doorbell", "action_id": action_b}
        with pytest.raises(TimeoutError):
            socket_a.recv(timeout=0.5)


def test_when_the_socket_server_drops_the_runner_polls_and_still_runs_the_action(
    tmp_path: Path,
) -> None:
    # Given a dev server whose socket endpoint drops every socket (the test hook)
    with dev_server(tmp_path / "state", {"AGENTPLANE_DEV_RUNNER_SOCKETS": "off"}) as server:
        agent_id = server.wait_for(r"^agent\s+(\S+)", STARTUP_DEADLINE_S).group(1)
        token = server.wait_for(r"AGENTPLANE_TOKEN=(\S+)", 10).group(1)
        server.wait_healthy(STARTUP_DEADLINE_S)
        api = httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        plane = Plane(server, api, agent_id, "", tmp_path / "state")
        runner = RunnerProcess(
            plane, plane.runner_token()["token"], tmp_path / "ws", "--poll-interval", "0.5"
        )
        try:
            # When the runner (auto) loses its socket
            runner.wait_for(r"doorbell socket lost: .*; polling, retrying in")
            action_id = plane.approve(
                {"tool": "write_file", "args": {"path": "polled.txt", "content": "by poll"}}
            )
            # Then it polls, runs the action, and keeps retrying the socket
            wait_until("the action succeeded", lambda: plane.status(action_id) == "succeeded")
            assert (tmp_path / "ws" / "polled.txt").read_text() == "by poll"
            assert "poll" in runner.claims()
            wait_until(
                "the runner retried the socket",
                lambda: sum("doorbell socket lost" in line for line in runner.lines) >= 2,
            )
        finally:
            runner.stop()
        assert stop(server) == 0
