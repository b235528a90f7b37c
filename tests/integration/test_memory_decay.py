"""Memory decay on a fixed clock (every `at` is given, nothing sleeps): the curve in SQL
and in Python agree, ranking follows decayed strength and reinforcement, the nightly
archive step touches exactly the nodes that crossed the threshold, recall is relevant,
reinforcing and the caller's own, and a turn sends what it recalled to the model."""

from __future__ import annotations

import math
import struct
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from agentplane.apps import build_local_app
from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.memory import decay
from agentplane.memory.models import MemoryNode, MemoryNodeCreate
from agentplane.memory.service import archive_faded, create, page, recall_for_turn
from agentplane.runtime import Runtime
from agentplane.settings import Settings
from tests.support.api import MakeOrg, User, collect_pages
from tests.support.builders import create_connection, new_agent, store_key
from tests.support.database import ProvisionedDatabase
from tests.support.fake_provider import FakeProvider, Reply

DAY = timedelta(days=1)
WEEK_SECONDS = 604800.0


def caller(user_id: uuid.UUID) -> Caller:
    return Caller.user({"sub": str(user_id)})


async def remember(
    database: Database, user_id: uuid.UUID, label: str, strength: float, content: str = ""
) -> MemoryNode:
    """A node made through the domain, as its user (used first when it is made)."""
    async with database.transaction(caller(user_id)) as tx:
        return await create(tx, MemoryNodeCreate(label=label, strength=strength, content=content))


async def ranked(database: Database, user_id: uuid.UUID, at: datetime) -> list[str]:
    """The user's live nodes' labels, strongest (decayed at `at`) first, two per page."""
    labels: list[str] = []
    cursor = None
    async with database.transaction(caller(user_id)) as tx:
        while True:
            got = await page(tx, limit=2, cursor=cursor, filters={}, order="strength", at=at)
            labels += [n.label for n in got.items]
            if got.next_cursor is None:
                return labels
            cursor = got.next_cursor


async def use(database: Database, user_id: uuid.UUID, text: str, at: datetime) -> list[str]:
    async with database.transaction(caller(user_id)) as tx:
        return [n.label for n in await recall_for_turn(tx, user_id, text, at=at)]


async def test_sql_and_python_decay_agree(fresh_db: ProvisionedDatabase) -> None:
    # Given a grid of strengths, ages (some before the last use) and stabilities
    origin = datetime.fromisoformat("2026-01-01T00:00:00.000001+00:00")
    cases = [
        (strength, origin + timedelta(seconds=age), stability)
        for strength in (0.0, 0.05, 0.5, 0.7, 1.0)
        for age in (-3600.0, 0.0, 1.5, 86400.25, 30 * 86400.0, 400 * 86400.0)
        for stability in (1.0, WEEK_SECONDS, WEEK_SECONDS * 1.5**7, decay.STABILITY_CAP_SECONDS)
    ]
    with psycopg.connect(fresh_db.admin_url) as conn:
        for strength, at, stability in cases:
            row = conn.execute(
                "select private.decayed_strength(%s::float8, %s, %s::float8, %s)",
                (strength, origin, stability, at),
            ).fetchone()
            assert row is not None
            # Then the twins give the same double, bit for bit
            assert row[0] == decay.decayed_strength(strength, origin, stability, at), (
                strength,
                at,
                stability,
            )
    # And no decay before the last use; a week of it at a week's stability is 1/e
    assert decay.decayed_strength(0.5, origin, WEEK_SECONDS, origin - DAY) == 0.5
    week = decay.decayed_strength(1.0, origin, WEEK_SECONDS, origin + 7 * DAY)
    assert week == pytest.approx(math.exp(-1))


async def test_stored_rows_decay_as_the_python_twin_says(database: Database) -> None:
    # Given a node used once a day after it was made
    user = uuid.uuid4()
    node = await remember(database, user, "likes tea", 0.7, "green, no sugar")
    t0 = node.last_used_at
    assert await use(database, user, "tea", t0 + DAY) == ["likes tea"]
    # When it is listed two weeks later
    at = t0 + 15 * DAY
    async with database.transaction(caller(user)) as tx:
        [row] = (await page(tx, limit=5, cursor=None, filters={}, order="strength", at=at)).items
    # Then its decayed strength and fades_at are the Python twin's, given the strength
    # as the real (float4) the column stores, not the double nearest 0.7
    assert (row.reinforcements, row.stability_seconds) == (1, WEEK_SECONDS * 1.5)
    assert row.last_used_at == t0 + DAY
    stored = struct.unpack("f", struct.pack("f", row.strength))[0]
    expected = decay.decayed_strength(stored, row.last_used_at, row.stability_seconds, at)
    assert row.decayed_strength == pytest.approx(expected, rel=1e-12)
    fades = decay.fades_at(stored, row.last_used_at, row.stability_seconds)
    assert abs(row.fades_at - fades) <= timedelta(microseconds=1)


async def test_ranking_follows_decay_and_reinforcement(database: Database) -> None:
    # Given a strong node and a weaker one, made at about the same time
    user = uuid.uuid4()
    strong = await remember(database, user, "strong", 0.9, "an old habit")
    await remember(database, user, "weak", 0.5, "a new interest")
    await remember(database, user, "faint", 0.1, "a rumour")
    t0 = strong.last_used_at
    # Then at first the strong one ranks first (over pages of two)
    assert await ranked(database, user, t0 + DAY) == ["strong", "weak", "faint"]
    # When only the weaker one is used, on day 19
    assert await use(database, user, "interest", t0 + 19 * DAY) == ["weak"]
    # Then on day 20 the old strong node (0.9 e^-20/7 ~ 0.05) ranks below it (~0.45)
    assert await ranked(database, user, t0 + 20 * DAY) == ["weak", "strong", "faint"]
    # And using the strong one again brings it back to the top
    assert await use(database, user, "habit", t0 + 20 * DAY) == ["strong"]
    assert await ranked(database, user, t0 + 20 * DAY) == ["strong", "weak", "faint"]


async def test_strength_pages_keep_the_first_pages_clock(
    client: httpx.AsyncClient, new_user: Any
) -> None:
    # Given five nodes of distinct strengths, made through the API
    user: User = new_user()
    for strength in (0.3, 0.9, 0.1, 0.7, 0.5):
        resp = await client.post(
            "/memory-nodes",
            json={"label": f"s{strength}", "strength": strength},
            headers=user.headers,
        )
        assert resp.status_code == 201, resp.text
    # When they are listed by strength two at a time
    items, pages = await collect_pages(
        client, "/memory-nodes", user.headers, limit=2, order="strength"
    )
    # Then strongest first, each once, over three pages
    assert [i["label"] for i in items] == ["s0.9", "s0.7", "s0.5", "s0.3", "s0.1"]
    assert pages == 3
    # And a created_at cursor is not a strength cursor
    first = await client.get("/memory-nodes?limit=2", headers=user.headers)
    bad = await client.get(
        "/memory-nodes",
        params={"order": "strength", "cursor": first.json()["next_cursor"]},
        headers=user.headers,
    )
    assert bad.status_code == 422


def _xmins(admin_url: str) -> dict[str, tuple[str, Any]]:
    with psycopg.connect(admin_url) as conn:
        rows = conn.execute(
            "select label, xmin::text, archived_at from public.memory_nodes"
        ).fetchall()
    return {label: (xmin, archived_at) for label, xmin, archived_at in rows}


async def test_archive_touches_exactly_the_nodes_that_crossed(
    database: Database, fresh_db: ProvisionedDatabase, client: httpx.AsyncClient, new_user: Any
) -> None:
    # Given nodes that fade after 7 days * ln(strength / 0.05): 0.9 at ~20 days, 0.5 at
    # ~16, 0.2 at ~9.7, 0.06 at ~1.3; one 0.2 used on day 5 (fades on day ~19.6); and
    # another user's 0.06
    owner: User = new_user()
    other = uuid.uuid4()
    made = [
        await remember(database, owner.id, label, strength)
        for label, strength in (("s90", 0.9), ("s50", 0.5), ("s20", 0.2), ("s06", 0.06))
    ]
    await remember(database, owner.id, "used", 0.2, "kept fresh")
    await remember(database, other, "theirs", 0.06)
    t0 = made[0].last_used_at
    assert await use(database, owner.id, "fresh", t0 + 5 * DAY) == ["used"]
    before = _xmins(fresh_db.admin_url)

    # When the nightly step runs on day 12, in batches of two
    archived = await archive_faded(database, at=t0 + 12 * DAY, limit=2)

    # Then it archived exactly the three crossing nodes, and rewrote no other row
    after = _xmins(fresh_db.admin_url)
    assert archived == 3
    crossed = {"s20", "s06", "theirs"}
    assert {label for label, (_, at) in after.items() if at is not None} == crossed
    assert all(after[label][1] == t0 + 12 * DAY for label in crossed)
    assert {k: v for k, v in after.items() if k not in crossed} == {
        k: v for k, v in before.items() if k not in crossed
    }
    # And a second run finds nothing and changes nothing (nothing is deleted)
    assert await archive_faded(database, at=t0 + 12 * DAY) == 0
    assert _xmins(fresh_db.admin_url) == after
    # And the owner's default list hides the archived nodes; ?archived=true shows them
    live, _ = await collect_pages(client, "/memory-nodes", owner.headers, limit=50)
    assert sorted(i["label"] for i in live) == ["s50", "s90", "used"]
    gone, _ = await collect_pages(
        client, "/memory-nodes", owner.headers, limit=50, archived="true", order="strength"
    )
    assert sorted(i["label"] for i in gone) == ["s06", "s20"]
    # And recall no longer finds an archived node
    assert await use(database, owner.id, "s20", t0 + 12 * DAY) == []
    # And reading it brings it back
    node_id = next(n.id for n in made if n.label == "s20")
    back = await client.get(f"/memory-nodes/{node_id}", headers=owner.headers)
    assert back.json()["archived_at"] is None
    # And a threshold above the one fades_at is kept for is refused, not half done
    with pytest.raises(ValueError, match="threshold"):
        await archive_faded(database, threshold=0.2)


async def test_archive_reads_only_what_crossed_through_the_index(
    fresh_db: ProvisionedDatabase,
) -> None:
    # Given many live nodes none of which has faded
    with psycopg.connect(fresh_db.admin_url) as conn:
        user = conn.execute(
            "insert into auth.users (id, email) values (gen_random_uuid(), 'x@y') returning id"
        ).fetchone()
        assert user is not None
        conn.execute(
            "insert into public.memory_nodes (user_id, label, strength)"
            " select %s, 'n' || g, 0.9 from generate_series(1, 5000) g",
            (user[0],),
        )
        conn.execute("analyze public.memory_nodes")
        # When the archive step's query is explained at now
        plan = conn.execute(
            "explain (analyze, format json) with faded as (select id from public.memory_nodes"
            " where archived_at is null and fades_at <= now()"
            " and private.decayed_strength(strength, last_used_at, stability_seconds, now())"
            " < 0.05 order by fades_at limit 1000 for update skip locked)"
            " update public.memory_nodes m set archived_at = now()"
            " from faded where m.id = faded.id"
        ).fetchone()
    assert plan is not None
    text = str(plan[0])
    # Then it walks memory_nodes_fades_at_idx and reads no row of the table's 5,000
    assert "memory_nodes_fades_at_idx" in text
    assert "Seq Scan" not in text


async def test_recall_is_relevant_reinforcing_and_the_callers_own(database: Database) -> None:
    # Given a user's memory about tea and about a city, and a stranger
    user, stranger = uuid.uuid4(), uuid.uuid4()
    tea = await remember(database, user, "Likes green tea", 0.6, "no sugar, never black tea")
    await remember(database, user, "Tea ceremony", 0.9, "went to one in Kyoto")
    await remember(database, user, "Lives in Lisbon", 0.9, "near the river")
    t0 = tea.last_used_at
    at = t0 + 3 * DAY
    # When a turn about tea recalls
    async with database.transaction(caller(user)) as tx:
        got = await recall_for_turn(tx, user, "which tea should I drink?", at=at)
    # Then the tea nodes come back (the city does not), best score first, reinforced
    assert {n.label for n in got} == {"Likes green tea", "Tea ceremony"}
    for node in got:
        assert (node.last_used_at, node.reinforcements) == (at, 1)
        assert node.stability_seconds == WEEK_SECONDS * 1.5
    async with database.transaction(caller(user)) as tx:
        rows = (await page(tx, limit=10, cursor=None, filters={}, at=at)).items
    lisbon = next(r for r in rows if r.label == "Lives in Lisbon")
    assert (lisbon.reinforcements, lisbon.last_used_at) == (0, lisbon.created_at)
    # And the limit holds
    async with database.transaction(caller(user)) as tx:
        assert len(await recall_for_turn(tx, user, "tea", limit=1, at=at)) == 1
    # And a stranger recalls nothing of theirs, even naming their id (RLS)
    async with database.transaction(caller(stranger)) as tx:
        assert await recall_for_turn(tx, stranger, "tea", at=at) == []
        assert await recall_for_turn(tx, user, "tea", at=at) == []


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


@pytest.fixture
async def turn_client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    runtime = Runtime(settings.model_copy(update={"provider_backoff_seconds": 0.01}), database)
    transport = httpx.ASGITransport(app=build_local_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    await runtime.close()


async def test_a_turn_tells_the_model_what_the_member_remembers(
    turn_client: httpx.AsyncClient, make_org: MakeOrg, fake: FakeProvider, database: Database
) -> None:
    # Given an agent on the fake provider, and a member who remembers two things
    client = turn_client
    org = await make_org()
    agent_id = await new_agent(client, org)
    connection = await create_connection(
        client, org.member, name="local", provider="custom", base_url=fake.base_url, model="m1"
    )
    config = await client.put(
        f"/agents/{agent_id}/config",
        json={
            "model": "",
            "system_prompt": "Be brief.",
            "temperature": 0.2,
            "connection_id": connection["id"],
            "allowed_tools": [],
        },
        headers=org.member.headers,
    )
    assert config.status_code == 200, config.text
    await store_key(client, org.member, org, "sk-fake-7731", provider="custom")
    for label, content in (("Coffee", "flat white, oat milk"), ("Cat", "named Miso")):
        resp = await client.post(
            "/memory-nodes", json={"label": label, "content": content}, headers=org.member.headers
        )
        assert resp.status_code == 201, resp.text
    # And the owner, who remembers coffee differently
    await client.post(
        "/memory-nodes", json={"label": "Coffee", "content": "espresso"}, headers=org.owner.headers
    )
    fake.script(Reply(body=FakeProvider.completion("Flat white it is.")))

    # When the member asks about coffee
    resp = await client.post(
        f"/agents/{agent_id}/turns",
        json={"message": "order my usual coffee"},
        headers=org.member.headers,
    )

    # Then the system message carries the prompt and the member's own coffee memory only
    assert resp.status_code == 201, resp.text
    [sent] = fake.requests
    assert sent["json"]["messages"][0] == {
        "role": "system",
        "content": "Be brief.\n\nThings you remember:\n- Coffee: flat white, oat milk",
    }
    # And the recall reinforced it
    listed = await client.get("/memory-nodes", headers=org.member.headers)
    used = {n["label"]: n["reinforcements"] for n in listed.json()["items"]}
    assert used == {"Coffee": 1, "Cat": 0}
