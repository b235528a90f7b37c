"""`agentplane dev` as a real process, for the end-to-end tests."""

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

STARTUP_DEADLINE_S = 90
STOP_DEADLINE_S = 30


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevServer:
    """A running `agentplane dev` process and the lines it has printed."""

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
        """The first line from here on that matches `pattern`, within the deadline."""
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
        """The first 200 of /health, within the deadline."""
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
    """`agentplane dev` on a free port over `data_dir`, killed on the way out if still up."""
    port = free_port()
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


def stop(server: DevServer, how: signal.Signals = signal.SIGINT) -> int:
    """Ctrl-C the server (or send it `how`); its exit code."""
    server.proc.send_signal(how)
    return server.proc.wait(timeout=STOP_DEADLINE_S)


RUNNER_DEADLINE_S = 90


def run_runner_once(
    server_url: str, runner_token: str, data_dir: Path, workspace: Path
) -> subprocess.CompletedProcess[str]:
    """A real `agentplane runner --once` process working its agent's queue until it is
    empty; it must exit 0 (the output is in the assertion when it does not)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"AGENTPLANE_RUNNER_TOKEN": runner_token, "AGENTPLANE_DATA_DIR": str(data_dir)})
    runner = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentplane.cli",
            "runner",
            "--server",
            server_url,
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
    return runner


def wait_until(what: str, check: Callable[[], Any], deadline_s: float = 30.0) -> Any:
    """`check()`'s first truthy value, asked every 50 ms; fails naming `what` after
    `deadline_s` seconds."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {deadline_s} s: {what}")
