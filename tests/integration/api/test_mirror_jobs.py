"""The mirror function's nightly enqueue, against a real database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
import pytest

from agentplane.db.database import Database
from agentplane.errors import ConflictError
from agentplane.mirror.service import enqueue_nightly_reports, run_report
from agentplane.runtime import Runtime
from agentplane.settings import Settings
from tests.support.api import User


async def _connection_with_message(client: httpx.AsyncClient, user: User) -> str:
    conn = await client.post(
        "/connections",
        json={"name": "c", "provider": "openrouter", "model": "m"},
        headers=user.headers,
    )
    assert conn.status_code == 201, conn.text
    conv = await client.post(
        "/conversations", json={"agent_connection_id": conn.json()["id"]}, headers=user.headers
    )
    msg = await client.post(
        f"/conversations/{conv.json()['id']}/messages",
        json={"role": "user", "content": "hello"},
        headers=user.headers,
    )
    assert msg.status_code == 201, msg.text
    connection_id: str = conn.json()["id"]
    return connection_id


async def test_connections_with_new_messages_get_one_queued_report(
    client: httpx.AsyncClient, database: Database, settings: Settings,
    new_user: Callable[[], User],
) -> None:  # fmt: skip
    alice, bob = new_user(), new_user()
    busy = await _connection_with_message(client, alice)
    quiet = await client.post(
        "/connections",
        json={"name": "quiet", "provider": "nous", "model": "m"},
        headers=bob.headers,
    )
    assert quiet.status_code == 201

    # Two nightly runs at once queue the busy connection once, the quiet one never.
    first, second = await asyncio.gather(
        enqueue_nightly_reports(database), enqueue_nightly_reports(database)
    )
    queued = first.report_ids + second.report_ids
    assert len(queued) == 1
    # The report belongs to the connection's owner, and only they can see it.
    async with database.service("test: read reports") as tx:
        cur = await tx.execute(
            "select user_id, agent_connection_id, status from public.mirror_reports"
        )
        assert await cur.fetchall() == [(alice.id, uuid.UUID(busy), "queued")]
    # While it is queued, a later night queues nothing more for it.
    assert (await enqueue_nightly_reports(database)).report_ids == []
    # Run, it succeeds (the heuristic analyzer: no key), frees the connection, and with
    # no newer messages the next night queues nothing for it.
    runtime = Runtime(settings, database)
    assert await run_report(runtime, queued[0]) == "succeeded"
    assert await run_report(runtime, queued[0]) == "succeeded"  # already done: as it is
    assert await run_report(runtime, uuid.uuid4()) == "not_found"
    assert (await enqueue_nightly_reports(database)).report_ids == []


async def test_the_database_keeps_one_open_report_per_connection(
    client: httpx.AsyncClient, database: Database, new_user: Callable[[], User]
) -> None:
    # Given a connection whose report is queued
    alice = new_user()
    busy = await _connection_with_message(client, alice)
    assert len((await enqueue_nightly_reports(database)).report_ids) == 1

    # When anything else, even a server job, inserts a second open report for it
    async def second(status: str) -> None:
        async with database.service("test: a second open report") as tx:
            await tx.execute(
                "insert into public.mirror_reports (user_id, agent_connection_id, status)"
                " values (%s, %s, %s)",
                (alice.id, busy, status),
            )

    # Then the database refuses it (the race two nightly runs could lose before)
    for status in ("queued", "running"):
        with pytest.raises(ConflictError):
            await second(status)
    # A finished report beside the open one is fine
    await second("succeeded")
