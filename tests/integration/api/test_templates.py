"""/templates: CRUD, the public catalog, what strangers get, and installing a payload."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from psycopg.errors import InsufficientPrivilege
from psycopg.types.json import Jsonb

from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.db.rows import Tx
from agentplane.errors import ForbiddenError
from tests.support.api import NewUser, User, assert_problem, collect_pages

PAYLOAD: dict[str, Any] = {
    "skills": [
        {
            "name": "triage",
            "description": "sort the inbox",
            "category": "mail",
            "template_prompt": "label, then file",
        },
        {"name": "summarize"},
    ],
    "seed_memory": [
        {"category": "preference", "label": "tone", "content": "brief", "strength": 0.9},
        {"category": "fact", "label": "timezone", "content": "UTC", "source": "onboarding"},
        {"label": "empty"},
    ],
}


def as_user(database: Database, user: User) -> AbstractAsyncContextManager[Tx]:
    """A transaction as `user`, exactly as the API opens one (RLS applies)."""
    return database.transaction(Caller.user({"sub": str(user.id)}))


async def create(
    client: httpx.AsyncClient, user: User, name: str = "t", **fields: Any
) -> dict[str, Any]:
    """Create a template through the API (the standard payload unless one is given)."""
    body = {"name": name, "payload": PAYLOAD, **fields}
    resp = await client.post("/templates", json=body, headers=user.headers)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


async def installs_of(client: httpx.AsyncClient, author: User, template_id: str) -> int:
    """The install count, read by the template's author."""
    resp = await client.get(f"/templates/{template_id}", headers=author.headers)
    assert resp.status_code == 200, resp.text
    count: int = resp.json()["installs"]
    return count


async def owned_rows(database: Database, user: User) -> tuple[list[tuple[Any, ...]], ...]:
    """Every skill and memory node `user` can see, i.e. owns, in creation order."""
    async with as_user(database, user) as tx:
        skills = await (
            await tx.execute(
                "select id, user_id, name, description, category, template_prompt, status,"
                " source_template_id from public.skills order by created_at, id"
            )
        ).fetchall()
        memory = await (
            await tx.execute(
                "select id, user_id, category, label, content, strength, source"
                " from public.memory_nodes order by created_at, id"
            )
        ).fetchall()
    return skills, memory


async def test_create_read_update_delete(client: httpx.AsyncClient, new_user: NewUser) -> None:
    author = new_user()
    # Given an author creates a template with a partial payload
    resp = await client.post(
        "/templates",
        json={"name": "  Inbox zero  ", "payload": {"skills": [{"name": "triage"}]}},
        headers=author.headers,
    )
    assert resp.status_code == 201, resp.text
    template = resp.json()
    # Then the server fills in the author, the defaults and a zero install count
    assert template["name"] == "Inbox zero"
    assert template["author_id"] == str(author.id)
    assert (template["is_public"], template["description"], template["category"]) == (
        False,
        None,
        None,
    )
    assert template["installs"] == 0
    assert template["payload"] == {
        "skills": [
            {"name": "triage", "description": None, "category": None, "template_prompt": None}
        ],
        "seed_memory": [],
    }
    # When the author reads it, they get the same row
    got = await client.get(f"/templates/{template['id']}", headers=author.headers)
    assert got.json() == template
    # When the author publishes it with a new payload, only those fields change
    patched = await client.patch(
        f"/templates/{template['id']}",
        json={"is_public": True, "category": "productivity", "payload": PAYLOAD},
        headers=author.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["is_public"] is True
    assert patched.json()["name"] == "Inbox zero"
    assert patched.json()["category"] == "productivity"
    assert patched.json()["payload"]["seed_memory"][1] == {
        **PAYLOAD["seed_memory"][1],
        "strength": 0.5,
    }
    assert patched.json()["updated_at"] > template["updated_at"]
    # Then the author deletes it, and it is gone
    deleted = await client.delete(f"/templates/{template['id']}", headers=author.headers)
    assert deleted.status_code == 204
    assert_problem(
        await client.get(f"/templates/{template['id']}", headers=author.headers), 404, "not-found"
    )


async def test_own_list_paginates_and_holds_only_the_callers_templates(
    client: httpx.AsyncClient, new_user: NewUser
) -> None:
    author, other = new_user(), new_user()
    mine = [(await create(client, author, f"t{i}", is_public=i % 2 == 0))["id"] for i in range(5)]
    await create(client, other, "theirs, public", is_public=True)
    await create(client, other, "theirs, private")

    items, pages = await collect_pages(client, "/templates", author.headers, limit=2)

    assert [i["id"] for i in items] == mine
    assert pages == 3


async def test_public_list_has_every_authors_public_templates_and_no_private_one(
    client: httpx.AsyncClient, new_user: NewUser
) -> None:
    alice, bob, reader = new_user(), new_user(), new_user()
    # Given two authors with public and private templates, interleaved in time
    public = []
    for i in range(3):
        public.append((await create(client, alice, f"a{i}", is_public=True))["id"])
        await create(client, alice, f"a{i} private")
        public.append((await create(client, bob, f"b{i}", is_public=True))["id"])
        await create(client, bob, f"b{i} private")

    # When a third user pages through the public catalog
    items, pages = await collect_pages(client, "/templates", reader.headers, limit=4, public="true")

    # Then they see every public template, in creation order, and nothing else
    assert [i["id"] for i in items] == public
    assert pages == 2
    assert {i["author_id"] for i in items} == {str(alice.id), str(bob.id)}
    # ... while their own list is empty, and `public=false` is the own list
    assert (await client.get("/templates", headers=reader.headers)).json() == {
        "items": [],
        "next_cursor": None,
    }
    own, _ = await collect_pages(client, "/templates", alice.headers, limit=50, public="false")
    assert len(own) == 6
    assert {i["author_id"] for i in own} == {str(alice.id)}


async def test_strangers_get_404_on_private_and_403_on_writes_to_public(
    client: httpx.AsyncClient, new_user: NewUser
) -> None:
    author, stranger = new_user(), new_user()
    private = await create(client, author, "private")
    public = await create(client, author, "public", is_public=True)

    # A private template does not exist for a stranger.
    for method, body in (("GET", None), ("PATCH", {"name": "hijacked"}), ("DELETE", None)):
        resp = await client.request(
            method, f"/templates/{private['id']}", json=body, headers=stranger.headers
        )
        assert_problem(resp, 404, "not-found")
    # A public one they can read, but not change.
    got = await client.get(f"/templates/{public['id']}", headers=stranger.headers)
    assert got.status_code == 200
    assert got.json() == public
    assert_problem(
        await client.patch(
            f"/templates/{public['id']}", json={"name": "hijacked"}, headers=stranger.headers
        ),
        403,
        "forbidden",
    )
    assert_problem(await client.delete(f"/templates/{public['id']}", headers=stranger.headers), 403)
    # Nothing changed, as the author sees it.
    for template in (private, public):
        still = await client.get(f"/templates/{template['id']}", headers=author.headers)
        assert still.json() == template


async def test_install_copies_the_payload_into_the_installers_rows(
    client: httpx.AsyncClient, database: Database, new_user: NewUser
) -> None:
    author, installer = new_user(), new_user()
    template = await create(client, author, "public", is_public=True)

    # When another user installs the public template
    resp = await client.post(f"/templates/{template['id']}/install", headers=installer.headers)

    # Then they get the ids of exactly one copy of each skill and memory item
    assert resp.status_code == 201, resp.text
    installed = resp.json()
    assert installed["template_id"] == template["id"]
    assert len(installed["skills"]) == len(PAYLOAD["skills"])
    assert len(installed["memory_nodes"]) == len(PAYLOAD["seed_memory"])
    # ... and those rows, read as the installer, are theirs and carry the payload's values
    skills, memory = await owned_rows(database, installer)
    installer_id, template_id = installer.id, uuid.UUID(template["id"])
    # (One transaction's rows share created_at: match them by id, in the order returned.)
    skill_by_id = {str(s[0]): s[1:] for s in skills}
    assert len(skill_by_id) == len(installed["skills"])
    assert [skill_by_id[i] for i in installed["skills"]] == [
        (
            installer_id,
            "triage",
            "sort the inbox",
            "mail",
            "label, then file",
            "draft",
            template_id,
        ),
        (installer_id, "summarize", None, None, None, "draft", template_id),
    ]
    memory_by_id = {str(m[0]): m[1:] for m in memory}
    assert len(memory_by_id) == len(installed["memory_nodes"])
    assert [memory_by_id[i] for i in installed["memory_nodes"]] == [
        # An item's own source is kept; the others name the template they came from
        (
            installer_id,
            "preference",
            "tone",
            "brief",
            pytest.approx(0.9),
            f"template:{template_id}",
        ),
        (installer_id, "fact", "timezone", "UTC", 0.5, "onboarding"),
        (installer_id, None, "empty", "", 0.5, f"template:{template_id}"),
    ]
    # ... the author got no rows, and the count went up by one
    assert await owned_rows(database, author) == ([], [])
    assert await installs_of(client, author, template["id"]) == 1

    # When the installer installs it again, and the author installs their own
    again = await client.post(f"/templates/{template['id']}/install", headers=installer.headers)
    own = await client.post(f"/templates/{template['id']}/install", headers=author.headers)

    # Then each install makes fresh copies and counts once
    assert again.status_code == own.status_code == 201
    assert set(again.json()["skills"]).isdisjoint(installed["skills"])
    skills, memory = await owned_rows(database, installer)
    assert (len(skills), len(memory)) == (4, 6)
    assert await installs_of(client, author, template["id"]) == 3

    # When the author deletes the template, the installed copies stay, without a source
    await client.delete(f"/templates/{template['id']}", headers=author.headers)
    skills, _ = await owned_rows(database, installer)
    assert len(skills) == 4
    assert {s[7] for s in skills} == {None}


async def test_a_payload_is_stored_whole_in_the_seeds_shape(
    client: httpx.AsyncClient, database: Database, new_user: NewUser
) -> None:
    author = new_user()
    # Given a template posted with seed memory only, and one item's defaults left out
    template = await create(client, author, payload={"seed_memory": [{"label": "tz"}]})
    # Then the row holds both lists and every item field, as a seed client reads it
    async with as_user(database, author) as tx:
        cur = await tx.execute(
            "select payload from public.templates where id = %s", [uuid.UUID(template["id"])]
        )
        row = await cur.fetchone()
    assert row is not None
    assert row[0] == {
        "skills": [],
        "seed_memory": [
            {"label": "tz", "category": None, "strength": 0.5, "content": "", "source": None}
        ],
    }
    assert template["payload"] == row[0]


async def test_a_payload_written_past_the_api_reads_back_and_refuses_to_install(
    client: httpx.AsyncClient, database: Database, new_user: NewUser
) -> None:
    author, installer = new_user(), new_user()
    await client.get("/me", headers=author.headers)  # the author's auth.users row
    # Given a seed client wrote a public template straight to the table (RLS allows the
    # author that), with fields and values the API would not have taken
    stored = {
        "skills": [{"name": "triage", "score": 3, "status": "active"}],
        "seed_memory": [{"label": "tone", "strength": 1.5}],
        "tools": ["shell"],
    }
    async with as_user(database, author) as tx:
        cur = await tx.execute(
            "insert into public.templates (name, is_public, payload)"
            " values ('raw', true, %s) returning id",
            [Jsonb(stored)],
        )
        row = await cur.fetchone()
    assert row is not None
    template_id = str(row[0])
    # When anyone reads it, alone or in the public list, they get it as it is stored
    got = await client.get(f"/templates/{template_id}", headers=installer.headers)
    assert got.status_code == 200, got.text
    assert got.json()["payload"] == stored
    listed = await client.get("/templates?public=true", headers=installer.headers)
    assert [t["id"] for t in listed.json()["items"]] == [template_id]
    # When someone installs it, it is a 409 naming each field that does not fit, and
    # nothing is copied or counted
    body = assert_problem(
        await client.post(f"/templates/{template_id}/install", headers=installer.headers),
        409,
        "template-not-installable",
    )
    assert sorted((e["field"], e["rule"]) for e in body["errors"]) == [
        ("payload.seed_memory.0.strength", "less_than_equal"),
        ("payload.skills.0.score", "extra_forbidden"),
        ("payload.skills.0.status", "extra_forbidden"),
        ("payload.tools", "extra_forbidden"),
    ]
    assert await owned_rows(database, installer) == ([], [])
    assert await installs_of(client, author, template_id) == 0


async def test_installing_an_empty_payload_creates_nothing_but_counts(
    client: httpx.AsyncClient, new_user: NewUser
) -> None:
    author = new_user()
    template = await create(client, author, payload={})

    resp = await client.post(f"/templates/{template['id']}/install", headers=author.headers)

    assert resp.status_code == 201, resp.text
    assert resp.json() == {"template_id": template["id"], "skills": [], "memory_nodes": []}
    assert await installs_of(client, author, template["id"]) == 1


async def test_concurrent_installs_count_exactly_once_each(
    client: httpx.AsyncClient, database: Database, new_user: NewUser
) -> None:
    author, installer = new_user(), new_user()
    template = await create(client, author, "popular", is_public=True)
    await installs_of(client, installer, template["id"])  # the installer's first request
    n = 12

    # When N installs of the same template run at once (more than the pool's connections)
    responses = await asyncio.gather(
        *(
            client.post(f"/templates/{template['id']}/install", headers=installer.headers)
            for _ in range(n)
        )
    )

    # Then every one succeeded, made its own copies, and was counted exactly once
    assert [r.status_code for r in responses] == [201] * n, [r.text for r in responses]
    skills, memory = await owned_rows(database, installer)
    assert len(skills) == n * len(PAYLOAD["skills"])
    assert len(memory) == n * len(PAYLOAD["seed_memory"])
    assert await installs_of(client, author, template["id"]) == n


async def test_installing_another_users_private_template_is_404_and_writes_nothing(
    client: httpx.AsyncClient, database: Database, new_user: NewUser
) -> None:
    author, intruder = new_user(), new_user()
    template = await create(client, author, "private")

    resp = await client.post(f"/templates/{template['id']}/install", headers=intruder.headers)
    missing = await client.post(f"/templates/{uuid.uuid4()}/install", headers=intruder.headers)

    assert_problem(resp, 404, "not-found")
    assert_problem(missing, 404, "not-found")
    assert await owned_rows(database, intruder) == ([], [])
    assert await owned_rows(database, author) == ([], [])
    assert await installs_of(client, author, template["id"]) == 0
    # Called directly, the counting function refuses too (null) and changes nothing.
    async with as_user(database, intruder) as tx:
        cur = await tx.execute(
            "select private.record_template_install(%s)", [uuid.UUID(template["id"])]
        )
        assert await cur.fetchone() == (None,)
    assert await installs_of(client, author, template["id"]) == 0


async def test_nobody_sets_installs_and_installers_cannot_change_the_authors_row(
    client: httpx.AsyncClient, database: Database, new_user: NewUser
) -> None:
    author, installer = new_user(), new_user()
    template = await create(client, author, "public", is_public=True)
    resp = await client.post(f"/templates/{template['id']}/install", headers=installer.headers)
    assert resp.status_code == 201, resp.text
    path = f"/templates/{template['id']}"

    # Through the API, installs is an unknown field, for the installer and the author alike
    for user in (installer, author):
        body = assert_problem(
            await client.patch(path, json={"installs": 1000}, headers=user.headers), 422
        )
        assert [(e["field"], e["rule"]) for e in body["errors"]] == [
            ("installs", "extra_forbidden")
        ]
    body = assert_problem(
        await client.post(
            "/templates", json={"name": "t", "payload": {}, "installs": 5}, headers=author.headers
        ),
        422,
    )
    assert [e["field"] for e in body["errors"]] == ["installs"]
    # ... and the installer may not change anything else of the author's row
    assert_problem(await client.patch(path, json={"name": "mine"}, headers=installer.headers), 403)
    # In the database, RLS hides the author's row from the installer's updates
    async with as_user(database, installer) as tx:
        cur = await tx.execute(
            "update public.templates set name = 'mine' where id = %s",
            [uuid.UUID(template["id"])],
        )
        assert cur.rowcount == 0
    # ... and nobody, not even the author, has the privilege to write the count
    for user in (installer, author):
        with pytest.raises(ForbiddenError) as refused:
            async with as_user(database, user) as tx:
                await tx.execute(
                    "update public.templates set installs = 1000 where id = %s",
                    [uuid.UUID(template["id"])],
                )
        assert isinstance(refused.value.__cause__, InsufficientPrivilege)
    with pytest.raises(ForbiddenError) as refused:
        async with as_user(database, author) as tx:
            await tx.execute("insert into public.templates (name, installs) values ('t', 1000)")
    assert isinstance(refused.value.__cause__, InsufficientPrivilege)
    after = (await client.get(path, headers=author.headers)).json()
    assert (after["name"], after["installs"]) == ("public", 1)


@pytest.mark.parametrize(
    ("payload", "field", "rule"),
    [
        ({"skills": [{"name": "s"}, {"name": ""}]}, "payload.skills.1.name", "string_too_short"),
        ({"skills": [{"description": "no name"}]}, "payload.skills.0.name", "missing"),
        (
            {"skills": [{"name": "s", "status": "active"}]},
            "payload.skills.0.status",
            "extra_forbidden",
        ),
        (
            {"skills": [{"name": "s", "instructions": "old name"}]},
            "payload.skills.0.instructions",
            "extra_forbidden",
        ),
        (
            {"seed_memory": [{"label": "x", "category": ""}]},
            "payload.seed_memory.0.category",
            "string_too_short",
        ),
        ({"seed_memory": [{"label": " "}]}, "payload.seed_memory.0.label", "string_too_short"),
        (
            {"seed_memory": [{"label": "x", "strength": 1.5}]},
            "payload.seed_memory.0.strength",
            "less_than_equal",
        ),
        ({"skills": [{"name": f"s{i}"} for i in range(101)]}, "payload.skills", "too_long"),
        ({"memory": []}, "payload.memory", "extra_forbidden"),
        ([], "payload", "model_attributes_type"),
    ],
)
async def test_bad_payload_is_422_naming_the_field_path(
    client: httpx.AsyncClient, new_user: NewUser, payload: Any, field: str, rule: str
) -> None:
    author = new_user()
    template = await create(client, author)

    for resp in (
        await client.post(
            "/templates", json={"name": "t", "payload": payload}, headers=author.headers
        ),
        await client.patch(
            f"/templates/{template['id']}", json={"payload": payload}, headers=author.headers
        ),
    ):
        body = assert_problem(resp, 422, "validation")
        assert [(e["field"], e["in"], e["rule"]) for e in body["errors"]] == [(field, "body", rule)]
    assert (await client.get("/templates", headers=author.headers)).json()["items"] == [template]


async def test_bad_input_outside_the_payload(client: httpx.AsyncClient, new_user: NewUser) -> None:
    author = new_user()
    h = author.headers
    body = assert_problem(await client.post("/templates", json={"name": "t"}, headers=h), 422)
    assert [(e["field"], e["rule"]) for e in body["errors"]] == [("payload", "missing")]
    body = assert_problem(
        await client.post(
            "/templates",
            json={"name": "t", "payload": {}, "author_id": str(uuid.uuid4())},
            headers=h,
        ),
        422,
    )
    assert [(e["field"], e["rule"]) for e in body["errors"]] == [("author_id", "extra_forbidden")]
    body = assert_problem(await client.get("/templates?public=maybe", headers=h), 422)
    assert body["errors"][0]["field"] == "public"
    assert_problem(await client.post("/templates/not-a-uuid/install", headers=h), 422)
    assert_problem(await client.post("/templates", json={"name": "t", "payload": {}}), 401)
