"""The heartbeat cron's session reaper against a real database."""

from __future__ import annotations

import asyncio
from uuid import UUID

from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.seed import seed_demo
from agentplane.sessions.reaper import reap_stale_sessions


async def _register(db: Database, agent_id: UUID, silent_for_seconds: int) -> UUID:
    # A runner registers its own session (as agent_runner, through RLS).
    async with db.transaction(Caller.runner(agent_id)) as tx:
        cur = await tx.execute(
            "insert into public.agent_sessions (organization_id, agent_id, socket_id,"
            " last_heartbeat)"
            " select organization_id, id, 'sock', now() - make_interval(secs => %s)"
            " from public.agents where id = %s returning id",
            (silent_for_seconds, agent_id),
        )
        row = await cur.fetchone()
    assert row is not None
    session_id: UUID = row[0]
    return session_id


async def _statuses(db: Database) -> dict[UUID, str]:
    async with db.service("test: read session statuses") as tx:
        cur = await tx.execute("select id, status from public.agent_sessions")
        return {r[0]: r[1] for r in await cur.fetchall()}


async def test_silent_sessions_go_offline_and_live_ones_stay(database: Database) -> None:
    seed = await seed_demo(database)
    stale = [await _register(database, seed.agent_id, 600) for _ in range(3)]
    live = await _register(database, seed.agent_id, 5)

    result = await reap_stale_sessions(database, stale_after_seconds=90, batch=2)

    assert result.sessions_offline == 3
    statuses = await _statuses(database)
    assert [statuses[s] for s in stale] == ["offline"] * 3
    assert statuses[live] == "online"
    # A second run finds nothing more to do.
    assert (await reap_stale_sessions(database, stale_after_seconds=90)).sessions_offline == 0


async def test_two_reapers_at_once_reap_each_session_once(database: Database) -> None:
    seed = await seed_demo(database)
    stale = {await _register(database, seed.agent_id, 600) for _ in range(40)}

    results = await asyncio.gather(
        reap_stale_sessions(database, stale_after_seconds=90, batch=7),
        reap_stale_sessions(database, stale_after_seconds=90, batch=7),
    )

    assert sum(r.sessions_offline for r in results) == len(stale)
    statuses = await _statuses(database)
    assert {s for s, st in statuses.items() if st == "offline"} == stale
