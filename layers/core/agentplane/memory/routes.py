"""/memory-nodes: the caller's memory graph; reading a node counts as recalling it."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response
from psycopg.rows import class_row

from agentplane.db.crud import Table, require_visible
from agentplane.db.pagination import Page
from agentplane.errors import NotFoundError, ValidationProblemError
from agentplane.http.deps import UserTx
from agentplane.http.pagination import PageDep
from agentplane.memory.models import Kind, MemoryNode, MemoryNodeCreate, MemoryNodeUpdate

router = APIRouter(prefix="/memory-nodes", tags=["memory"])
memory_nodes = Table("memory_nodes", MemoryNode, "memory node")

RECALL = "update public.memory_nodes set last_used_at = now() where id = %s returning *"

# Re-parenting takes a transaction lock per user (key: this statement's purpose and the
# caller), so two concurrent moves cannot each pass the cycle check and close a loop.
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


async def _require_references(
    tx: UserTx, parent_id: UUID | None, connection_id: UUID | None
) -> None:
    """404 naming a parent node or connection the caller cannot see."""
    if parent_id is not None:
        await require_visible(tx, "memory_nodes", parent_id, "parent memory node")
    if connection_id is not None:
        await require_visible(tx, "agent_connections", connection_id, "connection")


async def _refuse_cycle(tx: UserTx, node_id: UUID, parent_id: UUID) -> None:
    """422 if `parent_id` is the node itself or one of its descendants."""
    await tx.execute(LOCK_REPARENTING)
    cur = await tx.execute(IS_ANCESTOR, {"parent": parent_id, "node": node_id})
    row = await cur.fetchone()
    if row is not None and row[0]:
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


@router.post("", status_code=201, response_model=MemoryNode)
async def create_memory_node(body: MemoryNodeCreate, tx: UserTx) -> MemoryNode:
    """Remember something."""
    await _require_references(tx, body.parent_id, body.connection_id)
    return await memory_nodes.insert(tx, body.model_dump())


@router.get("", response_model=Page[MemoryNode])
async def list_memory_nodes(
    tx: UserTx,
    page: PageDep,
    kind: Kind | None = None,
    connection_id: UUID | None = None,
    parent_id: UUID | None = None,
) -> Page[MemoryNode]:
    """The caller's memory nodes, optionally by kind, connection or parent (no recall)."""
    return await memory_nodes.page(
        tx, page, {"kind": kind, "connection_id": connection_id, "parent_id": parent_id}
    )


@router.get("/{node_id}", response_model=MemoryNode)
async def recall_memory_node(node_id: UUID, tx: UserTx) -> MemoryNode:
    """One memory node, marked as used now (one UPDATE ... RETURNING)."""
    async with tx.cursor(row_factory=class_row(MemoryNode)) as cur:
        await cur.execute(RECALL, [node_id])
        row = await cur.fetchone()
    if row is None:
        # User-scoped: the caller may update every row they can see, so no row is 404.
        raise NotFoundError(f"memory node {node_id} not found")
    return row


@router.patch("/{node_id}", response_model=MemoryNode)
async def update_memory_node(node_id: UUID, body: MemoryNodeUpdate, tx: UserTx) -> MemoryNode:
    """Change a memory node; a new parent must not be the node or one of its descendants."""
    await _require_references(tx, body.parent_id, body.connection_id)
    if body.parent_id is not None:
        await _refuse_cycle(tx, node_id, body.parent_id)
    return await memory_nodes.update(tx, node_id, body.model_dump(exclude_unset=True))


@router.delete("/{node_id}", status_code=204, response_class=Response)
async def delete_memory_node(node_id: UUID, tx: UserTx) -> Response:
    """Forget a memory node; its children stay, without a parent."""
    await memory_nodes.delete(tx, node_id)
    return Response(status_code=204)
