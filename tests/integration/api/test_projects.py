"""/projects: the full CRUD cycle, pagination, and what strangers and viewers get."""

from __future__ import annotations

import json
import uuid

import httpx

from tests.support.api import MakeOrg, NewUser, assert_problem, collect_pages


async def test_create_read_update_delete(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    org = await make_org()
    # Given a member creates a project
    resp = await client.post(
        "/projects",
        json={"organization_id": str(org.id), "name": "  Apollo  ", "description": "moon"},
        headers=org.member.headers,
    )
    assert resp.status_code == 201, resp.text
    project = resp.json()
    assert project["name"] == "Apollo"
    assert project["created_by"] == str(org.member.id)
    # When anyone in the organization reads it, they get the same row
    got = await client.get(f"/projects/{project['id']}", headers=org.viewer.headers)
    assert got.json() == project
    # When a member renames it, only the name changes and updated_at moves
    patched = await client.patch(
        f"/projects/{project['id']}", json={"name": "Artemis"}, headers=org.member.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Artemis"
    assert patched.json()["description"] == "moon"
    assert patched.json()["updated_at"] > project["updated_at"]
    # Then an admin deletes it, and it is gone
    deleted = await client.delete(f"/projects/{project['id']}", headers=org.admin.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/projects/{project['id']}", headers=org.owner.headers)
    assert_problem(gone, 404, "not-found")


async def test_list_paginates_across_pages_in_a_stable_order(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    other = await make_org("Other")
    created = []
    for i in range(7):
        resp = await client.post(
            "/projects",
            json={"organization_id": str(org.id), "name": f"p{i}"},
            headers=org.owner.headers,
        )
        created.append(resp.json()["id"])
    await client.post(
        "/projects",
        json={"organization_id": str(other.id), "name": "elsewhere"},
        headers=other.owner.headers,
    )

    items, pages = await collect_pages(
        client, "/projects", org.owner.headers, limit=3, organization_id=str(org.id)
    )

    assert [i["id"] for i in items] == created
    assert pages == 3
    # Without the filter the caller still sees only their organizations' projects.
    everything, _ = await collect_pages(client, "/projects", org.owner.headers, limit=50)
    assert [i["id"] for i in everything] == created


async def test_strangers_get_404_and_change_nothing(
    client: httpx.AsyncClient, make_org: MakeOrg, new_user: NewUser
) -> None:
    org = await make_org()
    stranger = new_user()
    resp = await client.post(
        "/projects",
        json={"organization_id": str(org.id), "name": "p"},
        headers=org.owner.headers,
    )
    project_id = resp.json()["id"]

    assert_problem(await client.get(f"/projects/{project_id}", headers=stranger.headers), 404)
    assert_problem(
        await client.patch(
            f"/projects/{project_id}", json={"name": "hijacked"}, headers=stranger.headers
        ),
        404,
    )
    assert_problem(await client.delete(f"/projects/{project_id}", headers=stranger.headers), 404)
    assert_problem(
        await client.post(
            "/projects",
            json={"organization_id": str(org.id), "name": "intruder"},
            headers=stranger.headers,
        ),
        404,
    )
    listed = await client.get("/projects", headers=stranger.headers)
    assert listed.json() == {"items": [], "next_cursor": None}
    still = await client.get(f"/projects/{project_id}", headers=org.owner.headers)
    assert still.json()["name"] == "p"


async def test_viewers_read_but_cannot_write(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    org = await make_org()
    project_id = (
        await client.post(
            "/projects",
            json={"organization_id": str(org.id), "name": "p"},
            headers=org.owner.headers,
        )
    ).json()["id"]
    assert_problem(
        await client.post(
            "/projects",
            json={"organization_id": str(org.id), "name": "v"},
            headers=org.viewer.headers,
        ),
        403,
        "forbidden",
    )
    assert_problem(
        await client.patch(
            f"/projects/{project_id}", json={"name": "x"}, headers=org.viewer.headers
        ),
        403,
    )
    # Members may not delete either: that is for admins.
    assert_problem(await client.delete(f"/projects/{project_id}", headers=org.member.headers), 403)
    assert (await client.get(f"/projects/{project_id}", headers=org.viewer.headers)).json()[
        "name"
    ] == "p"


async def test_bad_input_names_the_field_and_the_rule(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    h = org.owner.headers
    body = assert_problem(
        await client.post(
            "/projects", json={"organization_id": str(org.id), "name": ""}, headers=h
        ),
        422,
        "validation",
    )
    assert [(e["field"], e["rule"]) for e in body["errors"]] == [("name", "string_too_short")]

    body = assert_problem(
        await client.post(
            "/projects",
            json={"organization_id": str(org.id), "name": "p", "id": str(uuid.uuid4())},
            headers=h,
        ),
        422,
    )
    assert [(e["field"], e["rule"]) for e in body["errors"]] == [("id", "extra_forbidden")]

    body = assert_problem(await client.get("/projects?limit=201", headers=h), 422)
    assert body["errors"][0]["field"] == "limit"
    body = assert_problem(await client.get("/projects?cursor=nope", headers=h), 422)
    assert body["errors"][0]["field"] == "cursor"
    assert_problem(await client.get("/projects/not-a-uuid", headers=h), 422)
    assert_problem(
        await client.post(
            "/projects", content=b"{not json", headers={**h, "content-type": "application/json"}
        ),
        422,
    )


async def test_oversized_body_is_413(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    org = await make_org()
    huge = "x" * (2 * 1024 * 1024)
    resp = await client.post(
        "/projects",
        json={"organization_id": str(org.id), "name": "p", "description": huge},
        headers=org.owner.headers,
    )
    assert_problem(resp, 413, "payload-too-large")


async def test_text_that_postgres_cannot_store_is_422_naming_the_field(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    for bad in ("nul\u0000byte", "lone \ud800 surrogate"):
        resp = await client.post(
            "/projects",
            content=json.dumps(
                {"organization_id": str(org.id), "name": "p", "description": bad}
            ).encode(),
            headers={**org.owner.headers, "content-type": "application/json"},
        )
        body = assert_problem(resp, 422, "validation")
        assert [e["field"] for e in body["errors"]] == ["description"]
