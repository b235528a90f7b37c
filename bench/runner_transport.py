"""Runner transport: how soon an approved action starts on its runner, and what idle
runners cost the server, polling (every 2 s) beside push (the WebSocket doorbell), in one
run on one `agentplane dev`.

One `agentplane dev` process on 127.0.0.1 with its embedded PostgreSQL. The runners run
in this process: the real loop, client and doorbell socket of `agentplane runner`, with a
tool that only notes when it was started (so the signature checks, claims and results
are the real ones, and no tool's own time is counted).

1. Latency: AGENTS agents, one runner each; ACTIONS proposals spread over them. Then
   rounds of approvals, one action per agent per round, each agent's approvals at least
   ROUND_S apart (longer than the poll interval, so a poller is idle when its approval
   lands, as a real one mostly is). Latency = from sending the approve request to the
   tool starting; p50 and p99. Polling first, then push, same schedule.
2. Idle cost: RUNNERS runners of the demo agent, an empty queue; after they are all
   registered (and, with push, connected) and a settling pause, the CPU time of the
   server process (and, beside it, of its PostgreSQL) over WINDOW seconds, per minute.
   Polling claims every 2 s and heartbeats every 20 s; push holds the socket, pings
   every 5 minutes and claims every 30 s in case a doorbell was lost.

Loopback only; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psutil

from agentplane.runner.client import RunnerClient
from agentplane.runner.loop import Runner, RunnerOptions
from agentplane.runner.models import ToolResult
from agentplane.runner.socket import DoorbellSocket
from bench.results_io import print_table, write_results

DEFAULT_ACTIONS = 500
DEFAULT_RUNNERS = 200
DEFAULT_WINDOW = 20
AGENTS = 50
ROUND_S = 2.2
POLL_INTERVAL_S = 2.0
SLOW_POLL_S = 30.0
SETTLE_S = 3.0
STARTUP_DEADLINE_S = 120.0
READY_DEADLINE_S = 120.0
DONE_DEADLINE_S = 60.0

COLUMNS = [
    "measure",
    "transport",
    "n",
    "p50_ms",
    "p99_ms",
    "server_cpu_s_per_min",
    "db_cpu_s_per_min",
    "above_baseline_s_per_min",
    "vs_poll",
]


class BenchmarkCheckError(RuntimeError):
    """Something the benchmark relies on did not happen."""


@dataclass
class Server:
    """The dev server process and what its banner said."""

    proc: subprocess.Popen[bytes]
    base_url: str
    token: str
    agent_id: str
    data_dir: Path

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    def database_processes(self) -> list[psutil.Process]:
        """The embedded PostgreSQL's postmaster and its children."""
        [pidfile] = list(self.data_dir.rglob("postmaster.pid"))[:1] or [None]
        if pidfile is None:
            return []
        postmaster = psutil.Process(int(pidfile.read_text().split()[0]))
        return [postmaster, *postmaster.children(recursive=True)]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def dev_server(workdir: Path) -> Iterator[Server]:
    """`agentplane dev` on a free loopback port, its output in a file; stopped after."""
    port = _free_port()
    data_dir = workdir / "state"
    log = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({"AGENTPLANE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentplane.cli", "dev", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            token = re.search(r"AGENTPLANE_TOKEN=(\S+)", text)
            agent = re.search(r"^agent\s+([0-9a-f-]{36})", text, re.MULTILINE)
            if token and agent and _healthy(base_url):
                yield Server(proc, base_url, token.group(1), agent.group(1), data_dir)
                break
            if proc.poll() is not None:
                raise BenchmarkCheckError(f"the dev server exited:\n{text[-3000:]}")
            time.sleep(0.2)
        else:
            raise BenchmarkCheckError("the dev server did not start in time")
    finally:
        # Ctrl-C, as a person stops it: the dev server then stops its PostgreSQL too.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@dataclass
class StartTimes:
    """When each action's tool started (perf_counter), by the path it was given."""

    started: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, payload: Any, *, time_limit: float | None = None) -> ToolResult:
        now = time.perf_counter()
        with self.lock:
            self.started[str(payload["args"]["path"])] = now
        return ToolResult("succeeded", {})


@dataclass
class RunnerThread:
    runner: Runner
    thread: threading.Thread
    http: httpx.Client

    def ready(self, push: bool) -> bool:
        if self.runner.session is None:
            return False
        socket = self.runner.socket
        return not push or (socket is not None and socket.connected)

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(timeout=30)
        self.http.close()


def start_runner(base_url: str, token: str, tool: StartTimes, transport: str) -> RunnerThread:
    """The real runner loop for `token`, in a thread."""
    http = httpx.Client(base_url=base_url, timeout=httpx.Timeout(30.0, connect=10.0))
    options = RunnerOptions(
        max_claim=10,
        lease_seconds=60,
        poll_interval_s=POLL_INTERVAL_S,
        heartbeat_interval_s=20.0,
        transport="ws" if transport == "push" else "poll",
        slow_poll_interval_s=SLOW_POLL_S,
    )

    def open_socket(
        url: str, session_id: Callable[[], UUID], ring: Callable[[str | None], None]
    ) -> DoorbellSocket:
        return DoorbellSocket(url, token, session_id, ring)

    runner = Runner(RunnerClient(http, token), tool, options, metadata={}, open_socket=open_socket)
    thread = threading.Thread(target=runner.run, daemon=True, name="bench-runner")
    thread.start()
    return RunnerThread(runner, thread, http)


def _wait(what: str, check: Callable[[], bool], deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise BenchmarkCheckError(f"not within {deadline_s:.0f} s: {what}")


def _made(resp: httpx.Response) -> dict[str, Any]:
    if resp.status_code not in (200, 201):
        raise BenchmarkCheckError(f"{resp.request.method} {resp.request.url}: {resp.text}")
    body: dict[str, Any] = resp.json()
    return body


def make_agents(api: httpx.Client, project_id: str, count: int) -> list[tuple[str, str]]:
    """`count` agents allowed read_file, each with a runner token: (agent id, token)."""
    made = []
    for n in range(count):
        agent = _made(api.post("/agents", json={"project_id": project_id, "name": f"bench-{n}"}))
        _made(
            api.put(
                f"/agents/{agent['id']}/config",
                json={
                    "model": "m",
                    "system_prompt": "",
                    "temperature": 0,
                    "connection_id": None,
                    "allowed_tools": ["read_file"],
                },
            )
        )
        token = _made(api.post(f"/agents/{agent['id']}/runner-tokens", json={"name": "bench"}))
        made.append((agent["id"], token["token"]))
    return made


def latency(
    server: Server, agents: list[tuple[str, str]], transport: str, actions: int
) -> list[float]:
    """Approve -> tool start, in seconds, for `actions` actions over `agents`."""
    tool = StartTimes()
    runners = [start_runner(server.base_url, token, tool, transport) for _, token in agents]
    api = server.api()
    try:
        _wait(
            f"{len(runners)} runners ready",
            lambda: all(r.ready(transport == "push") for r in runners),
            READY_DEADLINE_S,
        )
        per_agent = max(1, actions // len(agents))
        pending: list[list[tuple[str, str]]] = [[] for _ in agents]
        for i, (agent_id, _) in enumerate(agents):
            for k in range(per_agent):
                path = f"{transport}-{i}-{k}"
                proposal = _made(
                    api.post(
                        f"/agents/{agent_id}/actions",
                        json={"payload": {"tool": "read_file", "args": {"path": path}}},
                    )
                )
                pending[i].append((proposal["id"], path))
        sent: dict[str, float] = {}
        rng = random.Random(7)
        spacing = ROUND_S / len(agents)
        for k in range(per_agent):
            order = list(range(len(agents)))
            rng.shuffle(order)
            for i in order:
                action_id, path = pending[i][k]
                sent[path] = time.perf_counter()
                _made(api.post(f"/actions/{action_id}/approve", json={}))
                time.sleep(max(0.0, sent[path] + spacing - time.perf_counter()))
        _wait(
            "every approved action started",
            lambda: len(tool.started) >= len(sent),
            DONE_DEADLINE_S,
        )
    finally:
        for runner in runners:
            runner.runner.stop()
        for runner in runners:
            runner.stop()
        api.close()
    return [tool.started[path] - at for path, at in sent.items()]


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def idle_cost(
    server: Server, token: str, transport: str, runners: int, window: int
) -> tuple[float, float]:
    """CPU seconds per minute of the server process and of its database, with `runners`
    idle runners."""
    tool = StartTimes()
    started = [start_runner(server.base_url, token, tool, transport) for _ in range(runners)]
    try:
        _wait(
            f"{runners} idle runners ready",
            lambda: all(r.ready(transport == "push") for r in started),
            READY_DEADLINE_S,
        )
        time.sleep(SETTLE_S)
        me = psutil.Process(server.proc.pid)
        database = server.database_processes()
        before = (_cpu([me]), _cpu(database))
        time.sleep(window)
        after = (_cpu([me]), _cpu(database))
    finally:
        for runner in started:
            runner.runner.stop()
        for runner in started:
            runner.stop()
    per_minute = 60.0 / window
    return (after[0] - before[0]) * per_minute, (after[1] - before[1]) * per_minute


def _ms(value: float) -> float:
    return round(value * 1000.0, 1)


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def measure(
    actions: int = DEFAULT_ACTIONS, runners: int = DEFAULT_RUNNERS, window: int = DEFAULT_WINDOW
) -> list[dict[str, Any]]:
    """Both measurements, polling beside push; the table's rows."""
    rows: list[dict[str, Any]] = []
    # The runner loops log every action; the table is what this run reports.
    logging.getLogger("agentplane.runner").setLevel(logging.WARNING)
    with (
        tempfile.TemporaryDirectory(prefix="bench-runner-transport-") as tmp,
        dev_server(Path(tmp)) as server,
    ):
        api = server.api()
        project_id = _made(api.get(f"/agents/{server.agent_id}"))["project_id"]
        agents = make_agents(api, project_id, min(AGENTS, actions))
        idle_token = _made(
            api.post(f"/agents/{server.agent_id}/runner-tokens", json={"name": "idle"})
        )["token"]
        api.close()
        timings = {t: latency(server, agents, t, actions) for t in ("poll", "push")}
        # What the server spends with no runner at all (its cron, the workflow
        # dispatcher): subtracted, so the ratio compares what the runners cost.
        baseline = idle_cost(server, idle_token, "poll", 0, window)
        costs = {t: idle_cost(server, idle_token, t, runners, window) for t in ("poll", "push")}
    for transport, values in timings.items():
        rows.append(
            {
                "measure": "approve -> tool start",
                "transport": "poll (2 s)" if transport == "poll" else "push",
                "n": len(values),
                "p50_ms": _ms(statistics.median(values)),
                "p99_ms": _ms(_percentile(values, 99)),
                "vs_poll": round(statistics.median(timings["poll"]) / statistics.median(values), 1),
            }
        )
    rows.append(
        {
            "measure": "idle CPU, no runner (baseline)",
            "transport": "-",
            "n": 0,
            "server_cpu_s_per_min": round(baseline[0], 2),
            "db_cpu_s_per_min": round(baseline[1], 2),
        }
    )
    above = {t: max(0.0, sum(c) - sum(baseline)) for t, c in costs.items()}
    for transport, (server_cpu, db_cpu) in costs.items():
        rows.append(
            {
                "measure": f"idle CPU, {runners} runners",
                "transport": "poll (2 s)" if transport == "poll" else "push",
                "n": runners,
                "server_cpu_s_per_min": round(server_cpu, 2),
                "db_cpu_s_per_min": round(db_cpu, 2),
                "above_baseline_s_per_min": round(above[transport], 2),
                "vs_poll": round(above["poll"] / max(above[transport], 0.01), 1),
            }
        )
    return rows


def main(
    actions: int = DEFAULT_ACTIONS, runners: int = DEFAULT_RUNNERS, window: int = DEFAULT_WINDOW
) -> Path:
    """Run, print the table, write the JSON."""
    print(
        f"runner_transport: {actions} approvals over {min(AGENTS, actions)} runners,"
        f" then {runners} idle runners for {window} s each way (one agentplane dev)",
        flush=True,
    )
    rows = measure(actions, runners, window)
    print_table(rows, COLUMNS)
    path = write_results(
        "runner_transport",
        rows,
        {
            "actions": actions,
            "runners": runners,
            "window_seconds": window,
            "latency_agents": min(AGENTS, actions),
            "poll_interval_seconds": POLL_INTERVAL_S,
            "slow_poll_seconds": SLOW_POLL_S,
            "vs_poll": "latency: poll p50 / this p50; idle: the runners' CPU (server + db,"
            " above the no-runner baseline) of polling / of this (floor 0.01 s/min)",
        },
    )
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
