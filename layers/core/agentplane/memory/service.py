"""The caller's memory graph: its SQL and rules, in the caller's transaction."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from agentplane.db.crud import Table, require_references
from agentplane.db.pagination import Page, PageRequest, decode_cursor, fetch_page
from agentplane.db.rows import Tx, fetch_all, fetch_one, fetch_value
from agentplane.errors import NotFoundError, ValidationProblemError
from agentplane.memory.decay import FADE_THRESHOLD, STABILITY_CAP_SECONDS, STABILITY_GROWTH
from agentplane.memory.models import MemoryNode, MemoryNodeCreate, MemoryNodeRow

if TYPE_CHECKING:
    from agentplane.db.database import Database

memory_nodes = Table("memory_nodes", MemoryNodeRow, "memory node")

Order = Literal["created_at", "strength"]

# The curve's SQL twin of memory/decay.py, as of a time given as %(at)s.
DECAYED = "private.decayed_strength(strength, last_used_at, stability_seconds, %(at)s)"
SELECT = f"select *, {DECAYED} as decayed_strength from public.memory_nodes"
GET = SELECT + " where id = %(id)s"
# A use restarts the curve and makes it flatter (memory/decay.py); it is not an edit,
# so the updated_at trigger (which names the edited columns) leaves updated_at alone.
REINFORCE = (
    "last_used_at = %(at)s,"
    " stability_seconds = least(%(cap)s, stability_seconds * %(growth)s),"
    " reinforcements = reinforcements + 1"
)
REINFORCEMENT = {"cap": STABILITY_CAP_SECONDS, "growth": STABILITY_GROWTH}


def _references(tx: Tx, parent_id: UUID | None, connection_id: UUID | None) -> Awaitable[None]:
    """404 naming a parent node or connection the caller cannot see."""
    return require_references(
        tx,
        ("memory_nodes", parent_id, "parent memory node"),
        ("agent_connections", connection_id, "connection"),
    )


# Reading a node is a use of it, and brings an archived node back.
RECALL = f"""
update public.memory_nodes set {REINFORCE}, archived_at = null
 where id = %(id)s
returning *, {DECAYED} as decayed_strength
"""

# Re-parenting takes a transaction lock per user, so two concurrent moves cannot each
# pass the cycle check and close a loop (tests/integration/api/test_memory_nodes.py).
LOCK_REPARENTING = (
    "select pg_advisory_xact_lock(hashtext('agentplane.memory_nodes.parent_id'),"
    " hashtext(auth.uid()::text))"
)
# Is `node` among the ancestors of `parent` (or `parent` itself)? UNION, not UNION ALL,
# so the walk ends even on a loop made before this check existed.
IS_ANCESTOR = """
with recursive ancestors (id, parent_id) as (
  select id, parent_id from public.memory_nodes where id = %(parent)s
  union
  select m.id, m.parent_id
    from public.memory_nodes m join ancestors a on m.id = a.parent_id
)
select exists (select 1 from ancestors where id = %(node)s)
"""


async def _refuse_cycle(tx: Tx, node_id: UUID, parent_id: UUID) -> None:
    """422 if `parent_id` is the node itself or one of its descendants."""
    await tx.execute(LOCK_REPARENTING)
    if await fetch_value(tx, IS_ANCESTOR, {"parent": parent_id, "node": node_id}):
        raise ValidationProblemError(
            [
                {
                    "field": "parent_id",
                    "in": "body",
                    "rule": "no_cycle",
                    "message": "a node cannot be its own ancestor",
                }
            ]
        )


async def _get(tx: Tx, node_id: UUID, at: datetime | None = None) -> MemoryNode:
    row = await fetch_one(tx, MemoryNode, GET, {"id": node_id, "at": at or await _now(tx)})
    if row is None:
        raise NotFoundError(f"memory node {node_id} not found")
    return row


async def _now(tx: Tx) -> datetime:
    """The transaction's clock: the `at` of a read nobody gave one."""
    now: datetime = await fetch_value(tx, "select now()")
    return now


async def create(tx: Tx, body: MemoryNodeCreate) -> MemoryNode:
    """Remember something, as the caller."""
    await _references(tx, body.parent_id, body.connection_id)
    row = await memory_nodes.insert(tx, body.model_dump())
    return await _get(tx, row.id)


def _bad_cursor() -> ValidationProblemError:
    return ValidationProblemError(
        [
            {
                "field": "cursor",
                "in": "query",
                "rule": "cursor",
                "message": "not a cursor this API returned",
            }
        ]
    )


def encode_strength_cursor(at: datetime, decayed: float, node_id: UUID) -> str:
    """The cursor after a node of a list by decayed strength: the list's clock, the
    node's decayed strength at it (exact: a JSON float round-trips) and its id."""
    raw = json.dumps([at.isoformat(), decayed, str(node_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_strength_cursor(cursor: str) -> tuple[datetime, float, UUID]:
    """(at, decayed strength, id) inside a strength cursor; 422 naming `cursor` if not."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, decayed, node_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(decayed, int | float) or isinstance(decayed, bool):
            raise TypeError("decayed strength is not a number")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("naive time")
        return moment, float(decayed), UUID(node_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise _bad_cursor() from exc


# Strongest first as of one `at`, pinned by the first page's cursor, so the pages of one
# listing rank by the same clock. Not indexable (the rank moves with the clock, at a rate
# per node), so each page sorts the caller's live nodes: one user's memory, not the table.
BY_STRENGTH = f"""
select * from ({SELECT} where {{filters}}) n
 where %(after)s::double precision is null
    or decayed_strength < %(after)s
    or (decayed_strength = %(after)s and id > %(after_id)s)
 order by decayed_strength desc, id
 limit %(limit)s
"""


async def _page_by_strength(
    tx: Tx,
    limit: int,
    cursor: str | None,
    filters: list[str],
    args: dict[str, Any],
    at: datetime | None,
) -> Page[MemoryNode]:
    after: float | None = None
    after_id: UUID | None = None
    if cursor:
        at, after, after_id = decode_strength_cursor(cursor)
    elif at is None:
        at = await _now(tx)
    query = BY_STRENGTH.format(filters=" and ".join(filters))
    params = {**args, "at": at, "after": after, "after_id": after_id, "limit": limit + 1}
    rows = await fetch_all(tx, MemoryNode, query, params)
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_strength_cursor(at, last.decayed_strength, last.id)
    return Page[MemoryNode](items=items, next_cursor=next_cursor)


async def page(
    tx: Tx,
    *,
    limit: int,
    cursor: str | None,
    filters: dict[str, Any],
    order: Order = "created_at",
    archived: bool = False,
    at: datetime | None = None,
) -> Page[MemoryNode]:
    """The caller's memory nodes, live ones or (`archived`) archived ones, with equality
    filters, oldest first or strongest (decayed at `at`, default now) first; reading a
    list is no recall."""
    given = {c: v for c, v in filters.items() if v is not None}
    archived_filter = "archived_at is not null" if archived else "archived_at is null"
    if order == "strength":
        conditions = [archived_filter, *(f"{c} = %({c})s" for c in given)]
        return await _page_by_strength(tx, limit, cursor, conditions, given, at)
    request = PageRequest(limit=limit, after=decode_cursor(cursor) if cursor else None)
    select = SELECT.replace("%(at)s", "%s")
    conditions = [archived_filter, *(f"{c} = %s" for c in given)]
    args = [at or await _now(tx), *given.values()]
    return await fetch_page(tx, MemoryNode, select, request, conditions, args)


async def recall(tx: Tx, node_id: UUID) -> MemoryNode:
    """One memory node, used now: reinforced and, if archived, brought back (one UPDATE)."""
    params = {"id": node_id, "at": await _now(tx), **REINFORCEMENT}
    row = await fetch_one(tx, MemoryNode, RECALL, params)
    if row is None:
        # User-scoped: the caller may update every row they can see, so no row is 404.
        raise NotFoundError(f"memory node {node_id} not found")
    return row


async def update(tx: Tx, node_id: UUID, values: dict[str, Any]) -> MemoryNode:
    """Change a memory node; a new parent must not be the node or one of its descendants."""
    parent_id = values.get("parent_id")
    await _references(tx, parent_id, values.get("connection_id"))
    if parent_id is not None:
        await _refuse_cycle(tx, node_id, parent_id)
    row = await memory_nodes.update(tx, node_id, values)
    return await _get(tx, row.id)


async def delete(tx: Tx, node_id: UUID) -> None:
    """Forget a memory node; its children stay, without a parent."""
    await memory_nodes.delete(tx, node_id)


# The caller's live nodes matching the text, ranked by decayed strength x ts_rank, then
# locked in id order (as every batch here locks) and reinforced, all in one statement.
SEARCH_TEXT = "to_tsvector('simple'::regconfig, m.label || ' ' || m.content)"
RECALL_FOR_TURN = f"""
with any_word (query) as (
  -- plainto_tsquery ANDs the words; a memory matching any of them is worth ranking.
  -- Its text quotes every lexeme, so ' & ' only ever joins two of them.
  select replace(plainto_tsquery('simple'::regconfig, %(text)s)::text, ' & ', ' | ')::tsquery
), picked as (
  select m.id,
         private.decayed_strength(m.strength, m.last_used_at, m.stability_seconds, %(at)s)
           * ts_rank({SEARCH_TEXT}, q.query) as score
    from public.memory_nodes m, any_word q (query)
   where m.user_id = %(user_id)s and m.archived_at is null and {SEARCH_TEXT} @@ q.query
   order by score desc, m.id
   limit %(limit)s
), locked as (
  select m.id from public.memory_nodes m join picked using (id) order by m.id for update
), used as (
  update public.memory_nodes m set {REINFORCE}
    from locked join picked using (id)
   where m.id = locked.id
  returning m.*, picked.score
)
select *, {DECAYED} as decayed_strength from used order by score desc, id
"""


async def recall_for_turn(
    tx: Tx, user_id: UUID, text: str, *, limit: int = 5, at: datetime | None = None
) -> list[MemoryNode]:
    """The `limit` live nodes of `user_id` most worth recalling for `text` (decayed
    strength x full-text relevance), reinforced as used at `at` (default: now)."""
    params = {
        "user_id": user_id,
        "text": text,
        "limit": limit,
        "at": at or await _now(tx),
        **REINFORCEMENT,
    }
    return await fetch_all(tx, MemoryNode, RECALL_FOR_TURN, params)


def remembered_note(nodes: list[MemoryNode]) -> str:
    """What a turn's system message says it remembers."""
    lines = [f"- {n.label}: {n.content}" if n.content else f"- {n.label}" for n in nodes]
    return "Things you remember:\n" + "\n".join(lines)


# The nightly step: live nodes whose fades_at has passed, through the partial index on
# fades_at, re-checked against the curve (a lower threshold than fades_at's is allowed),
# a batch at a time; SKIP LOCKED so a turn reinforcing a node is never waited for.
ARCHIVE_FADED = f"""
with faded as (
  select id from public.memory_nodes
   where archived_at is null and fades_at <= %(at)s and {DECAYED} < %(threshold)s
   order by fades_at
   limit %(limit)s
   for update skip locked
)
update public.memory_nodes m set archived_at = %(at)s from faded where m.id = faded.id
"""


async def archive_faded(
    db: Database,
    *,
    threshold: float = FADE_THRESHOLD,
    at: datetime | None = None,
    limit: int = 1000,
) -> int:
    """Archive (never delete) every live node whose decayed strength at `at` (default:
    each batch's now) is below `threshold`, `limit` per service-role transaction; the
    number archived. Reads only the nodes that crossed, through memory_nodes_fades_at_idx."""
    if not 0 < threshold <= FADE_THRESHOLD:
        # fades_at is computed for FADE_THRESHOLD: a higher threshold's crossings lie
        # before it, where the index does not look.
        raise ValueError(f"threshold must be in (0, {FADE_THRESHOLD}], got {threshold}")
    total = 0
    while True:
        async with db.service("archive faded memory nodes", routine=True) as tx:
            params = {"threshold": threshold, "limit": limit, "at": at or await _now(tx)}
            cur = await tx.execute(ARCHIVE_FADED, params)
            archived = cur.rowcount
        total += archived
        if archived < limit:
            return total
