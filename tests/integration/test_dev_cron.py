"""`agentplane dev` runs the heartbeat cron beside the server, as EventBridge does in AWS."""

from __future__ import annotations

import asyncio

from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.devserver import _serve_with_cron
from agentplane.runtime import Runtime
from agentplane.seed import seed_demo
from agentplane.settings import Settings


class _Server:
    """Stands in for uvicorn.Server: serves for a while, then stops."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def serve(self) -> None:
        await asyncio.sleep(self.seconds)


async def test_the_cron_reaps_while_the_server_runs(settings: Settings, database: Database) -> None:
    seed = await seed_demo(database)
    async with database.transaction(Caller.runner(seed.agent_id)) as tx:
        cur = await tx.execute(
            "insert into public.agent_sessions (organization_id, agent_id, last_heartbeat)"
            " values (%s, %s, now() - interval '10 minutes') returning id",
            (seed.organization_id, seed.agent_id),
        )
        row = await cur.fetchone()
    assert row is not None

    await _serve_with_cron(_Server(1.0), Runtime(settings, database), interval=0.2)

    async with database.service("test: read the session") as tx:
        cur = await tx.execute("select status from public.agent_sessions where id = %s", (row[0],))
        assert await cur.fetchone() == ("offline",)
