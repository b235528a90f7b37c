"""`agentplane dev` as a real process: serves, prints a working token, stops on Ctrl-C,
and reuses its data on the next start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.database import ProvisionedDatabase
from tests.support.dev_server import STARTUP_DEADLINE_S, dev_server, stop

pytestmark = pytest.mark.e2e


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
        assert stop(server) == 0
    assert not _postgres_running(data_dir / "pgdata")

    # When it starts again on the same data, the demo rows are reused, not duplicated
    with dev_server(data_dir) as server:
        token = server.wait_for(r"AGENTPLANE_TOKEN=(\S+)", STARTUP_DEADLINE_S).group(1)
        server.wait_healthy(STARTUP_DEADLINE_S)
        me = httpx.get(f"{server.base_url}/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["organizations"] == organizations
        # And a SIGTERM (a supervisor's stop) stops both as cleanly as Ctrl-C
        assert stop(server, signal.SIGTERM) == 0
    assert not _postgres_running(data_dir / "pgdata")


def test_dev_on_a_busy_port_says_so_before_anything_else(
    tmp_path: Path, fresh_db: ProvisionedDatabase
) -> None:
    # Given a port something already listens on
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]

        # When `agentplane dev` is asked to serve on it
        proc = subprocess.run(
            [sys.executable, "-m", "agentplane.cli", "dev", "--port", str(port), "--no-seed"],
            env={
                **os.environ,
                "DATABASE_URL": fresh_db.app_url,
                "AGENTPLANE_MIGRATE_DATABASE_URL": fresh_db.admin_url,
                "AGENTPLANE_DATA_DIR": str(tmp_path / "state"),
            },
            capture_output=True,
            text=True,
            timeout=STARTUP_DEADLINE_S,
        )

    # Then it exits at once with one line naming the port and how to pick another,
    # before printing a banner or a token
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"agentplane dev: port {port} on 127.0.0.1 is already in use (another agentplane dev?);"
        f" choose another with --port, e.g. make dev PORT={port + 1}"
    ]
    assert "AGENTPLANE_TOKEN" not in proc.stdout + proc.stderr
    assert "serving on" not in proc.stdout
