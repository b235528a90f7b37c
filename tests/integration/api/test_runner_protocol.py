"""/runner/*: sessions, heartbeats, claims under lease, results, releases; who sees what.

Data is built through the API: an organization, an agent, a runner token (returned
once), proposals approved by a person. The runner's calls carry that token.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from agentplane.actions.audit import verify_database
from agentplane.actions.canonical import approval_message, payload_sha256
from agentplane.actions.signing import public_key_from_jwk, verify_signature
from tests.support.api import (
    MakeOrg,
    NewUser,
    assert_problem,
    at,
    collect_pages,
    field_rules,
)
from tests.support.builders import (
    PAYLOAD,
    approved_action,
    get_action,
    new_agent,
    runner_for,
    transitions,
)
from tests.support.database import ProvisionedDatabase

# --- the happy path ---------------------------------------------------------------------


async def test_register_heartbeat_claim_and_report_success(
    client: httpx.AsyncClient, make_org: MakeOrg, fresh_db: ProvisionedDatabase
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    approved = await approved_action(client, agent_id, org)

    # Given a runner registers a session
    session = await runner.register(socket_id="laptop-1", metadata={"version": "0.1", "os": "x"})
    assert session["agent_id"] == agent_id
    assert session["organization_id"] == str(org.id)
    assert session["runner_token_id"] == runner.token_id
    assert (session["socket_id"], session["metadata"]) == (
        "laptop-1",
        {"version": "0.1", "os": "x"},
    )
    assert (session["status"], session["ended_at"]) == ("online", None)
    # This app serves no doorbell socket: the runner is told to poll.
    assert session.pop("websocket_url") is None

    # When it heartbeats, the heartbeat moves and nothing else does
    beat = await runner.heartbeat(session["id"])
    assert beat.status_code == 200, beat.text
    assert at(beat.json()["last_heartbeat"]) > at(session["last_heartbeat"])
    assert {k: v for k, v in beat.json().items() if k not in ("last_heartbeat", "updated_at")} == {
        k: v for k, v in session.items() if k not in ("last_heartbeat", "updated_at")
    }

    # And it claims: one action, under a lease, with its signed approval
    before = datetime.now(UTC)
    items = await runner.claimed(session["id"], max=5, lease_seconds=120)
    assert [i["id"] for i in items] == [approved["id"]]
    item = items[0]
    assert set(item) == {
        "id",
        "agent_id",
        "payload",
        "payload_sha256",
        "approved_at",
        "approval_expires_at",
        "signature",
        "risk",
        "policy_id",
        "policy_version",
        "fencing_token",
        "lease_expires_at",
        "attempt",
    }
    assert (item["agent_id"], item["payload"]) == (agent_id, PAYLOAD)
    assert item["payload_sha256"] == payload_sha256(item["payload"])
    assert (item["fencing_token"], item["attempt"]) == (1, 1)
    assert item["approved_at"] == approved["decided_at"]
    assert item["signature"] == approved["approval_signature"]
    lease = at(item["lease_expires_at"])
    assert before + timedelta(seconds=110) < lease < datetime.now(UTC) + timedelta(seconds=130)
    # The runner's checks: the signature verifies with the published key
    jwks = (await client.get("/.well-known/agentplane/signing-key")).json()
    message = approval_message(
        uuid.UUID(item["id"]),
        uuid.UUID(item["agent_id"]),
        item["payload_sha256"],
        at(item["approved_at"]),
        at(item["approval_expires_at"]),
        risk=item["risk"],
        policy_id=item["policy_id"],
        policy_version=item["policy_version"],
    )
    assert verify_signature(public_key_from_jwk(jwks["keys"][0]), message, item["signature"])
    # And nothing else is left to claim
    assert await runner.claimed(session["id"], max=5) == []

    # When it reports success with the claim's fencing token
    done = await runner.result(item["id"], 1, "succeeded", {"bytes": 4, "note": "ok"})

    # Then the action is finished, the lease gone, the output stored
    assert done.status_code == 200, done.text
    action = done.json()
    assert action["status"] == "succeeded"
    assert action["output"] == {"bytes": 4, "note": "ok"}
    assert action["finished_at"] is not None
    assert action["lease_expires_at"] is None
    assert (action["session_id"], action["fencing_token"], action["attempt"]) == (
        session["id"],
        1,
        1,
    )
    # GET /actions/{id} shows the same, with its approvals (the result does not list them)
    shown = await get_action(client, item["id"], org.viewer)
    assert [a["approver_id"] for a in shown.pop("approvals")] == [str(org.admin.id)]
    assert shown == {k: v for k, v in action.items() if k != "approvals"}
    # And the audit log shows every transition and who made it, in an intact chain
    assert await transitions(client, item["id"], org.viewer) == [
        (None, "pending", "authenticated"),
        ("pending", "approved", "authenticated"),
        ("approved", "claimed", "agent_runner"),
        ("claimed", "succeeded", "agent_runner"),
    ]
    report = verify_database(fresh_db.app_url)
    assert (report.chains, report.events, report.broken) == (1, 4, [])


async def test_a_failed_result_is_final_and_claims_come_oldest_first(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    ids = [(await approved_action(client, agent_id, org))["id"] for _ in range(5)]
    session = await runner.register()

    first = await runner.claimed(session["id"], max=3)
    rest = await runner.claimed(session["id"], max=3)

    assert [i["id"] for i in first] == ids[:3]
    assert [i["id"] for i in rest] == ids[3:]
    failed = await runner.result(ids[0], first[0]["fencing_token"], "failed", {"error": "EACCES"})
    assert failed.status_code == 200, failed.text
    assert (failed.json()["status"], failed.json()["output"]) == ("failed", {"error": "EACCES"})
    body = assert_problem(await runner.result(ids[0], first[0]["fencing_token"]), 409, "conflict")
    assert body["current_status"] == "failed"


# --- fencing, release, ending a session ---------------------------------------------------


async def test_stale_fencing_token_is_refused_with_the_current_status(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    action_id = (await approved_action(client, agent_id, org))["id"]
    session = await runner.register()

    # Given a claim (token 1) that was released, and a second claim (token 2)
    (first,) = await runner.claimed(session["id"])
    released = await runner.release(action_id, first["fencing_token"])
    assert released.status_code == 200, released.text
    (second,) = await runner.claimed(session["id"])
    assert (first["fencing_token"], second["fencing_token"]) == (1, 2)

    # When the first claim's holder reports or releases, it is refused: 409, still claimed
    for stale in (runner.result(action_id, 1), runner.release(action_id, 1)):
        body = assert_problem(await stale, 409, "conflict")
        assert body["current_status"] == "claimed"
    # And a token never issued is refused the same way
    assert assert_problem(await runner.result(action_id, 99), 409)["current_status"] == "claimed"

    # Then the current holder's result lands, once
    assert (await runner.result(action_id, 2)).status_code == 200
    again = assert_problem(await runner.result(action_id, 2), 409)
    assert again["current_status"] == "succeeded"
    assert assert_problem(await runner.release(action_id, 2), 409)["current_status"] == "succeeded"


async def test_release_returns_the_action_to_the_queue_without_counting_the_attempt(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    approved = await approved_action(client, agent_id, org, max_attempts=1)
    session = await runner.register()

    # When a runner claims and releases the action three times
    for expected_token in (1, 2, 3):
        (item,) = await runner.claimed(session["id"], lease_seconds=30)
        assert (item["fencing_token"], item["attempt"]) == (expected_token, 1)
        resp = await runner.release(item["id"], item["fencing_token"])
        assert resp.status_code == 200, resp.text
        released = resp.json()
        # Then it is approved again, unleased, and no attempt was used up
        assert released["status"] == "approved"
        assert (released["session_id"], released["lease_expires_at"]) == (None, None)
        assert released["attempt"] == 0
        assert released["approval_signature"] == approved["approval_signature"]

    # And with max_attempts=1 it can still be claimed and finished
    (item,) = await runner.claimed(session["id"])
    assert item["attempt"] == 1
    assert (await runner.result(item["id"], item["fencing_token"])).status_code == 200
    assert [t[:2] for t in await transitions(client, item["id"], org.viewer)] == [
        (None, "pending"),
        ("pending", "approved"),
        *[("approved", "claimed"), ("claimed", "approved")] * 3,
        ("approved", "claimed"),
        ("claimed", "succeeded"),
    ]


async def test_ending_a_session_requeues_what_it_holds_and_it_stays_offline(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    again_id = (await approved_action(client, agent_id, org, max_attempts=2))["id"]
    last_id = (await approved_action(client, agent_id, org, max_attempts=1))["id"]
    session = await runner.register()
    held = await runner.claimed(session["id"], max=2)
    assert [i["id"] for i in held] == [again_id, last_id]

    # When the runner ends its session while it holds both
    ended = await runner.end(session["id"])

    # Then the session is offline, and its actions went through the lost-lease rule:
    # one attempt left -> approved again; none left -> failed
    assert ended.status_code == 204
    assert ended.content == b""
    again = await get_action(client, again_id, org.viewer)
    assert (again["status"], again["attempt"], again["session_id"]) == ("approved", 1, None)
    assert again["lease_expires_at"] is None
    last = await get_action(client, last_id, org.viewer)
    assert (last["status"], last["attempt"]) == ("failed", 1)
    assert last["output"] == {"error": "lease expired", "attempts": 1}
    assert last["finished_at"] is not None
    assert (await transitions(client, last_id, org.viewer))[-1] == (
        "claimed",
        "failed",
        "agent_runner",
    )
    # And the session can neither heartbeat nor claim; ending it again is harmless
    body = assert_problem(await runner.heartbeat(session["id"]), 409, "conflict")
    assert body["detail"] == "session is offline; register a new session"
    body = assert_problem(await runner.claim(session["id"]), 409, "conflict")
    assert body["detail"] == "session is offline; register a new session"
    assert (await runner.end(session["id"])).status_code == 204
    listed = await client.get(f"/agents/{agent_id}/sessions", headers=org.viewer.headers)
    (offline,) = listed.json()["items"]
    assert (offline["status"], offline["ended_at"] is not None) == ("offline", True)
    # The stale holder's token is refused; a new session picks the requeued action up
    assert assert_problem(await runner.result(again_id, held[0]["fencing_token"]), 409)
    fresh = await runner.register()
    (item,) = await runner.claimed(fresh["id"])
    assert (item["id"], item["attempt"], item["fencing_token"]) == (again_id, 2, 2)


# --- who may do what ----------------------------------------------------------------------


async def test_a_runner_of_another_agent_sees_nothing_of_this_one(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    # Given agent A (with a session and an approved action) and agent B in the same
    # organization, and agent C in another organization
    org = await make_org()
    other_org = await make_org("Other")
    a = await runner_for(client, await new_agent(client, org, "a"), org.member)
    b = await runner_for(client, await new_agent(client, org, "b"), org.member)
    c = await runner_for(client, await new_agent(client, other_org, "c"), other_org.owner)
    action = await approved_action(client, a.agent_id, org)
    a_session = await a.register()

    for intruder in (b, c):
        own = await intruder.register()
        # Then A's session does not exist for them
        for resp in (
            await intruder.heartbeat(a_session["id"]),
            await intruder.claim(a_session["id"]),
            await intruder.end(a_session["id"]),
        ):
            assert_problem(resp, 404, "not-found")
        # And their claims never hand out A's actions
        assert await intruder.claimed(own["id"], max=50) == []
        # Nor can they report or release them, whatever the token
        for resp in (
            await intruder.result(action["id"], 1),
            await intruder.release(action["id"], 1),
        ):
            assert_problem(resp, 404, "not-found")

    # And A's session and action are untouched, and A still gets its action
    assert (await a.heartbeat(a_session["id"])).status_code == 200
    assert [i["id"] for i in await a.claimed(a_session["id"])] == [action["id"]]


async def test_runner_routes_need_a_live_runner_token(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    await approved_action(client, agent_id, org)
    session = await runner.register()

    # No token, or a person's token, is 401 on every runner route
    for headers in ({}, org.owner.headers, {"Authorization": "Bearer aprt_not-a-real-token"}):
        for method, path, body in (
            ("POST", "/runner/sessions", {}),
            ("POST", f"/runner/sessions/{session['id']}/heartbeat", None),
            ("DELETE", f"/runner/sessions/{session['id']}", None),
            ("POST", "/runner/claim", {"session_id": session["id"]}),
        ):
            resp = await client.request(method, path, json=body, headers=headers)
            assert_problem(resp, 401, "unauthorized")

    # When a member revokes the token, the runner is locked out at once
    revoked = await client.delete(
        f"/agents/{agent_id}/runner-tokens/{runner.token_id}", headers=org.member.headers
    )
    assert revoked.status_code == 204
    assert_problem(await runner.heartbeat(session["id"]), 401, "unauthorized")
    assert_problem(await runner.claim(session["id"]), 401, "unauthorized")
    assert_problem(await client.post("/runner/sessions", json={}, headers=runner.headers), 401)
    # But another live token of the same agent may carry on with the session
    other = await runner_for(client, agent_id, org.member)
    assert (await other.heartbeat(session["id"])).status_code == 200
    assert len(await other.claimed(session["id"])) == 1


async def test_runner_bodies_are_validated(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    session = await runner.register()
    action_id = (await approved_action(client, agent_id, org))["id"]

    async def rules(path: str, body: dict[str, Any]) -> list[tuple[str, str]]:
        resp = await client.post(path, json=body, headers=runner.headers)
        return field_rules(assert_problem(resp, 422, "validation"))

    assert await rules("/runner/sessions", {"socket_id": "s" * 201}) == [
        ("socket_id", "string_too_long")
    ]
    assert await rules("/runner/sessions", {"metadata": [1]}) == [("metadata", "dict_type")]
    assert await rules("/runner/sessions", {"agent_id": agent_id}) == [
        ("agent_id", "extra_forbidden")
    ]
    sid = session["id"]
    assert await rules("/runner/claim", {"session_id": sid, "max": 0}) == [
        ("max", "greater_than_equal")
    ]
    assert await rules("/runner/claim", {"session_id": sid, "max": 51}) == [
        ("max", "less_than_equal")
    ]
    assert await rules("/runner/claim", {"session_id": sid, "lease_seconds": 9}) == [
        ("lease_seconds", "greater_than_equal")
    ]
    assert await rules("/runner/claim", {"session_id": sid, "lease_seconds": 3601}) == [
        ("lease_seconds", "less_than_equal")
    ]
    assert await rules("/runner/claim", {"session_id": "nope"}) == [("session_id", "uuid_parsing")]
    result = f"/runner/actions/{action_id}/result"
    assert await rules(result, {"fencing_token": 1, "status": "done", "output": {}}) == [
        ("status", "literal_error")
    ]
    assert await rules(result, {"fencing_token": 1, "status": "failed"}) == [("output", "missing")]
    assert await rules(result, {"fencing_token": 2**63, "status": "failed", "output": {}}) == [
        ("fencing_token", "less_than_equal")
    ]
    assert await rules(
        result, {"fencing_token": 1, "status": "failed", "output": {"e": "\u0000"}}
    ) == [("output", "value_error")]
    # A session id nobody has is 404 for a claim, and the action was not touched
    assert_problem(await runner.claim(str(uuid.uuid4())), 404, "not-found")
    assert (await get_action(client, action_id, org.viewer))["status"] == "approved"


# --- people: an agent's sessions ----------------------------------------------------------


async def test_people_list_an_agents_sessions_by_page_and_status(
    client: httpx.AsyncClient, make_org: MakeOrg, new_user: NewUser
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    other_agent = await new_agent(client, org, "other")
    runner = await runner_for(client, agent_id, org.member)
    sessions = [(await runner.register(socket_id=f"s{i}"))["id"] for i in range(5)]
    await (await runner_for(client, other_agent, org.member)).register()
    for ended in sessions[1:3]:
        assert (await runner.end(ended)).status_code == 204

    path = f"/agents/{agent_id}/sessions"
    items, pages = await collect_pages(client, path, org.viewer.headers, limit=2)
    assert ([s["id"] for s in items], pages) == (sessions, 3)
    online, _ = await collect_pages(client, path, org.viewer.headers, limit=50, status="online")
    assert [s["id"] for s in online] == [sessions[0], *sessions[3:]]
    offline, _ = await collect_pages(client, path, org.viewer.headers, limit=50, status="offline")
    assert [s["id"] for s in offline] == sessions[1:3]
    bad = await client.get(path, params={"status": "asleep"}, headers=org.viewer.headers)
    assert_problem(bad, 422, "validation")
    # A stranger (or anyone outside the organization) gets 404, as for an unknown agent
    stranger = new_user()
    assert_problem(await client.get(path, headers=stranger.headers), 404, "not-found")
    assert_problem(
        await client.get(f"/agents/{uuid.uuid4()}/sessions", headers=org.owner.headers), 404
    )
    assert_problem(await client.get(path), 401)


async def test_the_loop_leaves_a_trail_in_the_logs(
    client: httpx.AsyncClient, make_org: MakeOrg, caplog: pytest.LogCaptureFixture
) -> None:
    # An operator reading the logs can follow an action: decided by whom, claimed by
    # which session, how it ended, and a result refused because its lease was lost.
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    session = await runner.register()
    caplog.clear()

    action_id = (await approved_action(client, agent_id, org))["id"]
    (claimed,) = await runner.claimed(session["id"])
    assert_problem(await runner.result(action_id, claimed["fencing_token"] + 1), 409)
    assert (await runner.result(action_id, claimed["fencing_token"])).status_code == 200
    assert await runner.claimed(session["id"]) == []

    def logged(message: str) -> list[dict[str, Any]]:
        return [vars(r) for r in caplog.records if r.getMessage() == message]

    (decided,) = logged("action decided")
    assert (decided["action_id"], decided["status"]) == (action_id, "approved")
    assert decided["decided_by"] == str(org.admin.id)
    # One claim logged: the empty poll after it is not news
    (claim,) = logged("actions claimed")
    assert (claim["session_id"], claim["count"], claim["action_ids"]) == (
        session["id"],
        1,
        [action_id],
    )
    (stale,) = logged("result refused: the lease was lost")
    assert (stale["action_id"], stale["current_status"]) == (action_id, "claimed")
    assert stale["fencing_token"] == claimed["fencing_token"] + 1
    (finished,) = logged("action finished")
    assert (finished["action_id"], finished["status"]) == (action_id, "succeeded")
