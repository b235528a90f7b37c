"""/connections: CRUD, pagination, the provider filter, base_url rules, other users."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.api import User, assert_problem, at, collect_pages, field_rules
from tests.support.builders import create_connection

OPENROUTER = {"name": "Router", "provider": "openrouter", "model": "gpt-4o"}
CUSTOM = {
    "name": "Local",
    "provider": "custom",
    "base_url": "http://localhost:8080/v1",
    "model": "llama",
}


async def test_create_read_update_delete(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    # Given a user creates a connection (user_id comes from the token, status defaults)
    connection = await create_connection(client, user, name="  Router  ")
    assert connection["name"] == "Router"
    assert connection["user_id"] == str(user.id)
    assert connection["status"] == "offline"
    # A named provider without a base_url gets its public endpoint
    assert connection["base_url"] == "https://openrouter.ai/api/v1"
    # When they read it, they get the same row
    got = await client.get(f"/connections/{connection['id']}", headers=user.headers)
    assert got.json() == connection
    # When they change the model and status, only those change and updated_at moves
    patched = await client.patch(
        f"/connections/{connection['id']}",
        json={"model": "claude", "status": "online"},
        headers=user.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["model"] == "claude"
    assert patched.json()["status"] == "online"
    assert patched.json()["name"] == "Router"
    assert at(patched.json()["updated_at"]) > at(connection["updated_at"])
    # Then they delete it, and it is gone
    deleted = await client.delete(f"/connections/{connection['id']}", headers=user.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/connections/{connection['id']}", headers=user.headers)
    assert_problem(gone, 404, "not-found")


async def test_list_paginates_and_filters_by_provider(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    # Given seven connections of one user, two of them custom, and one of another user
    user, other = new_user(), new_user()
    created = []
    for i in range(7):
        fields = CUSTOM if i % 3 == 0 else OPENROUTER
        created.append(await create_connection(client, user, **{**fields, "name": f"c{i}"}))
    await create_connection(client, other, name="elsewhere")

    # When the user lists them three at a time
    items, pages = await collect_pages(client, "/connections", user.headers, limit=3)

    # Then they get exactly their own, in creation order, over three pages
    assert [i["id"] for i in items] == [c["id"] for c in created]
    assert pages == 3
    customs, _ = await collect_pages(
        client, "/connections", user.headers, limit=2, provider="custom"
    )
    assert [i["id"] for i in customs] == [c["id"] for c in created if c["provider"] == "custom"]


async def test_other_users_get_404_and_change_nothing(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    owner, stranger = new_user(), new_user()
    connection = await create_connection(client, owner)
    path = f"/connections/{connection['id']}"

    assert_problem(await client.get(path, headers=stranger.headers), 404, "not-found")
    assert_problem(
        await client.patch(path, json={"name": "hijacked"}, headers=stranger.headers), 404
    )
    assert_problem(await client.delete(path, headers=stranger.headers), 404)
    listed = await client.get("/connections", headers=stranger.headers)
    assert listed.json() == {"items": [], "next_cursor": None}
    still = await client.get(path, headers=owner.headers)
    assert still.json() == connection


async def test_custom_provider_needs_a_base_url(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    # A custom connection without a URL is refused before the database, with a clear message
    body = assert_problem(
        await client.post(
            "/connections",
            json={"name": "n", "provider": "custom", "model": "m"},
            headers=user.headers,
        ),
        422,
        "validation",
    )
    assert field_rules(body) == [("base_url", "required_for_custom")]
    assert "required when provider is 'custom'" in body["errors"][0]["message"]

    custom = await create_connection(client, user, **CUSTOM)
    assert custom["base_url"] == CUSTOM["base_url"]
    other = await create_connection(client, user)
    # No connection loses its URL, custom or not, and nothing changes
    for connection in (custom, other):
        body = assert_problem(
            await client.patch(
                f"/connections/{connection['id']}", json={"base_url": None}, headers=user.headers
            ),
            422,
        )
        assert field_rules(body) == [("base_url", "required")]
        path = f"/connections/{connection['id']}"
        assert (await client.get(path, headers=user.headers)).json() == connection
    # Turning a named provider's connection custom keeps the URL it has
    moved = await client.patch(
        f"/connections/{other['id']}", json={"provider": "custom"}, headers=user.headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["base_url"] == other["base_url"]


async def test_bad_input_names_the_field_and_the_rule(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    cases: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
        ({**OPENROUTER, "provider": "x"}, [("provider", "literal_error")]),
        ({**OPENROUTER, "base_url": "ftp://files"}, [("base_url", "http_url")]),
        ({**OPENROUTER, "base_url": "http://a b"}, [("base_url", "http_url")]),
        ({**OPENROUTER, "status": "broken"}, [("status", "literal_error")]),
        ({**OPENROUTER, "name": " "}, [("name", "string_too_short")]),
        ({**OPENROUTER, "user_id": str(uuid.uuid4())}, [("user_id", "extra_forbidden")]),
        ({"name": "n", "provider": "nous"}, [("model", "missing")]),
    ]
    for payload, expected in cases:
        resp = await client.post("/connections", json=payload, headers=user.headers)
        assert field_rules(assert_problem(resp, 422, "validation")) == expected, payload

    body = assert_problem(await client.get("/connections?provider=x", headers=user.headers), 422)
    assert body["errors"][0]["field"] == "provider"
    assert body["errors"][0]["in"] == "query"
    # A null for a required column is refused by the table, still naming the field
    connection = await create_connection(client, user)
    body = assert_problem(
        await client.patch(
            f"/connections/{connection['id']}", json={"name": None}, headers=user.headers
        ),
        422,
    )
    assert field_rules(body) == [("name", "required")]
    listed = await client.get("/connections", headers=user.headers)
    assert listed.json()["items"] == [connection]
