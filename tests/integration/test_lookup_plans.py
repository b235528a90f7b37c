"""Statements that change rows by id find them by primary key, whatever the statistics.

The queue's partial indexes (pending, approved and claimed actions; live sessions) hold
few rows, and statistics taken at a quiet moment say they hold none. A statement that
names both the ids and such a state (a decision on pending actions, a fenced result of
claimed ones) could then be planned through the partial index: every claimed action of
every agent read and joined against the batch. These are the plans PostgreSQL keeps for
prepared statements after five runs (generic plans), under exactly such statistics.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from agentplane.actions import service as actions_service
from agentplane.sessions import service as sessions_service
from bench.world import build_world
from tests.support.database import ProvisionedDatabase
from tests.support.plans import BY_ID, scans


def _numbered(query: bytes | str) -> str:
    """The statement with psycopg's placeholders as $1, $2, ... for PREPARE: %s and %b in
    order, and each %(name)s by its first appearance."""
    text = query.decode() if isinstance(query, bytes) else query
    names: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name = match.group(1) or f"#{len(names)}"
        if name not in names:
            names[name] = len(names) + 1
        return f"${names[name]}"

    return re.sub(r"%\((\w+)\)s|%[sb]", number, text)


def _stale_statistics(admin_url: str) -> None:
    """Statistics taken when every action was cancelled and every session offline, then
    a busy queue: 400 pending actions, 200 approved, 100 of them claimed; 50 live
    sessions. Autovacuum is off for both tables, so the statistics stay stale."""
    world = build_world(admin_url)
    insert = """
        insert into public.agent_actions
          (organization_id, agent_id, payload, payload_sha256, expires_at)
        select %s, %s, jsonb_build_object('tool', 'noop', 'args', jsonb_build_object('n', g)),
               encode(sha256(g::text::bytea), 'hex'), now() + interval '1 day'
          from generate_series(1, %s) g
    """
    args = (world.organization_id, world.agent_ids[0])
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for table in ("agent_actions", "agent_sessions"):
            conn.execute(
                sql.SQL("alter table {} set (autovacuum_enabled = false)").format(
                    sql.Identifier("public", table)
                )
            )
        conn.execute(insert.encode(), (*args, 50))
        conn.execute("update public.agent_actions set status = 'cancelled'")
        conn.execute(
            "insert into public.agent_sessions (organization_id, agent_id, status)"
            " select %s, %s, 'offline' from generate_series(1, 50)",
            args,
        )
        conn.execute("analyze public.agent_actions, public.agent_sessions")
        conn.execute(insert.encode(), (*args, 400))
        session = conn.execute(
            "insert into public.agent_sessions (organization_id, agent_id)"
            " select %s, %s from generate_series(1, 50) returning id",
            args,
        ).fetchall()[0][0]
        conn.execute(
            "update public.agent_actions"
            "   set status = 'approved', approval_signature = 'signed',"
            "       approval_expires_at = now() + interval '1 hour'"
            " where id in (select id from public.agent_actions where status = 'pending'"
            "               order by id limit 200)"
        )
        conn.execute(
            "update public.agent_actions"
            "   set status = 'claimed', session_id = %s, fencing_token = 1,"
            "       lease_expires_at = now() + interval '5 minutes'"
            " where id in (select id from public.agent_actions where status = 'approved'"
            "               order by id limit 100)",
            (session,),
        )
        counts: dict[str, int] = dict(
            conn.execute("select status, count(*) from public.agent_actions group by status")
        )
        assert counts == {"cancelled": 50, "pending": 200, "approved": 100, "claimed": 100}


UUIDS = "'{" + ",".join(str(uuid4()) for _ in range(50)) + "}'::uuid[]"
ARGUMENTS = {
    "decide": f"'approved', now(), null, now(), {UUIDS}, array_fill('sig'::text, '{{50}}'),"
    " '{pending}', 'approved', 'approved'",
    "report results": f"{UUIDS}, array_fill(1::bigint, '{{50}}'),"
    " array_fill('succeeded'::text, '{50}'), array_fill('{}'::jsonb, '{50}')",
    "decide one": f"'approved', now(), null, 'sig', now(), '{uuid4()}', '{{pending}}'",
    "release": "gen_random_uuid(), 1",
    "heartbeat": "gen_random_uuid()",
}
STATEMENTS: dict[str, bytes | str] = {
    "decide": actions_service.DECIDE,
    "decide one": actions_service.DECIDE_ONE,
    "report results": sessions_service.REPORT_RESULTS,
    "release": sessions_service.RELEASE,
    "heartbeat": sessions_service.HEARTBEAT,
}


def _plan(admin_url: str, name: str, mode: str) -> list[str]:
    """The scans of the statement's plan: generic (as a prepared statement keeps it after
    five runs) or custom (planned for a batch of 50)."""
    with psycopg.connect(admin_url) as conn:
        conn.execute("select set_config('plan_cache_mode', %s, false)", (f"force_{mode}_plan",))
        # A few hundred rows fit a page or two, where reading them all is the cheapest
        # plan; priced out, the plan shows which index the statement is found through.
        conn.execute("set enable_seqscan = off")
        conn.execute(
            sql.SQL("prepare statement as {}").format(sql.SQL(_numbered(STATEMENTS[name])))
        )
        arguments = ARGUMENTS[name]
        if mode == "generic":
            count = len(set(re.findall(r"\$\d+", _numbered(STATEMENTS[name]))))
            arguments = ", ".join(["null"] * count)
        row = conn.execute(
            f"explain (format json) execute statement({arguments})".encode()
        ).fetchone()
        assert row is not None
        plan: dict[str, Any] = row[0][0]["Plan"]
        return scans(plan)


@pytest.mark.parametrize("mode", ["generic", "custom"])
@pytest.mark.parametrize("name", list(STATEMENTS))
def test_changes_by_id_read_the_primary_key(
    fresh_db: ProvisionedDatabase, name: str, mode: str
) -> None:
    _stale_statistics(fresh_db.admin_url)
    scans = _plan(fresh_db.admin_url, name, mode)
    # One lookup by id per row: no partial index, no sequential scan.
    assert len(scans) == 1, (name, mode, scans)
    assert scans[0] in BY_ID, (name, mode, scans)
