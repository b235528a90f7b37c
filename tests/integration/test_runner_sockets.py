"""The runner doorbell against a real database: the outbox trigger and its NOTIFY, and the
AWS WebSocket routes and ringing, through a real boto3 client of a stand-in management
API on 127.0.0.1 (tests/support/management_api.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.seed import seed_demo
from agentplane.sessions import apigw, doorbells
from agentplane.sessions.apigw import ApiGatewayConnections, management_endpoint
from agentplane.sessions.doorbells import CHANNEL, Doorbell
from agentplane.sessions.reaper import reap_stale_sessions
from agentplane.sessions.service import SOCKET_STALE_AFTER_SECONDS
from tests.support.api import MakeOrg, Org
from tests.support.builders import (
    approved_action,
    new_agent,
    propose,
    register_silent_session,
    runner_for,
)
from tests.support.management_api import FakeManagementApi, management_api


@pytest.fixture
def fake_api() -> Iterator[FakeManagementApi]:
    with management_api() as api:
        yield api


def _event(route: str, connection_id: str, **extra: Any) -> dict[str, Any]:
    kinds = {"$connect": "CONNECT", "$disconnect": "DISCONNECT", "$default": "MESSAGE"}
    return {
        "requestContext": {
            "routeKey": route,
            "eventType": kinds[route],
            "connectionId": connection_id,
            "stage": "live",
        },
        "isBase64Encoded": False,
        **extra,
    }


def _connect(token: str, session_id: str, connection_id: str) -> dict[str, Any]:
    return _event(
        "$connect",
        connection_id,
        headers={"Authorization": f"Bearer {token}", "Host": "example"},
        queryStringParameters={"session_id": session_id},
    )


async def _doorbells(db: Database) -> list[tuple[UUID, bool]]:
    async with db.service("test: read doorbells") as tx:
        cur = await tx.execute(
            "select action_id, delivered_at is not null from public.runner_doorbells order by id"
        )
        return [(r[0], r[1]) for r in await cur.fetchall()]


async def _session(db: Database, session_id: str) -> dict[str, Any]:
    async with db.service("test: read a session") as tx:
        cur = await tx.execute(
            "select status, socket_id, socket_connected_at, last_heartbeat"
            " from public.agent_sessions where id = %s",
            (session_id,),
        )
        row = await cur.fetchone()
    assert row is not None
    return dict(zip(("status", "socket_id", "connected_at", "last_heartbeat"), row, strict=True))


async def test_an_approval_writes_a_doorbell_notified_only_at_commit(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    heard: list[str] = []
    async with database.listen(CHANNEL) as payloads:

        async def listen() -> None:
            async for payload in payloads:
                heard.append(payload)

        listener = asyncio.create_task(listen())
        try:
            # Given a pending action (no doorbell), and a rejected one (none either)
            pending = await propose(client, agent_id, org.member)
            rejected = await propose(client, agent_id, org.member)
            resp = await client.post(f"/actions/{rejected['id']}/reject", headers=org.admin.headers)
            assert resp.status_code == 200, resp.text
            assert await _doorbells(database) == []

            # When one is approved
            resp = await client.post(f"/actions/{pending['id']}/approve", headers=org.admin.headers)
            assert resp.status_code == 200, resp.text
            for _ in range(100):
                if heard:
                    break
                await asyncio.sleep(0.02)
        finally:
            listener.cancel()

    # Then the outbox has its doorbell, and the NOTIFY names the agent and the action
    assert await _doorbells(database) == [(UUID(pending["id"]), False)]
    bell = Doorbell.from_notify(heard[0])
    assert (bell.agent_id, bell.action_id) == (UUID(agent_id), UUID(pending["id"]))
    assert bell.message() == {"type": "doorbell", "action_id": pending["id"]}


async def _online_runner(client: httpx.AsyncClient, org: Org, agent_id: str) -> tuple[str, str]:
    runner = await runner_for(client, agent_id, org.member)
    session = await runner.register()
    return runner.headers["Authorization"].removeprefix("Bearer "), session["id"]


async def test_connect_binds_a_live_session_of_the_tokens_agent_only(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    org = await make_org()
    agent_a, agent_b = await new_agent(client, org), await new_agent(client, org, name="b")
    token_a, session_a = await _online_runner(client, org, agent_a)
    token_b, _ = await _online_runner(client, org, agent_b)

    # A token of another agent, an unknown token and no session are refused
    refused = [
        await apigw.on_connect(database, _connect(token_b, session_a, "c-1")),
        await apigw.on_connect(database, _connect("aprt_unknown", session_a, "c-2")),
        await apigw.on_connect(database, _connect(token_a, str(uuid4()), "c-3")),
        await apigw.on_connect(database, _connect(token_a, "nope", "c-4")),
    ]
    assert [r["statusCode"] for r in refused] == [403, 401, 403, 403]
    assert (await _session(database, session_a))["connected_at"] is None

    # The agent's own token ties its session to the connection
    assert (await apigw.on_connect(database, _connect(token_a, session_a, "c-5")))[
        "statusCode"
    ] == 200
    session = await _session(database, session_a)
    assert (session["status"], session["socket_id"]) == ("online", "c-5")
    assert session["connected_at"] is not None


async def test_ping_is_a_heartbeat_and_is_answered_with_a_pong(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database, fake_api: FakeManagementApi
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    token, session_id = await _online_runner(client, org, agent_id)
    await apigw.on_connect(database, _connect(token, session_id, "c-ping"))
    before = (await _session(database, session_id))["last_heartbeat"]
    connections = ApiGatewayConnections(fake_api.client)

    ping = _event("$default", "c-ping", body=json.dumps({"type": "ping"}))
    assert (await apigw.on_message(database, ping, connections))["statusCode"] == 200

    assert fake_api.posted["c-ping"] == [{"type": "pong"}]
    assert (await _session(database, session_id))["last_heartbeat"] > before


async def test_ring_reaches_only_the_agents_sockets_and_a_gone_one_goes_offline(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database, fake_api: FakeManagementApi
) -> None:
    org = await make_org()
    agent_a, agent_b = await new_agent(client, org), await new_agent(client, org, name="b")
    token_a, session_a = await _online_runner(client, org, agent_a)
    token_gone, session_gone = await _online_runner(client, org, agent_a)
    token_b, session_b = await _online_runner(client, org, agent_b)
    for token, session, connection in (
        (token_a, session_a, "c-a"),
        (token_gone, session_gone, "c-gone"),
        (token_b, session_b, "c-b"),
    ):
        assert (await apigw.on_connect(database, _connect(token, session, connection)))[
            "statusCode"
        ] == 200
    fake_api.gone.add("c-gone")

    # When an action of agent A is approved and the outbox is rung
    action = await approved_action(client, agent_a, org)
    result = await apigw.ring(database, ApiGatewayConnections(fake_api.client))

    # Then A's live socket hears of it, B's hears nothing, the gone one's session is offline
    assert fake_api.posted == {"c-a": [{"type": "doorbell", "action_id": action["id"]}]}
    assert result.as_dict() == {"doorbells": 1, "sent": 1, "gone": 1}
    assert (await _session(database, session_gone))["status"] == "offline"
    assert await _doorbells(database) == [(UUID(action["id"]), True)]


async def test_disconnect_takes_the_session_offline_and_requeues_its_claim(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database, fake_api: FakeManagementApi
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    session = await runner.register()
    token = runner.headers["Authorization"].removeprefix("Bearer ")
    other = await runner.register()
    for sid, connection in ((session["id"], "c-held"), (other["id"], "c-other")):
        await apigw.on_connect(database, _connect(token, sid, connection))
    action = await approved_action(client, agent_id, org)
    [claimed] = await runner.claimed(session["id"])
    assert claimed["id"] == action["id"]
    connections = ApiGatewayConnections(fake_api.client)

    # When API Gateway reports the holder's socket closed
    out = await apigw.handle(database, _event("$disconnect", "c-held"), connections)

    # Then its session is offline, the action is approved again and the other socket rung
    assert out["statusCode"] == 200
    assert (await _session(database, session["id"]))["status"] == "offline"
    resp = await client.get(f"/actions/{action['id']}", headers=org.member.headers)
    assert resp.json()["status"] == "approved"
    assert fake_api.posted["c-other"][-1] == {"type": "doorbell", "action_id": action["id"]}


def test_the_management_endpoint_is_the_stage_url_over_https() -> None:
    assert (
        management_endpoint("wss://abc.execute-api.eu-west-1.amazonaws.com/live")
        == "https://abc.execute-api.eu-west-1.amazonaws.com/live"
    )


async def test_a_session_holding_a_socket_is_stale_only_past_the_socket_threshold(
    database: Database,
) -> None:
    # Given two sessions silent for two minutes, one of them holding a socket
    seed = await seed_demo(database)
    plain = await register_silent_session(database, seed.agent_id, 120)
    held = await register_silent_session(database, seed.agent_id, 120)
    async with database.transaction(Caller.runner(seed.agent_id)) as tx:
        assert await doorbells.bind_socket(tx, held, "c-held") is not None
    await _silence(database, held, 120)

    # When the cron runs, only the socketless one goes offline (the socket pings every
    # five minutes, and its close would have taken the session offline)
    assert (await reap_stale_sessions(database)).sessions_offline == 1
    assert [(await _session(database, str(s)))["status"] for s in (plain, held)] == [
        "offline",
        "online",
    ]

    # And past the socket threshold it goes too
    await _silence(database, held, SOCKET_STALE_AFTER_SECONDS + 10)
    assert (await reap_stale_sessions(database)).sessions_offline == 1
    assert (await _session(database, str(held)))["status"] == "offline"


async def _silence(database: Database, session_id: UUID, seconds: int) -> None:
    async with database.service("test: let time pass") as tx:
        await tx.execute(
            "update public.agent_sessions"
            " set last_heartbeat = now() - make_interval(secs => %s) where id = %s",
            (seconds, session_id),
        )
