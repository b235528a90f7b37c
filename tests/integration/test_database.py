"""Database.transaction: the caller's identity, one transaction, nothing half-written."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentplane.actions.service import actions as action_rows
from agentplane.actions.service import decide
from agentplane.actions.signing import ApprovalSigner
from agentplane.auth.caller import Caller
from agentplane.db.database import Database, TransactionAbortedError, UnsafeLoginRoleError
from agentplane.db.embedded import HANDLES_FILE, start_embedded
from agentplane.db.pagination import PageRequest
from agentplane.runtime import Runtime
from agentplane.seed import demo_caller, seed_demo
from agentplane.sessions.models import SessionCreate
from agentplane.sessions.service import heartbeat, register
from agentplane.settings import Settings
from bench.world import build_world, propose_bulk
from tests.support.database import ProvisionedDatabase, with_database


async def test_transaction_carries_role_and_claims(database: Database) -> None:
    user = uuid.uuid4()
    async with database.transaction(Caller.user({"sub": str(user)})) as tx:
        cur = await tx.execute("select current_user, auth.uid(), auth.role()")
        assert await cur.fetchone() == ("authenticated", user, "authenticated")
    async with database.transaction(Caller.anon()) as tx:
        cur = await tx.execute("select current_user, auth.uid()")
        assert await cur.fetchone() == ("anon", None)


async def test_role_does_not_leak_to_the_next_transaction_on_the_connection(
    fresh_db: ProvisionedDatabase,
) -> None:
    db = Database(fresh_db.app_url, max_size=1)
    try:
        async with db.service("test: a service transaction") as tx:
            await tx.execute("select 1")
        async with db._connection() as conn:
            cur = await conn.execute(
                "select current_user, current_setting('request.jwt.claims', true)"
            )
            assert await cur.fetchone() in (("authenticator", None), ("authenticator", ""))
    finally:
        await db.close()


async def test_claims_reach_the_database_exactly_as_given(database: Database) -> None:
    # BEGIN and the claims go in one simple-protocol query, quoted on this side: quotes,
    # backslashes and non-ASCII text must arrive unchanged, and not end the literal.
    user = uuid.uuid4()
    email = "o'brien\\'); select 1; --@例え.jp"
    async with database.transaction(Caller.user({"sub": str(user), "email": email})) as tx:
        cur = await tx.execute("select auth.uid(), auth.jwt() ->> 'email'")
        assert await cur.fetchone() == (user, email)


@pytest.mark.parametrize("failure", ["python", "sql"])
async def test_after_a_failed_transaction_the_connection_is_clean(
    fresh_db: ProvisionedDatabase, failure: str
) -> None:
    db = Database(fresh_db.app_url, max_size=1)

    class Boom(Exception):
        pass

    async def fail() -> None:
        async with db.service("test: a transaction that fails") as tx:
            await tx.execute("select 1")
            if failure == "python":
                raise Boom
            await tx.execute("select 1 / 0")

    try:
        with pytest.raises(Boom if failure == "python" else psycopg.errors.DivisionByZero):
            await fail()
        # The one pooled connection is back, out of any transaction, as the authenticator
        async with db._connection() as conn:
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            cur = await conn.execute(
                "select current_user, current_setting('request.jwt.claims', true)"
            )
            assert await cur.fetchone() in (("authenticator", None), ("authenticator", ""))
        async with db.service("test: the next transaction") as tx:
            cur = await tx.execute("select current_user")
            assert await cur.fetchone() == ("service_role",)
    finally:
        await db.close()


async def _plans(db: Database, caller: Caller, statement_like: str) -> tuple[int, int]:
    """(generic, custom) plans of the one prepared statement like this, on `db`'s one
    connection."""
    async with db.transaction(caller) as tx:
        cur = await tx.execute(
            "select generic_plans, custom_plans from pg_prepared_statements"
            " where statement like %s",
            (statement_like,),
        )
        rows = await cur.fetchall()
    assert len(rows) == 1, rows
    generic, custom = rows[0]
    return generic, custom


async def test_a_runners_repeated_statements_keep_their_generic_plan(
    fresh_db: ProvisionedDatabase,
) -> None:
    # Ten heartbeats on one connection: psycopg prepares the statement from its fifth
    # run, and the server must reuse one plan rather than plan each run anew.
    db = Database(fresh_db.app_url, max_size=1)
    try:
        seed = await seed_demo(db)
        runner = Caller.runner(seed.agent_id)
        async with db.transaction(runner) as tx:
            session = await register(tx, seed.agent_id, None, SessionCreate(socket_id="s"))
        for _ in range(10):
            async with db.transaction(runner) as tx:
                await heartbeat(tx, session.id)
        generic, custom = await _plans(db, runner, "%set last_heartbeat = now()%")
        assert (generic > 0, custom) == (True, 0)
    finally:
        await db.close()


async def test_single_decisions_settle_on_one_plan(fresh_db: ProvisionedDatabase) -> None:
    # People's transactions keep the server's plan choice; a single approval's two
    # statements must still end up on one reused plan each (psycopg prepares from the
    # 6th run, and the server tries five plans for the values before it compares them
    # with the generic one). On a few rows every plan costs the same, so the queue holds
    # 5,000 pending actions, as a real one would.
    world = build_world(fresh_db.admin_url)
    propose_bulk(fresh_db.admin_url, world, 5016)
    with psycopg.connect(fresh_db.admin_url) as admin:
        ids = [r[0] for r in admin.execute("select id from public.agent_actions limit 16")]
    db = Database(fresh_db.app_url, max_size=1)
    signer = ApprovalSigner(Ed25519PrivateKey.generate())
    try:
        for action_id in ids:
            async with db.transaction(world.member()) as tx:
                await decide(tx, action_id, "approve", None, signer=signer, approval_ttl_seconds=60)
        # The statements of an approval: the approval's row (with what it signs), and
        # the decision
        for statement in ("%with recorded as%", "%decided_by = auth.uid()%"):
            generic, custom = await _plans(db, world.member(), statement)
            assert generic > 0, (statement, generic, custom)
    finally:
        await db.close()


async def test_peoples_lists_are_planned_for_their_values(
    fresh_db: ProvisionedDatabase,
) -> None:
    # The approval inbox filters on status = 'pending': only a plan made for that value
    # can read the pending actions' partial index, so people keep the server's choice
    # (a plan per value for the first five runs, and while it stays cheaper).
    db = Database(fresh_db.app_url, max_size=1)
    try:
        await seed_demo(db)
        for _ in range(10):
            async with db.transaction(demo_caller()) as tx:
                await action_rows.page(tx, PageRequest(limit=50, after=None), {"status": "pending"})
        generic, custom = await _plans(db, demo_caller(), '%"agent_actions" where "status" = $1%')
        assert custom >= 5, (generic, custom)
    finally:
        await db.close()


JSON_SAMPLES = [
    '{"tool": "write_file", "args": {"path": "notes/é🙂.txt", "content": "a\\nb \\"q\\""}}',
    '{"big": 123456789012345678901234567890, "neg": -9223372036854775809}',
    "[0.1, 1e308, 5e-324, 1.7976931348623157e308, 123456789.123456789, -0.0, 1e16]",
    '{"nested": [1, {"b": null, "c": true, "d": false}], "empty": {}, "list": []}',
    '"\\ud83d\\ude00 \\u00e9"',
]


@pytest.mark.parametrize("text", JSON_SAMPLES)
async def test_json_comes_back_as_the_standard_library_reads_it(
    database: Database, text: str
) -> None:
    # The pool's connections parse json and jsonb with pydantic-core: the values must be
    # exactly what json.loads gives for the text the server sends.
    async with database.service("test: read json") as tx:
        cur = await tx.execute("select %s::jsonb, (%s::jsonb)::text, %s::json", (text,) * 3)
        row = await cur.fetchone()
    assert row is not None
    as_jsonb, jsonb_text, as_json = row
    assert as_jsonb == json.loads(jsonb_text)
    assert repr(as_jsonb) == repr(json.loads(jsonb_text))
    assert as_json == json.loads(text)


async def test_a_swallowed_statement_error_is_not_reported_as_committed(
    database: Database,
) -> None:
    # A block that catches a failed statement and carries on ends in an aborted
    # transaction; its COMMIT is answered with ROLLBACK, and that must not pass as success.
    seed = await seed_demo(database)

    async def swallow() -> None:
        async with database.transaction(demo_caller()) as tx:
            await tx.execute(
                "insert into public.projects (organization_id, name) values (%s, 'lost')",
                (seed.organization_id,),
            )
            with contextlib.suppress(psycopg.errors.DivisionByZero):
                await tx.execute("select 1 / 0")

    with pytest.raises(TransactionAbortedError):
        await swallow()
    async with database.transaction(demo_caller()) as tx:
        cur = await tx.execute("select count(*) from public.projects where name = 'lost'")
        assert await cur.fetchone() == (0,)


async def test_an_error_rolls_back_every_write_of_the_request(database: Database) -> None:
    seed = await seed_demo(database)

    class Boom(Exception):
        pass

    async def write_then_fail() -> None:
        async with database.transaction(demo_caller()) as tx:
            await tx.execute(
                "insert into public.projects (organization_id, name) values (%s, 'half')",
                (seed.organization_id,),
            )
            raise Boom

    with pytest.raises(Boom):
        await write_then_fail()

    async with database.transaction(demo_caller()) as tx:
        cur = await tx.execute("select count(*) from public.projects where name = 'half'")
        assert await cur.fetchone() == (0,)


async def test_seed_is_idempotent(database: Database) -> None:
    first = await seed_demo(database)
    second = await seed_demo(database)
    assert first == second
    async with database.transaction(demo_caller()) as tx:
        cur = await tx.execute("select count(*) from public.organizations")
        assert await cur.fetchone() == (1,)


async def test_concurrent_first_requests_of_one_user_create_one_auth_row(
    database: Database, fresh_db: ProvisionedDatabase
) -> None:
    user = uuid.uuid4()

    async def request() -> None:
        async with database.transaction(Caller.user({"sub": str(user)})) as tx:
            await tx.execute("select 1")

    await asyncio.gather(*(request() for _ in range(6)))
    with psycopg.connect(fresh_db.admin_url) as conn:
        row = conn.execute("select count(*) from auth.users where id = %s", (user,)).fetchone()
    assert row == (1,)


def test_a_service_context_must_say_why() -> None:
    with pytest.raises(ValueError, match="why"):
        Caller.service("")


def test_a_killed_holder_of_the_embedded_server_does_not_keep_it_running(
    tmp_path: Path,
) -> None:
    # Given an embedded server whose handle list names a process that was killed
    pgdata = tmp_path / "pgdata"
    first = start_embedded(pgdata)
    first.stop()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (pgdata / HANDLES_FILE).write_text(json.dumps([dead.pid]))

    # When a command starts it, and lets go of it
    embedded = start_embedded(pgdata)
    assert json.loads((pgdata / HANDLES_FILE).read_text()) == [os.getpid()]
    embedded.stop()

    # Then the server stopped: the dead holder was forgotten
    assert not (pgdata / "postmaster.pid").exists()


# --- the login role, outside local mode ---------------------------------------------------


async def _first_use(settings: Settings) -> str:
    database = Runtime(settings).database
    try:
        async with database.transaction(Caller.anon()) as tx:
            cur = await tx.execute("select current_user")
            row = await cur.fetchone()
            assert row is not None
            return str(row[0])
    finally:
        await database.close()


def _deployed(url: str, tmp_path: Path) -> Settings:
    return Settings(stage="dev", database_url=url, jwt_secret="x" * 40, data_dir=tmp_path)


async def test_outside_local_mode_a_superuser_login_is_refused(
    fresh_db: ProvisionedDatabase, tmp_path: Path
) -> None:
    settings = _deployed(fresh_db.admin_url, tmp_path)
    database = Runtime(settings).database
    try:
        for _ in range(2):  # every use is refused, not just the first
            with pytest.raises(UnsafeLoginRoleError) as refused:
                async with database.transaction(Caller.anon()):
                    pass
            assert "superuser" in str(refused.value)
            assert "NOINHERIT NOSUPERUSER NOBYPASSRLS" in str(refused.value)
        with pytest.raises(UnsafeLoginRoleError):
            await database.ping()
    finally:
        await database.close()


@pytest.mark.parametrize(
    ("attributes", "named"),
    [("noinherit bypassrls", "BYPASSRLS"), ("inherit", "INHERIT")],
    ids=["bypassrls", "inherit"],
)
async def test_outside_local_mode_a_bypassrls_or_inheriting_login_is_refused(
    fresh_db: ProvisionedDatabase, tmp_path: Path, attributes: str, named: str
) -> None:
    role, password = f"login_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(fresh_db.admin_url, autocommit=True) as conn:
        conn.execute(f"create role {role} login nosuperuser {attributes} password '{password}'")
        conn.execute(f"grant authenticator to {role}")
    try:
        url = with_database(fresh_db.admin_url, fresh_db.name, user=role, password=password)
        with pytest.raises(UnsafeLoginRoleError, match=named):
            await _first_use(_deployed(url, tmp_path))
    finally:
        with psycopg.connect(fresh_db.admin_url, autocommit=True) as conn:
            conn.execute(f"drop role {role}")


async def test_outside_local_mode_the_authenticator_login_is_accepted(
    fresh_db: ProvisionedDatabase, tmp_path: Path
) -> None:
    assert await _first_use(_deployed(fresh_db.app_url, tmp_path)) == "anon"


@pytest.mark.parametrize("stage", ["local", "test"])
async def test_in_local_mode_the_login_role_is_not_checked(
    fresh_db: ProvisionedDatabase, tmp_path: Path, stage: str
) -> None:
    settings = Settings(stage=stage, database_url=fresh_db.admin_url, data_dir=tmp_path)
    assert await _first_use(settings) == "anon"
