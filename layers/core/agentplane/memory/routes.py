"""/memory-nodes: the caller's memory graph; reading a node counts as using it."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from agentplane.db.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from agentplane.http.deps import UserTx
from agentplane.memory import service
from agentplane.memory.models import MemoryNode, MemoryNodeCreate, MemoryNodeUpdate

router = APIRouter(prefix="/memory-nodes", tags=["memory"])


@router.post("", status_code=201, response_model=MemoryNode)
async def create_memory_node(body: MemoryNodeCreate, tx: UserTx) -> MemoryNode:
    """Remember something."""
    return await service.create(tx, body)


@router.get("", response_model=Page[MemoryNode])
async def list_memory_nodes(
    tx: UserTx,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
    category: Annotated[str | None, Query(max_length=200)] = None,
    connection_id: UUID | None = None,
    parent_id: UUID | None = None,
    order: Annotated[
        service.Order,
        Query(description="created_at: oldest first; strength: strongest decayed first"),
    ] = "created_at",
    archived: Annotated[
        bool, Query(description="true: only the archived (faded) nodes; false: only live ones")
    ] = False,
) -> Page[MemoryNode]:
    """The caller's live (or archived) memory nodes, optionally by category, connection or
    parent, oldest or strongest first (listing is no recall)."""
    filters = {"category": category, "connection_id": connection_id, "parent_id": parent_id}
    return await service.page(
        tx, limit=limit, cursor=cursor, filters=filters, order=order, archived=archived
    )


@router.get("/{node_id}", response_model=MemoryNode)
async def recall_memory_node(node_id: UUID, tx: UserTx) -> MemoryNode:
    """One memory node, used now: reinforced, and brought back if archived."""
    return await service.recall(tx, node_id)


@router.patch("/{node_id}", response_model=MemoryNode)
async def update_memory_node(node_id: UUID, body: MemoryNodeUpdate, tx: UserTx) -> MemoryNode:
    """Change a memory node; a new parent must not be the node or one of its descendants."""
    return await service.update(tx, node_id, body.model_dump(exclude_unset=True))


@router.delete("/{node_id}", status_code=204, response_class=Response)
async def delete_memory_node(node_id: UUID, tx: UserTx) -> Response:
    """Forget a memory node; its children stay, without a parent."""
    await service.delete(tx, node_id)
    return Response(status_code=204)
