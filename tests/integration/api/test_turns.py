"""Agent turns against a local OpenAI-compatible server on 127.0.0.1: tool calls become
pending actions with exact payloads, finished actions come back in the next turn, and a
failure anywhere writes nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from agentplane.actions.models import ActionPayload
from agentplane.actions.service import propose
from agentplane.apps import build_local_app
from agentplane.auth.caller import Caller
from agentplane.brain.service import agent_endpoint
from agentplane.db.database import Database
from agentplane.errors import ForbiddenError
from agentplane.runtime import Runtime
from agentplane.settings import Settings
from tests.support.api import MakeOrg, Org, assert_problem
from tests.support.builders import create_connection, new_agent, runner_for, store_key
from tests.support.database import ProvisionedDatabase
from tests.support.fake_provider import FakeProvider, Reply

KEY = "sk-fake-provider-key-7731"
SYSTEM = "You are a careful assistant. Write files only when asked."
WRITE = {"path": "notes/hello.txt", "content": "hello ✓\n"}


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    """The model provider: a local OpenAI-compatible server."""
    with FakeProvider() as server:
        yield server


@pytest.fixture
async def client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The local app with a short provider timeout and fast retries."""
    tuned = settings.model_copy(
        update={"provider_timeout_seconds": 1.0, "provider_backoff_seconds": 0.01}
    )
    runtime = Runtime(tuned, database)
    transport = httpx.ASGITransport(app=build_local_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    await runtime.close()


@dataclass(frozen=True)
class World:
    """An organization with an agent wired to the fake provider."""

    org: Org
    agent_id: str
    connection_id: str


@pytest.fixture
async def world(client: httpx.AsyncClient, make_org: MakeOrg, fake: FakeProvider) -> World:
    org = await make_org()
    agent_id = await new_agent(client, org)
    connection = await create_connection(
        client, org.member, name="local", provider="custom", base_url=fake.base_url, model="m1"
    )
    config = await client.put(
        f"/agents/{agent_id}/config",
        json={
            "model": "",
            "system_prompt": SYSTEM,
            "temperature": 0.2,
            "connection_id": connection["id"],
            "allowed_tools": ["write_file", "read_file"],
        },
        headers=org.member.headers,
    )
    assert config.status_code == 200, config.text
    await store_key(client, org.member, org, KEY, provider="custom")
    return World(org, agent_id, connection["id"])


async def _turn(
    client: httpx.AsyncClient, world: World, message: str, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"/agents/{world.agent_id}/turns",
        json={"message": message, **extra},
        headers=world.org.member.headers,
    )


def _counts(admin_url: str) -> dict[str, int]:
    with psycopg.connect(admin_url) as conn:
        return {
            table: conn.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier("public", table))
            ).fetchone()[0]  # type: ignore[index]
            for table in ("conversations", "messages", "agent_actions")
        }


async def test_tool_calls_become_pending_actions_with_exact_payloads(
    client: httpx.AsyncClient, world: World, fake: FakeProvider
) -> None:
    # Given a model that answers with three tool calls: one allowed, one not allowed,
    # one with arguments that do not fit the tool
    fake.script(
        Reply(
            body=FakeProvider.completion(
                "I'll write the note.",
                tool_calls=[
                    FakeProvider.tool_call("call_1", "write_file", WRITE),
                    FakeProvider.tool_call("call_2", "shell", {"command": "rm -rf /"}),
                    FakeProvider.tool_call("call_3", "read_file", {"file": "x"}),
                ],
            )
        )
    )

    # When a member holds a turn
    resp = await _turn(client, world, "please write the note")

    # Then the reply is stored, the allowed call is a pending brain action with exactly
    # the model's arguments, and the others are refused with the reason
    assert resp.status_code == 201, resp.text
    turn = resp.json()
    assert turn["reply"]["content"] == "I'll write the note."
    assert turn["user_message"]["content"] == "please write the note"
    [action] = turn["actions"]
    assert action["payload"] == {"tool": "write_file", "args": WRITE}
    assert (action["status"], action["source"], action["message_id"]) == (
        "pending",
        "brain",
        turn["reply"]["id"],
    )
    assert [(r["tool_call_id"], r["tool"]) for r in turn["refused_tool_calls"]] == [
        ("call_2", "shell"),
        ("call_3", "read_file"),
    ]
    assert "not allowed" in turn["refused_tool_calls"][0]["reason"]
    assert "file" in turn["refused_tool_calls"][1]["reason"]
    # And the provider got the config: model, system prompt, temperature, only the
    # allowed tools, and the member's own key
    [sent] = fake.requests
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"
    body = sent["json"]
    assert (body["model"], body["temperature"]) == ("m1", 0.2)
    assert body["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "please write the note"},
    ]
    assert [t["function"]["name"] for t in body["tools"]] == ["write_file", "read_file"]
    # And the action is in the queue like any other, for a person to approve
    queued = await client.get(
        f"/actions?agent_id={world.agent_id}&status=pending", headers=world.org.viewer.headers
    )
    assert [a["id"] for a in queued.json()["items"]] == [action["id"]]
    assert KEY not in resp.text


async def test_the_next_turn_carries_the_result_of_a_finished_action(
    client: httpx.AsyncClient, world: World, fake: FakeProvider
) -> None:
    # Given a turn whose tool call was approved, run by a runner and reported
    fake.script(
        Reply(
            body=FakeProvider.completion(
                tool_calls=[FakeProvider.tool_call("c1", "write_file", WRITE)]
            )
        ),
        Reply(body=FakeProvider.completion("The note is written.")),
    )
    first = (await _turn(client, world, "write the note")).json()
    action_id = first["actions"][0]["id"]
    approved = await client.post(f"/actions/{action_id}/approve", headers=world.org.member.headers)
    assert approved.status_code == 200, approved.text
    runner = await runner_for(client, world.agent_id, world.org.member)
    session = await runner.register()
    [item] = await runner.claimed(session["id"])
    done = await runner.result(item["id"], item["fencing_token"], output={"bytes": 9})
    assert done.status_code == 200, done.text

    # When the member goes on in the same conversation
    resp = await _turn(client, world, "did it work?", conversation_id=first["conversation_id"])

    # Then the model saw its tool call followed by the action's result
    assert resp.status_code == 201, resp.text
    assert resp.json()["reply"]["content"] == "The note is written."
    messages = fake.requests[1]["json"]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "user"]
    assert messages[2]["tool_calls"][0]["id"] == "c1"
    assert messages[3]["tool_call_id"] == "c1"
    note = json.loads(messages[3]["content"])
    assert (note["action_id"], note["status"], note["output"]) == (
        action_id,
        "succeeded",
        {"bytes": 9},
    )
    assert messages[4] == {"role": "user", "content": "did it work?"}


async def test_strangers_and_viewers_call_no_provider(
    client: httpx.AsyncClient,
    world: World,
    fake: FakeProvider,
    make_org: MakeOrg,
    fresh_db: ProvisionedDatabase,
) -> None:
    stranger = await make_org("Elsewhere")
    resp = await client.post(
        f"/agents/{world.agent_id}/turns", json={"message": "hi"}, headers=stranger.owner.headers
    )
    assert_problem(resp, 404)
    viewer = await client.post(
        f"/agents/{world.agent_id}/turns", json={"message": "hi"}, headers=world.org.viewer.headers
    )
    assert_problem(viewer, 403)
    assert fake.requests == []
    assert _counts(fresh_db.admin_url) == {"conversations": 0, "messages": 0, "agent_actions": 0}


async def test_no_key_for_the_provider_is_a_409_naming_it(
    client: httpx.AsyncClient, world: World, fake: FakeProvider
) -> None:
    keys = await client.get("/keys", headers=world.org.member.headers)
    for key in keys.json()["items"]:
        await client.delete(f"/keys/{key['id']}", headers=world.org.member.headers)
    resp = await _turn(client, world, "hi")
    body = assert_problem(resp, 409)
    assert body["provider"] == "custom"
    assert "custom" in body["detail"]
    assert fake.requests == []


@pytest.mark.parametrize(
    ("reply", "status", "slug"),
    [
        (
            Reply(status=500, body={"error": {"message": "upstream exploded"}}),
            502,
            "provider-error",
        ),
        (Reply(delay_seconds=3.0), 504, "provider-timeout"),
        (Reply(status=401, body={"error": {"message": "bad key"}}), 502, "provider-error"),
    ],
    ids=["500", "timeout", "401"],
)
async def test_a_provider_failure_is_a_clear_error_and_writes_nothing(
    client: httpx.AsyncClient,
    world: World,
    fake: FakeProvider,
    fresh_db: ProvisionedDatabase,
    reply: Reply,
    status: int,
    slug: str,
) -> None:
    fake.script(reply, reply, reply)
    resp = await _turn(client, world, "hello")
    body = assert_problem(resp, status, slug)
    assert body["provider"] == "custom"
    assert KEY not in resp.text
    assert _counts(fresh_db.admin_url) == {"conversations": 0, "messages": 0, "agent_actions": 0}
    # Only the member's connection records that its provider failed
    connection = await client.get(
        f"/connections/{world.connection_id}", headers=world.org.member.headers
    )
    assert connection.json()["status"] == "error"


async def test_a_429_is_retried_and_the_turn_goes_through(
    client: httpx.AsyncClient, world: World, fake: FakeProvider
) -> None:
    fake.script(
        Reply(status=429, body={"error": {"message": "slow down"}}, headers={"Retry-After": "0"}),
        Reply(body=FakeProvider.completion("hello again")),
    )
    resp = await _turn(client, world, "hello")
    assert resp.status_code == 201, resp.text
    assert resp.json()["reply"]["content"] == "hello again"
    assert len(fake.requests) == 2


async def test_conversations_must_be_yours_and_with_this_agent(
    client: httpx.AsyncClient, world: World, fake: FakeProvider
) -> None:
    org = world.org
    other_agent = await new_agent(client, org, "other")
    theirs = await client.post(
        "/conversations", json={"agent_id": world.agent_id}, headers=org.admin.headers
    )
    mine_elsewhere = await client.post(
        "/conversations", json={"agent_id": other_agent}, headers=org.member.headers
    )
    gone = await _turn(client, world, "hi", conversation_id=theirs.json()["id"])
    assert_problem(gone, 404)
    wrong = await _turn(client, world, "hi", conversation_id=mine_elsewhere.json()["id"])
    assert_problem(wrong, 409)
    assert fake.requests == []


async def test_an_agent_without_a_connection_is_a_409(
    client: httpx.AsyncClient, make_org: MakeOrg, fake: FakeProvider
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    resp = await client.post(
        f"/agents/{agent_id}/turns", json={"message": "hi"}, headers=org.member.headers
    )
    body = assert_problem(resp, 409)
    assert "connection" in body["detail"]
    assert fake.requests == []


async def test_deleting_the_conversation_keeps_its_actions(
    client: httpx.AsyncClient, world: World, fake: FakeProvider
) -> None:
    call = FakeProvider.tool_call("c", "write_file", WRITE)
    fake.script(Reply(body=FakeProvider.completion(tool_calls=[call])))
    turn = (await _turn(client, world, "write it")).json()
    deleted = await client.delete(
        f"/conversations/{turn['conversation_id']}", headers=world.org.member.headers
    )
    assert deleted.status_code == 204, deleted.text
    # The action stays in the queue and its audit log; only the link to the message goes
    action = await client.get(
        f"/actions/{turn['actions'][0]['id']}", headers=world.org.viewer.headers
    )
    assert (action.json()["status"], action.json()["message_id"]) == ("pending", None)


async def test_a_base_url_set_by_another_user_never_receives_your_key(
    client: httpx.AsyncClient, world: World, fake: FakeProvider
) -> None:
    # Given the agent's connection (with its base URL) is the member's, and the admin
    # has a key for the same provider
    org = world.org
    await store_key(client, org.admin, org, "sk-admin-secret-0000", provider="custom")
    # When the admin holds a turn with the agent
    resp = await client.post(
        f"/agents/{world.agent_id}/turns", json={"message": "hi"}, headers=org.admin.headers
    )
    # Then it is refused before any request: the admin's key is not sent to that URL
    body = assert_problem(resp, 409)
    assert "another user" in body["detail"]
    assert fake.requests == []


async def test_unusable_model_output_is_stored_safely(
    client: httpx.AsyncClient, world: World, fake: FakeProvider
) -> None:
    # A reply with a NUL, a tool call whose arguments hold a NUL, two calls with one id,
    # and an id too long for an idempotency key
    long_id = "x" * 300
    fake.script(
        Reply(
            body=FakeProvider.completion(
                "a\u0000b",
                tool_calls=[
                    FakeProvider.tool_call("dup", "write_file", {"path": "a", "content": "1"}),
                    FakeProvider.tool_call("dup", "write_file", {"path": "b", "content": "2"}),
                    FakeProvider.tool_call(long_id, "write_file", {"path": "c", "content": "3"}),
                    FakeProvider.tool_call("nul", "write_file", {"path": "d", "content": "\u0000"}),
                ],
            )
        )
    )
    resp = await _turn(client, world, "go")
    assert resp.status_code == 201, resp.text
    turn = resp.json()
    assert turn["reply"]["content"] == "a\ufffdb"
    ids = [c["id"] for c in turn["reply"]["tool_calls"]]
    assert len(set(ids)) == 4
    assert all(len(i) <= 100 for i in ids)
    assert [a["payload"]["args"]["path"] for a in turn["actions"]] == ["a", "b", "c"]
    assert [r["tool_call_id"] for r in turn["refused_tool_calls"]] == [ids[3]]
    assert "NUL" in turn["refused_tool_calls"][0]["reason"]


async def test_an_action_cannot_link_to_someone_elses_message(
    client: httpx.AsyncClient, world: World, fake: FakeProvider, database: Database
) -> None:
    # The admin's own turn leaves an assistant message only the admin can see
    org = world.org
    conversation = await client.post(
        "/conversations", json={"agent_id": world.agent_id}, headers=org.admin.headers
    )
    message = await client.post(
        f"/conversations/{conversation.json()['id']}/messages",
        json={"role": "assistant", "content": "mine"},
        headers=org.admin.headers,
    )
    assert message.status_code == 201, message.text
    # A member writing an action straight into the table cannot point it at that message
    with pytest.raises(ForbiddenError):
        async with database.transaction(Caller.user({"sub": str(org.member.id)})) as tx:
            await propose(
                tx,
                uuid.UUID(world.agent_id),
                ActionPayload(tool="read_file", args={"path": "x"}),
                ttl_seconds=60,
                message_id=uuid.UUID(message.json()["id"]),
            )


async def test_a_turn_links_its_conversation_to_the_callers_connection_and_marks_it_online(
    client: httpx.AsyncClient, world: World, fake: FakeProvider
) -> None:
    # Given the agent talks through the member's own connection, new and so offline
    path = f"/connections/{world.connection_id}"
    assert (await client.get(path, headers=world.org.member.headers)).json()["status"] == (
        "offline"
    )
    fake.script(Reply(body=FakeProvider.completion("hello")))
    # When the member's turn starts a conversation
    turn = (await _turn(client, world, "hi")).json()
    # Then the conversation names that connection, as the seed's agent_connection_id
    conversation = await client.get(
        f"/conversations/{turn['conversation_id']}", headers=world.org.member.headers
    )
    assert conversation.json()["agent_connection_id"] == world.connection_id
    # And the connection is online: its provider answered
    assert (await client.get(path, headers=world.org.member.headers)).json()["status"] == "online"
    listed = await client.get(
        f"/conversations?agent_connection_id={world.connection_id}",
        headers=world.org.member.headers,
    )
    assert [c["id"] for c in listed.json()["items"]] == [turn["conversation_id"]]


async def test_a_teammates_connection_at_the_public_endpoint_takes_your_own_key(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    # Given an agent wired to the member's openrouter connection, which has the
    # provider's public endpoint (no base_url given)
    org = await make_org()
    agent_id = await new_agent(client, org)
    connection = await create_connection(client, org.member, provider="openrouter")
    assert connection["base_url"] == "https://openrouter.ai/api/v1"
    config = await client.put(
        f"/agents/{agent_id}/config",
        json={
            "model": "m",
            "system_prompt": SYSTEM,
            "temperature": 0.2,
            "connection_id": connection["id"],
            "allowed_tools": [],
        },
        headers=org.member.headers,
    )
    assert config.status_code == 200, config.text
    # When the admin's turn looks up where to send the admin's own key
    async with database.transaction(Caller.user({"sub": str(org.admin.id)})) as tx:
        endpoint = await agent_endpoint(tx, uuid.UUID(agent_id))
    # Then it is the public endpoint, and the admin's conversations do not link to a
    # connection that is not theirs
    assert (endpoint.provider, endpoint.base_url) == ("openrouter", connection["base_url"])
    assert endpoint.connection_id is None
    async with database.transaction(Caller.user({"sub": str(org.member.id)})) as tx:
        own = await agent_endpoint(tx, uuid.UUID(agent_id))
    assert own.connection_id == uuid.UUID(connection["id"])


async def test_a_read_its_policy_approves_by_itself_is_approved_at_once(
    client: httpx.AsyncClient, world: World, fake: FakeProvider
) -> None:
    # Given a low-risk policy that approves reads under reports/ by itself
    policy = await client.post(
        "/approval-policies",
        json={
            "organization_id": str(world.org.id),
            "tool_pattern": "read_file",
            "risk": "low",
            "auto_approve": True,
            "auto_approve_constraints": {"path": {"path_within": "reports"}},
        },
        headers=world.org.admin.headers,
    )
    assert policy.status_code == 201, policy.text
    # When the model asks to read one file inside and one outside
    fake.script(
        Reply(
            body=FakeProvider.completion(
                tool_calls=[
                    FakeProvider.tool_call("in", "read_file", {"path": "reports/q3.txt"}),
                    FakeProvider.tool_call("out", "read_file", {"path": "secrets/key.txt"}),
                ]
            )
        )
    )
    resp = await _turn(client, world, "read the reports")

    # Then the one inside is approved and signed by the policy, the other waits
    assert resp.status_code == 201, resp.text
    inside, outside = resp.json()["actions"]
    assert (inside["status"], inside["approved_by_policy"]) == ("approved", policy.json()["id"])
    assert inside["approval_signature"]
    assert (outside["status"], outside["approved_by_policy"]) == ("pending", None)
