"""`agentplane dev` runs the heartbeat cron beside the server, as EventBridge does in AWS."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agentplane.db.database import Database
from agentplane.devserver import _serve_with_cron
from agentplane.runtime import Runtime
from agentplane.seed import seed_demo
from agentplane.settings import Settings
from tests.support.builders import register_silent_session


class _Server:
    """Stands in for uvicorn.Server: serves for a while, then stops."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def serve(self) -> None:
        await asyncio.sleep(self.seconds)


async def test_the_cron_reaps_while_the_server_runs(settings: Settings, database: Database) -> None:
    seed = await seed_demo(database)
    session_id = await register_silent_session(database, seed.agent_id, silent_for_seconds=600)

    await _serve_with_cron(_Server(1.0), Runtime(settings, database), interval=0.2)

    async with database.service("test: read the session") as tx:
        cur = await tx.execute(
            "select status from public.agent_sessions where id = %s", (session_id,)
        )
        assert await cur.fetchone() == ("offline",)


def _logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.INFO]


async def test_a_cron_run_that_changes_nothing_logs_nothing(
    settings: Settings, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # Given nothing stale: each run looks and finds nothing
    await seed_demo(database)
    caplog.clear()
    caplog.set_level(logging.INFO)

    await _serve_with_cron(_Server(0.7), Runtime(settings, database), interval=0.1)

    # Then the log stays quiet (no line per run, nor per service-role transaction)
    assert _logged(caplog) == []


async def test_a_cron_run_that_changes_something_logs_one_line_of_what(
    settings: Settings, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    seed = await seed_demo(database)
    await register_silent_session(database, seed.agent_id, silent_for_seconds=600)
    caplog.clear()
    caplog.set_level(logging.INFO)

    await _serve_with_cron(_Server(0.7), Runtime(settings, database), interval=0.1)

    # One line, naming only the counts that are not zero; the later runs say nothing
    (line,) = _logged(caplog)
    assert line.getMessage() == "heartbeat cron reaped"
    assert vars(line)["sessions_offline"] == 1
    assert "leases_failed" not in vars(line)
