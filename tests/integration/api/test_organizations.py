"""/organizations and their members: roles, conflicts, the last owner, strangers."""

from __future__ import annotations

import uuid

import httpx

from agentplane.tools.catalog import TOOL_NAMES
from tests.support.api import MakeOrg, NewUser, assert_problem, collect_pages, ensure_known
from tests.support.builders import (
    allow_tools,
    approved_action,
    create_agent,
    create_project,
    propose,
)


async def test_create_read_update_delete(client: httpx.AsyncClient, new_user: NewUser) -> None:
    owner = new_user()
    # Given a user creates an organization, they are its owner
    resp = await client.post(
        "/organizations", json={"name": "Acme", "slug": "acme"}, headers=owner.headers
    )
    assert resp.status_code == 201, resp.text
    org = resp.json()
    assert org["created_by"] == str(owner.id)
    me = (await client.get("/me", headers=owner.headers)).json()
    assert me["organizations"] == [{"organization_id": org["id"], "name": "Acme", "role": "owner"}]
    # When they rename it, and read it back
    patched = await client.patch(
        f"/organizations/{org['id']}", json={"name": "Acme Corp"}, headers=owner.headers
    )
    assert patched.json()["name"] == "Acme Corp"
    assert (await client.get(f"/organizations/{org['id']}", headers=owner.headers)).json()[
        "slug"
    ] == "acme"
    # Then they delete it, confirming with its slug, and it is gone, with its memberships
    deleted = await client.delete(
        f"/organizations/{org['id']}", params={"confirm": "acme"}, headers=owner.headers
    )
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {
        "id": org["id"],
        "name": "Acme Corp",
        "slug": "acme",
        "projects": 0,
        "agents": 0,
        "actions": 0,
    }
    assert_problem(await client.get(f"/organizations/{org['id']}", headers=owner.headers), 404)
    assert (await client.get("/me", headers=owner.headers)).json()["organizations"] == []


async def test_list_paginates(client: httpx.AsyncClient, new_user: NewUser) -> None:
    owner = new_user()
    ids = []
    for i in range(5):
        resp = await client.post("/organizations", json={"name": f"o{i}"}, headers=owner.headers)
        ids.append(resp.json()["id"])
    items, pages = await collect_pages(client, "/organizations", owner.headers, limit=2)
    assert [i["id"] for i in items] == ids
    assert pages == 3


async def test_duplicate_slug_is_409(client: httpx.AsyncClient, new_user: NewUser) -> None:
    a, b = new_user(), new_user()
    await client.post("/organizations", json={"name": "x", "slug": "taken"}, headers=a.headers)
    resp = await client.post(
        "/organizations", json={"name": "y", "slug": "taken"}, headers=b.headers
    )
    assert_problem(resp, 409, "conflict")


async def test_roles_decide_who_may_change_what(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    path = f"/organizations/{org.id}"
    assert_problem(await client.patch(path, json={"name": "m"}, headers=org.member.headers), 403)
    assert (
        await client.patch(path, json={"name": "a"}, headers=org.admin.headers)
    ).status_code == 200
    assert_problem(
        await client.delete(path, params={"confirm": str(org.id)}, headers=org.admin.headers), 403
    )
    members, _ = await collect_pages(client, f"{path}/members", org.viewer.headers, limit=2)
    assert {(m["user_id"], m["role"]) for m in members} == {
        (str(org.owner.id), "owner"),
        (str(org.admin.id), "admin"),
        (str(org.member.id), "member"),
        (str(org.viewer.id), "viewer"),
    }


async def test_members_add_change_remove_and_conflicts(
    client: httpx.AsyncClient, make_org: MakeOrg, new_user: NewUser
) -> None:
    org = await make_org()
    newcomer = new_user()
    await ensure_known(client, newcomer)
    members = f"/organizations/{org.id}/members"
    add = {"user_id": str(newcomer.id), "role": "member"}

    # Members and viewers cannot add people; admins can, once.
    assert_problem(await client.post(members, json=add, headers=org.member.headers), 403)
    assert (await client.post(members, json=add, headers=org.admin.headers)).status_code == 201
    assert_problem(await client.post(members, json=add, headers=org.admin.headers), 409, "conflict")
    # Admins cannot make owners; owners can.
    one = f"{members}/{newcomer.id}"
    assert_problem(await client.patch(one, json={"role": "owner"}, headers=org.admin.headers), 403)
    promoted = await client.patch(one, json={"role": "owner"}, headers=org.owner.headers)
    assert promoted.json()["role"] == "owner"
    # ...and an admin cannot remove an owner.
    assert_problem(await client.delete(one, headers=org.admin.headers), 403)
    # An unknown user cannot be added.
    ghost = new_user()
    resp = await client.post(
        members, json={"user_id": str(ghost.id), "role": "member"}, headers=org.owner.headers
    )
    assert_problem(resp, 404)


async def test_the_last_owner_cannot_leave_or_be_demoted(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    me = f"/organizations/{org.id}/members/{org.owner.id}"
    body = assert_problem(
        await client.patch(me, json={"role": "admin"}, headers=org.owner.headers), 409
    )
    assert "owner" in body["detail"]
    assert_problem(await client.delete(me, headers=org.owner.headers), 409)
    # A viewer may leave on their own.
    viewer = f"/organizations/{org.id}/members/{org.viewer.id}"
    assert (await client.delete(viewer, headers=org.viewer.headers)).status_code == 204
    assert_problem(await client.get(f"/organizations/{org.id}", headers=org.viewer.headers), 404)


async def test_strangers_get_404_and_change_nothing(
    client: httpx.AsyncClient, make_org: MakeOrg, new_user: NewUser
) -> None:
    org = await make_org()
    stranger = new_user()
    path = f"/organizations/{org.id}"
    h = stranger.headers
    assert_problem(await client.get(path, headers=h), 404)
    assert_problem(await client.patch(path, json={"name": "mine"}, headers=h), 404)
    assert_problem(await client.delete(path, headers=h), 404)
    assert_problem(await client.get(f"{path}/members", headers=h), 404)
    assert_problem(
        await client.post(
            f"{path}/members", json={"user_id": str(stranger.id), "role": "owner"}, headers=h
        ),
        404,
    )
    assert_problem(
        await client.patch(f"{path}/members/{org.viewer.id}", json={"role": "admin"}, headers=h),
        404,
    )
    assert_problem(await client.delete(f"{path}/members/{org.viewer.id}", headers=h), 404)
    assert (await client.get("/organizations", headers=h)).json()["items"] == []
    after = await client.get(path, headers=org.owner.headers)
    assert after.json()["name"] == "Acme"
    members, _ = await collect_pages(client, f"{path}/members", org.owner.headers, limit=50)
    assert len(members) == 4


async def test_bad_input(client: httpx.AsyncClient, new_user: NewUser) -> None:
    h = new_user().headers
    body = assert_problem(
        await client.post("/organizations", json={"name": "x", "slug": "Not A Slug"}, headers=h),
        422,
    )
    assert [e["field"] for e in body["errors"]] == ["slug"]
    body = assert_problem(
        await client.post("/organizations", json={"name": "x", "created_by": "me"}, headers=h),
        422,
    )
    assert [e["rule"] for e in body["errors"]] == ["extra_forbidden"]


async def test_deleting_an_organization_takes_its_name_and_says_what_went(
    client: httpx.AsyncClient, make_org: MakeOrg, new_user: NewUser
) -> None:
    # Given an organization (no slug) with two projects, three agents and two actions
    org = await make_org()
    first, second = await create_project(client, org, "a"), await create_project(client, org, "b")
    agents = [
        (await create_agent(client, project, org.owner, name))["id"]
        for project, name in ((first, "one"), (first, "two"), (second, "three"))
    ]
    for agent_id in agents[:2]:
        await allow_tools(client, agent_id, org.owner, TOOL_NAMES)
    await approved_action(client, agents[0], org)
    await propose(client, agents[1], org.member)
    path = f"/organizations/{org.id}"

    # When the confirmation is missing or wrong, nothing is deleted and the 422 names it
    for params in ({}, {"confirm": "Acme"}, {"confirm": str(uuid.uuid4())}):
        refused = await client.delete(path, params=params, headers=org.owner.headers)
        body = assert_problem(refused, 422, "validation")
        assert [e["field"] for e in body["errors"]] == ["confirm"], params
    # And only an owner may delete it, even with the right confirmation; a stranger sees none
    confirm = {"confirm": str(org.id)}
    assert_problem(await client.delete(path, params=confirm, headers=org.admin.headers), 403)
    stranger = new_user()
    await ensure_known(client, stranger)
    assert_problem(await client.delete(path, params=confirm, headers=stranger.headers), 404)
    projects = await client.get("/projects", headers=org.viewer.headers)
    assert len(projects.json()["items"]) == 2

    # Then the owner, confirming with its id, removes it and is told what went with it
    deleted = await client.delete(path, params=confirm, headers=org.owner.headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {
        "id": str(org.id),
        "name": "Acme",
        "slug": None,
        "projects": 2,
        "agents": 3,
        "actions": 2,
    }
    assert_problem(await client.get(path, headers=org.owner.headers), 404)
    assert_problem(await client.get(f"/agents/{agents[0]}", headers=org.owner.headers), 404)
