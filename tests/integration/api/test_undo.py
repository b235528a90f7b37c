"""POST /actions/{id}/undo: the inverse of a write_file that succeeded, proposed as a new
pending action linked back by `undo_of`; every way an action cannot be undone is a
problem+json that says why.

Writes are run by the reference runner's real Toolbox in a temporary workspace and
reported through the runner protocol, so `previous` is what a runner really sends.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from agentplane.actions import service
from agentplane.actions.canonical import payload_sha256
from agentplane.actions.models import ActionPayload
from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.errors import ConflictError, ForbiddenError
from agentplane.runner.tools import Toolbox
from agentplane.tools.models import UNDO_CONTENT_LIMIT_BYTES
from tests.support.api import MakeOrg, NewUser, Org, assert_problem
from tests.support.builders import Runner, get_action, new_agent, propose, runner_for


async def _run(runner: Runner, org: Org, payload: dict[str, Any], toolbox: Toolbox) -> str:
    """Propose `payload`, approve it, and let a runner run it with `toolbox`: its id."""
    action = await propose(runner.client, runner.agent_id, org.member, payload=payload)
    approved = await runner.client.post(
        f"/actions/{action['id']}/approve", headers=org.admin.headers
    )
    assert approved.status_code == 200, approved.text
    session = await runner.register()
    (item,) = await runner.claimed(session["id"])
    result = toolbox.run(item["payload"])
    reported = await runner.result(item["id"], item["fencing_token"], result.status, result.output)
    assert reported.status_code == 200, reported.text
    assert reported.json()["status"] == result.status
    return str(action["id"])


async def _reported(
    runner: Runner, org: Org, payload: dict[str, Any], status: str, output: dict[str, Any]
) -> str:
    """An action of `payload` that a runner reported with `status` and `output`: its id."""
    action = await propose(runner.client, runner.agent_id, org.member, payload=payload)
    await runner.client.post(f"/actions/{action['id']}/approve", headers=org.admin.headers)
    session = await runner.register()
    (item,) = await runner.claimed(session["id"])
    reported = await runner.result(item["id"], item["fencing_token"], status, output)
    assert reported.status_code == 200, reported.text
    return str(action["id"])


def _write(path: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"tool": "write_file", "args": {"path": path, "content": content, **extra}}


@pytest.fixture
def toolbox(tmp_path: Path) -> Toolbox:
    return Toolbox(tmp_path / "workspace")


async def test_undo_proposes_writing_back_what_the_write_replaced(
    client: httpx.AsyncClient, make_org: MakeOrg, toolbox: Toolbox
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    # Given v1 of a file, then an approved write of v2 that a runner ran
    (toolbox.workspace / "notes").mkdir()
    (toolbox.workspace / "notes" / "plan.md").write_text("v1 ✓\n")
    v2 = await _run(runner, org, _write("notes/plan.md", "v2"), toolbox)
    assert (toolbox.workspace / "notes" / "plan.md").read_text() == "v2"

    # When a member asks to undo it
    before = datetime.fromisoformat((await get_action(client, v2, org.member))["updated_at"])
    resp = await client.post(
        f"/actions/{v2}/undo",
        json={"reason": "v2 broke the build", "ttl_seconds": 600},
        headers=org.member.headers,
    )

    # Then a new pending action of the same agent writes v1 back, linked to the write
    assert resp.status_code == 201, resp.text
    undo = resp.json()
    inverse = _write("notes/plan.md", "v1 ✓\n")
    assert undo["status"] == "pending"
    assert (undo["agent_id"], undo["organization_id"]) == (agent_id, str(org.id))
    assert undo["payload"] == inverse
    assert undo["payload_sha256"] == payload_sha256(inverse)
    assert (undo["undo_of"], undo["undo_reason"]) == (v2, "v2 broke the build")
    assert (undo["proposed_by"], undo["source"]) == (str(org.member.id), "user")
    expires = datetime.fromisoformat(undo["expires_at"]) - datetime.fromisoformat(
        undo["created_at"]
    )
    assert timedelta(seconds=599) < expires <= timedelta(seconds=601)
    # And the write itself is as it was
    original = await get_action(client, v2, org.viewer)
    assert (original["status"], original["undo_of"]) == ("succeeded", None)
    assert datetime.fromisoformat(original["updated_at"]) == before

    # When it is approved and run like any action
    approved = await client.post(f"/actions/{undo['id']}/approve", headers=org.admin.headers)
    assert approved.status_code == 200, approved.text
    session = await runner.register()
    (item,) = await runner.claimed(session["id"])
    assert item["id"] == undo["id"]
    result = toolbox.run(item["payload"])
    await runner.result(item["id"], item["fencing_token"], result.status, result.output)
    # Then the file is v1 again (and what the undo replaced is v2: it can be redone)
    assert (toolbox.workspace / "notes" / "plan.md").read_text() == "v1 ✓\n"
    assert result.output["previous"]["content"] == "v2"


async def test_an_append_is_undone_by_writing_the_whole_file_back(
    client: httpx.AsyncClient, make_org: MakeOrg, toolbox: Toolbox
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    (toolbox.workspace / "log.txt").write_text("line 1\n")
    appended = await _run(runner, org, _write("log.txt", "line 2\n", append=True), toolbox)
    resp = await client.post(f"/actions/{appended}/undo", headers=org.member.headers)
    assert resp.status_code == 201, resp.text
    # No append: the inverse replaces the file with what it was
    assert resp.json()["payload"] == _write("log.txt", "line 1\n")
    assert resp.json()["undo_reason"] is None


async def test_an_action_is_undone_once_and_a_retry_with_its_key_returns_the_undo(
    client: httpx.AsyncClient, make_org: MakeOrg, toolbox: Toolbox
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    (toolbox.workspace / "a.txt").write_text("before")
    write = await _run(runner, org, _write("a.txt", "after"), toolbox)
    key = {"Idempotency-Key": "undo-a-1"}
    first = await client.post(f"/actions/{write}/undo", headers={**org.member.headers, **key})
    assert first.status_code == 201, first.text
    assert first.json()["idempotency_key"] == "undo-a-1"
    # A retry with the same key is the same undo
    again = await client.post(f"/actions/{write}/undo", headers={**org.admin.headers, **key})
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    # Any other second undo is refused, naming the first
    for headers in (org.member.headers, {**org.member.headers, "Idempotency-Key": "other"}):
        second = assert_problem(await client.post(f"/actions/{write}/undo", headers=headers), 409)
        assert second["undo_action_id"] == first.json()["id"]
        assert first.json()["id"] in second["detail"]
        assert "already undone" in second["detail"]
    listed = await client.get(f"/actions?agent_id={agent_id}", headers=org.viewer.headers)
    assert [a["undo_of"] for a in listed.json()["items"]].count(write) == 1


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({"tool": "shell", "args": {"command": "rm -rf build"}}, "not recorded"),
        ({"tool": "http_get", "args": {"url": "https://example.com/"}}, "cannot be unsent"),
        ({"tool": "read_file", "args": {"path": "a.txt"}}, "nothing to undo"),
    ],
    ids=["shell", "http_get", "read_file"],
)
async def test_a_tool_that_is_not_reversible_is_refused_with_why(
    client: httpx.AsyncClient, make_org: MakeOrg, payload: dict[str, Any], why: str
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    action_id = await _reported(runner, org, payload, "succeeded", {"exit_code": 0})
    problem = assert_problem(
        await client.post(f"/actions/{action_id}/undo", headers=org.member.headers), 409
    )
    assert f"{payload['tool']} is not reversible" in problem["detail"]
    assert why in problem["detail"]
    assert problem["tool"] == payload["tool"]


async def test_only_an_action_that_succeeded_can_be_undone(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    pending = (await propose(client, agent_id, org.member, payload=_write("a", "x")))["id"]
    failed = await _reported(runner, org, _write("b", "x"), "failed", {"error": "os_error"})
    for action_id, status in ((pending, "pending"), (failed, "failed")):
        problem = assert_problem(
            await client.post(f"/actions/{action_id}/undo", headers=org.member.headers), 409
        )
        assert problem["current_status"] == status
        assert f"is {status}" in problem["detail"]


async def test_a_write_of_a_new_file_has_nothing_to_restore(
    client: httpx.AsyncClient, make_org: MakeOrg, toolbox: Toolbox
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    created = await _run(runner, org, _write("fresh.txt", "new"), toolbox)
    problem = assert_problem(
        await client.post(f"/actions/{created}/undo", headers=org.member.headers), 409
    )
    assert "did not exist" in problem["detail"]
    assert "nothing to restore" in problem["detail"]
    listed = await client.get(f"/actions?agent_id={agent_id}", headers=org.member.headers)
    assert len(listed.json()["items"]) == 1  # nothing was proposed


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"x" * (UNDO_CONTENT_LIMIT_BYTES + 1), f"more than the {UNDO_CONTENT_LIMIT_BYTES}"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8 text"),
    ],
    ids=["too-large", "binary"],
)
async def test_content_that_was_not_kept_cannot_be_restored(
    client: httpx.AsyncClient, make_org: MakeOrg, toolbox: Toolbox, data: bytes, what: str
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    (toolbox.workspace / "blob").write_bytes(data)
    write = await _run(runner, org, _write("blob", "replaced"), toolbox)
    problem = assert_problem(
        await client.post(f"/actions/{write}/undo", headers=org.member.headers), 409
    )
    assert what in problem["detail"]
    assert "was not kept" in problem["detail"]
    assert hashlib.sha256(data).hexdigest() in problem["detail"]


@pytest.mark.parametrize(
    "output",
    [
        {"path": "a.txt", "bytes": 1},  # a runner that does not report `previous`
        {"path": "a.txt", "bytes": 1, "previous": "v1"},
        {
            "path": "a.txt",
            "bytes": 1,
            "previous": {"existed": True, "sha256": "0" * 64, "bytes": 2, "content": "v1"},
        },
    ],
    ids=["no-previous", "not-an-object", "sha256-mismatch"],
)
async def test_a_write_without_a_believable_previous_is_refused(
    client: httpx.AsyncClient, make_org: MakeOrg, output: dict[str, Any]
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    write = await _reported(runner, org, _write("a.txt", "x"), "succeeded", output)
    problem = assert_problem(
        await client.post(f"/actions/{write}/undo", headers=org.member.headers), 409
    )
    assert "cannot be undone" in problem["detail"]


async def test_members_undo_viewers_may_not_and_strangers_see_nothing(
    client: httpx.AsyncClient, make_org: MakeOrg, new_user: NewUser, toolbox: Toolbox
) -> None:
    org = await make_org()
    other = await make_org("Other")
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    (toolbox.workspace / "a.txt").write_text("before")
    write = await _run(runner, org, _write("a.txt", "after"), toolbox)
    assert_problem(await client.post(f"/actions/{write}/undo", headers=org.viewer.headers), 403)
    for stranger in (other.owner, new_user()):
        assert_problem(await client.post(f"/actions/{write}/undo", headers=stranger.headers), 404)
    assert_problem(
        await client.post(f"/actions/{uuid.uuid4()}/undo", headers=org.member.headers), 404
    )
    assert_problem(await client.post(f"/actions/{write}/undo"), 401)
    # A body that breaks a rule is 422 before anything else
    bad = await client.post(
        f"/actions/{write}/undo", json={"ttl_seconds": 1}, headers=org.member.headers
    )
    assert_problem(bad, 422)
    # And a member's undo works (the refusals proposed nothing)
    assert (
        await client.post(f"/actions/{write}/undo", headers=org.member.headers)
    ).status_code == 201


async def test_the_undo_link_cannot_change_even_for_the_service_role(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database, toolbox: Toolbox
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    (toolbox.workspace / "a.txt").write_text("before")
    write = await _run(runner, org, _write("a.txt", "after"), toolbox)
    undo = (await client.post(f"/actions/{write}/undo", headers=org.member.headers)).json()
    other = (await propose(client, agent_id, org.member, payload=_write("b", "x")))["id"]

    for assignment, target in (
        ("undo_of = null", undo["id"]),
        ("undo_reason = 'rewritten'", undo["id"]),
        (f"undo_of = '{write}'", other),
    ):
        with pytest.raises(ForbiddenError) as refused:
            async with database.service("test: try to relink an undo") as tx:
                await tx.execute(
                    f"update public.agent_actions set {assignment} where id = %s".encode(),
                    (target,),
                )
        assert isinstance(refused.value.__cause__, psycopg.errors.InsufficientPrivilege)
        assert "immutable" in str(refused.value.__cause__)
    # A member has no UPDATE on the column at all
    with pytest.raises(ForbiddenError):
        async with database.transaction(Caller.user({"sub": str(org.member.id)})) as tx:
            await tx.execute(
                "update public.agent_actions set undo_of = null where id = %s", (undo["id"],)
            )
    assert (await get_action(client, undo["id"], org.member))["undo_of"] == write


async def test_an_undo_links_only_to_an_action_of_its_own_agent(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database, toolbox: Toolbox
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    other_agent = await new_agent(client, org, "other")
    runner = await runner_for(client, agent_id, org.member)
    (toolbox.workspace / "a.txt").write_text("before")
    write = await _run(runner, org, _write("a.txt", "after"), toolbox)
    # A member's own proposal, made behind the API's back, for another agent of the
    # organization that claims to undo this agent's write, is refused by the database
    with pytest.raises(ConflictError) as refused:
        async with database.transaction(Caller.user({"sub": str(org.member.id)})) as tx:
            await service.propose(
                tx,
                uuid.UUID(other_agent),
                ActionPayload(tool="write_file", args={"path": "a.txt", "content": "before"}),
                ttl_seconds=60,
                undo_of=uuid.UUID(write),
            )
    assert isinstance(refused.value.__cause__, psycopg.errors.ForeignKeyViolation)
    assert "is not an action of agent" in str(refused.value.__cause__)


async def test_concurrent_undos_of_one_action_make_one_undo(
    client: httpx.AsyncClient, make_org: MakeOrg, toolbox: Toolbox
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    (toolbox.workspace / "a.txt").write_text("before")
    write = await _run(runner, org, _write("a.txt", "after"), toolbox)
    people = [org.owner, org.admin, org.member] * 3
    answers = await asyncio.gather(
        *(client.post(f"/actions/{write}/undo", headers=p.headers) for p in people)
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * (len(people) - 1)
    (made,) = [a.json()["id"] for a in answers if a.status_code == 201]
    assert {a.json()["undo_action_id"] for a in answers if a.status_code == 409} == {made}


async def test_an_undo_its_policy_approves_by_itself_is_approved_at_once(
    client: httpx.AsyncClient, make_org: MakeOrg, toolbox: Toolbox
) -> None:
    # Given a write a runner ran, then a low-risk policy that approves writes under
    # notes/ by itself
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    (toolbox.workspace / "notes").mkdir()
    (toolbox.workspace / "notes" / "plan.md").write_text("v1\n")
    v2 = await _run(runner, org, _write("notes/plan.md", "v2"), toolbox)
    policy = await client.post(
        "/approval-policies",
        json={
            "organization_id": str(org.id),
            "tool_pattern": "write_file",
            "risk": "low",
            "auto_approve": True,
            "auto_approve_constraints": {"path": {"path_within": "notes"}},
        },
        headers=org.admin.headers,
    )
    assert policy.status_code == 201, policy.text

    # When it is undone, the undo goes through the same policy: approved and signed
    resp = await client.post(f"/actions/{v2}/undo", json={}, headers=org.member.headers)
    assert resp.status_code == 201, resp.text
    undo = resp.json()
    assert (undo["status"], undo["approved_by_policy"]) == ("approved", policy.json()["id"])
    assert undo["approval_signature"]
