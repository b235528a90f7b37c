"""/conversations and their messages: CRUD, filters, references, order, other users."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.support.api import Org, User, assert_problem, at, collect_pages
from tests.support.builders import create_connection


async def create_conversation(client: httpx.AsyncClient, user: User, **fields: Any) -> Any:
    """Create a conversation through the API and return its JSON."""
    resp = await client.post("/conversations", json=fields, headers=user.headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def post_message(
    client: httpx.AsyncClient, user: User, conversation_id: str, **fields: Any
) -> httpx.Response:
    """POST a message (role user unless given) and return the response."""
    body = {"role": "user", "content": "hello", **fields}
    return await client.post(
        f"/conversations/{conversation_id}/messages", json=body, headers=user.headers
    )


async def test_create_read_update_delete(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    connection = await create_connection(client, user)
    # Given a conversation on one of the user's connections
    conversation = await create_conversation(
        client, user, title="  Planning  ", agent_connection_id=connection["id"]
    )
    assert conversation["title"] == "Planning"
    assert conversation["user_id"] == str(user.id)
    assert conversation["agent_connection_id"] == connection["id"]
    assert conversation["archived"] is False
    assert conversation["last_message_at"] is None
    path = f"/conversations/{conversation['id']}"
    # When they read it, they get the same row
    assert (await client.get(path, headers=user.headers)).json() == conversation
    # When they archive it and detach the connection, only those change
    patched = await client.patch(
        path, json={"archived": True, "agent_connection_id": None}, headers=user.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["archived"] is True
    assert patched.json()["agent_connection_id"] is None
    assert patched.json()["title"] == "Planning"
    assert at(patched.json()["updated_at"]) > at(conversation["updated_at"])
    # Then deleting it takes its messages with it
    assert (await post_message(client, user, conversation["id"])).status_code == 201
    assert (await client.delete(path, headers=user.headers)).status_code == 204
    assert_problem(await client.get(path, headers=user.headers), 404, "not-found")
    assert_problem(await client.get(f"{path}/messages", headers=user.headers), 404)


async def test_list_paginates_and_filters(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    # Given seven conversations, three on a connection and two archived, and another user's
    user, other = new_user(), new_user()
    connection = await create_connection(client, user)
    created = []
    for i in range(7):
        fields: dict[str, Any] = {"title": f"c{i}", "archived": i in (1, 2)}
        if i % 2 == 0 and i < 6:
            fields["agent_connection_id"] = connection["id"]
        created.append(await create_conversation(client, user, **fields))
    await create_conversation(client, other, title="elsewhere")

    # When the user lists them three at a time
    items, pages = await collect_pages(client, "/conversations", user.headers, limit=3)

    # Then they get exactly their own, in creation order, over three pages
    assert [i["id"] for i in items] == [c["id"] for c in created]
    assert pages == 3
    on_connection, _ = await collect_pages(
        client, "/conversations", user.headers, limit=2, agent_connection_id=connection["id"]
    )
    assert [i["title"] for i in on_connection] == ["c0", "c2", "c4"]
    archived, _ = await collect_pages(
        client, "/conversations", user.headers, limit=50, archived="true"
    )
    assert [i["title"] for i in archived] == ["c1", "c2"]
    active, _ = await collect_pages(
        client, "/conversations", user.headers, limit=50, archived="false"
    )
    assert len(active) == 5
    no_agent, _ = await collect_pages(
        client, "/conversations", user.headers, limit=50, agent_id=str(uuid.uuid4())
    )
    assert no_agent == []


async def test_references_the_caller_cannot_see_are_404_by_name(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user, other = new_user(), new_user()
    theirs = await create_connection(client, other)
    unknown_agent = str(uuid.uuid4())

    # Creating on another user's connection, or with an agent the user cannot see
    body = assert_problem(
        await client.post(
            "/conversations", json={"agent_connection_id": theirs["id"]}, headers=user.headers
        ),
        404,
        "not-found",
    )
    assert body["detail"] == f"connection {theirs['id']} not found"
    body = assert_problem(
        await client.post("/conversations", json={"agent_id": unknown_agent}, headers=user.headers),
        404,
    )
    assert body["detail"] == f"agent {unknown_agent} not found"
    assert (await client.get("/conversations", headers=user.headers)).json()["items"] == []

    # Moving an existing conversation onto them is refused the same way, changing nothing
    mine = await create_conversation(client, user, title="mine")
    for patch in ({"agent_connection_id": theirs["id"]}, {"agent_id": unknown_agent}):
        assert_problem(
            await client.patch(f"/conversations/{mine['id']}", json=patch, headers=user.headers),
            404,
        )
    assert (await client.get(f"/conversations/{mine['id']}", headers=user.headers)).json() == mine


async def test_an_agent_of_the_callers_organization_can_join_a_conversation(
    client: httpx.AsyncClient,
    make_org: Callable[..., Awaitable[Org]],
    new_user: Callable[[], User],
) -> None:
    # Given an agent in an organization where the user is a viewer, and an outsider
    org = await make_org()
    project = await client.post(
        "/projects", json={"organization_id": str(org.id), "name": "p"}, headers=org.owner.headers
    )
    agent = await client.post(
        "/agents",
        json={"project_id": project.json()["id"], "name": "scout"},
        headers=org.owner.headers,
    )
    assert agent.status_code == 201, agent.text
    agent_id = agent.json()["id"]
    outsider = new_user()

    # When the viewer talks to the agent, the conversation is theirs and lists by agent
    conversation = await create_conversation(client, org.viewer, agent_id=agent_id)
    await create_conversation(client, org.viewer)
    by_agent, _ = await collect_pages(
        client, "/conversations", org.viewer.headers, limit=50, agent_id=agent_id
    )
    assert [c["id"] for c in by_agent] == [conversation["id"]]

    # Then the outsider cannot name that agent, on create or on update
    body = assert_problem(
        await client.post("/conversations", json={"agent_id": agent_id}, headers=outsider.headers),
        404,
    )
    assert body["detail"] == f"agent {agent_id} not found"
    theirs = await create_conversation(client, outsider)
    assert_problem(
        await client.patch(
            f"/conversations/{theirs['id']}", json={"agent_id": agent_id}, headers=outsider.headers
        ),
        404,
    )
    items, _ = await collect_pages(client, "/conversations", outsider.headers, limit=50)
    assert items == [theirs]


async def test_other_users_get_404_and_change_nothing(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    owner, stranger = new_user(), new_user()
    conversation = await create_conversation(client, owner, title="private")
    path = f"/conversations/{conversation['id']}"

    assert_problem(await client.get(path, headers=stranger.headers), 404, "not-found")
    assert_problem(
        await client.patch(path, json={"title": "hijacked"}, headers=stranger.headers), 404
    )
    assert_problem(await client.delete(path, headers=stranger.headers), 404)
    listed = await client.get("/conversations", headers=stranger.headers)
    assert listed.json() == {"items": [], "next_cursor": None}
    assert (await client.get(path, headers=owner.headers)).json() == conversation


async def test_messages_are_listed_in_order_and_set_last_message_at(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    conversation = await create_conversation(client, user)
    other_conversation = await create_conversation(client, user)
    path = f"/conversations/{conversation['id']}"
    # Given seven messages of every role, and one in another conversation
    roles = ["system", "user", "assistant", "tool", "user", "assistant", "user"]
    posted = []
    for i, role in enumerate(roles):
        resp = await post_message(client, user, conversation["id"], role=role, content=f"m{i}")
        assert resp.status_code == 201, resp.text
        posted.append(resp.json())
    assert (await post_message(client, user, other_conversation["id"])).status_code == 201

    # When the user reads the conversation three messages at a time
    items, pages = await collect_pages(client, f"{path}/messages", user.headers, limit=3)

    # Then every message of this conversation comes back, oldest first, over three pages
    assert items == posted
    assert [m["content"] for m in items] == [f"m{i}" for i in range(7)]
    assert pages == 3
    stamps = [at(m["created_at"]) for m in items]
    assert stamps == sorted(stamps)
    # And the conversation's last_message_at is the newest message's time
    after = (await client.get(path, headers=user.headers)).json()
    assert after["last_message_at"] == posted[-1]["created_at"]
    assert at(after["updated_at"]) > at(conversation["updated_at"])


async def test_message_fields_round_trip(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    conversation = await create_conversation(client, user)
    tool_calls = [{"id": "call_1", "name": "read_file", "args": {"path": "notes.txt"}}]
    resp = await post_message(
        client,
        user,
        conversation["id"],
        role="assistant",
        content="",
        tool_calls=tool_calls,
        metadata={"tokens": 12},
    )
    assert resp.status_code == 201, resp.text
    message = resp.json()
    assert message["conversation_id"] == conversation["id"]
    assert message["user_id"] == str(user.id)
    assert message["tool_calls"] == tool_calls
    assert message["metadata"] == {"tokens": 12}
    plain = (await post_message(client, user, conversation["id"])).json()
    assert plain["tool_calls"] is None
    assert plain["metadata"] == {}


async def test_messages_of_another_users_conversation_are_404_and_not_written(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    owner, stranger = new_user(), new_user()
    conversation = await create_conversation(client, owner)
    path = f"/conversations/{conversation['id']}/messages"
    # Given the owner's conversation has one message
    first = (await post_message(client, owner, conversation["id"])).json()
    before = (
        await client.get(f"/conversations/{conversation['id']}", headers=owner.headers)
    ).json()

    # When a stranger posts into it, or reads it
    body = assert_problem(
        await post_message(client, stranger, conversation["id"], content="injected"), 404
    )
    assert body["detail"] == f"conversation {conversation['id']} not found"
    assert_problem(await client.get(path, headers=stranger.headers), 404)
    unknown = uuid.uuid4()
    assert_problem(await post_message(client, owner, str(unknown)), 404)

    # Then the owner still sees one message and an unchanged conversation
    items, _ = await collect_pages(client, path, owner.headers, limit=50)
    assert items == [first]
    after = (await client.get(f"/conversations/{conversation['id']}", headers=owner.headers)).json()
    assert after == before


async def test_bad_input_names_the_field_and_the_rule(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    conversation = await create_conversation(client, user)
    cases: list[tuple[dict[str, Any], tuple[str, str]]] = [
        ({"role": "robot", "content": "x"}, ("role", "literal_error")),
        ({"role": "user"}, ("content", "missing")),
        ({"role": "user", "content": "x", "tool_calls": {"a": 1}}, ("tool_calls", "list_type")),
        ({"role": "user", "content": "x", "metadata": [1]}, ("metadata", "dict_type")),
        (
            {"role": "user", "content": "x", "conversation_id": "x"},
            ("conversation_id", "extra_forbidden"),
        ),
    ]
    for payload, expected in cases:
        resp = await client.post(
            f"/conversations/{conversation['id']}/messages", json=payload, headers=user.headers
        )
        body = assert_problem(resp, 422, "validation")
        assert [(e["field"], e["rule"]) for e in body["errors"]] == [expected], payload

    body = assert_problem(
        await client.post(
            "/conversations", json={"user_id": str(uuid.uuid4())}, headers=user.headers
        ),
        422,
    )
    assert [(e["field"], e["rule"]) for e in body["errors"]] == [("user_id", "extra_forbidden")]
    body = assert_problem(
        await client.post("/conversations", json={"title": "x" * 501}, headers=user.headers), 422
    )
    assert [(e["field"], e["rule"]) for e in body["errors"]] == [("title", "string_too_long")]
    body = assert_problem(
        await client.get("/conversations?archived=maybe", headers=user.headers), 422
    )
    assert body["errors"][0]["field"] == "archived"
    # Python's JSON parser accepts NaN and Infinity; jsonb does not, so neither do we
    body = assert_problem(
        await client.post(
            f"/conversations/{conversation['id']}/messages",
            content=b'{"role": "tool", "content": "", "tool_calls": [{"cost": Infinity}]}',
            headers={**user.headers, "content-type": "application/json"},
        ),
        422,
    )
    assert [e["rule"] for e in body["errors"]] == ["finite_number"]
    assert body["errors"][0]["field"].startswith("tool_calls.0.cost")
