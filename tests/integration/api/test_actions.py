"""Proposals, human decisions, signed approvals and the hash-chained audit log."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
import psycopg
import pytest

from agentplane.actions.audit import verify_database
from agentplane.actions.canonical import approval_message, payload_sha256
from agentplane.actions.signing import public_key_from_jwk, verify_signature
from agentplane.db.database import Database
from agentplane.errors import ForbiddenError, ValidationProblemError
from tests.support.api import MakeOrg, NewUser, assert_problem, field_rules
from tests.support.builders import PAYLOAD, new_agent, post_proposal, propose
from tests.support.database import ProvisionedDatabase


async def test_propose_hashes_the_canonical_payload_and_retries_are_idempotent(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    first = await post_proposal(client, agent_id, org.member, idempotency="turn-1/call-1")
    assert first.status_code == 201, first.text
    action = first.json()
    assert action["status"] == "pending"
    assert action["payload"] == PAYLOAD
    assert action["payload_sha256"] == payload_sha256(PAYLOAD)
    # A retry returns the first action, never a second one (body key or header alike)
    again = await post_proposal(client, agent_id, org.member, idempotency="turn-1/call-1")
    assert (again.status_code, again.json()["id"]) == (200, action["id"])
    by_header = await client.post(
        f"/agents/{agent_id}/actions",
        json={"payload": PAYLOAD},
        headers={**org.member.headers, "Idempotency-Key": "turn-1/call-1"},
    )
    assert (by_header.status_code, by_header.json()["id"]) == (200, action["id"])
    # The same key with another payload is a conflict
    other = await client.post(
        f"/agents/{agent_id}/actions",
        json={
            "payload": {"tool": "read_file", "args": {"path": "other.txt"}},
            "idempotency": "turn-1/call-1",
        },
        headers=org.member.headers,
    )
    assert_problem(other, 409)
    listed = await client.get(f"/actions?agent_id={agent_id}", headers=org.viewer.headers)
    assert [a["id"] for a in listed.json()["items"]] == [action["id"]]


async def test_approval_is_signed_over_the_payload_hash(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    action = await propose(client, agent_id, org.member)

    resp = await client.post(
        f"/actions/{action['id']}/approve", json={"reason": "looks fine"}, headers=org.admin.headers
    )

    assert resp.status_code == 200, resp.text
    approved = resp.json()
    assert approved["status"] == "approved"
    assert approved["decided_by"] == str(org.admin.id)
    assert approved["decision_reason"] == "looks fine"
    jwks = (await client.get("/.well-known/agentplane/signing-key")).json()
    key = public_key_from_jwk(jwks["keys"][0])
    message = approval_message(
        uuid.UUID(approved["id"]),
        uuid.UUID(agent_id),
        approved["payload_sha256"],
        datetime.fromisoformat(approved["decided_at"]),
        datetime.fromisoformat(approved["approval_expires_at"]),
        risk=approved["risk"],
        policy_id=None,
        policy_version=None,
    )
    assert verify_signature(key, message, approved["approval_signature"])
    # A signature over a different payload hash does not verify, nor one over another risk
    forged = approval_message(
        uuid.UUID(approved["id"]),
        uuid.UUID(agent_id),
        payload_sha256({"tool": "shell", "args": {"command": "rm -rf /"}}),
        datetime.fromisoformat(approved["decided_at"]),
        datetime.fromisoformat(approved["approval_expires_at"]),
        risk=approved["risk"],
        policy_id=None,
        policy_version=None,
    )
    assert not verify_signature(key, forged, approved["approval_signature"])
    riskier = approval_message(
        uuid.UUID(approved["id"]),
        uuid.UUID(agent_id),
        approved["payload_sha256"],
        datetime.fromisoformat(approved["decided_at"]),
        datetime.fromisoformat(approved["approval_expires_at"]),
        risk="low",
        policy_id=None,
        policy_version=None,
    )
    assert approved["risk"] != "low"
    assert not verify_signature(key, riskier, approved["approval_signature"])


async def test_of_many_concurrent_decisions_exactly_one_wins(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    action_id = (await propose(client, agent_id, org.member))["id"]

    # When 20 people decide at once, half approving and half rejecting
    calls = [
        client.post(
            f"/actions/{action_id}/{'approve' if i % 2 else 'reject'}",
            headers=(org.owner, org.admin, org.member)[i % 3].headers,
        )
        for i in range(20)
    ]
    results = await asyncio.gather(*calls)

    # Then exactly one decision wins and every other gets 409 with the winner's state
    winners = [r for r in results if r.status_code == 200]
    losers = [r for r in results if r.status_code == 409]
    assert len(winners) == 1
    assert len(losers) == 19
    final = winners[0].json()["status"]
    assert {r.json()["current_status"] for r in losers} == {final}
    events = (await client.get(f"/actions/{action_id}/events", headers=org.viewer.headers)).json()
    assert [(e["from_status"], e["to_status"]) for e in events["items"]] == [
        (None, "pending"),
        ("pending", final),
    ]


async def test_who_may_decide(
    client: httpx.AsyncClient, make_org: MakeOrg, new_user: NewUser
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    action_id = (await propose(client, agent_id, org.member))["id"]
    assert_problem(
        await client.post(f"/actions/{action_id}/approve", headers=org.viewer.headers), 403
    )
    stranger = new_user()
    assert_problem(
        await client.post(f"/actions/{action_id}/approve", headers=stranger.headers), 404
    )
    assert_problem(await client.get(f"/actions/{action_id}", headers=stranger.headers), 404)
    assert_problem(await post_proposal(client, agent_id, stranger), 404)
    assert_problem(await post_proposal(client, agent_id, org.viewer), 403)
    # After a rejection nothing else applies; an approved action can still be cancelled
    assert (
        await client.post(f"/actions/{action_id}/reject", headers=org.member.headers)
    ).status_code == 200
    body = assert_problem(
        await client.post(f"/actions/{action_id}/approve", headers=org.member.headers), 409
    )
    assert body["current_status"] == "rejected"
    other = (await propose(client, agent_id, org.member))["id"]
    await client.post(f"/actions/{other}/approve", headers=org.member.headers)
    cancelled = await client.post(f"/actions/{other}/cancel", headers=org.member.headers)
    assert cancelled.json()["status"] == "cancelled"


async def test_an_expired_proposal_cannot_be_approved(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    action_id = (await propose(client, agent_id, org.member, ttl_seconds=10))["id"]
    async with database.service("test: let the proposal's TTL pass") as tx:
        await tx.execute(
            "update public.agent_actions set expires_at = now() - interval '1 second'"
            " where id = %s",
            (action_id,),
        )
    body = assert_problem(
        await client.post(f"/actions/{action_id}/approve", headers=org.member.headers), 409
    )
    assert body["current_status"] == "pending"


@pytest.mark.parametrize(
    "assignment",
    [
        'payload = \'{"tool": "other"}\'::jsonb',
        "payload_sha256 = repeat('0', 64)",
        "status = status, payload = payload || '{\"x\": 1}'",
    ],
)
async def test_the_payload_cannot_change_even_for_the_service_role(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database, assignment: str
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    action_id = (await propose(client, agent_id, org.member))["id"]

    async def rewrite() -> None:
        async with database.service("test: try to rewrite a payload") as tx:
            await tx.execute(
                f"update public.agent_actions set {assignment} where id = %s".encode(),
                (action_id,),
            )

    with pytest.raises(ForbiddenError) as refused:
        await rewrite()
    # The refusal comes from the database's trigger, translated at the edge.
    assert isinstance(refused.value.__cause__, psycopg.errors.InsufficientPrivilege)
    assert "immutable" in str(refused.value.__cause__)
    current = await client.get(f"/actions/{action_id}", headers=org.member.headers)
    assert current.json()["payload"] == PAYLOAD


async def test_audit_chain_verifies_and_names_a_tampered_row(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    fresh_db: ProvisionedDatabase,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    ids = [(await propose(client, agent_id, org.member))["id"] for _ in range(3)]
    await client.post(f"/actions/{ids[0]}/approve", headers=org.member.headers)
    await client.post(f"/actions/{ids[1]}/reject", headers=org.member.headers)
    await client.post(f"/actions/{ids[0]}/cancel", headers=org.member.headers)

    report = verify_database(fresh_db.app_url)
    assert (report.chains, report.events, report.broken) == (3, 6, [])

    # When someone with the database's keys rewrites history behind the triggers' back
    with psycopg.connect(fresh_db.admin_url) as conn:
        conn.execute("set session_replication_role = replica")
        row = conn.execute(
            'update public.agent_action_events set detail = \'{"reason": "nothing to see"}\''
            " where action_id = %s and to_status = 'approved' returning id",
            (ids[0],),
        ).fetchone()
    assert row is not None

    # Then verification names exactly that row
    report = verify_database(fresh_db.app_url)
    assert [(b.event_id, str(b.action_id), b.reason) for b in report.broken] == [
        (row[0], ids[0], "hash does not match the row")
    ]
    # And `agentplane audit verify` says so and exits 1
    from agentplane import cli
    from agentplane.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", fresh_db.app_url)
    get_settings.cache_clear()
    try:
        assert cli.main(["audit", "verify"]) == 1
    finally:
        get_settings.cache_clear()
    assert f"BROKEN event {row[0]} of action {ids[0]}" in capsys.readouterr().out


async def test_the_hash_covers_the_payload_as_runners_will_receive_it(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    # jsonb spells some numbers differently from Python's json (1e2 -> 100, not 100.0);
    # the stored hash must match what a runner recomputes from the payload it is served.
    org = await make_org()
    agent_id = await new_agent(client, org)
    payload = {"tool": "http_get", "args": {"url": "https://example.test/", "timeout_seconds": 1e2}}
    assert payload_sha256(payload) != payload_sha256(
        {"tool": "http_get", "args": {"url": "https://example.test/", "timeout_seconds": 100}}
    )
    resp = await client.post(
        f"/agents/{agent_id}/actions", json={"payload": payload}, headers=org.member.headers
    )
    assert resp.status_code == 201, resp.text
    served = (await client.get(f"/actions/{resp.json()['id']}", headers=org.member.headers)).json()
    assert served["payload_sha256"] == payload_sha256(served["payload"])


async def test_the_database_refuses_an_approval_without_a_signature(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    action_id = (await propose(client, agent_id, org.member))["id"]

    async def approve_unsigned() -> None:
        async with database.service("test: approve behind the API's back") as tx:
            await tx.execute(
                "update public.agent_actions set status = 'approved' where id = %s", (action_id,)
            )

    with pytest.raises(ValidationProblemError) as refused:
        await approve_unsigned()
    assert isinstance(refused.value.__cause__, psycopg.errors.CheckViolation)
    assert "agent_actions_approval_signed" in str(refused.value.__cause__)


async def test_a_proposal_must_name_an_allowed_catalog_tool(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    # Given an agent allowed only read_file and write_file
    org = await make_org()
    agent_id = await new_agent(client, org, tools=["read_file", "write_file"])
    cases: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
        # A tool no runner has, and one of the catalog the agent is not allowed
        ({"tool": "rm_rf", "args": {}}, [("payload.tool", "known_tool")]),
        ({"tool": "shell", "args": {"command": "id"}}, [("payload.tool", "allowed_tool")]),
        # Arguments that miss the tool's schema name the argument
        ({"tool": "read_file", "args": {}}, [("payload.args.path", "missing")]),
        (
            {"tool": "write_file", "args": {"path": "a", "content": 1, "mode": "x"}},
            [("payload.args.content", "string_type"), ("payload.args.mode", "extra_forbidden")],
        ),
    ]
    for payload, expected in cases:
        # When a member proposes it, Then it is refused naming the field and the rule
        body = assert_problem(
            await post_proposal(client, agent_id, org.member, payload=payload), 422
        )
        assert field_rules(body) == expected, payload
    # And nothing was queued, so nothing can be approved and signed
    listed = await client.get(f"/actions?agent_id={agent_id}", headers=org.member.headers)
    assert listed.json()["items"] == []
    # While a catalog tool the agent is allowed, with fitting arguments, is proposed
    ok = await post_proposal(
        client, agent_id, org.member, payload={"tool": "read_file", "args": {"path": "a.txt"}}
    )
    assert ok.status_code == 201, ok.text
