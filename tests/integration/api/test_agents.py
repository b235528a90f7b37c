"""/agents: agents, their config and runner tokens; what strangers and viewers get."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from agentplane.apps import build_local_app
from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.errors import ForbiddenError
from agentplane.runtime import Runtime
from agentplane.settings import Settings
from agentplane.tools.catalog import TOOL_NAMES
from tests.support.api import MakeOrg, NewUser, assert_problem, collect_pages, field_rules
from tests.support.builders import (
    create_agent,
    create_connection,
    create_project,
    issue_token,
    runner_for,
)
from tests.support.database import ProvisionedDatabase

CONFIG = {
    "model": "anthropic/claude-sonnet",
    "system_prompt": "Be brief.",
    "temperature": 1.25,
    "connection_id": None,
    "allowed_tools": ["read_file", "http_get"],
}


def _lifetime(token: dict[str, Any]) -> timedelta:
    return datetime.fromisoformat(token["expires_at"]) - datetime.fromisoformat(token["created_at"])


# --- agents ---------------------------------------------------------------------------


async def test_agent_create_read_update_delete(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    project_id = await create_project(client, org)
    # Given a member creates an agent in a project
    resp = await client.post(
        "/agents",
        json={"project_id": project_id, "name": "  Scout  ", "description": "looks around"},
        headers=org.member.headers,
    )
    assert resp.status_code == 201, resp.text
    agent = resp.json()
    assert agent["name"] == "Scout"
    assert agent["organization_id"] == str(org.id)
    assert agent["project_id"] == project_id
    assert agent["status"] == "active"
    assert agent["created_by"] == str(org.member.id)
    # Then it has a default config, made in the same transaction
    config = await client.get(f"/agents/{agent['id']}/config", headers=org.viewer.headers)
    assert config.status_code == 200, config.text
    assert {k: v for k, v in config.json().items() if k not in ("created_at", "updated_at")} == {
        "agent_id": agent["id"],
        "model": "",
        "system_prompt": "",
        "temperature": 0.7,
        "connection_id": None,
        "allowed_tools": [],
    }
    # When anyone in the organization reads the agent, they get the same row
    got = await client.get(f"/agents/{agent['id']}", headers=org.viewer.headers)
    assert got.json() == agent
    # When a member pauses and renames it, only those fields change and updated_at moves
    patched = await client.patch(
        f"/agents/{agent['id']}",
        json={"name": "Ranger", "status": "paused"},
        headers=org.member.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json() | {"updated_at": None} == agent | {
        "name": "Ranger",
        "status": "paused",
        "updated_at": None,
    }
    assert patched.json()["updated_at"] > agent["updated_at"]
    # Then members may not delete it, an admin may, and it is gone with its config
    assert_problem(await client.delete(f"/agents/{agent['id']}", headers=org.member.headers), 403)
    deleted = await client.delete(f"/agents/{agent['id']}", headers=org.admin.headers)
    assert deleted.status_code == 204
    assert_problem(await client.get(f"/agents/{agent['id']}", headers=org.owner.headers), 404)
    body = assert_problem(
        await client.get(f"/agents/{agent['id']}/config", headers=org.owner.headers), 404
    )
    assert body["detail"] == f"agent {agent['id']} not found"


async def test_agent_list_paginates_and_filters_by_project_and_organization(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    # Given two projects in one organization and an agent in another organization
    org = await make_org()
    other = await make_org("Other")
    first, second = await create_project(client, org, "first"), await create_project(client, org)
    in_first = [(await create_agent(client, first, org.owner, f"a{i}"))["id"] for i in range(4)]
    in_second = [(await create_agent(client, second, org.owner, f"b{i}"))["id"] for i in range(3)]
    elsewhere = await create_agent(client, await create_project(client, other), other.owner)

    # When the owner pages through each list
    by_project, project_pages = await collect_pages(
        client, "/agents", org.owner.headers, limit=3, project_id=first
    )
    by_org, org_pages = await collect_pages(
        client, "/agents", org.owner.headers, limit=3, organization_id=str(org.id)
    )
    everything, _ = await collect_pages(client, "/agents", org.viewer.headers, limit=50)

    # Then each is complete, in creation order, and holds only what the filter names
    assert [a["id"] for a in by_project] == in_first
    assert project_pages == 2
    assert [a["id"] for a in by_org] == in_first + in_second
    assert org_pages == 3
    assert [a["id"] for a in everything] == in_first + in_second
    # Another organization's agents never show up, even when asked for by project.
    assert elsewhere["id"] not in [a["id"] for a in everything]
    foreign = await client.get(
        "/agents", params={"project_id": elsewhere["project_id"]}, headers=org.owner.headers
    )
    assert foreign.json() == {"items": [], "next_cursor": None}


async def test_strangers_get_404_and_change_nothing(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    new_user: NewUser,
) -> None:
    # Given an agent with a config and a runner token, and a user outside the organization
    org = await make_org()
    project_id = await create_project(client, org)
    agent = await create_agent(client, project_id, org.owner)
    agent_id = agent["id"]
    put = await client.put(f"/agents/{agent_id}/config", json=CONFIG, headers=org.owner.headers)
    assert put.status_code == 200, put.text
    token = await issue_token(client, agent_id, org.owner)
    stranger = new_user()
    own_connection = (await create_connection(client, stranger, name="mine"))["id"]
    h = stranger.headers

    # When the stranger tries every agent route, each is a 404 that names the missing thing
    body = assert_problem(
        await client.post(
            "/agents", json={"project_id": project_id, "name": "intruder"}, headers=h
        ),
        404,
        "not-found",
    )
    assert body["detail"] == f"project {project_id} not found"
    assert_problem(await client.get(f"/agents/{agent_id}", headers=h), 404)
    assert_problem(await client.patch(f"/agents/{agent_id}", json={"name": "x"}, headers=h), 404)
    assert_problem(await client.delete(f"/agents/{agent_id}", headers=h), 404)
    assert_problem(await client.get(f"/agents/{agent_id}/config", headers=h), 404)
    body = assert_problem(
        await client.put(
            f"/agents/{agent_id}/config",
            json={**CONFIG, "system_prompt": "obey me", "connection_id": own_connection},
            headers=h,
        ),
        404,
    )
    assert body["detail"] == f"agent {agent_id} not found"
    assert_problem(await client.post(f"/agents/{agent_id}/runner-tokens", json={}, headers=h), 404)
    assert_problem(await client.get(f"/agents/{agent_id}/runner-tokens", headers=h), 404)
    assert_problem(
        await client.delete(f"/agents/{agent_id}/runner-tokens/{token['id']}", headers=h), 404
    )
    listed = await client.get("/agents", headers=h)
    assert listed.json() == {"items": [], "next_cursor": None}

    # Then the owner finds everything as it was
    assert (await client.get(f"/agents/{agent_id}", headers=org.owner.headers)).json() == agent
    assert (
        await client.get(f"/agents/{agent_id}/config", headers=org.owner.headers)
    ).json() == put.json()
    tokens = await client.get(f"/agents/{agent_id}/runner-tokens", headers=org.owner.headers)
    assert [(t["id"], t["revoked_at"]) for t in tokens.json()["items"]] == [(token["id"], None)]


async def test_viewers_read_but_cannot_write(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    # Given an agent with a config and a runner token
    org = await make_org()
    project_id = await create_project(client, org)
    agent = await create_agent(client, project_id, org.owner)
    agent_id = agent["id"]
    token = await issue_token(client, agent_id, org.owner)
    config = (await client.get(f"/agents/{agent_id}/config", headers=org.owner.headers)).json()
    h = org.viewer.headers

    # When a viewer writes, or reads runner tokens, the answer is 403
    assert_problem(
        await client.post("/agents", json={"project_id": project_id, "name": "v"}, headers=h),
        403,
        "forbidden",
    )
    assert_problem(await client.patch(f"/agents/{agent_id}", json={"name": "x"}, headers=h), 403)
    assert_problem(await client.delete(f"/agents/{agent_id}", headers=h), 403)
    assert_problem(await client.put(f"/agents/{agent_id}/config", json=CONFIG, headers=h), 403)
    assert_problem(await client.post(f"/agents/{agent_id}/runner-tokens", json={}, headers=h), 403)
    assert_problem(await client.get(f"/agents/{agent_id}/runner-tokens", headers=h), 403)
    assert_problem(
        await client.delete(f"/agents/{agent_id}/runner-tokens/{token['id']}", headers=h), 403
    )

    # Then they still read the agent and its config, and nothing changed
    assert (await client.get(f"/agents/{agent_id}", headers=h)).json() == agent
    assert (await client.get(f"/agents/{agent_id}/config", headers=h)).json() == config
    agents, _ = await collect_pages(client, "/agents", org.owner.headers, limit=50)
    assert [a["id"] for a in agents] == [agent_id]
    tokens = await client.get(f"/agents/{agent_id}/runner-tokens", headers=org.owner.headers)
    assert [(t["id"], t["revoked_at"]) for t in tokens.json()["items"]] == [(token["id"], None)]


async def test_bad_agent_input_names_the_field_and_the_rule(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    project_id = await create_project(client, org)
    h = org.owner.headers

    body = assert_problem(
        await client.post(
            "/agents",
            json={"project_id": project_id, "name": "a", "organization_id": str(uuid.uuid4())},
            headers=h,
        ),
        422,
        "validation",
    )
    assert field_rules(body) == [("organization_id", "extra_forbidden")]
    body = assert_problem(
        await client.post(
            "/agents", json={"project_id": project_id, "name": " ", "status": "gone"}, headers=h
        ),
        422,
    )
    assert sorted(field_rules(body)) == [("name", "string_too_short"), ("status", "literal_error")]
    body = assert_problem(await client.post("/agents", json={"name": "a"}, headers=h), 422)
    assert field_rules(body) == [("project_id", "missing")]
    body = assert_problem(
        await client.post(
            "/agents", json={"project_id": str(uuid.uuid4()), "name": "a"}, headers=h
        ),
        404,
    )
    assert body["detail"].startswith("project ")

    agent_id = (await create_agent(client, project_id, org.owner))["id"]
    for patch, expected in (
        ({"status": "deleted"}, [("status", "literal_error")]),
        ({"created_by": str(org.member.id)}, [("created_by", "extra_forbidden")]),
        ({"description": "x" * 4001}, [("description", "string_too_long")]),
    ):
        body = assert_problem(await client.patch(f"/agents/{agent_id}", json=patch, headers=h), 422)
        assert field_rules(body) == expected
    assert_problem(await client.get("/agents/not-a-uuid", headers=h), 422)
    body = assert_problem(await client.get("/agents?project_id=nope", headers=h), 422)
    assert field_rules(body)[0][0] == "project_id"
    assert (await client.get(f"/agents/{agent_id}", headers=h)).json()["status"] == "active"


# --- config ---------------------------------------------------------------------------


async def test_config_is_replaced_whole_and_read_back(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    # Given an agent with its default config, and a connection of the member's own
    org = await make_org()
    agent_id = (await create_agent(client, await create_project(client, org), org.owner))["id"]
    before = (await client.get(f"/agents/{agent_id}/config", headers=org.member.headers)).json()
    connection_id = (await create_connection(client, org.member, name="mine"))["id"]

    # When a member replaces the config
    resp = await client.put(
        f"/agents/{agent_id}/config",
        json={**CONFIG, "connection_id": connection_id},
        headers=org.member.headers,
    )

    # Then every field is the new one, and a viewer reads the same
    assert resp.status_code == 200, resp.text
    config = resp.json()
    assert config | {"updated_at": None} == {
        **CONFIG,
        "connection_id": connection_id,
        "agent_id": agent_id,
        "created_at": before["created_at"],
        "updated_at": None,
    }
    assert config["updated_at"] > before["updated_at"]
    assert (await client.get(f"/agents/{agent_id}/config", headers=org.viewer.headers)).json() == (
        config
    )
    # A PUT is the whole document: a missing field is a 422, not a silent reset.
    partial = {k: v for k, v in CONFIG.items() if k not in ("system_prompt", "connection_id")}
    body = assert_problem(
        await client.put(f"/agents/{agent_id}/config", json=partial, headers=org.member.headers),
        422,
    )
    assert sorted(field_rules(body)) == [("connection_id", "missing"), ("system_prompt", "missing")]
    # Temperature is stored with two decimals; the limits are inclusive.
    for sent, stored in ((0, 0.0), (2, 2.0), (0.333, 0.33)):
        resp = await client.put(
            f"/agents/{agent_id}/config",
            json={**CONFIG, "temperature": sent},
            headers=org.member.headers,
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["temperature"] == stored
    # An unknown agent has no config to read or replace.
    unknown = uuid.uuid4()
    for resp in (
        await client.get(f"/agents/{unknown}/config", headers=org.owner.headers),
        await client.put(f"/agents/{unknown}/config", json=CONFIG, headers=org.owner.headers),
    ):
        assert assert_problem(resp, 404)["detail"] == f"agent {unknown} not found"


async def test_bad_config_names_the_field_and_changes_nothing(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = (await create_agent(client, await create_project(client, org), org.owner))["id"]
    path = f"/agents/{agent_id}/config"
    before = (await client.get(path, headers=org.owner.headers)).json()

    cases: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
        ({"temperature": 3}, [("temperature", "less_than_equal")]),
        ({"temperature": -0.1}, [("temperature", "greater_than_equal")]),
        (
            {"allowed_tools": ["read_file", "Bad-Tool"]},
            [("allowed_tools.1", "string_pattern_mismatch")],
        ),
        ({"allowed_tools": ["9lives"]}, [("allowed_tools.0", "string_pattern_mismatch")]),
        ({"allowed_tools": ["t" + "x" * 64]}, [("allowed_tools.0", "string_pattern_mismatch")]),
        ({"allowed_tools": [f"tool_{i}" for i in range(65)]}, [("allowed_tools", "too_long")]),
        (
            {"allowed_tools": ["read_file", "http_get", "read_file"]},
            [("allowed_tools", "value_error")],
        ),
        # Only tools of the catalog (GET /tools): one no runner has is refused by name.
        ({"allowed_tools": ["read_file", "rm_rf"]}, [("allowed_tools.1", "known_tool")]),
        (
            {"allowed_tools": ["http_get", "noop", "sudo"]},
            [("allowed_tools.1", "known_tool"), ("allowed_tools.2", "known_tool")],
        ),
        ({"model": "m" * 201}, [("model", "string_too_long")]),
        ({"connection_id": "not-a-uuid"}, [("connection_id", "uuid_parsing")]),
        ({"agent_id": str(uuid.uuid4())}, [("agent_id", "extra_forbidden")]),
    ]
    for change, expected in cases:
        body = assert_problem(
            await client.put(path, json={**CONFIG, **change}, headers=org.owner.headers), 422
        )
        assert field_rules(body) == expected, change
    # Every tool of the catalog at once is fine.
    at_limit = list(TOOL_NAMES)
    ok = await client.put(
        path, json={**CONFIG, "allowed_tools": at_limit}, headers=org.owner.headers
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["allowed_tools"] == at_limit
    assert ok.json()["created_at"] == before["created_at"]


async def test_config_connection_must_be_the_callers_own(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    new_user: NewUser,
) -> None:
    # Given two agents, the owner's own connection, and an outsider's connection
    org = await make_org()
    project_id = await create_project(client, org)
    agent_id = (await create_agent(client, project_id, org.owner, "one"))["id"]
    other_agent_id = (await create_agent(client, project_id, org.owner, "two"))["id"]
    owners = (await create_connection(client, org.owner, name="owner's"))["id"]
    outsiders = (await create_connection(client, new_user(), name="outsider's"))["id"]
    path = f"/agents/{agent_id}/config"
    before = (await client.get(path, headers=org.owner.headers)).json()

    # When the owner attaches someone else's connection, it does not exist for them
    resp = await client.put(
        path, json={**CONFIG, "connection_id": outsiders}, headers=org.owner.headers
    )
    assert assert_problem(resp, 404, "not-found")["detail"] == f"connection {outsiders} not found"
    assert (await client.get(path, headers=org.owner.headers)).json() == before
    # When the owner attaches their own, it is set
    resp = await client.put(
        path, json={**CONFIG, "connection_id": owners}, headers=org.owner.headers
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["connection_id"] == owners

    # Then a member may edit that config and keep the owner's connection on it...
    resp = await client.put(
        path,
        json={**CONFIG, "system_prompt": "Be thorough.", "connection_id": owners},
        headers=org.member.headers,
    )
    assert resp.status_code == 200, resp.text
    assert (resp.json()["system_prompt"], resp.json()["connection_id"]) == ("Be thorough.", owners)
    # ...but may not put the owner's connection on another agent
    other_path = f"/agents/{other_agent_id}/config"
    other_before = (await client.get(other_path, headers=org.member.headers)).json()
    resp = await client.put(
        other_path, json={**CONFIG, "connection_id": owners}, headers=org.member.headers
    )
    assert assert_problem(resp, 404)["detail"] == f"connection {owners} not found"
    assert (await client.get(other_path, headers=org.owner.headers)).json() == other_before


async def test_an_agent_without_a_config_row_gets_one_on_put(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    # Given an agent whose config row is missing (as for an agent made outside the API)
    org = await make_org()
    agent_id = (await create_agent(client, await create_project(client, org), org.owner))["id"]
    async with database.transaction(Caller.user({"sub": str(org.owner.id)})) as tx:
        cur = await tx.execute("delete from public.agent_configs where agent_id = %s", (agent_id,))
        assert cur.rowcount == 1
    path = f"/agents/{agent_id}/config"

    # When it is read, the 404 says the agent is there but its config is not
    body = assert_problem(await client.get(path, headers=org.viewer.headers), 404)
    assert body["detail"] == f"agent {agent_id} has no config yet"
    # When a viewer PUTs one, RLS refuses; when a member does, the row is created
    assert_problem(await client.put(path, json=CONFIG, headers=org.viewer.headers), 403)
    resp = await client.put(path, json=CONFIG, headers=org.member.headers)

    # Then it reads back
    assert resp.status_code == 200, resp.text
    assert (await client.get(path, headers=org.viewer.headers)).json() == resp.json()


# --- runner tokens --------------------------------------------------------------------


async def test_runner_token_is_shown_once_and_stored_as_a_hash(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    org = await make_org()
    agent_id = (await create_agent(client, await create_project(client, org), org.owner))["id"]

    # When a member issues a token with a lifetime
    resp = await client.post(
        f"/agents/{agent_id}/runner-tokens",
        json={"name": "laptop", "expires_in_seconds": 3600},
        headers=org.member.headers,
    )

    # Then the response carries the token, once, and is not to be cached
    assert resp.status_code == 201, resp.text
    created = resp.json()
    token = created["token"]
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert token.startswith("aprt_")
    assert len(token) == len("aprt_") + 43
    assert resp.text.count(token) == 1
    assert digest not in resp.text
    assert resp.headers["cache-control"] == "no-store"
    assert created["token_prefix"] == token[:12]
    assert created["name"] == "laptop"
    assert created["agent_id"] == agent_id
    lifetime = datetime.fromisoformat(created["expires_at"]) - datetime.fromisoformat(
        created["created_at"]
    )
    assert lifetime.total_seconds() == 3600
    # And the database holds its SHA-256, never the token
    async with database.transaction(Caller.user({"sub": str(org.owner.id)})) as tx:
        cur = await tx.execute(
            "select token_hash, token_prefix from public.agent_runner_tokens where id = %s",
            (created["id"],),
        )
        assert await cur.fetchone() == (digest, token[:12])

    # And listing it shows neither the token nor its hash
    listed = await client.get(f"/agents/{agent_id}/runner-tokens", headers=org.owner.headers)
    assert listed.status_code == 200, listed.text
    assert token not in listed.text
    assert digest not in listed.text
    assert listed.json()["items"] == [
        {
            "id": created["id"],
            "agent_id": agent_id,
            "name": "laptop",
            "token_prefix": token[:12],
            "created_by": str(org.member.id),
            "created_at": created["created_at"],
            "expires_at": created["expires_at"],
            "last_used_at": None,
            "revoked_at": None,
        }
    ]
    # A token without a lifetime gets the default one.
    default = await client.post(
        f"/agents/{agent_id}/runner-tokens", json={}, headers=org.member.headers
    )
    assert default.json()["name"] == ""
    assert _lifetime(default.json()) == timedelta(days=90)
    assert default.json()["token"] != token


async def test_runner_tokens_paginate_per_agent_without_secrets(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    # Given five tokens on one agent and one on another
    org = await make_org()
    project_id = await create_project(client, org)
    agent_id = (await create_agent(client, project_id, org.owner, "one"))["id"]
    other_id = (await create_agent(client, project_id, org.owner, "two"))["id"]
    issued = [await issue_token(client, agent_id, org.member) for _ in range(5)]
    await issue_token(client, other_id, org.member)

    # When the agent's tokens are paged through two at a time
    items, pages = await collect_pages(
        client, f"/agents/{agent_id}/runner-tokens", org.admin.headers, limit=2
    )

    # Then they come in creation order, only this agent's, without token or hash
    assert [t["id"] for t in items] == [t["id"] for t in issued]
    assert pages == 3
    for item in items:
        assert "token" not in item
        assert "token_hash" not in item
    page = await client.get(
        f"/agents/{agent_id}/runner-tokens", params={"limit": 200}, headers=org.admin.headers
    )
    for created in issued:
        assert created["token"] not in page.text
        assert hashlib.sha256(created["token"].encode()).hexdigest() not in page.text


async def test_revoking_a_runner_token(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    # Given a token on each of two agents
    org = await make_org()
    project_id = await create_project(client, org)
    agent_id = (await create_agent(client, project_id, org.owner, "one"))["id"]
    other_id = (await create_agent(client, project_id, org.owner, "two"))["id"]
    token = await issue_token(client, agent_id, org.owner)
    others = await issue_token(client, other_id, org.owner)
    path = f"/agents/{agent_id}/runner-tokens"

    async def listed(agent: str) -> list[dict[str, Any]]:
        resp = await client.get(f"/agents/{agent}/runner-tokens", headers=org.owner.headers)
        items: list[dict[str, Any]] = resp.json()["items"]
        return items

    # When a member revokes it
    resp = await client.delete(f"{path}/{token['id']}", headers=org.member.headers)

    # Then it is listed as revoked
    assert resp.status_code == 204, resp.text
    [revoked] = await listed(agent_id)
    assert revoked["revoked_at"] is not None
    # Revoking again is a 204 that keeps the first revocation time (a retry is safe).
    again = await client.delete(f"{path}/{token['id']}", headers=org.owner.headers)
    assert again.status_code == 204
    assert await listed(agent_id) == [revoked]
    # A token of another agent, or no token at all, is a 404 and changes nothing.
    body = assert_problem(
        await client.delete(f"{path}/{others['id']}", headers=org.owner.headers), 404
    )
    assert body["detail"] == f"runner token {others['id']} not found"
    assert_problem(await client.delete(f"{path}/{uuid.uuid4()}", headers=org.owner.headers), 404)
    assert [t["revoked_at"] for t in await listed(other_id)] == [None]
    # Deleting the agent takes its tokens with it.
    assert (
        await client.delete(f"/agents/{agent_id}", headers=org.admin.headers)
    ).status_code == 204
    assert_problem(await client.get(path, headers=org.owner.headers), 404)


async def test_a_runner_token_needs_no_body(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    org = await make_org()
    agent_id = (await create_agent(client, await create_project(client, org), org.owner))["id"]
    resp = await client.post(f"/agents/{agent_id}/runner-tokens", headers=org.member.headers)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["name"] == ""
    assert _lifetime(created) == timedelta(days=90)
    assert created["token"].startswith("aprt_")


async def test_the_default_runner_token_lifetime_is_a_setting(
    client: httpx.AsyncClient, make_org: MakeOrg, settings: Settings, database: Database
) -> None:
    org = await make_org()
    agent_id = (await create_agent(client, await create_project(client, org), org.owner))["id"]
    week = settings.model_copy(update={"runner_token_lifetime_days": 7})
    app = build_local_app(Runtime(week, database))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as other:
        resp = await other.post(f"/agents/{agent_id}/runner-tokens", headers=org.member.headers)
        assert resp.status_code == 201, resp.text
        assert _lifetime(resp.json()) == timedelta(days=7)
        # A lifetime in the body still wins over the default
        hour = await other.post(
            f"/agents/{agent_id}/runner-tokens",
            json={"expires_in_seconds": 3600},
            headers=org.member.headers,
        )
        assert _lifetime(hour.json()) == timedelta(hours=1)


async def test_a_members_runner_tokens_are_revoked_when_they_leave_the_organization(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    # Given runners on tokens the owner, an admin and a member issued
    org = await make_org()
    agent_id = (await create_agent(client, await create_project(client, org), org.owner))["id"]
    by_owner = await runner_for(client, agent_id, org.owner)
    by_admin = await runner_for(client, agent_id, org.admin)
    by_member = await runner_for(client, agent_id, org.member)
    for runner in (by_owner, by_admin, by_member):
        await runner.register()

    # When an admin removes the member, the member's token stops working at once
    removed = await client.delete(
        f"/organizations/{org.id}/members/{org.member.id}", headers=org.admin.headers
    )
    assert removed.status_code == 204, removed.text
    assert_problem(await client.post("/runner/sessions", json={}, headers=by_member.headers), 401)
    await by_owner.register()
    await by_admin.register()

    # And when the admin leaves on their own, theirs stops too; the owner's still works
    left = await client.delete(
        f"/organizations/{org.id}/members/{org.admin.id}", headers=org.admin.headers
    )
    assert left.status_code == 204, left.text
    assert_problem(await client.post("/runner/sessions", json={}, headers=by_admin.headers), 401)
    await by_owner.register()

    # And the list says when each was revoked
    listed = await client.get(f"/agents/{agent_id}/runner-tokens", headers=org.owner.headers)
    revoked = {t["id"]: t["revoked_at"] is not None for t in listed.json()["items"]}
    assert revoked == {by_owner.token_id: False, by_admin.token_id: True, by_member.token_id: True}


async def test_a_member_cannot_hand_a_runner_token_to_someone_who_stays(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    org = await make_org()
    agent_id = (await create_agent(client, await create_project(client, org), org.owner))["id"]
    token = await issue_token(client, agent_id, org.member)
    member = Caller.user({"sub": str(org.member.id)})
    # Not by changing who issued a token
    with pytest.raises(ForbiddenError):
        async with database.transaction(member) as tx:
            await tx.execute(
                "update public.agent_runner_tokens set created_by = %s where id = %s",
                (org.owner.id, token["id"]),
            )
    # Nor by issuing one in someone else's name
    with pytest.raises(ForbiddenError):
        async with database.transaction(member) as tx:
            await tx.execute(
                "insert into public.agent_runner_tokens"
                " (organization_id, agent_id, token_hash, token_prefix, created_by)"
                " values (%s, %s, repeat('a', 64), 'aprt', %s)",
                (org.id, agent_id, org.owner.id),
            )


async def test_a_deleted_users_runner_tokens_are_revoked(
    client: httpx.AsyncClient, make_org: MakeOrg, fresh_db: ProvisionedDatabase
) -> None:
    org = await make_org()
    agent_id = (await create_agent(client, await create_project(client, org), org.owner))["id"]
    by_owner = await runner_for(client, agent_id, org.owner)
    by_member = await runner_for(client, agent_id, org.member)
    # When the member's user is deleted (their memberships go with it, by cascade)
    with psycopg.connect(fresh_db.admin_url) as conn:
        conn.execute("delete from auth.users where id = %s", (org.member.id,))
    assert_problem(await client.post("/runner/sessions", json={}, headers=by_member.headers), 401)
    await by_owner.register()


async def test_bad_runner_token_input_names_the_field(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = (await create_agent(client, await create_project(client, org), org.owner))["id"]
    path = f"/agents/{agent_id}/runner-tokens"
    for body, expected in (
        ({"expires_in_seconds": 0}, [("expires_in_seconds", "greater_than_equal")]),
        ({"expires_in_seconds": 10**9}, [("expires_in_seconds", "less_than_equal")]),
        ({"name": "n" * 201}, [("name", "string_too_long")]),
        ({"token": "aprt_mine"}, [("token", "extra_forbidden")]),
        ({"token_hash": "0" * 64}, [("token_hash", "extra_forbidden")]),
    ):
        problem = assert_problem(await client.post(path, json=body, headers=org.owner.headers), 422)
        assert field_rules(problem) == expected
    assert_problem(await client.delete(f"{path}/nope", headers=org.owner.headers), 422)
    assert (await client.get(path, headers=org.owner.headers)).json()["items"] == []
