"""Events and webhooks: every transition of an action is published and delivered,
signed per Standard Webhooks, to its own organization's webhooks; failures are retried
with backoff, then marked failed; the secret is shown once and to admins only."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest
from standardwebhooks import Webhook

from agentplane.events.dispatcher import dispatch
from agentplane.events.local import LocalEvents
from agentplane.events.models import Event
from agentplane.events.publisher import LocalBus
from agentplane.runtime import Runtime
from tests.support.api import MakeOrg, Org, User, assert_problem, field_rules
from tests.support.builders import new_agent, propose
from tests.support.database import ProvisionedDatabase
from tests.support.webhooks import MAX_ATTEMPTS, Receiver, receiver

DEADLINE_SECONDS = 20.0


async def create_webhook(
    client: httpx.AsyncClient, org: Org, url: str, events: list[str], user: User | None = None
) -> dict[str, Any]:
    """A webhook of `org`, registered by its admin (201, with the secret)."""
    resp = await client.post(
        "/webhooks",
        json={"organization_id": str(org.id), "url": url, "events": events},
        headers=(user or org.admin).headers,
    )
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


async def deliveries(
    client: httpx.AsyncClient, webhook_id: str, user: User
) -> list[dict[str, Any]]:
    """The webhook's deliveries as the API shows them, newest first."""
    resp = await client.get(f"/webhooks/{webhook_id}/deliveries", headers=user.headers)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


async def dispatch_until(runtime: Runtime, done: Any, deadline: float = DEADLINE_SECONDS) -> None:
    """Run the dispatcher until `done()` is true (what the schedule does, faster)."""
    end = time.monotonic() + deadline
    while not await done():
        if time.monotonic() > end:
            raise AssertionError(f"not done after {deadline} s of dispatching")
        await dispatch(runtime)
        await asyncio.sleep(0.01)


def verified(secret: str, rec: Receiver) -> list[dict[str, Any]]:
    """Each request's body, checked against its Standard Webhooks signature."""
    return [Webhook(secret).verify(r.body, r.headers) for r in rec.got()]


async def test_a_receiver_gets_proposed_then_approved_signed_and_the_bus_gets_them(
    client: httpx.AsyncClient, make_org: MakeOrg, runtime: Runtime
) -> None:
    # Given an organization with a webhook on every action event, the in-process
    # dispatcher kicked after each commit, and a subscriber on the local bus
    org = await make_org("Acme")
    agent_id = await new_agent(client, org)
    bus = runtime.event_publisher
    assert isinstance(bus, LocalBus)
    published, stop = bus.queue()
    local = LocalEvents(runtime, interval=30.0)  # only kicks deliver within the test
    local.start()
    try:
        with receiver() as rec:
            hook = await create_webhook(client, org, rec.url, ["action.*"])
            assert hook["secret"].startswith("whsec_")
            # When a member proposes and an admin approves
            action = await propose(client, agent_id, org.member)
            resp = await client.post(f"/actions/{action['id']}/approve", headers=org.admin.headers)
            assert resp.status_code == 200, resp.text
            # Then the receiver gets both, in order, each signed with the webhook's secret
            await rec.wait_for(lambda got: len(got) >= 2)
            bodies = verified(hook["secret"], rec)
    finally:
        await local.stop()
        stop()
    assert [b["type"] for b in bodies] == ["action.proposed", "action.approved"]
    for body in bodies:
        assert body["data"]["action_id"] == action["id"]
        assert body["data"]["agent_id"] == agent_id
        assert body["data"]["organization_id"] == str(org.id)
        assert body["data"]["tool"] == "write_file"
        assert "args" not in json.dumps(body["data"])
    assert bodies[0]["data"]["to_status"] == "pending"
    assert (bodies[1]["data"]["from_status"], bodies[1]["data"]["to_status"]) == (
        "pending",
        "approved",
    )
    assert bodies[1]["data"]["actor_id"] == str(org.admin.id)
    # And the same message id on each request is the event's id
    ids = [r.headers["webhook-id"] for r in rec.got()]
    assert ids == [b["id"] for b in bodies]
    # And the local bus got the same events
    on_bus: list[Event] = [published.get_nowait() for _ in range(published.qsize())]
    assert [e.type for e in on_bus][:2] == ["action.proposed", "action.approved"]
    # And the deliveries show as delivered, with the receiver's answer
    shown = await deliveries(client, hook["id"], org.member)
    assert [
        (d["event_type"], d["status"], d["attempts"], d["last_status_code"]) for d in shown
    ] == [
        ("action.approved", "delivered", 1, 204),
        ("action.proposed", "delivered", 1, 204),
    ]
    assert "secret" not in json.dumps(shown)


async def test_a_failing_receiver_is_retried_with_backoff_then_marked_failed(
    client: httpx.AsyncClient, make_org: MakeOrg, runtime: Runtime
) -> None:
    org = await make_org("Acme")
    agent_id = await new_agent(client, org)
    with receiver(status=500) as rec:
        hook = await create_webhook(client, org, rec.url, ["action.proposed"])
        await propose(client, agent_id, org.member)
        seen: list[dict[str, Any]] = []

        async def failed() -> bool:
            items = await deliveries(client, hook["id"], org.admin)
            if items and (not seen or items[0]["attempts"] != seen[-1]["attempts"]):
                seen.append(items[0])
            return bool(items) and items[0]["status"] == "failed"

        await dispatch_until(runtime, failed)
    # Every try reached the receiver, and each was counted
    assert len(rec.got()) == MAX_ATTEMPTS
    assert [s["attempts"] for s in seen] == list(range(1, MAX_ATTEMPTS + 1))
    assert all(s["last_status_code"] == 500 for s in seen)
    assert seen[-1]["status"] == "failed"
    assert seen[-1]["delivered_at"] is None
    assert "500" in seen[-1]["last_error"]
    # Each retry waits at least its backoff's floor, which doubles (base 250 ms: 125 ms
    # after the first try, 250 ms after the second, each more than a try takes here, so
    # no backoff would show), counted from when the try ended; the try's own time comes
    # on top, so only the floor is exact (test_webhook_backoff.py has the bounds).
    waits = [
        datetime.fromisoformat(s["next_attempt_at"]) - datetime.fromisoformat(s["last_attempt_at"])
        for s in seen[:-1]
    ]
    assert len(waits) == MAX_ATTEMPTS - 1
    base = runtime.settings.webhook_backoff_seconds
    floors = [base * 2 ** (n - 1) / 2 for n in range(1, MAX_ATTEMPTS)]
    assert all(w.total_seconds() >= f for w, f in zip(waits, floors, strict=True)), waits
    # And nothing more is sent once it failed
    await dispatch(runtime)
    assert len(rec.got()) == MAX_ATTEMPTS


async def test_a_stranger_organizations_webhook_never_receives_its_events(
    client: httpx.AsyncClient, make_org: MakeOrg, runtime: Runtime
) -> None:
    acme, other = await make_org("Acme"), await make_org("Other")
    acme_agent = await new_agent(client, acme)
    with receiver() as mine, receiver() as theirs:
        acme_hook = await create_webhook(client, acme, mine.url, ["*"])
        other_hook = await create_webhook(client, other, theirs.url, ["*"])
        action = await propose(client, acme_agent, acme.member)
        resp = await client.post(f"/actions/{action['id']}/reject", headers=acme.admin.headers)
        assert resp.status_code == 200, resp.text

        async def both_delivered() -> bool:
            items = await deliveries(client, acme_hook["id"], acme.admin)
            return len(items) == 2 and all(d["status"] == "delivered" for d in items)

        await dispatch_until(runtime, both_delivered)
        types = [b["type"] for b in verified(acme_hook["secret"], mine)]
    assert types == ["action.proposed", "action.rejected"]
    assert theirs.got() == []
    assert await deliveries(client, other_hook["id"], other.admin) == []
    # Nor can the other organization see Acme's webhook or its deliveries
    resp = await client.get(f"/webhooks/{acme_hook['id']}/deliveries", headers=other.admin.headers)
    assert_problem(resp, 404)
    resp = await client.get("/webhooks", headers=other.admin.headers)
    assert [w["id"] for w in resp.json()["items"]] == [other_hook["id"]]


async def test_only_admins_create_and_delete_webhooks_and_nobody_reads_the_secret(
    client: httpx.AsyncClient, make_org: MakeOrg, fresh_db: ProvisionedDatabase
) -> None:
    org, stranger = await make_org("Acme"), await make_org("Other")
    body = {"organization_id": str(org.id), "url": "http://127.0.0.1:9/x", "events": ["*"]}
    for user in (org.member, org.viewer):
        assert_problem(await client.post("/webhooks", json=body, headers=user.headers), 403)
    assert_problem(await client.post("/webhooks", json=body, headers=stranger.admin.headers), 404)
    hook = await create_webhook(client, org, body["url"], ["*"], user=org.owner)
    # Members read it without a secret; the viewer sees none; the stranger none
    listed = await client.get(f"/webhooks?organization_id={org.id}", headers=org.member.headers)
    assert [w["id"] for w in listed.json()["items"]] == [hook["id"]]
    assert "secret" not in listed.text
    assert hook["secret"] not in listed.text
    for user in (org.viewer, stranger.admin):
        resp = await client.get("/webhooks", headers=user.headers)
        assert resp.json()["items"] == []
    # The secret's columns are closed to people even in SQL
    with psycopg.connect(fresh_db.app_url) as conn:
        claims = json.dumps({"sub": str(org.owner.id), "role": "authenticated"})
        conn.execute("set role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, false)", (claims,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select secret_ciphertext from public.webhooks")
    # Deleting: a member may not (403), a stranger cannot see it (404), an admin may
    resp = await client.delete(f"/webhooks/{hook['id']}", headers=org.member.headers)
    assert_problem(resp, 403)
    resp = await client.delete(f"/webhooks/{hook['id']}", headers=stranger.admin.headers)
    assert_problem(resp, 404)
    resp = await client.delete(f"/webhooks/{hook['id']}", headers=org.admin.headers)
    assert resp.status_code == 204, resp.text
    resp = await client.get(f"/webhooks/{hook['id']}/deliveries", headers=org.admin.headers)
    assert_problem(resp, 404)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"url": "ftp://example.com/hook"}, [("url", "scheme")]),
        ({"url": "http://user:pw@example.com/hook"}, [("url", "credentials")]),
        ({"events": []}, [("events", "too_short")]),
        ({"events": ["Action.Approved"]}, [("events.0", "event_pattern")]),
        ({"events": ["action.*", "action.*"]}, [("events", "unique")]),
        ({"secret": "mine"}, [("secret", "extra_forbidden")]),
    ],
)
async def test_bad_input_is_a_422_naming_the_field_and_the_rule(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    changes: dict[str, Any],
    expected: list[tuple[str, str]],
) -> None:
    org = await make_org("Acme")
    body = {"organization_id": str(org.id), "url": "https://example.com/hook", "events": ["*"]}
    resp = await client.post("/webhooks", json={**body, **changes}, headers=org.admin.headers)
    assert field_rules(assert_problem(resp, 422)) == expected


async def test_emit_event_is_the_servers_and_its_events_are_delivered_like_the_rest(
    client: httpx.AsyncClient, make_org: MakeOrg, runtime: Runtime, fresh_db: ProvisionedDatabase
) -> None:
    org = await make_org("Acme")
    with receiver() as rec:
        hook = await create_webhook(client, org, rec.url, ["action.escalated"])
        # A person may not call it, even for their own organization
        with psycopg.connect(fresh_db.app_url) as conn:
            claims = json.dumps({"sub": str(org.owner.id), "role": "authenticated"})
            conn.execute("set role authenticated")
            conn.execute("select set_config('request.jwt.claims', %s, false)", (claims,))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select private.emit_event(%s, 'action.escalated', '{}')", (org.id,))
        # The server (service role) may, in its own transaction
        async with runtime.database.service("test: an escalation") as tx:
            cur = await tx.execute(
                "select private.emit_event(%s, 'action.escalated', %s::jsonb)",
                (org.id, json.dumps({"action_id": "a", "to": "admins"})),
            )
            row = await cur.fetchone()
            assert row is not None
        await dispatch_until(runtime, lambda: _any(rec))
        (body,) = verified(hook["secret"], rec)
    assert body["id"] == str(row[0])
    assert (body["type"], body["data"]) == ("action.escalated", {"action_id": "a", "to": "admins"})


async def _any(rec: Receiver) -> bool:
    return bool(rec.got())
