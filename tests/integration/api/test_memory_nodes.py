"""/memory-nodes: CRUD, recall on read, filters, the parent tree, other users."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.api import User, assert_problem, at, collect_pages
from tests.support.builders import create_connection


async def create_node(client: httpx.AsyncClient, user: User, **fields: Any) -> Any:
    """Create a memory node through the API and return its JSON."""
    resp = await client.post(
        "/memory-nodes", json={"label": "a fact", **fields}, headers=user.headers
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def without_decay(node: dict[str, Any]) -> dict[str, Any]:
    """A node's fields but the one that moves with the clock."""
    return {k: v for k, v in node.items() if k != "decayed_strength"}


async def test_create_read_update_delete(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    # Given a node with defaults and metadata
    node = await create_node(client, user, label="  Likes tea  ", metadata={"source": "chat"})
    assert node["label"] == "Likes tea"
    assert node["user_id"] == str(user.id)
    # The seed's defaults: strength 0.5, no category, no source
    assert (node["strength"], node["category"], node["source"]) == (0.5, None, None)
    assert node["content"] == ""
    assert node["metadata"] == {"source": "chat"}
    # Made is first used: the curve starts at creation, undecayed, live
    assert node["last_used_at"] == node["created_at"]
    assert (node["stability_seconds"], node["reinforcements"]) == (604800, 0)
    assert (node["decayed_strength"], node["archived_at"]) == (0.5, None)
    path = f"/memory-nodes/{node['id']}"
    # When it is updated, only the given fields change
    patched = await client.patch(
        path,
        json={
            "category": "preference",
            "strength": 0.9,
            "source": "conversation",
            "metadata": {"source": "user"},
        },
        headers=user.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["category"] == "preference"
    assert patched.json()["strength"] == 0.9
    assert patched.json()["source"] == "conversation"
    assert patched.json()["metadata"] == {"source": "user"}
    assert patched.json()["label"] == "Likes tea"
    # An edit is no use: the curve is where it was
    assert patched.json()["last_used_at"] == node["last_used_at"]
    assert patched.json()["reinforcements"] == 0
    # Then it is deleted, and gone
    assert (await client.delete(path, headers=user.headers)).status_code == 204
    assert_problem(await client.get(path, headers=user.headers), 404, "not-found")


async def test_reading_a_node_recalls_it(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    node = await create_node(client, user)
    path = f"/memory-nodes/{node['id']}"
    # When the node is read, last_used_at is set to the time of the read, and the read
    # reinforces it: its stability grows by half
    first = (await client.get(path, headers=user.headers)).json()
    assert at(first["last_used_at"]) > at(node["created_at"])
    assert (first["reinforcements"], first["stability_seconds"]) == (1, 604800 * 1.5)
    # And each later read moves it forward
    second = (await client.get(path, headers=user.headers)).json()
    assert at(second["last_used_at"]) > at(first["last_used_at"])
    assert (second["reinforcements"], second["stability_seconds"]) == (2, 604800 * 2.25)
    # A recall is not an edit: updated_at stays where the last change left it
    assert second["updated_at"] == node["updated_at"]
    curve = ("reinforcements", "stability_seconds", "decayed_strength")
    assert {k: v for k, v in second.items() if not k.endswith("_at") and k not in curve} == {
        k: v for k, v in node.items() if not k.endswith("_at") and k not in curve
    }
    # Listing is not recall
    listed, _ = await collect_pages(client, "/memory-nodes", user.headers, limit=50)
    assert listed[0]["last_used_at"] == second["last_used_at"]


async def test_list_paginates_and_filters(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    # Given a root with three children, three facts on a connection, and another user's node
    user, other = new_user(), new_user()
    connection = await create_connection(client, user)
    root = await create_node(client, user, label="root", category="entity")
    children = [
        await create_node(client, user, label=f"child{i}", parent_id=root["id"]) for i in range(3)
    ]
    facts = [
        await create_node(
            client, user, label=f"fact{i}", category="fact", connection_id=connection["id"]
        )
        for i in range(3)
    ]
    await create_node(client, other, label="elsewhere")

    # When the user lists them three at a time
    items, pages = await collect_pages(client, "/memory-nodes", user.headers, limit=3)

    # Then they get exactly their own seven, in creation order, over three pages
    assert [i["id"] for i in items] == [n["id"] for n in [root, *children, *facts]]
    assert pages == 3
    by_parent, _ = await collect_pages(
        client, "/memory-nodes", user.headers, limit=2, parent_id=root["id"]
    )
    assert [i["id"] for i in by_parent] == [c["id"] for c in children]
    by_kind, _ = await collect_pages(
        client, "/memory-nodes", user.headers, limit=2, category="fact"
    )
    assert [i["id"] for i in by_kind] == [f["id"] for f in facts]
    by_connection, _ = await collect_pages(
        client, "/memory-nodes", user.headers, limit=50, connection_id=connection["id"]
    )
    assert [i["id"] for i in by_connection] == [f["id"] for f in facts]


async def test_other_users_get_404_change_nothing_and_recall_nothing(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    owner, stranger = new_user(), new_user()
    node = await create_node(client, owner, label="secret")
    path = f"/memory-nodes/{node['id']}"

    assert_problem(await client.get(path, headers=stranger.headers), 404, "not-found")
    assert_problem(
        await client.patch(path, json={"label": "hijacked"}, headers=stranger.headers), 404
    )
    assert_problem(await client.delete(path, headers=stranger.headers), 404)
    for query in ("", "?order=strength", "?archived=true", "?archived=true&order=strength"):
        listed = await client.get(f"/memory-nodes{query}", headers=stranger.headers)
        assert listed.json() == {"items": [], "next_cursor": None}, query
    # Nor can a stranger hang their own nodes under it or on the owner's connection
    connection = await create_connection(client, owner)
    for field, value, noun in (
        ("parent_id", node["id"], "parent memory node"),
        ("connection_id", connection["id"], "connection"),
    ):
        body = assert_problem(
            await client.post(
                "/memory-nodes", json={"label": "x", field: value}, headers=stranger.headers
            ),
            404,
        )
        assert body["detail"] == f"{noun} {value} not found"
    # The owner's list (no recall) shows the node untouched, never recalled (its decayed
    # strength is as of the listing, a moment later)
    items, _ = await collect_pages(client, "/memory-nodes", owner.headers, limit=50)
    assert [without_decay(i) for i in items] == [without_decay(node)]


async def test_a_node_cannot_become_its_own_ancestor(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    # Given a chain root <- middle <- leaf
    root = await create_node(client, user, label="root")
    middle = await create_node(client, user, label="middle", parent_id=root["id"])
    leaf = await create_node(client, user, label="leaf", parent_id=middle["id"])

    # When the root is moved under itself or under a descendant, it is refused
    for parent in (root, leaf):
        body = assert_problem(
            await client.patch(
                f"/memory-nodes/{root['id']}",
                json={"parent_id": parent["id"]},
                headers=user.headers,
            ),
            422,
        )
        assert [(e["field"], e["rule"]) for e in body["errors"]] == [("parent_id", "no_cycle")]

    # Then moving a node sideways or detaching it works
    moved = await client.patch(
        f"/memory-nodes/{leaf['id']}", json={"parent_id": root["id"]}, headers=user.headers
    )
    assert moved.json()["parent_id"] == root["id"]
    detached = await client.patch(
        f"/memory-nodes/{middle['id']}", json={"parent_id": None}, headers=user.headers
    )
    assert detached.json()["parent_id"] is None
    items, _ = await collect_pages(client, "/memory-nodes", user.headers, limit=50)
    assert [i["parent_id"] for i in items] == [None, None, root["id"]]


async def test_bad_input_names_the_field_and_the_rule(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    cases: list[tuple[dict[str, Any], tuple[str, str]]] = [
        ({"label": "x", "strength": 2}, ("strength", "less_than_equal")),
        ({"label": "x", "strength": -0.1}, ("strength", "greater_than_equal")),
        ({"label": "x", "category": "c" * 201}, ("category", "string_too_long")),
        ({"label": "x", "category": " "}, ("category", "string_too_short")),
        ({"label": "x", "source": "s" * 2001}, ("source", "string_too_long")),
        ({"label": "x", "kind": "note"}, ("kind", "extra_forbidden")),
        ({"label": " "}, ("label", "string_too_short")),
        ({"label": "x", "metadata": [1]}, ("metadata", "dict_type")),
        ({"label": "x", "user_id": str(uuid.uuid4())}, ("user_id", "extra_forbidden")),
        (
            {"label": "x", "last_used_at": "2030-01-01T00:00:00Z"},
            ("last_used_at", "extra_forbidden"),
        ),
    ]
    for payload, expected in cases:
        resp = await client.post("/memory-nodes", json=payload, headers=user.headers)
        body = assert_problem(resp, 422, "validation")
        assert [(e["field"], e["rule"]) for e in body["errors"]] == [expected], payload
    node = await create_node(client, user)
    body = assert_problem(
        await client.patch(
            f"/memory-nodes/{node['id']}", json={"strength": 2}, headers=user.headers
        ),
        422,
    )
    assert body["errors"][0]["field"] == "strength"
    long_category = "/memory-nodes?category=" + "c" * 201
    body = assert_problem(await client.get(long_category, headers=user.headers), 422)
    assert body["errors"][0]["field"] == "category"


async def test_numbers_jsonb_cannot_hold_are_422_not_500(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    headers = {**user.headers, "content-type": "application/json"}
    # Python's JSON parser accepts NaN, Infinity and 1e400; PostgreSQL's jsonb does not
    for raw, field in (
        (b'{"label": "x", "metadata": {"score": 1e400}}', "metadata.score"),
        (b'{"label": "x", "metadata": {"deep": [{"v": NaN}]}}', "metadata.deep"),
        (b'{"label": "x", "strength": NaN}', "strength"),
    ):
        body = assert_problem(await client.post("/memory-nodes", content=raw, headers=headers), 422)
        assert [e["rule"] for e in body["errors"]] == ["finite_number"], raw
        assert body["errors"][0]["field"].startswith(field), body
    assert (await client.get("/memory-nodes", headers=user.headers)).json()["items"] == []
