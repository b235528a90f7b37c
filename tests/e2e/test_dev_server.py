"""`agentplane dev` as a real process: serves, prints a working token, stops on Ctrl-C,
and reuses its data on the next start."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

STARTUP_DEADLINE_S = 90
STOP_DEADLINE_S = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevServer:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.base_url = f"http://127.0.0.1:{port}"
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, deadline_s: float) -> re.Match[str]:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.output.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no line matching {pattern!r}; output:\n{''.join(self.output)}")

    def wait_healthy(self, deadline_s: float) -> httpx.Response:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                resp = httpx.get(f"{self.base_url}/health", timeout=2)
                if resp.status_code == 200:
                    return resp
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"never healthy; output:\n{''.join(self.output)}")


@contextmanager
def dev_server(data_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[DevServer]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"AGENTPLANE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentplane.cli", "dev", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    server = DevServer(proc, port)
    try:
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_DEADLINE_S)


def _stop(server: DevServer) -> int:
    server.proc.send_signal(signal.SIGINT)
    return server.proc.wait(timeout=STOP_DEADLINE_S)


def _postgres_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_dev_serves_health_and_a_working_token_then_stops_and_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"

    # Given a fresh data directory, when `agentplane dev` starts
    with dev_server(data_dir) as server:
        token = server.wait_for(r"AGENTPLANE_TOKEN=(\S+)", STARTUP_DEADLINE_S).group(1)
        curl = server.wait_for(r"curl -s -H .*/me", 10).group(0)
        health = server.wait_healthy(STARTUP_DEADLINE_S)
        # Then /health says the database is up and the printed token works on /me
        assert health.json()["database"] == "ok"
        assert server.base_url in curl
        me = httpx.get(f"{server.base_url}/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        organizations = me.json()["organizations"]
        assert [o["role"] for o in organizations] == ["owner"]
        # And Ctrl-C stops the server and the database cleanly
        assert _stop(server) == 0
    assert not _postgres_running(data_dir / "pgdata")

    # When it starts again on the same data, the demo rows are reused, not duplicated
    with dev_server(data_dir) as server:
        token = server.wait_for(r"AGENTPLANE_TOKEN=(\S+)", STARTUP_DEADLINE_S).group(1)
        server.wait_healthy(STARTUP_DEADLINE_S)
        me = httpx.get(f"{server.base_url}/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["organizations"] == organizations
        assert _stop(server) == 0
    assert not _postgres_running(data_dir / "pgdata")
