"""/agents/{id}/config/versions: every change of an agent's system prompt is a version
(edits, adopted mirror reports, restores, plain SQL), restorable, and turns record the
version that answered."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from agentplane.agents import service
from agentplane.agents.models import AgentConfigUpdate
from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.errors import ForbiddenError, NotFoundError
from tests.support.api import MakeOrg, NewUser, Org, assert_problem, collect_pages
from tests.support.builders import create_connection, new_agent, store_key
from tests.support.database import ProvisionedDatabase
from tests.support.fake_provider import FakeProvider, Reply

KEY = "sk-fake-provider-key-4417"
FIRST = "You are terse."
SECOND = "You are thorough, and you cite your sources."


def _config(system_prompt: str, **fields: Any) -> dict[str, Any]:
    return {
        "model": "",
        "system_prompt": system_prompt,
        "temperature": 0.7,
        "connection_id": None,
        "allowed_tools": [],
        **fields,
    }


async def _put(
    client: httpx.AsyncClient, org: Org, agent_id: str, system_prompt: str, **fields: Any
) -> dict[str, Any]:
    resp = await client.put(
        f"/agents/{agent_id}/config",
        json=_config(system_prompt, **fields),
        headers=org.member.headers,
    )
    assert resp.status_code == 200, resp.text
    config: dict[str, Any] = resp.json()
    return config


async def _versions(client: httpx.AsyncClient, org: Org, agent_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/agents/{agent_id}/config/versions", headers=org.viewer.headers)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


def _summary(versions: list[dict[str, Any]]) -> list[tuple[int, str, str, str | None]]:
    return [(v["version"], v["system_prompt"], v["source"], v["source_id"]) for v in versions]


async def test_every_prompt_change_is_a_version_and_restores_are_new_ones(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    # Given an agent (its config starts with an empty prompt: version 1) whose prompt a
    # member sets twice, and once more with only the temperature changed
    org = await make_org()
    agent_id = await new_agent(client, org, tools=[])
    await _put(client, org, agent_id, FIRST)
    await _put(client, org, agent_id, SECOND)
    config = await _put(client, org, agent_id, SECOND, temperature=1.5)

    # Then there are three versions, oldest first, the last one the config's prompt
    assert config["system_prompt"] == SECOND
    versions = await _versions(client, org, agent_id)
    assert _summary(versions) == [
        (1, "", "edit", None),
        (2, FIRST, "edit", None),
        (3, SECOND, "edit", None),
    ]
    assert [v["created_by"] for v in versions] == [str(org.owner.id)] + [str(org.member.id)] * 2
    assert {v["agent_id"] for v in versions} == {agent_id}
    paged, pages = await collect_pages(
        client, f"/agents/{agent_id}/config/versions", org.viewer.headers, limit=2
    )
    assert (paged, pages) == (versions, 2)

    # When a member restores version 1, then version 2
    first = await client.post(
        f"/agents/{agent_id}/config/versions/1/restore", headers=org.member.headers
    )
    second = await client.post(
        f"/agents/{agent_id}/config/versions/2/restore", headers=org.member.headers
    )

    # Then each is a new version with source restore naming the restored number, and the
    # config holds the last one's prompt
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert (first.json()["version"], first.json()["system_prompt"]) == (4, "")
    assert _summary(await _versions(client, org, agent_id))[3:] == [
        (4, "", "restore", "1"),
        (5, FIRST, "restore", "2"),
    ]
    assert second.json()["created_by"] == str(org.member.id)
    current = await client.get(f"/agents/{agent_id}/config", headers=org.viewer.headers)
    assert current.json()["system_prompt"] == FIRST

    # And a version that does not exist is a 404, a number that cannot be one a 422
    missing = await client.post(
        f"/agents/{agent_id}/config/versions/99/restore", headers=org.member.headers
    )
    assert_problem(missing, 404)
    zero = await client.post(
        f"/agents/{agent_id}/config/versions/0/restore", headers=org.member.headers
    )
    assert_problem(zero, 422)
    assert len(await _versions(client, org, agent_id)) == 5


async def test_viewers_read_the_history_but_do_not_restore_and_strangers_see_nothing(
    client: httpx.AsyncClient, make_org: MakeOrg, new_user: NewUser
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org, tools=[])
    await _put(client, org, agent_id, FIRST)
    stranger = new_user()
    restore = f"/agents/{agent_id}/config/versions/1/restore"

    viewer_restore = await client.post(restore, headers=org.viewer.headers)
    stranger_list = await client.get(
        f"/agents/{agent_id}/config/versions", headers=stranger.headers
    )
    stranger_restore = await client.post(restore, headers=stranger.headers)
    unknown_agent = await client.get(
        f"/agents/{uuid.uuid4()}/config/versions", headers=org.member.headers
    )

    assert_problem(viewer_restore, 403)
    assert_problem(stranger_list, 404)
    assert_problem(stranger_restore, 404)
    assert_problem(unknown_agent, 404)
    assert _summary(await _versions(client, org, agent_id)) == [
        (1, "", "edit", None),
        (2, FIRST, "edit", None),
    ]


async def test_adopting_a_mirror_reports_prompt_records_the_report(
    client: httpx.AsyncClient, make_org: MakeOrg, new_user: NewUser, database: Database
) -> None:
    # Given an agent with a prompt, and a report's id
    org = await make_org()
    agent_id = await new_agent(client, org, tools=[])
    await _put(client, org, agent_id, FIRST)
    report_id = uuid.uuid4()
    agent = uuid.UUID(agent_id)

    # When a member adopts the report's prompt, in their own transaction
    async with database.transaction(Caller.user({"sub": str(org.member.id)})) as tx:
        adopted = await service.adopt_prompt(tx, agent, SECOND, source_id=report_id)
        # and edits the config in the same transaction afterwards
        body = AgentConfigUpdate.model_validate(_config("edited after adopting"))
        await service.replace_config(tx, agent, body)

    # Then the adoption is a version naming the report and the member; the later edit
    # is an edit again
    assert (adopted.version, adopted.system_prompt, adopted.source) == (3, SECOND, "adopt")
    assert (adopted.source_id, adopted.created_by) == (str(report_id), org.member.id)
    assert _summary(await _versions(client, org, agent_id))[2:] == [
        (3, SECOND, "adopt", str(report_id)),
        (4, "edited after adopting", "edit", None),
    ]

    # And a viewer may not adopt (403), a stranger does not see the agent (404), and
    # neither writes anything
    with pytest.raises(ForbiddenError):
        async with database.transaction(Caller.user({"sub": str(org.viewer.id)})) as tx:
            await service.adopt_prompt(tx, agent, "viewer's", source_id=report_id)
    stranger = new_user()
    await client.get("/me", headers=stranger.headers)
    with pytest.raises(NotFoundError):
        async with database.transaction(Caller.user({"sub": str(stranger.id)})) as tx:
            await service.adopt_prompt(tx, agent, "stranger's", source_id=report_id)
    assert len(await _versions(client, org, agent_id)) == 4


async def test_sql_writes_are_versioned_and_the_number_is_the_triggers(
    client: httpx.AsyncClient, make_org: MakeOrg, fresh_db: ProvisionedDatabase
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org, tools=[])
    with psycopg.connect(fresh_db.admin_url, autocommit=True) as conn:
        conn.execute(
            "update public.agent_configs set system_prompt = 'from sql' where agent_id = %s",
            (agent_id,),
        )
        # A write of the number alone does not move it
        conn.execute(
            "update public.agent_configs set prompt_version = 42 where agent_id = %s",
            (agent_id,),
        )
        number = conn.execute(
            "select prompt_version from public.agent_configs where agent_id = %s", (agent_id,)
        ).fetchone()
    assert number == (2,)
    assert _summary(await _versions(client, org, agent_id)) == [
        (1, "", "edit", None),
        (2, "from sql", "edit", None),
    ]


async def _wait_for_lock_waiter(admin_url: str, deadline_seconds: float = 10.0) -> None:
    """Until some backend waits on a lock (the second writer of the config row)."""
    deadline = time.monotonic() + deadline_seconds
    with psycopg.connect(admin_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "select count(*) from pg_stat_activity"
                " where datname = current_database() and wait_event_type = 'Lock'"
            ).fetchone()
            if row is not None and row[0] > 0:
                return
            await asyncio.sleep(0.02)
    raise AssertionError("the second PUT never waited for the config row")


async def test_concurrent_puts_get_distinct_versions(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    database: Database,
    fresh_db: ProvisionedDatabase,
) -> None:
    # Given a member's transaction that has changed the prompt and not committed yet
    org = await make_org()
    agent_id = await new_agent(client, org, tools=[])
    agent = uuid.UUID(agent_id)
    async with database.transaction(Caller.user({"sub": str(org.member.id)})) as tx:
        await service.replace_config(tx, agent, AgentConfigUpdate.model_validate(_config(FIRST)))
        # When another PUT arrives meanwhile, and waits for the row
        second = asyncio.create_task(
            client.put(
                f"/agents/{agent_id}/config",
                json=_config(SECOND),
                headers=org.admin.headers,
            )
        )
        await _wait_for_lock_waiter(fresh_db.admin_url)
    resp = await second

    # Then both are recorded, with consecutive numbers, in commit order
    assert resp.status_code == 200, resp.text
    assert _summary(await _versions(client, org, agent_id)) == [
        (1, "", "edit", None),
        (2, FIRST, "edit", None),
        (3, SECOND, "edit", None),
    ]


async def test_turns_record_the_prompt_version_that_answered(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    # Given an agent wired to a local fake provider, with a prompt (version 2)
    org = await make_org()
    agent_id = await new_agent(client, org, tools=[])
    with FakeProvider() as fake:
        connection = await create_connection(
            client, org.member, name="local", provider="custom", base_url=fake.base_url
        )
        await store_key(client, org.member, org, KEY, provider="custom")
        await _put(client, org, agent_id, FIRST, connection_id=connection["id"])
        fake.script(
            Reply(body=FakeProvider.completion("first answer")),
            Reply(body=FakeProvider.completion("second answer")),
        )

        # When a member holds a turn
        first = await client.post(
            f"/agents/{agent_id}/turns", json={"message": "hello"}, headers=org.member.headers
        )

        # Then the reply names version 2, the user's message no version
        assert first.status_code == 201, first.text
        turn = first.json()
        assert turn["reply"]["prompt_version"] == 2
        assert turn["user_message"]["prompt_version"] is None
        stored = await client.get(
            f"/conversations/{turn['conversation_id']}/messages", headers=org.member.headers
        )
        assert [(m["role"], m["prompt_version"]) for m in stored.json()["items"]] == [
            ("user", None),
            ("assistant", 2),
        ]

        # When the prompt changes (version 3), version 2 is restored (version 4), and the
        # member holds another turn
        await _put(client, org, agent_id, SECOND, connection_id=connection["id"])
        restored = await client.post(
            f"/agents/{agent_id}/config/versions/2/restore", headers=org.member.headers
        )
        assert restored.status_code == 201, restored.text
        second = await client.post(
            f"/agents/{agent_id}/turns",
            json={"message": "again", "conversation_id": turn["conversation_id"]},
            headers=org.member.headers,
        )

        # Then the provider got the restored prompt as the system message, and the
        # reply names version 4
        assert second.status_code == 201, second.text
        assert second.json()["reply"]["prompt_version"] == 4
        sent = [r["json"]["messages"][0] for r in fake.requests]
        assert sent == [
            {"role": "system", "content": FIRST},
            {"role": "system", "content": FIRST},
        ]
