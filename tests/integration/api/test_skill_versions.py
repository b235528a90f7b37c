"""Skills a person promotes, edits and dismisses; the versions edits make; suggestions a
mirror report makes with their evidence; and active skills offered to the model in turns."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.errors import ConflictError, NotFoundError
from agentplane.mirror import analysis
from agentplane.mirror.service import enqueue_nightly_reports
from agentplane.skills import service
from agentplane.skills.models import SkillUpdate
from tests.support.api import MakeOrg, User, assert_problem, collect_pages
from tests.support.builders import create_connection, new_agent, store_key
from tests.support.fake_provider import FakeProvider

SYSTEM = "You are a careful assistant."


async def create_skill(client: httpx.AsyncClient, user: User, **fields: Any) -> Any:
    """Create a skill through the API and return its JSON."""
    resp = await client.post("/skills", json={"name": "summarise", **fields}, headers=user.headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def post(client: httpx.AsyncClient, user: User, path: str) -> httpx.Response:
    return await client.post(path, headers=user.headers)


async def test_a_person_promotes_edits_and_dismisses(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    # Given a suggestion and a draft
    suggestion = await create_skill(client, user, template_prompt="Be brief.")
    draft = await create_skill(client, user, name="draft", status="draft")
    path = f"/skills/{suggestion['id']}"

    # When the suggestion is promoted, it is active, at the same version
    promoted = await post(client, user, f"{path}/promote")
    assert promoted.status_code == 200, promoted.text
    assert (promoted.json()["status"], promoted.json()["version"]) == ("active", 1)
    # Promoting it again is not a move
    assert (await post(client, user, f"{path}/promote")).json()["status"] == "active"
    # An edit makes version 2 and keeps it active
    edited = await client.patch(path, json={"template_prompt": "Be briefer."}, headers=user.headers)
    assert (edited.json()["status"], edited.json()["version"]) == ("active", 2)
    # An active skill cannot be dismissed: 409 naming its status, and nothing changes
    body = assert_problem(await post(client, user, f"{path}/dismiss"), 409, "skill-transition")
    assert (body["current_status"], body["requested_status"]) == ("active", "archived")
    assert (await client.get(path, headers=user.headers)).json() == edited.json()

    # Then the draft is dismissed (archived), and an archived skill cannot be promoted
    dismissed = await post(client, user, f"/skills/{draft['id']}/dismiss")
    assert dismissed.status_code == 200, dismissed.text
    assert dismissed.json()["status"] == "archived"
    body = assert_problem(await post(client, user, f"/skills/{draft['id']}/promote"), 409)
    assert (body["current_status"], body["requested_status"]) == ("archived", "active")
    assert "archived" in body["detail"]


async def test_edits_make_versions_and_old_ones_stay_readable(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    user = new_user()
    # Given a skill edited twice, and rescored (not an edit)
    skill = await create_skill(
        client, user, description="d1", category="c1", template_prompt="p1", score=0.25
    )
    path = f"/skills/{skill['id']}"
    for body in (
        {"name": "tldr", "template_prompt": "p2"},
        {"score": 0.5},
        {"description": "d3", "category": "c3"},
    ):
        resp = await client.patch(path, json=body, headers=user.headers)
        assert resp.status_code == 200, resp.text
    assert resp.json()["version"] == 3

    # When its versions are listed one per page
    versions, pages = await collect_pages(client, f"{path}/versions", user.headers, limit=1)

    # Then each holds the content it had, oldest first
    assert pages == 3
    content = ("version", "name", "description", "category", "template_prompt", "score")
    assert [tuple(v[c] for c in content) for v in versions] == [
        (1, "summarise", "d1", "c1", "p1", 0.25),
        (2, "tldr", "d1", "c1", "p2", 0.25),
        (3, "tldr", "d3", "c3", "p2", 0.5),
    ]
    assert {(v["skill_id"], v["user_id"]) for v in versions} == {(skill["id"], str(user.id))}
    first = await client.get(f"{path}/versions/1", headers=user.headers)
    assert first.status_code == 200, first.text
    assert first.json() == versions[0]
    missing = assert_problem(
        await client.get(f"{path}/versions/4", headers=user.headers), 404, "not-found"
    )
    assert "version 4" in missing["detail"]
    assert_problem(await client.get(f"{path}/versions/0", headers=user.headers), 422)
    # Deleting the skill takes its versions with it
    assert (await client.delete(path, headers=user.headers)).status_code == 204
    assert_problem(await client.get(f"{path}/versions/1", headers=user.headers), 404)


async def _wait_for_a_lock_wait(database: Database) -> None:
    """Poll (with a deadline) until some backend waits on a lock (pg_locks shows every
    role's locks; pg_stat_activity hides other roles' waits)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        async with database.service("test: watch lock waits") as tx:
            cur = await tx.execute("select count(*) from pg_locks where not granted")
            row = await cur.fetchone()
            assert row is not None
            if row[0] > 0:
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the second edit never waited for the first")


async def test_concurrent_edits_each_get_their_own_version(
    client: httpx.AsyncClient, database: Database, new_user: Callable[[], User]
) -> None:
    user = new_user()
    skill = await create_skill(client, user, template_prompt="p1")
    skill_id = uuid.UUID(skill["id"])
    caller = Caller.user({"sub": str(user.id)})

    async def edit(prompt: str, updated: asyncio.Event, release: asyncio.Event) -> int:
        async with database.transaction(caller) as tx:
            changes = SkillUpdate(template_prompt=prompt).model_dump(exclude_unset=True)
            changed = await service.update(tx, skill_id, changes, None)
            updated.set()
            await release.wait()
            return changed.version

    # Given a first edit that holds its row lock, open
    first_updated, release_first, go = asyncio.Event(), asyncio.Event(), asyncio.Event()
    go.set()
    first = asyncio.create_task(edit("from A", first_updated, release_first))
    await first_updated.wait()
    # When a second edit starts while the first is open, waits for it, and then it commits
    second = asyncio.create_task(edit("from B", asyncio.Event(), go))
    await _wait_for_a_lock_wait(database)
    release_first.set()

    # Then each gets its own version, and both are kept with their own text
    assert sorted(await asyncio.gather(first, second)) == [2, 3]
    versions, _ = await collect_pages(client, f"/skills/{skill_id}/versions", user.headers, 10)
    assert [(v["version"], v["template_prompt"]) for v in versions] == [
        (1, "p1"),
        (2, "from A"),
        (3, "from B"),
    ]


async def test_strangers_get_404_on_every_skill_route(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    owner, stranger = new_user(), new_user()
    skill = await create_skill(client, owner, template_prompt="p")
    path = f"/skills/{skill['id']}"
    calls = [
        ("GET", path, None),
        ("PATCH", path, {"name": "pwned"}),
        ("PATCH", path, {"status": "active"}),
        ("POST", f"{path}/promote", None),
        ("POST", f"{path}/dismiss", None),
        ("GET", f"{path}/versions", None),
        ("GET", f"{path}/versions/1", None),
        ("DELETE", path, None),
    ]
    for method, url, body in calls:
        resp = await client.request(method, url, json=body, headers=stranger.headers)
        assert_problem(resp, 404, "not-found")
        assert f"skill {skill['id']}" in resp.json()["detail"], (method, url)
    # The owner's skill is as it was, with its one version
    assert (await client.get(path, headers=owner.headers)).json() == skill
    versions = await client.get(f"{path}/versions", headers=owner.headers)
    assert [v["version"] for v in versions.json()["items"]] == [1]


async def _report_of(client: httpx.AsyncClient, database: Database, user: User) -> uuid.UUID:
    """A queued mirror report of one of the user's connections (the nightly enqueue's)."""
    conn = await create_connection(client, user, name="c", provider="openrouter", model="m")
    conv = await client.post(
        "/conversations", json={"agent_connection_id": conn["id"]}, headers=user.headers
    )
    msg = await client.post(
        f"/conversations/{conv.json()['id']}/messages",
        json={"role": "user", "content": "hello"},
        headers=user.headers,
    )
    assert msg.status_code == 201, msg.text
    [report_id] = (await enqueue_nightly_reports(database)).report_ids
    return report_id


async def test_suggest_skills_inserts_suggestions_with_evidence(
    client: httpx.AsyncClient, database: Database, new_user: Callable[[], User]
) -> None:
    alice, bob = new_user(), new_user()
    report_id = await _report_of(client, database, alice)
    evidence = [uuid.uuid4(), uuid.uuid4()]

    # When the report runner (service role) suggests two skills for the report's owner
    async with database.service("test: a report suggests skills") as tx:
        made = await service.suggest_skills(
            tx,
            alice.id,
            report_id,
            [
                {
                    "name": "cite sources",
                    "category": "research",
                    "description": "link every claim",
                    "template_prompt": "Cite a source for each claim.",
                    "score": 0.8,
                    "evidence": evidence,
                },
                # What the analyzer hands the runner, as it dumps it
                analysis.SuggestedSkill(
                    name="ask first", template_prompt="Ask.", evidence=[evidence[0]]
                ).model_dump(),
            ],
        )

    # Then they are alice's suggestions, naming the report and their evidence
    assert [(s.name, s.status, s.user_id, s.source_report_id) for s in made] == [
        ("cite sources", "suggested", alice.id, report_id),
        ("ask first", "suggested", alice.id, report_id),
    ]
    assert made[0].evidence == [str(e) for e in evidence]
    assert (made[0].category, made[0].score, made[0].version) == ("research", 0.8, 1)
    assert (made[1].category, made[1].template_prompt, made[1].score) == ("general", "Ask.", 0.5)
    listed = await client.get("/skills", params={"status": "suggested"}, headers=alice.headers)
    # (made in one transaction, so they share created_at: compare by name)
    assert {s["name"]: s["evidence"] for s in listed.json()["items"]} == {
        "cite sources": [str(e) for e in evidence],
        "ask first": [str(evidence[0])],
    }
    assert (await client.get("/skills", headers=bob.headers)).json()["items"] == []
    # And alice can promote one
    promoted = await post(client, alice, f"/skills/{made[0].id}/promote")
    assert promoted.json()["status"] == "active"


async def test_a_suggestion_names_only_its_owners_report(
    client: httpx.AsyncClient, database: Database, new_user: Callable[[], User]
) -> None:
    alice, bob = new_user(), new_user()
    await client.get("/me", headers=bob.headers)
    report_id = await _report_of(client, database, alice)

    # The service refuses a report of someone else's
    with pytest.raises(NotFoundError):
        async with database.service("test: suggest for the wrong user") as tx:
            await service.suggest_skills(tx, bob.id, report_id, [{"name": "x"}])
    # And so does the database, whoever writes the row
    with pytest.raises(ConflictError, match="skills_source_report_fk"):
        async with database.service("test: insert a cross-user suggestion") as tx:
            await tx.execute(
                "insert into public.skills (user_id, name, source_report_id) values (%s, 'x', %s)",
                [bob.id, report_id],
            )
    # When the report goes, its suggestions stay, naming no report
    async with database.service("test: suggest then delete the report") as tx:
        [made] = await service.suggest_skills(tx, alice.id, report_id, [{"name": "kept"}])
        await tx.execute("delete from public.mirror_reports where id = %s", [report_id])
    kept = await client.get(f"/skills/{made.id}", headers=alice.headers)
    assert (kept.json()["name"], kept.json()["source_report_id"]) == ("kept", None)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    """The model provider: a local OpenAI-compatible server."""
    with FakeProvider() as server:
        yield server


async def _turn_setup(
    client: httpx.AsyncClient, make_org: MakeOrg, fake: FakeProvider
) -> tuple[str, User]:
    """An agent wired to the fake provider; returns it and the member who talks to it."""
    org = await make_org()
    agent_id = await new_agent(client, org)
    connection = await create_connection(
        client, org.member, name="local", provider="custom", base_url=fake.base_url, model="m1"
    )
    config = await client.put(
        f"/agents/{agent_id}/config",
        json={
            "model": "",
            "system_prompt": SYSTEM,
            "temperature": 0.2,
            "connection_id": connection["id"],
            "allowed_tools": [],
        },
        headers=org.member.headers,
    )
    assert config.status_code == 200, config.text
    await store_key(client, org.member, org, "sk-fake-provider-key-7731", provider="custom")
    return agent_id, org.member


async def test_turns_offer_the_callers_active_skills_to_the_model(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    fake: FakeProvider,
    new_user: Callable[[], User],
) -> None:
    agent_id, member = await _turn_setup(client, make_org, fake)
    stranger = new_user()
    # Given the member's skills that are not active, and a stranger's active skill
    await create_skill(client, member, name="later", template_prompt="Not yet.", score=9)
    await create_skill(
        client, stranger, name="theirs", template_prompt="Not mine.", status="active"
    )

    async def system_message() -> Any:
        resp = await client.post(
            f"/agents/{agent_id}/turns", json={"message": "hi"}, headers=member.headers
        )
        assert resp.status_code == 201, resp.text
        return fake.requests[-1]["json"]["messages"][0]

    # When the member holds a turn without active skills, the system message is the prompt
    assert await system_message() == {"role": "system", "content": SYSTEM}

    # When two of theirs are active (and one active without a prompt)
    for name, prompt, score in (("a-cite", "Cite sources.", 0.5), ("b-brief", "Be brief.", 0.9)):
        await create_skill(
            client, member, name=name, template_prompt=prompt, score=score, status="active"
        )
    await create_skill(client, member, name="empty", status="active")

    # Then the next turn lists them after the prompt, best score first
    assert await system_message() == {
        "role": "system",
        "content": f"{SYSTEM}\n\nSkills you have:\n- b-brief: Be brief.\n- a-cite: Cite sources.",
    }
