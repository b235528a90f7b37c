"""One transaction per request, carrying the caller's role and claims (DESIGN.md §2).

Every transaction starts with

    select set_config('role', <role>, true), set_config('request.jwt.claims', <json>, true)

which is `SET LOCAL ROLE` plus the claims, in one round trip. The application connects
as `authenticator` (NOINHERIT): outside such a transaction it can read nothing, so a
route that forgot to say who is calling fails closed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from uuid import UUID

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from agentplane.auth.caller import Caller
from agentplane.db.errors import translate
from agentplane.http.problems import ServiceUnavailableError
from agentplane.observability import logger

# How many first-seen users to remember per process before starting over.
KNOWN_USERS_LIMIT = 10_000


class Database:
    """A lazily opened async connection pool and the transactions built on it."""

    def __init__(
        self,
        conninfo: str,
        *,
        min_size: int = 0,
        max_size: int = 10,
        connect_timeout: float = 5.0,
    ) -> None:
        self._pool = AsyncConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            open=False,
            timeout=connect_timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(connect_timeout))},
        )
        self._open_lock = asyncio.Lock()
        self._opened = False
        self._known_users: set[UUID] = set()

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
    async def _connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        if not self._opened:
            await self.open()
        try:
            conn = await self._pool.getconn()
        except PoolTimeout as exc:
            raise ServiceUnavailableError("the database is not reachable") from exc
        except psycopg.OperationalError as exc:
            raise ServiceUnavailableError("the database connection failed") from exc
        try:
            yield conn
        finally:
            await self._pool.putconn(conn)

    @asynccontextmanager
    async def transaction(self, caller: Caller) -> AsyncIterator[AsyncConnection[Any]]:
        """A transaction as `caller`: committed on success, rolled back on any error."""
        if caller.role == "service_role":
            logger.info("service-role transaction", extra={"reason": caller.reason})
        user_id = caller.user_id
        try:
            async with self._connection() as conn, conn.transaction():
                await conn.execute(
                    "select set_config('role', %s, true),"
                    " set_config('request.jwt.claims', %s, true)",
                    (caller.role, json.dumps(caller.claims, separators=(",", ":"))),
                )
                if user_id is not None and user_id not in self._known_users:
                    await conn.execute("select private.ensure_user()")
                yield conn
        except psycopg.Error as exc:
            # The one place database errors become problems: by SQLSTATE, from exc.
            problem = translate(exc)
            if problem is None:
                raise
            raise problem from exc
        if user_id is not None and user_id not in self._known_users:
            if len(self._known_users) >= KNOWN_USERS_LIMIT:
                self._known_users.clear()
            self._known_users.add(user_id)

    def service(self, reason: str) -> AbstractAsyncContextManager[AsyncConnection[Any]]:
        """A service-role transaction for a server job; `reason` is logged."""
        return self.transaction(Caller.service(reason))

    async def ping(self) -> bool:
        """True when a connection answers `select 1`."""
        async with self._connection() as conn:
            cur = await conn.execute("select 1")
            return (await cur.fetchone()) == (1,)
