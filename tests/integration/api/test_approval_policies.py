"""Approval policy as data: a two-person rule that holds under contention, separation of
duties, roles, auto-approval inside its constraints only, versions that stay with the
actions decided under them, and `evaluate` saying which policy applies and why."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from agentplane.actions.canonical import approval_message
from agentplane.actions.signing import public_key_from_jwk, verify_signature
from agentplane.db.database import Database
from agentplane.sessions.reaper import escalate, expire_pending
from tests.support.api import MakeOrg, NewUser, Org, User, ensure_known
from tests.support.builders import new_agent, propose
from tests.support.database import ProvisionedDatabase

WRITE = {"tool": "write_file", "args": {"path": "notes.txt", "content": "hi"}}


async def _policy(client: httpx.AsyncClient, org: Org, **terms: Any) -> dict[str, Any]:
    resp = await client.post(
        "/approval-policies",
        json={"organization_id": str(org.id), **terms},
        headers=org.admin.headers,
    )
    assert resp.status_code == 201, resp.text
    policy: dict[str, Any] = resp.json()
    return policy


async def _members(
    client: httpx.AsyncClient, org: Org, new_user: NewUser, n: int, role: str = "member"
) -> list[User]:
    people = [new_user() for _ in range(n)]
    for person in people:
        await ensure_known(client, person)
        added = await client.post(
            f"/organizations/{org.id}/members",
            json={"user_id": str(person.id), "role": role},
            headers=org.owner.headers,
        )
        assert added.status_code == 201, added.text
    return people


async def _verifies(client: httpx.AsyncClient, action: dict[str, Any], **terms: Any) -> bool:
    jwks = (await client.get("/.well-known/agentplane/signing-key")).json()
    message = approval_message(
        uuid.UUID(action["id"]),
        uuid.UUID(action["agent_id"]),
        action["payload_sha256"],
        datetime.fromisoformat(action["decided_at"]),
        datetime.fromisoformat(action["approval_expires_at"]),
        risk=terms.get("risk", action["risk"]),
        policy_id=terms.get("policy_id", action["policy_id"]),
        policy_version=terms.get("policy_version", action["policy_version"]),
    )
    key = public_key_from_jwk(jwks["keys"][0])
    return verify_signature(key, message, action["approval_signature"])


async def test_two_person_rule_under_contention(
    client: httpx.AsyncClient, make_org: MakeOrg, new_user: NewUser, fresh_db: ProvisionedDatabase
) -> None:
    # Given a high-risk policy that needs two distinct people for write_file
    org = await make_org()
    agent_id = await new_agent(client, org)
    policy = await _policy(
        client, org, tool_pattern="write_file", risk="high", required_approvals=2
    )
    assert policy["proposer_may_approve"] is False  # the default for high risk
    action = await propose(client, agent_id, org.member, payload=WRITE)
    assert (action["risk"], action["policy_id"], action["policy_version"]) == (
        "high",
        policy["id"],
        1,
    )
    assert (action["required_approvals"], action["approvals_needed"]) == (2, 2)
    members = await _members(client, org, new_user, 10)

    # The proposer may not approve their own action, and a viewer may not at all
    own = await client.post(f"/actions/{action['id']}/approve", json={}, headers=org.member.headers)
    assert own.status_code == 403, own.text
    assert own.json()["rule"] == "proposer_may_not_approve"
    viewer = await client.post(
        f"/actions/{action['id']}/approve", json={}, headers=org.viewer.headers
    )
    assert viewer.status_code == 403, viewer.text
    assert viewer.json()["rule"] == "approver_roles"

    # When ten members send forty approvals at once (four each)
    responses = await asyncio.gather(
        *(
            client.post(
                f"/actions/{action['id']}/approve",
                json={"reason": f"ok from {person.id}"},
                headers=person.headers,
            )
            for person in members
            for _ in range(4)
        )
    )

    # Then exactly two were recorded and one of them approved it, signed once
    codes = Counter(r.status_code for r in responses)
    assert codes[200] == 2, codes
    assert set(codes) <= {200, 403, 409}, codes
    statuses = sorted(r.json()["status"] for r in responses if r.status_code == 200)
    assert statuses == ["approved", "pending"]
    refusals = Counter(r.json().get("rule") for r in responses if r.status_code == 403)
    assert set(refusals) <= {"one_approval_per_person"}, refusals
    with psycopg.connect(fresh_db.admin_url) as conn:
        approvals = conn.execute(
            "select count(*), count(distinct approver_id) from public.action_approvals"
            " where action_id = %s",
            (action["id"],),
        ).fetchone()
        transitions = conn.execute(
            "select count(*) from public.agent_action_events"
            " where action_id = %s and to_status = 'approved'",
            (action["id"],),
        ).fetchone()
        row = conn.execute(
            "select status, approval_count, approval_signature is not null"
            " from public.agent_actions where id = %s",
            (action["id"],),
        ).fetchone()
    assert approvals == (2, 2)
    assert transitions == (1,)
    assert row == ("approved", 2, True)
    shown = (await client.get(f"/actions/{action['id']}", headers=org.viewer.headers)).json()
    assert len(shown["approvals"]) == 2
    assert {a["approver_role"] for a in shown["approvals"]} == {"member"}
    assert shown["approvals_needed"] == 0
    assert await _verifies(client, shown)
    # The signature covers the risk and the policy: another risk does not verify
    assert not await _verifies(client, shown, risk="low")
    assert not await _verifies(client, shown, policy_version=2)


async def test_one_approval_of_two_leaves_it_pending_and_says_so(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    await _policy(client, org, tool_pattern="write_*", risk="medium", required_approvals=2)
    action = await propose(client, agent_id, org.member, payload=WRITE)

    first = await client.post(
        f"/actions/{action['id']}/approve", json={"reason": "one"}, headers=org.admin.headers
    )
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["approvals_needed"]) == ("pending", 1)
    assert first.json()["approval_signature"] is None
    again = await client.post(
        f"/actions/{action['id']}/approve", json={}, headers=org.admin.headers
    )
    assert again.status_code == 403
    assert again.json()["rule"] == "one_approval_per_person"
    # Medium risk: the proposer may be the second approver
    second = await client.post(
        f"/actions/{action['id']}/approve", json={"reason": "two"}, headers=org.member.headers
    )
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "approved"
    assert second.json()["decision_reason"] == "two"
    shown = (await client.get(f"/actions/{action['id']}", headers=org.member.headers)).json()
    assert [(a["approver_id"], a["reason"]) for a in shown["approvals"]] == [
        (str(org.admin.id), "one"),
        (str(org.member.id), "two"),
    ]


async def test_only_the_roles_a_policy_names_decide(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    await _policy(client, org, tool_pattern="*", risk="critical", approver_roles=["admin", "owner"])
    first = await propose(client, agent_id, org.member, payload=WRITE)
    second = await propose(client, agent_id, org.member, payload=WRITE)

    approve = await client.post(
        f"/actions/{first['id']}/approve", json={}, headers=org.member.headers
    )
    assert approve.status_code == 403
    assert approve.json()["rule"] == "approver_roles"
    assert "allows admin, owner" in approve.json()["detail"]
    reject = await client.post(
        f"/actions/{second['id']}/reject", json={}, headers=org.member.headers
    )
    assert reject.status_code == 403, reject.text
    # A rejection by an allowed approver ends it
    ended = await client.post(
        f"/actions/{second['id']}/reject", json={"reason": "no"}, headers=org.admin.headers
    )
    assert ended.status_code == 200
    assert ended.json()["status"] == "rejected"
    assert (
        await client.post(f"/actions/{first['id']}/approve", json={}, headers=org.owner.headers)
    ).json()["status"] == "approved"


async def test_the_database_refuses_a_person_who_skips_the_rules(
    client: httpx.AsyncClient, make_org: MakeOrg, fresh_db: ProvisionedDatabase
) -> None:
    # Straight to the database, as the member (what PostgREST would let them try)
    org = await make_org()
    agent_id = await new_agent(client, org)
    await _policy(client, org, tool_pattern="write_file", risk="high", required_approvals=2)
    action = await propose(client, agent_id, org.member, payload=WRITE)
    claims = json.dumps({"sub": str(org.member.id), "role": "authenticated"})

    def as_member(statement: str, *args: Any) -> str:
        with psycopg.connect(fresh_db.app_url) as conn:
            conn.execute("set role authenticated")
            conn.execute("select set_config('request.jwt.claims', %s, false)", (claims,))
            try:
                conn.execute(statement, args)
            except psycopg.errors.InsufficientPrivilege as exc:
                return str(exc.diag.message_hint or exc)
            return "done"

    assert (
        as_member(
            "update public.agent_actions set status = 'approved', approval_signature = 'x'"
            " where id = %s",
            action["id"],
        )
        == "rule: required_approvals"
    )
    assert (
        as_member(
            "insert into public.action_approvals (action_id, approver_id) values (%s, %s)",
            action["id"],
            org.member.id,
        )
        == "rule: proposer_may_not_approve"
    )
    assert (
        as_member("update public.agent_actions set approval_count = 5 where id = %s", action["id"])
        != "done"
    )


async def test_auto_approval_only_inside_its_constraints(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    policy = await _policy(
        client,
        org,
        tool_pattern="read_file",
        risk="low",
        auto_approve=True,
        auto_approve_constraints={"path": {"path_within": "reports"}},
    )

    inside = await propose(
        client,
        agent_id,
        org.member,
        payload={"tool": "read_file", "args": {"path": "reports/q3.txt"}},
    )
    assert inside["status"] == "approved"
    assert inside["approved_by_policy"] == policy["id"]
    assert inside["decided_by"] is None
    assert await _verifies(client, inside)
    for path in ("../reports/q3.txt", "/etc/passwd", "reports/../../x", "notes.txt", "reportsx/a"):
        outside = await propose(
            client, agent_id, org.member, payload={"tool": "read_file", "args": {"path": path}}
        )
        assert outside["status"] == "pending", path
        assert outside["auto_approve"] is False, path


async def test_a_policy_edit_bumps_the_version_and_actions_keep_theirs(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    policy = await _policy(client, org, tool_pattern="write_file", risk="medium")
    before = await propose(client, agent_id, org.member, payload=WRITE)

    edited = await client.patch(
        f"/approval-policies/{policy['id']}",
        json={"risk": "high", "required_approvals": 2},
        headers=org.admin.headers,
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["version"], edited.json()["proposer_may_approve"]) == (2, False)
    after = await propose(client, agent_id, org.member, payload=WRITE)

    assert (before["policy_version"], before["risk"], before["required_approvals"]) == (
        1,
        "medium",
        1,
    )
    assert (after["policy_version"], after["risk"], after["required_approvals"]) == (2, "high", 2)
    decided = await client.post(
        f"/actions/{before['id']}/approve", json={}, headers=org.admin.headers
    )
    assert decided.json()["status"] == "approved"
    assert await _verifies(client, decided.json(), policy_version=1)
    members = await client.patch(
        f"/approval-policies/{policy['id']}", json={"name": "x"}, headers=org.member.headers
    )
    assert members.status_code == 403


async def test_bad_policies_name_the_field_and_rule(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    other = await make_org()
    stranger_agent = await new_agent(client, other)
    cases = [
        ({"risk": "high", "auto_approve": True}, "auto_approve", "low_risk_only"),
        ({"escalate_after_seconds": 60}, "escalate_to_role", "escalation_pair"),
        ({"auto_approve_constraints": {"path": {"glob": "*"}}}, "auto_approve_constraints", None),
        ({"required_approvals": 6}, "required_approvals", None),
        ({"approver_roles": ["viewer"]}, "approver_roles", None),
        ({"tool_pattern": "rm -rf"}, "tool_pattern", None),
    ]
    for terms, field, rule in cases:
        resp = await client.post(
            "/approval-policies",
            json={"organization_id": str(org.id), **terms},
            headers=org.admin.headers,
        )
        assert resp.status_code == 422, (terms, resp.text)
        errors = resp.json()["errors"]
        assert any(e["field"].split(".")[0] == field for e in errors), (terms, errors)
        if rule:
            assert any(e["rule"] == rule for e in errors), (terms, errors)
    elsewhere = await client.post(
        "/approval-policies",
        json={"organization_id": str(org.id), "agent_id": stranger_agent},
        headers=org.admin.headers,
    )
    assert elsewhere.status_code == 404
    member = await client.post(
        "/approval-policies", json={"organization_id": str(org.id)}, headers=org.member.headers
    )
    assert member.status_code == 403


async def test_evaluate_says_which_policy_applies_and_why(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    agent = (await client.get(f"/agents/{agent_id}", headers=org.admin.headers)).json()

    none = await client.get(
        "/approval-policies/evaluate",
        params={"agent_id": agent_id, "tool": "shell"},
        headers=org.viewer.headers,
    )
    assert none.status_code == 200, none.text
    assert none.json()["policy"] is None
    assert (none.json()["risk"], none.json()["required_approvals"]) == ("critical", 1)
    assert "the default applies" in none.json()["why"]

    broad = await _policy(client, org, name="everything", tool_pattern="*", risk="medium")
    project = await _policy(
        client,
        org,
        name="writes here",
        project_id=agent["project_id"],
        tool_pattern="write_*",
        risk="high",
    )
    exact = await _policy(
        client,
        org,
        name="this agent",
        agent_id=agent_id,
        tool_pattern="write_file",
        risk="critical",
        required_approvals=3,
    )
    shown = await client.get(
        "/approval-policies/evaluate",
        params={"agent_id": agent_id, "tool": "write_file"},
        headers=org.viewer.headers,
    )
    body = shown.json()
    assert body["policy"]["id"] == exact["id"]
    assert [c["policy"]["id"] for c in body["candidates"]] == [
        exact["id"],
        project["id"],
        broad["id"],
    ]
    assert [c["scope"] for c in body["candidates"]] == ["agent", "project", "organization"]
    assert "scoped to this agent" in body["why"]
    assert "names the tool exactly" in body["why"]
    assert "2 other matching policies are less specific" in body["why"]
    # And a proposal takes exactly that
    action = await propose(client, agent_id, org.member, payload=WRITE)
    assert (action["policy_id"], action["risk"], action["required_approvals"]) == (
        exact["id"],
        "critical",
        3,
    )
    # The project's pattern beats the organization's for another write tool of the project
    http = await client.get(
        "/approval-policies/evaluate",
        params={"agent_id": agent_id, "tool": "http_get"},
        headers=org.viewer.headers,
    )
    assert http.json()["policy"]["id"] == broad["id"]
    stranger = await client.get(
        "/approval-policies/evaluate",
        params={"agent_id": agent_id, "tool": "shell"},
        headers=(await make_org()).owner.headers,
    )
    assert stranger.status_code == 404


async def test_a_policy_ttl_shortens_the_proposal(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    await _policy(client, org, tool_pattern="write_file", ttl_seconds=60)
    action = await propose(client, agent_id, org.member, payload=WRITE, ttl_seconds=3600)
    created = datetime.fromisoformat(action["created_at"])
    assert datetime.fromisoformat(action["expires_at"]) <= created + timedelta(seconds=61)


async def test_escalation_fires_once_at_its_time_and_expiry_still_denies(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    database: Database,
    fresh_db: ProvisionedDatabase,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a policy that escalates to admins after 10 minutes
    org = await make_org()
    agent_id = await new_agent(client, org)
    await _policy(
        client,
        org,
        tool_pattern="write_file",
        risk="high",
        escalate_after_seconds=600,
        escalate_to_role="admin",
    )
    action = await propose(client, agent_id, org.member, payload=WRITE)
    due = datetime.fromisoformat(action["escalate_at"])
    assert due - datetime.fromisoformat(action["created_at"]) == timedelta(seconds=600)

    # When the reaper runs on a clock just before, then at, then after that time
    assert (await escalate(database, now=due - timedelta(seconds=1))).actions_escalated == 0
    with caplog.at_level(logging.INFO):
        assert (await escalate(database, now=due)).actions_escalated == 1
    assert (await escalate(database, now=due + timedelta(hours=1))).actions_escalated == 0

    # Then it escalated once, told the admins and owners, and is still pending
    shown = (await client.get(f"/actions/{action['id']}", headers=org.viewer.headers)).json()
    assert (shown["status"], datetime.fromisoformat(shown["escalated_at"])) == ("pending", due)
    [line] = [r for r in caplog.records if r.getMessage() == "action escalated"]
    expected = sorted([str(org.owner.id), str(org.admin.id)])
    assert sorted(line.notify) == expected  # type: ignore[attr-defined]
    # as one `action.escalated` event, for the organization's webhooks and the bus
    with psycopg.connect(fresh_db.admin_url) as conn:
        events = conn.execute(
            "select organization_id, data from public.agent_events"
            " where type = 'action.escalated' and data ->> 'action_id' = %s",
            (action["id"],),
        ).fetchall()
    assert len(events) == 1
    assert events[0][0] == org.id
    assert sorted(events[0][1]["notify"]) == expected
    assert events[0][1]["escalate_to_role"] == "admin"

    # And when its TTL runs out nobody approved it: it expires, and stays denied
    with psycopg.connect(fresh_db.admin_url) as conn:
        conn.execute(
            "update public.agent_actions set expires_at = now() - interval '1 second'"
            " where id = %s",
            (action["id"],),
        )
    assert (await expire_pending(database)).actions_expired == 1
    late = await client.post(f"/actions/{action['id']}/approve", json={}, headers=org.admin.headers)
    assert late.status_code == 409
    assert late.json()["current_status"] == "expired"
