"""Cursor pagination: a stable `(created_at, id)` order and an opaque cursor.

Lists take `?limit=` (1 to 200, default 50) and `?cursor=`, and return
`{"items": [...], "next_cursor": "..." | null}`. The cursor is the url-safe base64 of the
last item's `[created_at, id]`; it is opaque to clients and checked on the way in.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from psycopg import sql
from pydantic import BaseModel

from agentplane.db.rows import Tx, fetch_all
from agentplane.errors import ValidationProblemError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

T = TypeVar("T", bound=BaseModel)


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class PageRequest:
    """Validated paging parameters: how many, and after which (created_at, id)."""

    limit: int
    after: tuple[datetime, UUID] | None
    # Newest first (`?order=newest` where a list offers it): the cursor then resumes
    # before its row.
    newest_first: bool = False


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    """The opaque cursor that resumes after this row."""
    raw = json.dumps([created_at.isoformat(), str(row_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The (created_at, id) inside a cursor; 422 naming `cursor` if it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created_at), UUID(row_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise ValidationProblemError(
            [
                {
                    "field": "cursor",
                    "in": "query",
                    "rule": "cursor",
                    "message": "not a cursor this API returned",
                }
            ]
        ) from exc


def _sql(text: str | sql.Composable) -> sql.Composable:
    return sql.SQL(text) if isinstance(text, str) else text


async def fetch_page(
    tx: Tx,
    row_type: type[T],
    select: str | sql.Composable,
    page: PageRequest,
    filters: Sequence[str | sql.Composable] = (),
    args: Sequence[Any] = (),
    *,
    alias: str = "",
    key: str = "id",
) -> Page[T]:
    """Run `select` (a constant `select ... from ...`) with filters, in page order.

    `filters` are constant SQL conditions with `%s` placeholders for `args`; the page's
    keyset condition and order (`created_at`, then the unique `key` column) are added
    here, so every list orders the same way.
    """
    created_at = sql.Identifier(*([alias] if alias else []), "created_at")
    unique = sql.Identifier(*([alias] if alias else []), key)
    conditions = [_sql(f) for f in filters]
    params = list(args)
    direction = sql.SQL("desc" if page.newest_first else "asc")
    if page.after is not None:
        compare = sql.SQL("<" if page.newest_first else ">")
        conditions.append(sql.SQL("({}, {}) {} (%s, %s)").format(created_at, unique, compare))
        params.extend(page.after)
    query = sql.SQL("{} where {} order by {} {}, {} {} limit %s").format(
        _sql(select),
        sql.SQL(" and ").join(conditions) if conditions else sql.SQL("true"),
        created_at,
        direction,
        unique,
        direction,
    )
    params.append(page.limit + 1)
    rows = await fetch_all(tx, row_type, query, params)
    more = len(rows) > page.limit
    items = rows[: page.limit]
    next_cursor = None
    if more:
        last = items[-1]
        next_cursor = encode_cursor(getattr(last, "created_at"), getattr(last, key))  # noqa: B009
    return Page[row_type](items=items, next_cursor=next_cursor)  # type: ignore[valid-type]
