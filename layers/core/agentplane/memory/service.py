"""The caller's memory graph: its SQL and rules, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any
from uuid import UUID

from agentplane.db.crud import Table, require_references
from agentplane.db.pagination import Page, PageRequest
from agentplane.db.rows import Tx, fetch_one, fetch_value
from agentplane.errors import NotFoundError, ValidationProblemError
from agentplane.memory.models import MemoryNode, MemoryNodeCreate

memory_nodes = Table("memory_nodes", MemoryNode, "memory node")


def _references(tx: Tx, parent_id: UUID | None, connection_id: UUID | None) -> Awaitable[None]:
    """404 naming a parent node or connection the caller cannot see."""
    return require_references(
        tx,
        ("memory_nodes", parent_id, "parent memory node"),
        ("agent_connections", connection_id, "connection"),
    )


RECALL = "update public.memory_nodes set last_used_at = now() where id = %s returning *"

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


async def create(tx: Tx, body: MemoryNodeCreate) -> MemoryNode:
    """Remember something, as the caller."""
    await _references(tx, body.parent_id, body.connection_id)
    return await memory_nodes.insert(tx, body.model_dump())


async def page(tx: Tx, request: PageRequest, filters: dict[str, Any]) -> Page[MemoryNode]:
    """The caller's memory nodes with equality filters (reading a list is no recall)."""
    return await memory_nodes.page(tx, request, filters)


async def recall(tx: Tx, node_id: UUID) -> MemoryNode:
    """One memory node, marked as used now (one UPDATE ... RETURNING)."""
    row = await fetch_one(tx, MemoryNode, RECALL, [node_id])
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
    return await memory_nodes.update(tx, node_id, values)


async def delete(tx: Tx, node_id: UUID) -> None:
    """Forget a memory node; its children stay, without a parent."""
    await memory_nodes.delete(tx, node_id)
