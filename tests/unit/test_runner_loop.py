"""The runner loop against a fake server (httpx.MockTransport: no sockets).

The fake plays the protocol: it signs the actions it hands out with a real
ApprovalSigner, records every call, and can be told to answer 409, 413, 503 or 401.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentplane.actions.canonical import approval_message, payload_sha256, rfc3339
from agentplane.actions.signing import ApprovalSigner
from agentplane.runner.cli import add_runner_parser, cmd_runner, configure_logging, execute
from agentplane.runner.client import RetryPolicy, RunnerClient
from agentplane.runner.loop import Runner, RunnerOptions
from agentplane.runner.models import ToolResult
from agentplane.runner.tools import Toolbox
from agentplane.settings import Settings

TOKEN = "rt_test-token-0123456789"
AGENT = uuid.UUID("0f7d3c52-9a1e-4b8e-8f0c-3d2a1b4c5e6f")
METADATA = {"os": "test", "hostname": "box", "ip": None, "runner_version": "0", "pid": 1}


class FakeServer:
    """The server side of the runner protocol, in memory."""

    def __init__(self) -> None:
        self.signer = ApprovalSigner(Ed25519PrivateKey.generate())
        self.lock = threading.Lock()
        self.claim_batches: list[list[dict[str, Any]]] = []
        self.calls: list[tuple[str, str]] = []
        self.sessions: list[str] = []
        self.claim_sessions: list[str] = []
        self.heartbeats: list[str] = []
        self.results: dict[str, dict[str, Any]] = {}
        self.released: list[tuple[str, int]] = []
        self.deleted: list[str] = []
        self.answer: dict[tuple[str, str], list[int]] = {}  # (method, path) -> statuses
        self.heartbeat_answers: list[int] = []  # for the next heartbeats of any session
        self.unauthorized: list[str] = []
        self.tokens_on_signing_key: list[str | None] = []
        self.websocket_url: str | None = None  # what registration names

    # -- scripting -------------------------------------------------------------------

    def action(
        self,
        payload: dict[str, Any],
        *,
        fencing_token: int = 1,
        agent_id: uuid.UUID = AGENT,
        tamper: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """A signed ClaimedAction, as the server would hand it out."""
        action_id = uuid.uuid4()
        now = datetime.now(UTC)
        approved_at, expires_at = now - timedelta(seconds=5), now + timedelta(hours=1)
        digest = payload_sha256(payload)
        claim = {
            "id": str(action_id),
            "agent_id": str(agent_id),
            "payload": json.loads(json.dumps(payload)),
            "payload_sha256": digest,
            "approved_at": rfc3339(approved_at),
            "approval_expires_at": rfc3339(expires_at),
            "signature": self.signer.sign(
                approval_message(
                    action_id,
                    agent_id,
                    digest,
                    approved_at,
                    expires_at,
                    risk="medium",
                    policy_id=None,
                    policy_version=None,
                )
            ),
            "risk": "medium",
            "policy_id": None,
            "policy_version": None,
            "fencing_token": fencing_token,
            "lease_expires_at": rfc3339(now + timedelta(seconds=60)),
            "attempt": 1,
        }
        if tamper:
            tamper(claim)
        return claim

    def queue(self, *batch: dict[str, Any]) -> None:
        self.claim_batches.append(list(batch))

    def respond(self, method: str, path: str, *statuses: int) -> None:
        """Answer the next calls of `method path` with these statuses, in order."""
        self.answer[(method, path)] = list(statuses)

    def client(self) -> RunnerClient:
        http = httpx.Client(
            transport=httpx.MockTransport(self.handle), base_url="https://agentplane.test"
        )
        return RunnerClient(http, TOKEN, retry=RetryPolicy(attempts=3), sleep=lambda _s: None)

    # -- the protocol ----------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            return self._handle(request)

    def _problem(self, status: int, detail: str) -> httpx.Response:
        return httpx.Response(
            status,
            json={"status": status, "detail": detail},
            headers={"content-type": "application/problem+json"},
        )

    def _handle(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        self.calls.append((method, path))
        body = json.loads(request.content) if request.content else None
        if path == "/.well-known/agentplane/signing-key":
            self.tokens_on_signing_key.append(request.headers.get("authorization"))
            return httpx.Response(200, json={"keys": [self.signer.jwk]})
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            self.unauthorized.append(path)
            return self._problem(401, "invalid runner token")
        scripted = self.answer.get((method, path))
        if scripted:
            return self._problem(scripted.pop(0), "scripted")
        parts = path.strip("/").split("/")
        if (method, path) == ("POST", "/runner/sessions"):
            session_id = str(uuid.uuid4())
            self.sessions.append(session_id)
            return httpx.Response(201, json=self._session(session_id))
        if method == "POST" and parts[-1] == "heartbeat":
            if self.heartbeat_answers:
                return self._problem(self.heartbeat_answers.pop(0), "session is offline")
            self.heartbeats.append(parts[2])
            return httpx.Response(200, json=self._session(parts[2]))
        if method == "DELETE" and parts[:2] == ["runner", "sessions"]:
            self.deleted.append(parts[2])
            return httpx.Response(204)
        if (method, path) == ("POST", "/runner/claim"):
            assert body is not None
            self.claim_sessions.append(body["session_id"])
            batch = self.claim_batches.pop(0) if self.claim_batches else []
            return httpx.Response(200, json={"items": batch[: body["max"]]})
        if method == "POST" and parts[-1] == "result":
            assert body is not None
            self.results[parts[2]] = body
            return httpx.Response(200, json={"id": parts[2], "status": body["status"]})
        if method == "POST" and parts[-1] == "release":
            assert body is not None
            self.released.append((parts[2], body["fencing_token"]))
            return httpx.Response(200, json={"id": parts[2], "status": "approved"})
        return self._problem(404, f"no route {method} {path}")

    def _session(self, session_id: str) -> dict[str, Any]:
        return {
            "id": session_id,
            "agent_id": str(AGENT),
            "status": "online",
            "last_heartbeat": rfc3339(datetime.now(UTC)),
            "websocket_url": self.websocket_url,
        }


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "ws"


def make_runner(
    server: FakeServer,
    toolbox: Any,
    *,
    clock: Callable[[], float] = time.monotonic,
    **options: Any,
) -> Runner:
    defaults: dict[str, Any] = {"once": True, "poll_interval_s": 0, "heartbeat_interval_s": 60}
    return Runner(
        server.client(),
        toolbox,
        RunnerOptions(**{**defaults, **options}),
        metadata=METADATA,
        clock=clock,
    )


def write(path: str, content: str) -> dict[str, Any]:
    return {"tool": "write_file", "args": {"path": path, "content": content}}


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- the happy path and refusals ----------------------------------------------------


def test_a_verified_claim_runs_and_its_result_carries_the_fencing_token(
    server: FakeServer, workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    claim = server.action(write("out/hello.txt", "secret file body"), fencing_token=42)
    server.queue(claim)

    code = make_runner(server, Toolbox(workspace)).run()

    assert code == 0
    assert (workspace / "out" / "hello.txt").read_text() == "secret file body"
    assert server.results[claim["id"]] == {
        "fencing_token": 42,
        "status": "succeeded",
        "output": {
            "path": "out/hello.txt",
            "bytes": 16,
            "previous": {"existed": False, "sha256": None, "bytes": 0, "content": None},
        },
    }
    assert server.sessions == server.deleted == server.claim_sessions[:1]
    assert server.unauthorized == []
    assert server.tokens_on_signing_key == [None]
    assert f"action {claim['id']} tool=write_file status=succeeded" in caplog.text
    assert TOKEN not in caplog.text
    assert "secret file body" not in caplog.text


def test_a_tampered_claim_is_reported_refused_and_nothing_runs(
    server: FakeServer, workspace: Path
) -> None:
    def swap_payload(claim: dict[str, Any]) -> None:
        # Edited in the queue after approval, hash recomputed: only the signature knows.
        claim["payload"] = write("pwned.txt", "evil")
        claim["payload_sha256"] = payload_sha256(claim["payload"])

    def edit_args(claim: dict[str, Any]) -> None:
        claim["payload"]["args"]["content"] = "evil"

    swapped = server.action(write("ok.txt", "fine"), tamper=swap_payload)
    edited = server.action(write("pwned.txt", "fine"), tamper=edit_args)
    stranger = server.action(write("pwned.txt", "fine"), agent_id=uuid.uuid4())
    server.queue(swapped, edited, stranger)

    assert make_runner(server, Toolbox(workspace), max_claim=3).run() == 0

    assert not (workspace / "pwned.txt").exists()
    assert not (workspace / "ok.txt").exists()
    reasons = {}
    for claim in (swapped, edited, stranger):
        result = server.results[claim["id"]]
        assert result["status"] == "failed"
        assert result["output"]["refused"] is True
        reasons[claim["id"]] = result["output"]["reason"]
    assert reasons == {
        swapped["id"]: "bad_signature",
        edited["id"]: "payload_hash_mismatch",
        stranger["id"]: "wrong_agent",
    }


def test_a_tool_that_is_not_allowed_is_refused(server: FakeServer, workspace: Path) -> None:
    claim = server.action({"tool": "shell", "args": {"command": "touch ran"}})
    server.queue(claim)
    assert make_runner(server, Toolbox(workspace)).run() == 0
    assert server.results[claim["id"]]["output"]["reason"] == "tool_not_allowed"
    assert not (workspace / "ran").exists()


# -- server answers -----------------------------------------------------------------


def test_a_stale_fencing_token_on_a_result_is_logged_and_the_loop_goes_on(
    server: FakeServer, workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = server.action(write("a.txt", "a"), fencing_token=3)
    second = server.action(write("b.txt", "b"), fencing_token=4)
    server.queue(first)
    server.queue(second)
    server.respond("POST", f"/runner/actions/{first['id']}/result", 409)

    assert make_runner(server, Toolbox(workspace)).run() == 0

    assert first["id"] not in server.results
    assert server.results[second["id"]]["status"] == "succeeded"
    assert f"action {first['id']}: result dropped, the lease was lost" in caplog.text
    assert "fencing token 3 is stale" in caplog.text


def test_a_result_too_large_is_reported_as_a_summary(server: FakeServer, workspace: Path) -> None:
    claim = server.action(write("a.txt", "a"))
    server.queue(claim)
    server.respond("POST", f"/runner/actions/{claim['id']}/result", 413)

    assert make_runner(server, Toolbox(workspace)).run() == 0

    result = server.results[claim["id"]]
    assert result["status"] == "succeeded"
    assert result["output"]["error"] == "output_too_large"


def test_transient_failures_are_retried(server: FakeServer, workspace: Path) -> None:
    claim = server.action(write("a.txt", "a"))
    server.queue(claim)
    server.respond("POST", "/runner/claim", 503, 502)
    server.respond("POST", f"/runner/actions/{claim['id']}/result", 500)

    assert make_runner(server, Toolbox(workspace)).run() == 0

    assert server.results[claim["id"]]["status"] == "succeeded"
    assert server.calls.count(("POST", "/runner/claim")) == 4  # 503, 502, the claim, empty


def test_a_refused_token_exits_2_with_a_clear_message(
    server: FakeServer, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(["--server", "https://agentplane.test", "--workspace", str(workspace)])
    http = httpx.Client(
        transport=httpx.MockTransport(server.handle), base_url="https://agentplane.test"
    )

    code = execute(args, http, "not-the-token", metadata=METADATA)

    assert code == 2
    err = capsys.readouterr().err
    assert "the server refused the runner token" in err
    assert "AGENTPLANE_RUNNER_TOKEN" in err
    assert "not-the-token" not in err
    assert server.unauthorized[0] == "/runner/sessions"


# -- sessions and heartbeats --------------------------------------------------------


class Gate:
    """A toolbox whose actions wait until a condition holds: a long action."""

    def __init__(self, inner: Toolbox, until: Callable[[], bool]) -> None:
        self.inner = inner
        self.until = until

    def run(self, payload: Any, *, time_limit: float | None = None) -> ToolResult:
        wait_for(self.until)
        return self.inner.run(payload, time_limit=time_limit)


def test_heartbeats_go_on_during_a_long_action(server: FakeServer, workspace: Path) -> None:
    server.queue(server.action(write("a.txt", "a")))
    gate = Gate(Toolbox(workspace), until=lambda: len(server.heartbeats) >= 3)

    assert make_runner(server, gate, heartbeat_interval_s=0.02).run() == 0

    assert set(server.heartbeats) == set(server.sessions)


def test_a_session_marked_offline_is_replaced(server: FakeServer, workspace: Path) -> None:
    claim = server.action(write("a.txt", "a"))
    server.queue(claim)
    server.heartbeat_answers = [409]
    gate = Gate(Toolbox(workspace), until=lambda: len(server.sessions) == 2)

    assert make_runner(server, gate, heartbeat_interval_s=0.02).run() == 0

    first, second = server.sessions
    assert server.claim_sessions == [first, second]
    assert server.deleted == [second]
    assert server.results[claim["id"]]["status"] == "succeeded"


# -- stopping -------------------------------------------------------------------------


class StopDuringFirstAction:
    """Plays SIGTERM arriving while the first action runs."""

    def __init__(self, inner: Toolbox) -> None:
        self.inner = inner
        self.runner: Runner | None = None
        self.ran: list[Any] = []

    def run(self, payload: Any, *, time_limit: float | None = None) -> ToolResult:
        assert self.runner is not None
        self.runner.stop()
        self.ran.append(payload)
        return self.inner.run(payload, time_limit=time_limit)


def test_stop_finishes_the_action_in_flight_and_releases_the_rest(
    server: FakeServer, workspace: Path
) -> None:
    first = server.action(write("first.txt", "1"), fencing_token=11)
    second = server.action(write("second.txt", "2"), fencing_token=12)
    third = server.action(write("third.txt", "3"), fencing_token=13)
    server.queue(first, second, third)
    server.queue(server.action(write("never.txt", "x")))
    toolbox = StopDuringFirstAction(Toolbox(workspace))
    runner = make_runner(server, toolbox, once=False, max_claim=3)
    toolbox.runner = runner

    assert runner.run() == 0

    assert (workspace / "first.txt").read_text() == "1"
    assert server.results[first["id"]]["fencing_token"] == 11
    assert server.results[first["id"]]["status"] == "succeeded"
    assert server.released == [(second["id"], 12), (third["id"], 13)]
    assert not (workspace / "second.txt").exists()
    assert len(toolbox.ran) == 1
    assert server.calls.count(("POST", "/runner/claim")) == 1
    assert server.deleted == server.sessions


def test_stop_while_idle_closes_the_session(server: FakeServer, workspace: Path) -> None:
    runner = make_runner(server, Toolbox(workspace), once=False, poll_interval_s=30)
    thread = threading.Thread(target=runner.run)
    thread.start()
    wait_for(lambda: ("POST", "/runner/claim") in server.calls)

    runner.stop()
    thread.join(timeout=5)

    assert not thread.is_alive()
    assert server.deleted == server.sessions


def test_once_exits_when_the_queue_is_empty(server: FakeServer, workspace: Path) -> None:
    assert make_runner(server, Toolbox(workspace)).run() == 0
    assert server.calls == [
        ("GET", "/.well-known/agentplane/signing-key"),
        ("POST", "/runner/sessions"),
        ("POST", "/runner/claim"),
        ("DELETE", f"/runner/sessions/{server.sessions[0]}"),
    ]


def test_an_action_whose_lease_ran_out_is_not_started(server: FakeServer, workspace: Path) -> None:
    now = [1000.0]

    class SlowFirst:
        def __init__(self) -> None:
            self.inner = Toolbox(workspace)

        def run(self, payload: Any, *, time_limit: float | None = None) -> ToolResult:
            now[0] += 61  # the first action outlives the batch's 60 s lease
            return self.inner.run(payload, time_limit=time_limit)

    first = server.action(write("first.txt", "1"), fencing_token=1)
    second = server.action(write("second.txt", "2"), fencing_token=2)
    server.queue(first, second)

    runner = make_runner(server, SlowFirst(), clock=lambda: now[0], max_claim=2)
    assert runner.run() == 0

    assert (workspace / "first.txt").exists()
    assert not (workspace / "second.txt").exists()
    assert second["id"] not in server.results
    assert server.released == [(second["id"], 2)]


# -- the command line ---------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agentplane")
    add_runner_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["runner", *argv])


def test_the_subcommand_defaults() -> None:
    args = parse(["--server", "https://agentplane.test"])
    assert (args.workspace, args.allow_shell, args.max, args.lease_seconds) == (
        Path("runner-workspace"),
        False,
        1,
        60,
    )
    assert (args.poll_interval, args.heartbeat_interval, args.once, args.log_level) == (
        2.0,
        20.0,
        False,
        "INFO",
    )
    assert args.func is cmd_runner


def test_the_private_network_is_closed_unless_the_flag_opens_it(
    server: FakeServer, workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert parse(["--server", "https://a.test"]).allow_private_network is False
    args = parse(
        ["--server", "https://a.test", "--workspace", str(workspace), "--allow-private-network"]
    )
    assert args.allow_private_network is True
    http = httpx.Client(
        transport=httpx.MockTransport(server.handle), base_url="https://agentplane.test"
    )
    with caplog.at_level("INFO", logger="agentplane.runner"):
        execute(args, http, "not-the-token", metadata=METADATA)
    # The banner reports what the toolbox it built was given.
    assert "http_get (private network allowed)" in caplog.text


@pytest.mark.parametrize(
    "argv",
    [
        ["--server", "ftp://agentplane.test"],
        ["--server", "https://a.test", "--max", "51"],
        ["--server", "https://a.test", "--lease-seconds", "5"],
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(argv)
    assert exit_.value.code == 2


def test_the_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPLANE_RUNNER_TOKEN", TOKEN)
    secret = Settings().runner_token
    assert secret is not None
    assert secret.get_secret_value() == TOKEN
    assert TOKEN not in repr(Settings())


def test_no_token_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AGENTPLANE_RUNNER_TOKEN", raising=False)
    args = parse(["--server", "https://agentplane.test", "--workspace", str(tmp_path)])
    assert cmd_runner(Settings(stage="test"), args) == 2
    assert "no token" in capsys.readouterr().err


def test_the_runner_logs_each_line_once_as_plain_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the server's JSON logger loaded in the same process (as the CLI loads it)
    import agentplane.observability  # noqa: F401

    # When the runner configures its logging and its client logs a line
    configure_logging("INFO")
    try:
        logging.getLogger("agentplane.runner.client").warning("server answered 503")
        out, err = capsys.readouterr()
    finally:
        runner_logger = logging.getLogger("agentplane.runner")
        for handler in list(runner_logger.handlers):
            runner_logger.removeHandler(handler)
        runner_logger.propagate = True

    # Then it is printed once, as text on stderr, and not as JSON on stdout
    assert err.count("server answered 503") == 1
    assert "WARNING agentplane.runner.client: server answered 503" in err
    assert "server answered 503" not in out


# -- the doorbell socket --------------------------------------------------------------


class FakeSocket:
    """Stands in for DoorbellSocket (no sockets in unit tests): the test rings it."""

    def __init__(self, url: str, session_id: Callable[[], uuid.UUID], ring: Any) -> None:
        self.url, self.session_id, self.ring = url, session_id, ring
        self.connected = False
        self.halted = False

    def start(self) -> None:
        self.connected = True

    def reconnect(self) -> None:
        pass

    def halt(self) -> None:
        self.halted = True


def test_a_doorbell_ends_the_slow_poll_at_once_and_the_socket_is_the_heartbeat(
    server: FakeServer, workspace: Path
) -> None:
    # Given a ws runner whose socket is open, and whose polls are a minute apart
    server.websocket_url = "wss://agentplane.test/runner/ws"
    sockets: list[FakeSocket] = []

    def open_socket(url: str, session_id: Callable[[], uuid.UUID], ring: Any) -> Any:
        sockets.append(FakeSocket(url, session_id, ring))
        return sockets[-1]

    runner = Runner(
        server.client(),
        Toolbox(workspace),
        RunnerOptions(
            transport="ws",
            poll_interval_s=60,
            slow_poll_interval_s=60,
            heartbeat_interval_s=0.05,
        ),
        metadata=METADATA,
        open_socket=open_socket,
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(server.claim_sessions) == 1 and bool(sockets))
        [socket] = sockets
        assert socket.url == server.websocket_url
        assert str(socket.session_id()) == server.sessions[0]

        # When an action is queued and the doorbell rings
        action = server.action(write("rung.txt", "ding"))
        server.queue(action)
        socket.ring(action["id"])

        # Then it is claimed and run at once (not a minute later), with no HTTP heartbeat
        wait_for(lambda: action["id"] in server.results)
        assert server.results[action["id"]]["status"] == "succeeded"
        assert server.heartbeats == []

        # And once the socket is down the HTTP heartbeat takes over
        socket.connected = False
        wait_for(lambda: bool(server.heartbeats))
    finally:
        runner.stop()
        thread.join(timeout=5)
    assert socket.halted
    # startup, the doorbell, and the claim that found the queue empty again
    assert len(server.claim_sessions) == 3


def test_poll_never_opens_a_socket(server: FakeServer, workspace: Path) -> None:
    server.websocket_url = "wss://agentplane.test/runner/ws"
    opened: list[str] = []

    def open_socket(url: str, session_id: Any, ring: Any) -> Any:
        opened.append(url)
        return FakeSocket(url, session_id, ring)

    runner = Runner(
        server.client(),
        Toolbox(workspace),
        RunnerOptions(transport="poll", once=True, poll_interval_s=0),
        metadata=METADATA,
        open_socket=open_socket,
    )
    assert runner.run() == 0
    assert opened == []


def test_the_transport_flags() -> None:
    args = parse(["--server", "https://agentplane.test"])
    assert (args.transport, args.slow_poll_interval) == ("auto", 30.0)
    forced = parse(["--server", "https://agentplane.test", "--transport", "poll"])
    assert forced.transport == "poll"
