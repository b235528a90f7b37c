"""The workflow `llm` node against a local OpenAI-compatible server on 127.0.0.1: it runs
as the run's starter (their key, the brain's endpoint rules, RLS), returns text or JSON
checked against the node's schema, and names every failure with a stable error."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from agentplane.apps import build_local_app
from agentplane.db.database import Database
from agentplane.runtime import Runtime
from agentplane.settings import Settings
from agentplane.workflows.definition import LlmConfig
from agentplane.workflows.llm import LlmNodeError, run_llm_node
from tests.support.api import MakeOrg, Org, User
from tests.support.builders import create_connection, new_agent, store_key
from tests.support.database import ProvisionedDatabase
from tests.support.fake_provider import FakeProvider, Reply

KEY = "sk-starter-key-4242"
ADMIN_KEY = "sk-admin-key-9999"
SYSTEM = "You are the agent's own system prompt."
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title"],
}


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    """The model provider: a local OpenAI-compatible server."""
    with FakeProvider() as server:
        yield server


@pytest.fixture
async def runtime(settings: Settings, database: Database) -> AsyncIterator[Runtime]:
    """One runtime for the API and the node (same vault keyring), with fast retries."""
    tuned = settings.model_copy(
        update={"provider_timeout_seconds": 2.0, "provider_backoff_seconds": 0.01}
    )
    runtime = Runtime(tuned, database)
    yield runtime
    await runtime.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The local app on the test's runtime (make_org builds through it)."""
    transport = httpx.ASGITransport(app=build_local_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass(frozen=True)
class World:
    """An organization whose agent talks to the fake provider through the member's
    connection; the member stored a key for it."""

    org: Org
    agent_id: uuid.UUID
    connection_id: str


async def _configure(
    client: httpx.AsyncClient, agent_id: str, user: User, connection_id: str | None
) -> None:
    resp = await client.put(
        f"/agents/{agent_id}/config",
        json={
            "model": "",
            "system_prompt": SYSTEM,
            "temperature": 0.3,
            "connection_id": connection_id,
            "allowed_tools": ["write_file"],
        },
        headers=user.headers,
    )
    assert resp.status_code == 200, resp.text


@pytest.fixture
async def world(client: httpx.AsyncClient, make_org: MakeOrg, fake: FakeProvider) -> World:
    org = await make_org()
    agent_id = await new_agent(client, org)
    connection = await create_connection(
        client, org.member, name="local", provider="custom", base_url=fake.base_url, model="m1"
    )
    await _configure(client, agent_id, org.member, connection["id"])
    await store_key(client, org.member, org, KEY, provider="custom")
    return World(org, uuid.UUID(agent_id), connection["id"])


def _config(world: World, **fields: Any) -> LlmConfig:
    return LlmConfig.model_validate(
        {"agent_id": str(world.agent_id), "prompt": "(rendered by the engine)", **fields}
    )


async def _run(
    runtime: Runtime,
    world: World,
    *,
    user: User | None = None,
    prompt: str = "Summarise the ticket",
    system: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    return await run_llm_node(
        runtime,
        user_id=(user or world.org.member).id,
        config=_config(world, **fields),
        prompt=prompt,
        system=system,
    )


async def _failure(runtime: Runtime, world: World, **kwargs: Any) -> LlmNodeError:
    with pytest.raises(LlmNodeError) as caught:
        await _run(runtime, world, **kwargs)
    return caught.value


def _reply(content: str) -> Reply:
    return Reply(body=FakeProvider.completion(content, model="m1-served"))


async def test_the_reply_text_comes_back_with_model_and_usage(
    runtime: Runtime, world: World, fake: FakeProvider
) -> None:
    fake.script(_reply("The ticket asks for a refund."))

    output = await _run(runtime, world, prompt="Summarise: refund please")

    assert output == {
        "text": "The ticket asks for a refund.",
        "model": "m1-served",
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    # One request: the agent's system prompt, the rendered prompt, the endpoint's model
    # and temperature, and no tools
    [request] = fake.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["json"] == {
        "model": "m1",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Summarise: refund please"},
        ],
        "temperature": 0.3,
    }


async def test_a_given_system_prompt_replaces_the_agents(
    runtime: Runtime, world: World, fake: FakeProvider
) -> None:
    await _run(runtime, world, system="Answer in one word.")
    assert fake.requests[0]["json"]["messages"][0] == {
        "role": "system",
        "content": "Answer in one word.",
    }


async def test_json_output_is_parsed_and_checked_against_the_schema(
    runtime: Runtime, world: World, fake: FakeProvider
) -> None:
    value = {"title": "Refund", "tags": ["billing", "urgent"]}
    fake.script(
        _reply(json.dumps(value)),
        _reply(f"Here you go:\n```json\n{json.dumps(value, indent=2)}\n```\n"),
    )

    plain = await _run(runtime, world, output_schema=SCHEMA)
    fenced = await _run(runtime, world, output_schema=SCHEMA)

    assert plain["json"] == value
    assert plain["text"] == json.dumps(value)
    assert plain["model"] == "m1-served"
    assert fenced["json"] == value
    assert fenced["text"].startswith("Here you go:")


async def test_a_reply_that_is_not_json_is_invalid_json(
    runtime: Runtime, world: World, fake: FakeProvider
) -> None:
    fake.script(_reply("Sure! The title is Refund."))
    error = await _failure(runtime, world, output_schema=SCHEMA)
    assert error.error == "Llm.InvalidJson"
    assert "not JSON" in error.cause
    assert "Sure! The title is Refund." in error.cause


async def test_json_that_misses_the_schema_names_the_failing_path(
    runtime: Runtime, world: World, fake: FakeProvider
) -> None:
    fake.script(
        _reply(json.dumps({"title": "Refund", "tags": ["billing", 3]})),
        _reply(json.dumps({"tags": []})),
    )

    wrong_item = await _failure(runtime, world, output_schema=SCHEMA)
    missing = await _failure(runtime, world, output_schema=SCHEMA)

    assert wrong_item.error == "Llm.SchemaMismatch"
    assert "$.tags[1]" in wrong_item.cause
    assert "3 is not of type 'string'" in wrong_item.cause
    assert missing.error == "Llm.SchemaMismatch"
    assert "'title' is a required property" in missing.cause


async def test_a_schema_whose_ref_cannot_be_resolved_is_invalid_schema(
    runtime: Runtime, world: World, fake: FakeProvider
) -> None:
    fake.script(_reply('{"title": "Refund"}'))
    error = await _failure(runtime, world, output_schema={"$ref": "https://example.com/s.json"})
    assert error.error == "Llm.InvalidSchema"
    assert "https://example.com/s.json" in error.cause


async def test_the_starters_own_key_is_sent_and_a_teammates_is_not(
    runtime: Runtime, client: httpx.AsyncClient, world: World, fake: FakeProvider
) -> None:
    # Given the admin has a key for the same provider too
    org = world.org
    await store_key(client, org.admin, org, ADMIN_KEY, provider="custom")

    # When the member's run calls the model
    await _run(runtime, world)

    # Then the member's key is the one in the request, and the admin's is nowhere
    [request] = fake.requests
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    assert ADMIN_KEY not in json.dumps(request)


async def test_a_base_url_another_user_set_never_receives_the_starters_key(
    runtime: Runtime, client: httpx.AsyncClient, world: World, fake: FakeProvider
) -> None:
    # The agent's connection (with its base URL) is the member's; the admin starts the run
    org = world.org
    await store_key(client, org.admin, org, ADMIN_KEY, provider="custom")
    error = await _failure(runtime, world, user=org.admin)
    assert error.error == "Llm.Forbidden"
    assert "another user" in error.cause
    assert ADMIN_KEY not in error.cause
    assert fake.requests == []


async def test_a_starter_without_a_key_is_missing_key(
    runtime: Runtime, client: httpx.AsyncClient, world: World, fake: FakeProvider
) -> None:
    headers = world.org.member.headers
    for key in (await client.get("/keys", headers=headers)).json()["items"]:
        assert (await client.delete(f"/keys/{key['id']}", headers=headers)).status_code == 204
    error = await _failure(runtime, world)
    assert error.error == "Llm.MissingKey"
    assert "custom" in error.cause
    assert fake.requests == []


async def test_an_agent_without_a_connection_is_not_connected(
    runtime: Runtime, client: httpx.AsyncClient, world: World, fake: FakeProvider
) -> None:
    await _configure(client, str(world.agent_id), world.org.member, None)
    error = await _failure(runtime, world)
    assert error.error == "Llm.NotConnected"
    assert "connection" in error.cause
    assert fake.requests == []


async def test_strangers_and_viewers_call_no_provider(
    runtime: Runtime, world: World, fake: FakeProvider, make_org: MakeOrg
) -> None:
    stranger = await make_org("Elsewhere")
    not_found = await _failure(runtime, world, user=stranger.owner)
    viewer = await _failure(runtime, world, user=world.org.viewer)
    assert not_found.error == "Llm.NotFound"
    assert str(world.agent_id) in not_found.cause
    assert viewer.error == "Llm.Forbidden"
    assert fake.requests == []


async def test_a_provider_500_is_a_provider_error_without_the_key(
    runtime: Runtime, world: World, fake: FakeProvider
) -> None:
    failing = Reply(status=500, body={"error": {"message": "upstream exploded"}})
    fake.script(failing, failing, failing)
    error = await _failure(runtime, world)
    assert error.error == "Llm.ProviderError"
    assert "500" in error.cause
    assert "upstream exploded" in error.cause
    assert KEY not in str(error)
    # The client retried the 5xx as it does for turns (2 retries by default)
    assert len(fake.requests) == 3


async def test_no_transaction_is_open_while_the_model_thinks(
    runtime: Runtime, client: httpx.AsyncClient, world: World, fresh_db: ProvisionedDatabase
) -> None:
    # The provider looks at the database while it answers: no session of this
    # database may be in a transaction then
    seen: list[int] = []

    def answer(_request: dict[str, Any] | None) -> Reply:
        with psycopg.connect(fresh_db.admin_url) as conn:
            row = conn.execute(
                "select count(*) from pg_stat_activity where datname = current_database()"
                " and pid <> pg_backend_pid() and state like 'idle in transaction%%'"
            ).fetchone()
        seen.append(row[0] if row else -1)
        return _reply("done")

    with FakeProvider(responder=answer) as thinking:
        # Point the member's connection at this provider instead
        moved = await client.patch(
            f"/connections/{world.connection_id}",
            json={"base_url": thinking.base_url},
            headers=world.org.member.headers,
        )
        assert moved.status_code == 200, moved.text
        output = await _run(runtime, world)

    assert output["text"] == "done"
    assert seen == [0]


async def test_one_log_line_per_call_without_prompt_or_key(
    runtime: Runtime, world: World, fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script(_reply("fine"))
    await _run(runtime, world, prompt="PROMPT-SECRET-TEXT")
    await _failure(runtime, world, user=world.org.viewer)

    node_lines = [r.__dict__ for r in caplog.records if r.getMessage() == "workflow llm node"]
    assert [line["outcome"] for line in node_lines] == ["ok", "Llm.Forbidden"]
    ok = node_lines[0]
    assert (ok["agent_id"], ok["provider"], ok["model"]) == (
        str(world.agent_id),
        "custom",
        "m1-served",
    )
    assert isinstance(ok["duration_ms"], int)
    logged = " ".join(repr(sorted(line.items())) for line in node_lines)
    assert "PROMPT-SECRET-TEXT" not in logged
    assert KEY not in logged
