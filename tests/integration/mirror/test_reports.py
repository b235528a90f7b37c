"""Mirror reports through the API: started with a 202 and run off the request, read,
refused while one is open, failed with the reason (freeing the connection), failed by the
cron past their deadline; strangers see none, and a report reads only its owner's rows."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.mirror import service
from agentplane.runtime import Runtime
from agentplane.sessions.reaper import reap
from tests.support.api import MakeOrg, NewUser, Org
from tests.support.builders import (
    approved_action,
    create_connection,
    new_agent,
    propose,
    runner_for,
)
from tests.support.mirror import conversation, finished_report, start_report

REASON = "do not run shell commands here"
LONG_ANSWER = " ".join(["Well, there are many things to consider about this."] * 20)


async def rejected_shell(client: httpx.AsyncClient, org: Org, agent: str, n: int) -> list[str]:
    """n shell proposals of the agent, each rejected for the same reason."""
    ids = []
    for i in range(n):
        action = await propose(
            client, agent, org.member,
            payload={"tool": "shell", "args": {"command": ["rm", "-rf", f"build/x{i}"]}},
        )  # fmt: skip
        resp = await client.post(
            f"/actions/{action['id']}/reject", json={"reason": REASON}, headers=org.admin.headers
        )
        assert resp.status_code == 200, resp.text
        ids.append(action["id"])
    return ids


async def world(client: httpx.AsyncClient, make_org: MakeOrg) -> tuple[Org, str, str]:
    org = await make_org()
    agent = await new_agent(client, org)
    connection = await create_connection(client, org.member, name="desk")
    return org, agent, connection["id"]


async def test_a_report_runs_off_the_request_and_finds_rejections_with_their_evidence(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org, agent, connection = await world(client, make_org)
    _, message_ids = await conversation(client, org.member, connection, agent, [
        ("user", "Can you clean up /tmp?"),
        ("assistant", "I will propose a shell command to do that."),
        ("user", "Is the disk full?"),
        ("assistant", LONG_ANSWER),
    ])  # fmt: skip
    rejected = await rejected_shell(client, org, agent, 3)

    report = await start_report(client, org.member, connection)
    assert report["status"] == "queued"
    assert report["requested_analyzer"] == "auto"
    report = await finished_report(client, org.member, report["id"])

    assert report["status"] == "succeeded", report
    assert report["analyzer"] == "heuristic"
    assert any("heuristic" in note and "key" in note for note in report["notes"])
    assert report["message_count"] == 4
    assert report["action_count"] == 3
    assert report["agent_id"] == agent
    assert report["title"].startswith("desk: ")
    assert report["started_at"] is not None
    assert report["finished_at"] is not None
    assert report["progress"]["phase"] == "done"
    known = {*message_ids, *rejected}
    by_evidence = {frozenset(w["evidence"]): w for w in report["weaknesses"]}
    assert frozenset(rejected) in by_evidence, report["weaknesses"]
    assert by_evidence[frozenset(rejected)]["frequency"] == 3
    for finding in report["strengths"] + report["weaknesses"] + report["recommendations"]:
        assert set(finding["evidence"]) <= known
        assert finding["severity"] in ("low", "medium", "high")
    assert report["suggested_prompt"]
    assert report["suggested_prompt_diff"].startswith("---")
    assert report["prompt_changes"]
    assert all(c["rationale"] for c in report["prompt_changes"])


async def test_a_second_report_while_one_is_open_is_a_409_naming_it(
    client: httpx.AsyncClient, make_org: MakeOrg, runtime: Runtime
) -> None:
    runtime.mirror_runner = lambda report_id: None  # started, never run
    org, _, connection = await world(client, make_org)
    first = await start_report(client, org.member, connection)
    resp = await client.post(
        "/mirror-reports", json={"agent_connection_id": connection}, headers=org.member.headers
    )
    assert resp.status_code == 409
    assert resp.json()["report_id"] == first["id"]


async def test_a_report_that_fails_says_why_and_frees_the_connection(
    client: httpx.AsyncClient, make_org: MakeOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentplane.mirror.heuristic import HeuristicAnalyzer

    async def broken(self: Any, corpus: Any) -> Any:
        raise RuntimeError("the analyzer broke")

    monkeypatch.setattr(HeuristicAnalyzer, "analyze", broken)
    org, agent, connection = await world(client, make_org)
    await conversation(client, org.member, connection, agent, [("user", "hi")])
    report = await finished_report(
        client, org.member, (await start_report(client, org.member, connection))["id"]
    )
    assert report["status"] == "failed"
    assert "the analyzer broke" in report["error"]
    monkeypatch.undo()
    again = await finished_report(
        client, org.member, (await start_report(client, org.member, connection))["id"]
    )
    assert again["status"] == "succeeded"


async def test_the_cron_fails_a_report_running_past_its_deadline(
    client: httpx.AsyncClient, make_org: MakeOrg, runtime: Runtime, database: Database
) -> None:
    runtime.mirror_runner = lambda report_id: None
    org, _, connection = await world(client, make_org)
    stuck = await start_report(client, org.member, connection)
    fresh_org, _, fresh_connection = await world(client, make_org)
    fresh = await start_report(client, fresh_org.member, fresh_connection)
    async with database.service("test: a report whose function died long ago") as tx:
        await tx.execute(
            "update public.mirror_reports set status = 'running', started_at = now() -"
            " interval '1 hour' where id = %s",
            (stuck["id"],),
        )
        await tx.execute(
            "update public.mirror_reports set status = 'running', started_at = now() where id = %s",
            (fresh["id"],),
        )

    result = await reap(database)

    assert result.reports_failed == 1
    failed = (await client.get(f"/mirror-reports/{stuck['id']}", headers=org.member.headers)).json()
    assert failed["status"] == "failed"
    assert "deadline" in failed["error"]
    running = await client.get(f"/mirror-reports/{fresh['id']}", headers=fresh_org.member.headers)
    assert running.json()["status"] == "running"
    # The connection is free for its next report.
    assert (await start_report(client, org.member, connection))["status"] == "queued"


async def test_strangers_get_404_on_every_mirror_route(
    client: httpx.AsyncClient, make_org: MakeOrg, new_user: NewUser, runtime: Runtime
) -> None:
    runtime.mirror_runner = lambda report_id: None
    org, _, connection = await world(client, make_org)
    report = await start_report(client, org.member, connection)
    stranger = new_user()
    for method, path, body in (
        ("GET", f"/mirror-reports/{report['id']}", None),
        ("POST", f"/mirror-reports/{report['id']}/adopt", None),
        ("POST", "/mirror-reports", {"agent_connection_id": connection}),
    ):
        resp = await client.request(method, path, json=body, headers=stranger.headers)
        assert resp.status_code == 404, (method, path, resp.text)
    listed = await client.get("/mirror-reports", headers=stranger.headers)
    assert listed.json()["items"] == []
    # Another member of the same organization does not see it either: reports are the
    # owner's alone.
    other = await client.get(f"/mirror-reports/{report['id']}", headers=org.admin.headers)
    assert other.status_code == 404


async def test_a_report_never_reads_another_users_messages(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    org, agent, connection = await world(client, make_org)
    await conversation(client, org.member, connection, agent, [("user", "private words")])
    # The corpus query names no user: RLS alone keeps the admin out of the member's rows.
    async with database.transaction(
        Caller.user({"sub": str(org.admin.id), "role": "authenticated"})
    ) as tx:
        corpus, _ = await service.build_corpus(
            tx, uuid.UUID(connection), "desk", None, service.datetime.now(service.UTC)
        )
    assert corpus.messages == []
    async with database.transaction(
        Caller.user({"sub": str(org.member.id), "role": "authenticated"})
    ) as tx:
        corpus, _ = await service.build_corpus(
            tx, uuid.UUID(connection), "desk", None, service.datetime.now(service.UTC)
        )
    assert [m.content for m in corpus.messages] == ["private words"]


async def test_a_report_suggests_skills_with_their_evidence(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org, agent, connection = await world(client, make_org)
    await conversation(client, org.member, connection, agent, [("user", "read the notes")])
    runner = await runner_for(client, agent, org.owner)
    session = await runner.register()
    succeeded = []
    for i in range(3):
        action = await approved_action(
            client, agent, org, payload={"tool": "read_file", "args": {"path": f"n{i}.txt"}}
        )
        [item] = await runner.claimed(session["id"], max=1, lease_seconds=60)
        resp = await runner.result(item["id"], item["fencing_token"], "succeeded", {"ok": True})
        assert resp.status_code == 200, resp.text
        succeeded.append(action["id"])

    report = await finished_report(
        client, org.member, (await start_report(client, org.member, connection))["id"]
    )
    assert report["status"] == "succeeded", report

    skills = (await client.get("/skills", headers=org.member.headers)).json()["items"]
    [skill] = [s for s in skills if s["source_report_id"] == report["id"]]
    assert skill["status"] == "suggested"
    assert set(skill["evidence"]) == set(succeeded)
    assert skill["template_prompt"]
