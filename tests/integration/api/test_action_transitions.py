"""The database enforces the action state machine and each role's columns, for direct
SQL too (PostgREST, psql), not only through the API's conditional updates."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest

from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.errors import ForbiddenError
from tests.support.api import MakeOrg, Org
from tests.support.builders import approved_action, new_agent, propose


async def _pending_and_approved(client: httpx.AsyncClient, org: Org) -> tuple[str, str, str]:
    agent_id = await new_agent(client, org)
    pending = await propose(client, agent_id, org.member)
    approved = await approved_action(client, agent_id, org)
    return agent_id, pending["id"], approved["id"]


async def _refused(database: Database, caller: Caller, sql: str, args: Any) -> BaseException:
    with pytest.raises(ForbiddenError) as refused:
        async with database.transaction(caller) as tx:
            await tx.execute(sql, args)
    cause = refused.value.__cause__
    assert isinstance(cause, psycopg.errors.InsufficientPrivilege)
    return cause


async def test_a_runner_cannot_approve_or_skip_the_claim(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    org = await make_org()
    agent_id, pending, approved = await _pending_and_approved(client, org)
    runner = Caller.runner(uuid.UUID(agent_id))
    cause = await _refused(
        database,
        runner,
        "update public.agent_actions set status = 'approved' where id = %s",
        (pending,),
    )
    assert "from pending to approved as agent_runner" in str(cause)
    await _refused(
        database,
        runner,
        "update public.agent_actions set status = 'succeeded' where id = %s",
        (approved,),
    )
    # Nor write a person's columns.
    await _refused(
        database,
        runner,
        "update public.agent_actions set decision_reason = 'fine' where id = %s",
        (pending,),
    )


async def test_a_member_cannot_report_results_or_touch_the_lease(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    org = await make_org()
    _, pending, approved = await _pending_and_approved(client, org)
    member = Caller.user({"sub": str(org.member.id)})
    await _refused(
        database,
        member,
        "update public.agent_actions set status = 'claimed' where id = %s",
        (approved,),
    )
    for column, value in (("output", '{"ok": true}'), ("fencing_token", 99)):
        await _refused(
            database,
            member,
            f"update public.agent_actions set {column} = %s where id = %s",
            (value, pending),
        )
    action = (await client.get(f"/actions/{approved}", headers=org.member.headers)).json()
    assert (action["status"], action["output"], action["fencing_token"]) == ("approved", None, 0)


async def test_a_direct_decision_is_recorded_as_the_callers_own(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    org = await make_org()
    _, pending, _ = await _pending_and_approved(client, org)
    async with database.transaction(Caller.user({"sub": str(org.member.id)})) as tx:
        await tx.execute(
            "update public.agent_actions set status = 'rejected', decided_by = %s where id = %s",
            (org.owner.id, pending),
        )
    action = (await client.get(f"/actions/{pending}", headers=org.member.headers)).json()
    assert (action["status"], action["decided_by"]) == ("rejected", str(org.member.id))


async def test_server_jobs_cannot_revive_a_finished_action(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    org = await make_org()
    _, pending, _ = await _pending_and_approved(client, org)
    await client.post(f"/actions/{pending}/reject", headers=org.member.headers)
    await _refused(
        database,
        Caller.service("test: try to reopen a rejected action"),
        "update public.agent_actions set status = 'pending' where id = %s",
        (pending,),
    )
