"""/tasks: CRUD, completed_at following done, filters, references, other users."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.api import User, assert_problem, at, collect_pages


async def create(client: httpx.AsyncClient, user: User, path: str, body: dict[str, Any]) -> Any:
    """POST `body` to `path` as `user`, expect 201, return the JSON."""
    resp = await client.post(path, json=body, headers=user.headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def create_task(client: httpx.AsyncClient, user: User, **fields: Any) -> Any:
    """Create a task through the API and return its JSON."""
    return await create(client, user, "/tasks", {"title": "Write docs", **fields})


async def set_status(client: httpx.AsyncClient, user: User, task_id: str, status: str) -> Any:
    """PATCH a task's status, expect 200, return the JSON."""
    resp = await client.patch(f"/tasks/{task_id}", json={"status": status}, headers=user.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_create_read_update_delete(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    connection = await create(
        client, user, "/connections", {"name": "c", "provider": "nous", "model": "m"}
    )
    conversation = await create(client, user, "/conversations", {"title": "t"})
    # Given a task tied to the user's connection and conversation
    task = await create_task(
        client,
        user,
        title="  Ship it  ",
        due_at="2031-01-02T03:04:05+00:00",
        connection_id=connection["id"],
        conversation_id=conversation["id"],
    )
    assert task["title"] == "Ship it"
    assert task["user_id"] == str(user.id)
    assert (task["status"], task["priority"], task["completed_at"]) == ("pending", 2, None)
    assert at(task["due_at"]) == at("2031-01-02T03:04:05+00:00")
    path = f"/tasks/{task['id']}"
    assert (await client.get(path, headers=user.headers)).json() == task
    # When it is reprioritised and unlinked, only those fields change
    patched = await client.patch(
        path, json={"priority": 0, "due_at": None, "conversation_id": None}, headers=user.headers
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["priority"], patched.json()["due_at"]) == (0, None)
    assert patched.json()["conversation_id"] is None
    assert patched.json()["connection_id"] == connection["id"]
    assert at(patched.json()["updated_at"]) > at(task["updated_at"])
    # Then it is deleted, and gone
    assert (await client.delete(path, headers=user.headers)).status_code == 204
    assert_problem(await client.get(path, headers=user.headers), 404, "not-found")


async def test_done_sets_completed_at_and_leaving_done_clears_it(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    task = await create_task(client, user)
    # When the task is done, completed_at is stamped by the same UPDATE
    done = await set_status(client, user, task["id"], "done")
    assert done["completed_at"] is not None
    assert done["completed_at"] == done["updated_at"]
    # Staying done (or editing a done task) keeps the first completion time
    again = await set_status(client, user, task["id"], "done")
    assert again["completed_at"] == done["completed_at"]
    retitled = await client.patch(
        f"/tasks/{task['id']}", json={"title": "Docs written"}, headers=user.headers
    )
    assert retitled.json()["completed_at"] == done["completed_at"]
    # Leaving done clears it, and finishing again stamps a new time
    reopened = await set_status(client, user, task["id"], "in_progress")
    assert reopened["completed_at"] is None
    finished = await set_status(client, user, task["id"], "done")
    assert at(finished["completed_at"]) > at(done["completed_at"])
    for status in ("blocked", "cancelled", "pending"):
        assert (await set_status(client, user, task["id"], status))["completed_at"] is None
    # A task created done is completed at creation
    born_done = await create_task(client, user, status="done")
    assert born_done["completed_at"] == born_done["created_at"]


async def test_list_paginates_and_filters(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    # Given seven tasks, two blocked and three on a connection, and another user's task
    user, other = new_user(), new_user()
    connection = await create(
        client, user, "/connections", {"name": "c", "provider": "hermes", "model": "m"}
    )
    created = []
    for i in range(7):
        fields: dict[str, Any] = {
            "title": f"t{i}",
            "status": "blocked" if i in (2, 5) else "pending",
        }
        if i < 3:
            fields["connection_id"] = connection["id"]
        created.append(await create_task(client, user, **fields))
    await create_task(client, other, status="blocked")

    # When the user lists them three at a time
    items, pages = await collect_pages(client, "/tasks", user.headers, limit=3)

    # Then they get exactly their own, in creation order, over three pages
    assert [i["id"] for i in items] == [t["id"] for t in created]
    assert pages == 3
    blocked, _ = await collect_pages(client, "/tasks", user.headers, limit=1, status="blocked")
    assert [i["title"] for i in blocked] == ["t2", "t5"]
    on_connection, _ = await collect_pages(
        client, "/tasks", user.headers, limit=2, connection_id=connection["id"]
    )
    assert [i["title"] for i in on_connection] == ["t0", "t1", "t2"]


async def test_other_users_get_404_and_change_nothing(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    owner, stranger = new_user(), new_user()
    task = await create_task(client, owner)
    path = f"/tasks/{task['id']}"

    assert_problem(await client.get(path, headers=stranger.headers), 404, "not-found")
    assert_problem(await client.patch(path, json={"status": "done"}, headers=stranger.headers), 404)
    assert_problem(await client.delete(path, headers=stranger.headers), 404)
    listed = await client.get("/tasks", headers=stranger.headers)
    assert listed.json() == {"items": [], "next_cursor": None}
    assert (await client.get(path, headers=owner.headers)).json() == task


async def test_references_the_caller_cannot_see_are_404_by_name(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    owner, stranger = new_user(), new_user()
    connection = await create(
        client, owner, "/connections", {"name": "c", "provider": "nous", "model": "m"}
    )
    conversation = await create(client, owner, "/conversations", {})
    mine = await create_task(client, stranger)
    for field, target, noun in (
        ("connection_id", connection, "connection"),
        ("conversation_id", conversation, "conversation"),
    ):
        body = assert_problem(
            await client.post(
                "/tasks", json={"title": "t", field: target["id"]}, headers=stranger.headers
            ),
            404,
        )
        assert body["detail"] == f"{noun} {target['id']} not found"
        assert_problem(
            await client.patch(
                f"/tasks/{mine['id']}", json={field: target["id"]}, headers=stranger.headers
            ),
            404,
        )
    items, _ = await collect_pages(client, "/tasks", stranger.headers, limit=50)
    assert items == [mine]


async def test_bad_input_names_the_field_and_the_rule(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    cases: list[tuple[dict[str, Any], tuple[str, str]]] = [
        ({"title": "t", "priority": 5}, ("priority", "less_than_equal")),
        ({"title": "t", "priority": -1}, ("priority", "greater_than_equal")),
        ({"title": "t", "status": "later"}, ("status", "literal_error")),
        ({"title": " "}, ("title", "string_too_short")),
        ({"title": "t", "due_at": "2031-01-02T03:04:05"}, ("due_at", "timezone_aware")),
        ({"title": "t", "due_at": "9999-12-31T23:59:59-14:00"}, ("due_at", "datetime_range")),
        ({"title": "t", "due_at": "0001-01-01T00:00:00+14:00"}, ("due_at", "datetime_range")),
        ({"title": "t", "completed_at": "2031-01-02Z"}, ("completed_at", "extra_forbidden")),
        ({"title": "t", "user_id": str(uuid.uuid4())}, ("user_id", "extra_forbidden")),
    ]
    for payload, expected in cases:
        resp = await client.post("/tasks", json=payload, headers=user.headers)
        body = assert_problem(resp, 422, "validation")
        assert [(e["field"], e["rule"]) for e in body["errors"]] == [expected], payload
    body = assert_problem(await client.get("/tasks?status=later", headers=user.headers), 422)
    assert body["errors"][0]["field"] == "status"
    assert (await client.get("/tasks", headers=user.headers)).json()["items"] == []
