"""One way to read rows: a query, its parameters, and the model each row becomes.

Every domain's service runs its SQL through these, inside the caller's transaction
(`Database.transaction`), so RLS decides which rows come back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

from psycopg import AsyncConnection, sql
from psycopg.rows import class_row

# The caller's transaction: a pooled connection inside `Database.transaction(caller)`.
Tx: TypeAlias = AsyncConnection[Any]
# A statement: constant text, or composed with psycopg.sql where an identifier varies.
Query: TypeAlias = str | bytes | sql.SQL | sql.Composed
Params: TypeAlias = Sequence[Any] | Mapping[str, Any] | None

R = TypeVar("R")


async def fetch_one(tx: Tx, row: type[R], query: Query, params: Params = None) -> R | None:
    """The first row of `query` as a `row`, or None when it returns none."""
    async with tx.cursor(row_factory=class_row(row)) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def fetch_all(tx: Tx, row: type[R], query: Query, params: Params = None) -> list[R]:
    """Every row of `query`, each as a `row`."""
    async with tx.cursor(row_factory=class_row(row)) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def fetch_value(tx: Tx, query: Query, params: Params = None) -> Any:
    """The first column of the first row of `query` (None when it returns no row)."""
    cur = await tx.execute(query, params)
    first = await cur.fetchone()
    return None if first is None else first[0]


def table(name: str) -> sql.Composed:
    """`public.<name>` as a quoted identifier."""
    return sql.SQL("public.{}").format(sql.Identifier(name))
