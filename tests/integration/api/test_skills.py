"""/skills: CRUD, every lifecycle move allowed and refused, prompt versions, others."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.api import User, assert_problem, collect_pages

STATUSES = ["suggested", "draft", "active", "deprecated", "archived"]
ALLOWED = [
    ("suggested", "active"),
    ("suggested", "archived"),
    ("draft", "active"),
    ("active", "deprecated"),
    ("deprecated", "archived"),
    ("deprecated", "active"),
    ("draft", "archived"),
]
REFUSED = [(a, b) for a in STATUSES for b in STATUSES if a != b and (a, b) not in ALLOWED]
# How to bring a new skill (suggested, or a draft) to each status through allowed moves.
PATH_TO = {
    "suggested": [],
    "draft": [],
    "active": ["active"],
    "deprecated": ["active", "deprecated"],
    "archived": ["active", "deprecated", "archived"],
}


async def create_skill(client: httpx.AsyncClient, user: User, **fields: Any) -> Any:
    """Create a skill through the API and return its JSON."""
    resp = await client.post("/skills", json={"name": "summarise", **fields}, headers=user.headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def skill_in(client: httpx.AsyncClient, user: User, status: str) -> Any:
    """A new skill of the user's, moved to `status` through allowed transitions."""
    skill = await create_skill(client, user, **({"status": "draft"} if status == "draft" else {}))
    for step in PATH_TO[status]:
        resp = await client.patch(
            f"/skills/{skill['id']}", json={"status": step}, headers=user.headers
        )
        assert resp.status_code == 200, resp.text
        skill = resp.json()
    assert skill["status"] == status
    return skill


async def test_create_read_update_delete(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    # Given a new skill: suggested (the seed's default), unscored, at version 1
    skill = await create_skill(
        client,
        user,
        description="short",
        category="writing",
        template_prompt="Be brief.",
        metadata={"lang": "en"},
    )
    assert (skill["status"], skill["version"], skill["score"]) == ("suggested", 1, 0)
    assert (skill["category"], skill["template_prompt"]) == ("writing", "Be brief.")
    assert skill["user_id"] == str(user.id)
    assert skill["metadata"] == {"lang": "en"}
    path = f"/skills/{skill['id']}"
    assert (await client.get(path, headers=user.headers)).json() == skill
    # When its name and description change, that is an edit: version 2
    renamed = await client.patch(
        path, json={"name": "tldr", "description": None, "score": 0.75}, headers=user.headers
    )
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["version"]) == ("tldr", 2)
    assert (renamed.json()["description"], renamed.json()["score"]) == (None, 0.75)
    # A new score alone is a measurement, not an edit
    rescored = await client.patch(path, json={"score": 0.5}, headers=user.headers)
    assert (rescored.json()["score"], rescored.json()["version"]) == (0.5, 2)
    # Then it is deleted, and gone
    assert (await client.delete(path, headers=user.headers)).status_code == 204
    assert_problem(await client.get(path, headers=user.headers), 404, "not-found")


async def test_version_counts_changes_of_the_content(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    skill = await create_skill(client, user, template_prompt="v1")
    path = f"/skills/{skill['id']}"

    async def patch(body: dict[str, Any]) -> Any:
        resp = await client.patch(path, json=body, headers=user.headers)
        assert resp.status_code == 200, resp.text
        return resp.json()

    assert (await patch({"template_prompt": "v2"}))["version"] == 2
    # The same text again is not a change
    assert (await patch({"template_prompt": "v2"}))["version"] == 2
    # Together with a status change, in the same UPDATE
    both = await patch({"template_prompt": "v3", "status": "active"})
    assert (both["template_prompt"], both["status"], both["version"]) == ("v3", "active", 3)
    assert (await patch({"metadata": {"x": 1}}))["version"] == 3
    assert (await patch({}))["version"] == 3
    # Name, description and category are content too; the same values again are not
    assert (await patch({"name": "summarise", "category": None}))["version"] == 3
    assert (await patch({"category": "writing"}))["version"] == 4
    assert (await patch({"description": "d", "name": "renamed"}))["version"] == 5
    assert (await patch({"description": "d", "score": 1.0}))["version"] == 5


@pytest.mark.parametrize(("current", "requested"), ALLOWED)
async def test_every_allowed_transition(
    client: httpx.AsyncClient, new_user: Callable[[], User], current: str, requested: str
) -> None:
    user = new_user()
    skill = await skill_in(client, user, current)

    resp = await client.patch(
        f"/skills/{skill['id']}", json={"status": requested}, headers=user.headers
    )

    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == requested
    assert resp.json()["version"] == skill["version"]


@pytest.mark.parametrize(("current", "requested"), REFUSED)
async def test_every_other_transition_is_409_and_changes_nothing(
    client: httpx.AsyncClient, new_user: Callable[[], User], current: str, requested: str
) -> None:
    user = new_user()
    # Given a skill in `current`
    skill = await skill_in(client, user, current)
    path = f"/skills/{skill['id']}"

    # When a move to `requested` comes with other changes
    resp = await client.patch(
        path,
        json={"status": requested, "name": "renamed", "template_prompt": "new"},
        headers=user.headers,
    )

    # Then it is a conflict naming both statuses, and nothing in the request was applied
    body = assert_problem(resp, 409, "skill-transition")
    assert body["current_status"] == current
    assert body["requested_status"] == requested
    assert current in body["detail"]
    assert requested in body["detail"]
    assert (await client.get(path, headers=user.headers)).json() == skill


@pytest.mark.parametrize("status", STATUSES)
async def test_setting_the_current_status_is_not_a_move(
    client: httpx.AsyncClient, new_user: Callable[[], User], status: str
) -> None:
    user = new_user()
    skill = await skill_in(client, user, status)
    resp = await client.patch(
        f"/skills/{skill['id']}", json={"status": status}, headers=user.headers
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == status


async def test_list_paginates_and_filters_by_status(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    # Given seven skills, three of them active, and another user's active skill
    user, other = new_user(), new_user()
    created = [
        await create_skill(client, user, name=f"s{i}", status="active" if i % 2 else "draft")
        for i in range(7)
    ]
    await create_skill(client, other, status="active")

    # When the user lists them three at a time
    items, pages = await collect_pages(client, "/skills", user.headers, limit=3)

    # Then they get exactly their own, in creation order, over three pages
    assert [i["id"] for i in items] == [s["id"] for s in created]
    assert pages == 3
    active, pages = await collect_pages(client, "/skills", user.headers, limit=2, status="active")
    assert [i["name"] for i in active] == ["s1", "s3", "s5"]
    assert pages == 2


async def test_other_users_get_404_not_409_and_change_nothing(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    owner, stranger = new_user(), new_user()
    skill = await create_skill(client, owner)
    path = f"/skills/{skill['id']}"

    assert_problem(await client.get(path, headers=stranger.headers), 404, "not-found")
    # A refused move and an allowed move alike: the skill does not exist for them
    for status in ("deprecated", "active"):
        body = assert_problem(
            await client.patch(path, json={"status": status}, headers=stranger.headers), 404
        )
        assert body["detail"] == f"skill {skill['id']} not found"
    assert_problem(
        await client.patch(path, json={"template_prompt": "pwned"}, headers=stranger.headers), 404
    )
    assert_problem(await client.delete(path, headers=stranger.headers), 404)
    listed = await client.get("/skills", headers=stranger.headers)
    assert listed.json() == {"items": [], "next_cursor": None}
    assert (await client.get(path, headers=owner.headers)).json() == skill


async def test_bad_input_names_the_field_and_the_rule(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    cases: list[tuple[dict[str, Any], tuple[str, str]]] = [
        ({"name": "s", "status": "archived"}, ("status", "literal_error")),
        ({"name": "s", "instructions": "x"}, ("instructions", "extra_forbidden")),
        ({"name": "s", "category": ""}, ("category", "string_too_short")),
        ({"name": "s", "version": 7}, ("version", "extra_forbidden")),
        ({"name": "s", "user_id": str(uuid.uuid4())}, ("user_id", "extra_forbidden")),
        ({"name": ""}, ("name", "string_too_short")),
        ({"name": "s", "metadata": "x"}, ("metadata", "dict_type")),
    ]
    for payload, expected in cases:
        resp = await client.post("/skills", json=payload, headers=user.headers)
        body = assert_problem(resp, 422, "validation")
        assert [(e["field"], e["rule"]) for e in body["errors"]] == [expected], payload
    skill = await create_skill(client, user)
    body = assert_problem(
        await client.patch(f"/skills/{skill['id']}", json={"status": "gone"}, headers=user.headers),
        422,
    )
    assert [(e["field"], e["rule"]) for e in body["errors"]] == [("status", "literal_error")]
    body = assert_problem(
        await client.patch(f"/skills/{skill['id']}", json={"status": None}, headers=user.headers),
        422,
    )
    assert [(e["field"], e["rule"]) for e in body["errors"]] == [("status", "required")]
    body = assert_problem(await client.get("/skills?status=gone", headers=user.headers), 422)
    assert body["errors"][0]["field"] == "status"


async def test_metadata_numbers_jsonb_cannot_hold_are_422(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    skill = await create_skill(client, user)
    headers = {**user.headers, "content-type": "application/json"}
    raw = b'{"metadata": {"weight": -Infinity}}'
    for resp in (
        await client.post(
            "/skills", content=b'{"name": "s", "metadata": {"w": NaN}}', headers=headers
        ),
        await client.patch(f"/skills/{skill['id']}", content=raw, headers=headers),
    ):
        body = assert_problem(resp, 422)
        assert [e["rule"] for e in body["errors"]] == ["finite_number"]
        assert body["errors"][0]["field"].startswith("metadata.")
    assert (await client.get(f"/skills/{skill['id']}", headers=user.headers)).json() == skill
