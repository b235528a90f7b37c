"""`agentplane dev` runs the heartbeat cron beside the server, as EventBridge does in AWS."""

from __future__ import annotations

import asyncio

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
