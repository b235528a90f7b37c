"""One transaction per request, carrying the caller's role and claims (DESIGN.md §2).

Every transaction starts with

    begin;
    select set_config('role', <role>, true), set_config('request.jwt.claims', <json>, true)
           [, set_config('plan_cache_mode', 'force_generic_plan', true)  -- runners only]

which is `SET LOCAL ROLE` plus the claims (and, for a runner, one plan per prepared
statement: see _begin_as), in the same round trip as BEGIN. The application connects as
`authenticator` (NOINHERIT): outside such a transaction it can read nothing, so a route
that forgot to say who is calling fails closed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from uuid import UUID

import psycopg
import pydantic_core
from psycopg import sql
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from agentplane.auth.caller import Caller
from agentplane.db.errors import translate
from agentplane.db.rows import Tx
from agentplane.errors import ServiceUnavailableError
from agentplane.observability import logger

# How many first-seen users to remember per process before starting over.
KNOWN_USERS_LIMIT = 10_000


async def _configure(conn: Tx) -> None:
    """Each new pooled connection reads json and jsonb with pydantic-core's parser (the
    same values as the standard library's, several times faster: actions carry their
    payload and output as jsonb)."""
    set_json_loads(pydantic_core.from_json, conn)


def _begin_as(caller: Caller, first_seen: bool) -> sql.Composed:
    """BEGIN, then `SET LOCAL ROLE` and the claims (and the user's row on first sight).

    A runner's prepared statements (psycopg prepares a query from its fifth run) keep
    their generic plan. Otherwise the server plans a one-row result or heartbeat afresh
    on every run: for one row, a custom plan always looks cheaper than the generic
    plan's guess. The runner protocol's statements are all by id or by the agent's
    queue, and read the right index in either plan
    (tests/integration/test_lookup_plans.py).

    People's transactions keep the server's choice. Their lists filter on values, such
    as `status = 'pending'`, that only a plan made for the value can match to a partial
    index; a generic plan reads the whole table for the approval inbox
    (docs/architecture.md, "Request path").
    """
    claims = json.dumps(caller.claims, separators=(",", ":"))
    query = sql.SQL(
        "begin; select set_config('role', {}, true), set_config('request.jwt.claims', {}, true)"
    ).format(sql.Literal(caller.role), sql.Literal(claims))
    if caller.role == "agent_runner":
        query += sql.SQL(", set_config('plan_cache_mode', 'force_generic_plan', true)")
    if first_seen:
        query += sql.SQL("; select private.ensure_user()")
    return query


async def _rollback(conn: Tx) -> None:
    """Roll back after an error; a connection too broken for that is the pool's to drop."""
    if conn.closed:
        return
    try:
        await conn.execute(b"rollback")
    except psycopg.Error:
        logger.warning("rollback failed; the pool will discard the connection")


class TransactionAbortedError(RuntimeError):
    """A block ended normally, but a statement in it had failed: nothing was committed."""


class UnsafeLoginRoleError(RuntimeError):
    """Outside local mode, the database URL logs in as a role that RLS would not confine."""


# The login role (and the current one, should the URL set `options=-c role=...`).
LOGIN_ROLES = (
    "select rolname, rolsuper, rolbypassrls, rolinherit from pg_catalog.pg_roles"
    " where rolname in (session_user, current_user)"
)


async def _require_confined_login(conn: Tx) -> None:
    """Refuse a login role that would run as more than the caller outside the role switch:
    a superuser or BYPASSRLS role ignores every policy, an INHERIT one holds the rights of
    the roles it may switch to (tests/integration/test_database.py)."""
    cur = await conn.execute(LOGIN_ROLES)
    for name, superuser, bypassrls, inherit in await cur.fetchall():
        unsafe = [
            label for label, held in (("superuser", superuser), ("BYPASSRLS", bypassrls)) if held
        ]
        if inherit:
            unsafe.append("INHERIT (not NOINHERIT)")
        if unsafe:
            raise UnsafeLoginRoleError(
                f"the database URL logs in as role {name!r}, which is {', '.join(unsafe)}:"
                " outside local mode agentplane connects only as a role created NOINHERIT"
                " NOSUPERUSER NOBYPASSRLS, such as `authenticator` (set DATABASE_URL or the"
                " database secret to that role's URL)"
            )


class Database:
    """A lazily opened async connection pool and the transactions built on it."""

    def __init__(
        self,
        conninfo: str,
        *,
        min_size: int = 0,
        max_size: int = 10,
        connect_timeout: float = 5.0,
        check_login_role: bool = False,
    ) -> None:
        self._conninfo = conninfo
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            open=False,
            timeout=connect_timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(connect_timeout))},
            configure=_configure,
        )
        self._open_lock = asyncio.Lock()
        self._opened = False
        self._known_users: set[UUID] = set()
        # Outside local mode, the first connection's role is checked before any use.
        self._login_role_checked = not check_login_role

    async def open(self) -> None:
        """Open the pool (first use does this too)."""
        async with self._open_lock:
            if not self._opened:
                await self._pool.open(wait=False)
                self._opened = True

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._opened:
            await self._pool.close()
            self._opened = False

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Tx]:
        if not self._opened:
            await self.open()
        try:
            conn = await self._pool.getconn()
        except PoolTimeout as exc:
            raise ServiceUnavailableError("the database is not reachable") from exc
        except psycopg.OperationalError as exc:
            raise ServiceUnavailableError("the database connection failed") from exc
        try:
            if not self._login_role_checked:
                await _require_confined_login(conn)
                self._login_role_checked = True
            yield conn
        finally:
            await self._pool.putconn(conn)

    @asynccontextmanager
    async def transaction(self, caller: Caller, *, routine: bool = False) -> AsyncIterator[Tx]:
        """A transaction as `caller`: committed on success, rolled back on any error.

        A service-role transaction logs its reason: at info, or at debug when `routine`
        (a schedule's run, so the log holds what it changed, not that it looked)."""
        if caller.role == "service_role":
            log = logger.debug if routine else logger.info
            log("service-role transaction", extra={"reason": caller.reason})
        user_id = caller.user_id
        first_seen = user_id is not None and user_id not in self._known_users
        try:
            async with self._connection() as conn:
                try:
                    # BEGIN and the caller's identity in one round trip: a simple-protocol
                    # query, so the values are quoted by psycopg (sql.Literal) here.
                    await conn.execute(_begin_as(caller, first_seen))
                    yield conn
                except BaseException:
                    await _rollback(conn)
                    raise
                done = await conn.execute(b"commit")
                if done.statusmessage != "COMMIT":
                    # The server answers COMMIT with ROLLBACK when a statement failed and
                    # the block went on regardless: nothing was written, so say so.
                    raise TransactionAbortedError(
                        "the transaction was rolled back: a statement in it failed"
                    )
        except psycopg.Error as exc:
            # The one place database errors become problems: by SQLSTATE, from exc.
            problem = translate(exc)
            if problem is None:
                raise
            raise problem from exc
        if first_seen and user_id is not None:
            if len(self._known_users) >= KNOWN_USERS_LIMIT:
                self._known_users.clear()
            self._known_users.add(user_id)

    def service(self, reason: str, *, routine: bool = False) -> AbstractAsyncContextManager[Tx]:
        """A service-role transaction for a server job; `reason` is logged (at debug when
        `routine`: a scheduled job's every run)."""
        return self.transaction(Caller.service(reason), routine=routine)

    @asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        """The payloads NOTIFYd on `channel`, on a connection of its own (a NOTIFY is
        delivered only when its transaction commits); closed on the way out."""
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        try:
            await conn.execute(sql.SQL("listen {}").format(sql.Identifier(channel)))

            async def payloads() -> AsyncIterator[str]:
                async for notice in conn.notifies():
                    yield notice.payload

            yield payloads()
        finally:
            await conn.close()

    async def ping(self) -> bool:
        """True when a connection answers `select 1`."""
        async with self._connection() as conn:
            cur = await conn.execute("select 1")
            return (await cur.fetchone()) == (1,)
