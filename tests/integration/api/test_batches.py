"""Batch routes: one decision on many actions, and many results at once.

Each item of a batch is decided (or fenced) as its single call would be, in one
transaction: the items that call would refuse are listed under `refused` with its
status and reason, the rest are done, and the audit chain holds one event per
transition.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from agentplane.actions.audit import verify_database
from agentplane.actions.canonical import approval_message
from agentplane.actions.signing import public_key_from_jwk, verify_signature
from tests.support.api import MakeOrg, assert_problem, at, field_rules
from tests.support.builders import approved_action, new_agent, propose, runner_for, transitions
from tests.support.database import ProvisionedDatabase


def _field_errors(resp: httpx.Response) -> list[tuple[str, str]]:
    return field_rules(assert_problem(resp, 422))


async def _decide(
    client: httpx.AsyncClient, headers: dict[str, str], decision: str, ids: list[str], **extra: Any
) -> httpx.Response:
    return await client.post(
        "/actions/decisions",
        json={"decision": decision, "action_ids": ids, **extra},
        headers=headers,
    )


async def test_a_batch_approval_signs_each_action_and_refuses_what_is_taken(
    client: httpx.AsyncClient, make_org: MakeOrg, fresh_db: ProvisionedDatabase
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    pending = [(await propose(client, agent_id, org.member))["id"] for _ in range(4)]
    rejected = pending[3]
    resp = await _decide(client, org.member.headers, "reject", [rejected])
    assert resp.status_code == 200, resp.text
    missing = "00000000-0000-4000-8000-000000000000"
    asked = [pending[2], rejected, pending[0], missing, pending[1]]
    resp = await _decide(client, org.member.headers, "approve", asked, reason="batch ok")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    # Decided in the order asked; refused in the order asked, each with its reason
    assert [a["id"] for a in body["decided"]] == [pending[2], pending[0], pending[1]]
    assert [(r["action_id"], r["status"], r["current_status"]) for r in body["refused"]] == [
        (rejected, 409, "rejected"),
        (missing, 404, None),
    ]
    key = public_key_from_jwk(
        (await client.get("/.well-known/agentplane/signing-key")).json()["keys"][0]
    )
    for action in body["decided"]:
        assert action["status"] == "approved"
        assert action["decision_reason"] == "batch ok"
        assert action["decided_by"] == str(org.member.id)
        message = approval_message(
            action["id"],
            action["agent_id"],
            action["payload_sha256"],
            at(action["decided_at"]),
            at(action["approval_expires_at"]),
            risk=action["risk"],
            policy_id=action["policy_id"],
            policy_version=action["policy_version"],
        )
        assert verify_signature(key, message, action["approval_signature"])
        assert await transitions(client, action["id"], org.viewer) == [
            (None, "pending", "authenticated"),
            ("pending", "approved", "authenticated"),
        ]
    # Cancelling the batch again: approved ones can be cancelled, the rejected one not
    resp = await _decide(client, org.admin.headers, "cancel", [pending[0], rejected])
    assert [a["status"] for a in resp.json()["decided"]] == ["cancelled"]
    assert [r["current_status"] for r in resp.json()["refused"]] == ["rejected"]
    report = verify_database(fresh_db.app_url)
    assert (report.chains, report.events, report.broken) == (4, 9, [])


async def test_viewers_and_strangers_cannot_decide_in_batches(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    stranger = await make_org()
    agent_id = await new_agent(client, org)
    action_id = (await propose(client, agent_id, org.member))["id"]
    viewer = await _decide(client, org.viewer.headers, "approve", [action_id])
    assert viewer.status_code == 200
    assert viewer.json()["decided"] == []
    assert [(r["status"], r["title"]) for r in viewer.json()["refused"]] == [(403, "Forbidden")]
    other = await _decide(client, stranger.owner.headers, "approve", [action_id])
    assert [r["status"] for r in other.json()["refused"]] == [404]
    still = await client.get(f"/actions/{action_id}", headers=org.viewer.headers)
    assert still.json()["status"] == "pending"


async def test_batch_decision_bodies_are_validated(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    action_id = (await propose(client, agent_id, org.member))["id"]
    twice = await _decide(client, org.member.headers, "approve", [action_id, action_id])
    assert _field_errors(twice) == [("action_ids", "unique")]
    empty = await _decide(client, org.member.headers, "approve", [])
    assert _field_errors(empty) == [("action_ids", "too_short")]
    too_many = [str(i).rjust(32, "0") for i in range(101)]
    too_long = await _decide(client, org.member.headers, "approve", too_many)
    assert _field_errors(too_long) == [("action_ids", "too_long")]
    unknown = await _decide(client, org.member.headers, "claim", [action_id])
    assert _field_errors(unknown) == [("decision", "literal_error")]


async def test_concurrent_batches_decide_each_action_exactly_once(
    client: httpx.AsyncClient, make_org: MakeOrg, fresh_db: ProvisionedDatabase
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    ids = [(await propose(client, agent_id, org.member))["id"] for _ in range(10)]
    # Eight reviewers approve or reject overlapping windows of the same ten actions.
    windows = [ids[i % 5 : i % 5 + 6] for i in range(8)]
    responses = await asyncio.gather(
        *(
            _decide(client, org.member.headers, "approve" if i % 2 else "reject", window)
            for i, window in enumerate(windows)
        )
    )
    decided: list[str] = []
    refused = 0
    for resp in responses:
        assert resp.status_code == 200, resp.text
        decided += [a["id"] for a in resp.json()["decided"]]
        refused += len(resp.json()["refused"])
        assert {r["status"] for r in resp.json()["refused"]} <= {409}
    assert sorted(decided) == sorted(ids)  # each exactly once
    assert refused == sum(len(w) for w in windows) - len(ids)
    report = verify_database(fresh_db.app_url)
    assert (report.chains, report.events, report.broken) == (10, 20, [])


async def test_a_batch_of_results_fences_each_one_alone(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    fresh_db: ProvisionedDatabase,
    caplog: pytest.LogCaptureFixture,
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    for _ in range(3):
        await approved_action(client, agent_id, org)
    session = await runner.register()
    items = await runner.claimed(session["id"], max=3)
    assert len(items) == 3
    # The last one is released and claimed again: its first token is stale
    released = await runner.release(items[2]["id"], items[2]["fencing_token"])
    assert released.status_code == 200
    again = await runner.claimed(session["id"], max=1)
    assert [(i["id"], i["fencing_token"]) for i in again] == [
        (items[2]["id"], items[2]["fencing_token"] + 1)
    ]
    results = [
        {"action_id": items[0]["id"], "fencing_token": items[0]["fencing_token"],
         "status": "succeeded", "output": {"stdout": "one"}},
        {"action_id": items[1]["id"], "fencing_token": items[1]["fencing_token"],
         "status": "failed", "output": {"error": "two"}},
        {"action_id": items[2]["id"], "fencing_token": items[2]["fencing_token"],
         "status": "succeeded", "output": {}},
    ]  # fmt: skip
    caplog.clear()
    resp = await client.post("/runner/results", json={"results": results}, headers=runner.headers)
    assert resp.status_code == 200, resp.text
    # The operator sees the batch and the one lost lease, with the token it came with
    (reported,) = [vars(r) for r in caplog.records if r.getMessage() == "action results reported"]
    assert (reported["finished"], reported["refused"], reported["succeeded"]) == (2, 1, 1)
    (stale,) = [vars(r) for r in caplog.records if r.getMessage().startswith("result refused")]
    assert (stale["action_id"], stale["fencing_token"]) == (
        items[2]["id"],
        items[2]["fencing_token"],
    )
    body = resp.json()
    assert [(a["id"], a["status"], a["output"]) for a in body["finished"]] == [
        (items[0]["id"], "succeeded", {"stdout": "one"}),
        (items[1]["id"], "failed", {"error": "two"}),
    ]
    assert [(r["action_id"], r["status"], r["current_status"]) for r in body["refused"]] == [
        (items[2]["id"], 409, "claimed")
    ]
    # The same batch again: both finished ones are now stale too, nothing changes
    resp = await client.post("/runner/results", json={"results": results}, headers=runner.headers)
    assert resp.json()["finished"] == []
    assert [r["current_status"] for r in resp.json()["refused"]] == [
        "succeeded",
        "failed",
        "claimed",
    ]
    duplicate = await client.post(
        "/runner/results", json={"results": [results[0], results[0]]}, headers=runner.headers
    )
    assert _field_errors(duplicate) == [("results", "unique")]
    report = verify_database(fresh_db.app_url)
    assert (report.chains, report.events, report.broken) == (3, 13, [])


async def test_a_runner_cannot_report_another_agents_actions_in_a_batch(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    mine, theirs = await new_agent(client, org, "mine"), await new_agent(client, org, "theirs")
    runner = await runner_for(client, mine, org.member)
    other = await runner_for(client, theirs, org.member)
    await approved_action(client, theirs, org)
    session = await other.register()
    item = (await other.claimed(session["id"]))[0]
    resp = await client.post(
        "/runner/results",
        json={
            "results": [
                {
                    "action_id": item["id"],
                    "fencing_token": item["fencing_token"],
                    "status": "succeeded",
                    "output": {},
                }
            ]
        },
        headers=runner.headers,
    )
    assert resp.status_code == 200
    assert [r["status"] for r in resp.json()["refused"]] == [404]
    assert (await other.claim(session["id"])).status_code == 200
    action = await client.get(f"/actions/{item['id']}", headers=org.viewer.headers)
    assert action.json()["status"] == "claimed"


async def test_batches_over_the_same_actions_in_opposite_orders_do_not_deadlock(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    for _ in range(5):
        x = (await propose(client, agent_id, org.member))["id"]
        y = (await propose(client, agent_id, org.member))["id"]
        first, second = await asyncio.gather(
            _decide(client, org.member.headers, "approve", [x, y]),
            _decide(client, org.admin.headers, "reject", [y, x]),
        )
        assert (first.status_code, second.status_code) == (200, 200), second.text
        decided = first.json()["decided"] + second.json()["decided"]
        assert sorted(a["id"] for a in decided) == sorted([x, y])
