"""The heartbeat cron's reaper against a real database: silent sessions, lost leases,
expired proposals and approvals; two crons at once."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import httpx
from psycopg import sql

from agentplane.actions import service as actions
from agentplane.actions.audit import verify_database
from agentplane.db.database import Database
from agentplane.seed import seed_demo
from agentplane.sessions import service
from agentplane.sessions.reaper import ReapResult, reap, reap_stale_sessions
from tests.support.api import MakeOrg, assert_problem
from tests.support.builders import (
    approved_action,
    get_action,
    new_agent,
    propose,
    register_silent_session,
    runner_for,
    transitions,
)
from tests.support.database import ProvisionedDatabase
from tests.support.plans import BY_ID, scans


async def _statuses(db: Database) -> dict[UUID, str]:
    async with db.service("test: read session statuses") as tx:
        cur = await tx.execute("select id, status from public.agent_sessions")
        return {r[0]: r[1] for r in await cur.fetchall()}


async def test_silent_sessions_go_offline_and_live_ones_stay(database: Database) -> None:
    seed = await seed_demo(database)
    stale = [await register_silent_session(database, seed.agent_id, 600) for _ in range(3)]
    live = await register_silent_session(database, seed.agent_id, 5)

    result = await reap_stale_sessions(database, stale_after_seconds=90, batch=2)

    assert result.sessions_offline == 3
    statuses = await _statuses(database)
    assert [statuses[s] for s in stale] == ["offline"] * 3
    assert statuses[live] == "online"
    # A second run finds nothing more to do.
    assert (await reap_stale_sessions(database, stale_after_seconds=90)).sessions_offline == 0


async def test_two_reapers_at_once_reap_each_session_once(database: Database) -> None:
    seed = await seed_demo(database)
    stale = {await register_silent_session(database, seed.agent_id, 600) for _ in range(40)}

    results = await asyncio.gather(
        reap_stale_sessions(database, stale_after_seconds=90, batch=7),
        reap_stale_sessions(database, stale_after_seconds=90, batch=7),
    )

    assert sum(r.sessions_offline for r in results) == len(stale)
    statuses = await _statuses(database)
    assert {s for s, st in statuses.items() if st == "offline"} == stale


# --- the whole heartbeat: leases, attempts, TTLs, approvals ------------------------------
# Data is built through the API (organizations, agents, runner tokens, approvals, claims);
# time passes by backdating deadlines as the service role, never by sleeping.


async def _backdate(database: Database, table: str, column: str, row_ids: list[str]) -> None:
    """Move a deadline (or last heartbeat) of the rows ten minutes into the past."""
    query = sql.SQL(
        "update public.{} set {} = now() - interval '10 minutes' where id = any(%s)"
    ).format(sql.Identifier(table), sql.Identifier(column))
    async with database.service("test: let time pass") as tx:
        cur = await tx.execute(query, ([UUID(i) for i in row_ids],))
        assert cur.rowcount == len(row_ids)


async def test_a_lost_lease_is_requeued_until_the_last_attempt_then_failed(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    action_id = (await approved_action(client, agent_id, org, max_attempts=2))["id"]

    # Given a session claims the action (attempt 1), then stops heartbeating
    first = await runner.register()
    (claim_1,) = await runner.claimed(first["id"], lease_seconds=600)
    await _backdate(database, "agent_sessions", "last_heartbeat", [first["id"]])

    # When the heartbeat cron runs
    result = await reap(database)

    # Then the session is offline and the action is back in the queue, once
    assert result == ReapResult(sessions_offline=1, leases_requeued=1)
    action = await get_action(client, action_id, org.viewer)
    assert (action["status"], action["attempt"], action["session_id"]) == ("approved", 1, None)
    assert action["lease_expires_at"] is None
    assert_problem(await runner.heartbeat(first["id"]), 409)
    late = assert_problem(await runner.result(action_id, claim_1["fencing_token"]), 409)
    assert late["current_status"] == "approved"
    assert await reap(database) == ReapResult()

    # Given a second session claims it again (attempt 2, the last) and keeps
    # heartbeating, but its lease runs out
    second = await runner.register()
    (claim_2,) = await runner.claimed(second["id"], lease_seconds=600)
    assert (claim_2["attempt"], claim_2["fencing_token"]) == (2, 2)
    await _backdate(database, "agent_actions", "lease_expires_at", [action_id])
    assert (await runner.heartbeat(second["id"])).status_code == 200

    # When the cron runs again
    result = await reap(database)

    # Then the action failed for good, saying why; the live session stays online
    assert result == ReapResult(leases_failed=1)
    action = await get_action(client, action_id, org.viewer)
    assert (action["status"], action["attempt"]) == ("failed", 2)
    assert action["output"] == {"error": "lease expired", "attempts": 2}
    assert action["finished_at"] is not None
    assert action["lease_expires_at"] is None
    assert (await runner.heartbeat(second["id"])).status_code == 200
    stale = assert_problem(await runner.result(action_id, claim_2["fencing_token"]), 409)
    assert stale["current_status"] == "failed"
    assert await runner.claimed(second["id"]) == []
    assert await transitions(client, action_id, org.viewer) == [
        (None, "pending", "authenticated"),
        ("pending", "approved", "authenticated"),
        ("approved", "claimed", "agent_runner"),
        ("claimed", "approved", "service_role"),
        ("approved", "claimed", "agent_runner"),
        ("claimed", "failed", "service_role"),
    ]


async def test_expired_proposals_and_approvals_expire_and_fresh_ones_stay(
    client: httpx.AsyncClient, make_org: MakeOrg, database: Database
) -> None:
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    session = await runner.register()
    undecided = (await propose(client, agent_id, org.member, ttl_seconds=60))["id"]
    fresh_pending = (await propose(client, agent_id, org.member))["id"]
    unclaimed = (await approved_action(client, agent_id, org))["id"]
    fresh_approved = (await approved_action(client, agent_id, org))["id"]
    # An action whose lease and approval both ran out while claimed
    lapsed = (await approved_action(client, agent_id, org))["id"]
    (held,) = await runner.claimed(session["id"])
    assert held["id"] == unclaimed
    released = await runner.release(held["id"], held["fencing_token"])
    assert released.status_code == 200
    await _backdate(database, "agent_actions", "expires_at", [undecided])
    await _backdate(database, "agent_actions", "approval_expires_at", [unclaimed])

    # Before the cron runs, an expired approval is already never handed out
    items = await runner.claimed(session["id"], max=50)
    assert [i["id"] for i in items] == [fresh_approved, lapsed]
    await _backdate(database, "agent_actions", "approval_expires_at", [lapsed])
    await _backdate(database, "agent_actions", "lease_expires_at", [lapsed])
    # ... nor can an expired proposal be approved
    refused = await client.post(f"/actions/{undecided}/approve", headers=org.admin.headers)
    assert assert_problem(refused, 409)["current_status"] == "pending"

    # When the cron runs
    result = await reap(database)

    # Then the undecided proposal and both lapsed approvals expired (the lapsed lease was
    # requeued first, then expired in the same run); the rest is untouched
    assert result == ReapResult(leases_requeued=1, actions_expired=1, approvals_expired=2)
    statuses = {
        i: (await get_action(client, i, org.viewer))["status"]
        for i in (undecided, fresh_pending, unclaimed, fresh_approved, lapsed)
    }
    assert statuses == {
        undecided: "expired",
        fresh_pending: "pending",
        unclaimed: "expired",
        fresh_approved: "claimed",
        lapsed: "expired",
    }
    assert (await transitions(client, undecided, org.viewer))[-1] == (
        "pending",
        "expired",
        "service_role",
    )
    assert [t[:2] for t in await transitions(client, lapsed, org.viewer)][-3:] == [
        ("approved", "claimed"),
        ("claimed", "approved"),
        ("approved", "expired"),
    ]
    assert await reap(database) == ReapResult()


async def test_two_reapers_at_once_change_each_row_once(
    client: httpx.AsyncClient,
    make_org: MakeOrg,
    database: Database,
    fresh_db: ProvisionedDatabase,
) -> None:
    # Given, for one agent: 12 silent sessions each holding one action (half of them on
    # their last attempt), 12 actions whose lease ran out on a live session, 12 undecided
    # proposals past their TTL and 12 approvals past their expiry
    org = await make_org()
    agent_id = await new_agent(client, org)
    runner = await runner_for(client, agent_id, org.member)
    silent: list[str] = []
    held: list[str] = []
    for i in range(12):
        action = await approved_action(client, agent_id, org, max_attempts=1 if i % 2 else 3)
        session = await runner.register(socket_id=f"silent-{i}")
        assert [c["id"] for c in await runner.claimed(session["id"])] == [action["id"]]
        silent.append(session["id"])
        held.append(action["id"])
    live = await runner.register(socket_id="live")
    leased = [(await approved_action(client, agent_id, org))["id"] for _ in range(12)]
    assert len(await runner.claimed(live["id"], max=50)) == 12
    undecided = [(await propose(client, agent_id, org.member))["id"] for _ in range(12)]
    unclaimed = [(await approved_action(client, agent_id, org))["id"] for _ in range(12)]
    await _backdate(database, "agent_sessions", "last_heartbeat", silent)
    await _backdate(database, "agent_actions", "lease_expires_at", leased)
    await _backdate(database, "agent_actions", "expires_at", undecided)
    await _backdate(database, "agent_actions", "approval_expires_at", unclaimed)

    # When two crons run at once, in small batches
    results = await asyncio.gather(reap(database, batch=5), reap(database, batch=5))

    # Then between them each row was changed exactly once
    assert results[0] + results[1] == ReapResult(
        sessions_offline=12,
        leases_requeued=6 + 12,
        leases_failed=6,
        actions_expired=12,
        approvals_expired=12,
    )
    assert await _statuses(database) == {UUID(s): "offline" for s in silent} | {
        UUID(live["id"]): "online"
    }
    for action_id in [*held, *leased, *undecided, *unclaimed]:
        reaped = [
            t for t in await transitions(client, action_id, org.viewer) if t[2] == "service_role"
        ]
        assert len(reaped) == 1, (action_id, reaped)
    # And the audit chains are intact
    report = verify_database(fresh_db.app_url)
    assert (report.chains, report.broken) == (48, [])
    assert await reap(database) == ReapResult()


async def test_each_step_reads_its_partial_index(database: Database) -> None:
    # With sequential scans priced out, the planner shows which index each statement's
    # predicate matches: the partial index of exactly the rows the step may change.
    some = [uuid4()]
    statements = [
        (service.OFFLINE_STALE_SESSIONS, (90, 660, 1000), "agent_sessions_live_heartbeat_idx"),
        (service.REQUEUE_BY_SESSION, (some, None), "agent_actions_claimed_session_idx"),
        (service.REQUEUE_BY_SESSION_WAITING, (some, None), "agent_actions_claimed_session_idx"),
        (service.REQUEUE_EXPIRED_LEASES, (1000,), "agent_actions_claimed_lease_idx"),
        (actions.EXPIRE_PENDING, (1000,), "agent_actions_pending_ttl_idx"),
        (actions.EXPIRE_APPROVALS, (1000,), "agent_actions_approved_expiry_idx"),
    ]
    async with database.service("test: explain the reaper") as tx:
        await tx.execute("set local enable_seqscan = off")
        for statement, args, index in statements:
            cur = await tx.execute(
                sql.SQL("explain (format json) {}").format(sql.SQL(statement)), args
            )
            row = await cur.fetchone()
            assert row is not None
            found = scans(row[0][0]["Plan"])
            # The step finds its rows through its partial index; the only other scan is
            # the UPDATE joining back to those rows by their (unique) id.
            assert found.count(index) == 1, (statement, found)
            others = [s for s in found if s != index]
            assert len(others) == 1, (statement, found)
            assert others[0] in BY_ID, (statement, found)
