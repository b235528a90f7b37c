"""The SQL every resource shares: insert, get, list a page, update, delete one row.

Each call runs in the caller's transaction, so RLS decides what it touches. Column names
come from pydantic models (never from a request) and are quoted as identifiers.

A write that touches no row is explained the same way everywhere: if the caller can see
the row, RLS refused the write (403); if not, the row does not exist for them (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from agentplane.db.pagination import Page, PageRequest, fetch_page
from agentplane.db.rows import Tx, fetch_one, table
from agentplane.errors import ForbiddenError, NotFoundError

T = TypeVar("T", bound=BaseModel)


def jsonb_params(values: dict[str, Any]) -> dict[str, Any]:
    """Column values as query parameters: JSON objects go in as jsonb (lists stay lists,
    since list columns here are arrays such as `allowed_tools`)."""
    return {c: Jsonb(v) if isinstance(v, dict) else v for c, v in values.items()}


@dataclass(frozen=True)
class Table(Generic[T]):
    """One table of `public`, read into `row` models."""

    name: str
    row: type[T]
    noun: str
    key: str = "id"

    @property
    def _ident(self) -> sql.Composed:
        return table(self.name)

    async def _one(self, tx: Tx, query: sql.Composed, args: Any) -> T | None:
        return await fetch_one(tx, self.row, query, args)

    async def insert(self, tx: Tx, values: dict[str, Any]) -> T:
        """Insert one row and return it."""
        query = sql.SQL("insert into {} ({}) values ({}) returning *").format(
            self._ident,
            sql.SQL(", ").join(sql.Identifier(c) for c in values),
            sql.SQL(", ").join(sql.Placeholder() for _ in values),
        )
        row = await self._one(tx, query, list(jsonb_params(values).values()))
        assert row is not None
        return row

    async def get(self, tx: Tx, row_id: UUID) -> T | None:
        """The row, if the caller can see it."""
        query = sql.SQL("select * from {} where {} = %s").format(
            self._ident, sql.Identifier(self.key)
        )
        return await self._one(tx, query, [row_id])

    async def find(self, tx: Tx, **equal: Any) -> T | None:
        """The oldest visible row whose columns equal the given values, if any."""
        query = sql.SQL("select * from {} where {} order by created_at, {} limit 1").format(
            self._ident,
            sql.SQL(" and ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in equal),
            sql.Identifier(self.key),
        )
        return await self._one(tx, query, list(equal.values()))

    async def require(self, tx: Tx, row_id: UUID) -> T:
        """The row, or 404 if it does not exist for the caller."""
        row = await self.get(tx, row_id)
        if row is None:
            raise NotFoundError(f"{self.noun} {row_id} not found")
        return row

    async def _explain_no_row(self, tx: Tx, row_id: UUID) -> None:
        if await self.get(tx, row_id) is not None:
            raise ForbiddenError(f"your role does not allow changing {self.noun} {row_id}")
        raise NotFoundError(f"{self.noun} {row_id} not found")

    async def update(self, tx: Tx, row_id: UUID, values: dict[str, Any]) -> T:
        """Set `values` on the row and return it (no values: return it unchanged)."""
        if not values:
            return await self.require(tx, row_id)
        query = sql.SQL("update {} set {} where {} = %s returning *").format(
            self._ident,
            sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c in values
            ),
            sql.Identifier(self.key),
        )
        row = await self._one(tx, query, [*jsonb_params(values).values(), row_id])
        if row is None:
            await self._explain_no_row(tx, row_id)
        assert row is not None
        return row

    async def delete(self, tx: Tx, row_id: UUID) -> None:
        """Delete the row, or say why not (403/404)."""
        query = sql.SQL("delete from {} where {} = %s").format(
            self._ident, sql.Identifier(self.key)
        )
        cur = await tx.execute(query, [row_id])
        if cur.rowcount == 0:
            await self._explain_no_row(tx, row_id)

    async def page(
        self,
        tx: Tx,
        page: PageRequest,
        filters: dict[str, Any] | None = None,
    ) -> Page[T]:
        """A page of visible rows, with equality filters on the given columns."""
        given = {c: v for c, v in (filters or {}).items() if v is not None}
        return await fetch_page(
            tx,
            self.row,
            sql.SQL("select * from {}").format(self._ident),
            page,
            [sql.SQL("{} = %s").format(sql.Identifier(c)) for c in given],
            list(given.values()),
        )


async def require_visible(tx: Tx, name: str, row_id: UUID, noun: str) -> None:
    """404 unless the caller can see row `row_id` of `public.<name>` (a parent row)."""
    query = sql.SQL("select 1 from {} where id = %s").format(table(name))
    cur = await tx.execute(query, [row_id])
    if await cur.fetchone() is None:
        raise NotFoundError(f"{noun} {row_id} not found")


async def require_references(tx: Tx, *references: tuple[str, UUID | None, str]) -> None:
    """404 naming the first referenced row the caller cannot see.

    Each reference is `(table, id or None, noun)`; a None id is no reference and is
    skipped. Foreign keys are checked without RLS, so this is what keeps a new reference
    from pointing at another tenant's row (with the triggers of
    tests/integration/test_cross_tenant_references.py behind it).
    """
    for name, row_id, noun in references:
        if row_id is not None:
            await require_visible(tx, name, row_id, noun)
