"""/connections: the caller's own connections to model providers."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from agentplane.connections import service
from agentplane.connections.models import (
    Connection,
    ConnectionCreate,
    ConnectionUpdate,
    Provider,
)
from agentplane.db.pagination import Page
from agentplane.http.deps import UserTx
from agentplane.http.pagination import PageDep

router = APIRouter(prefix="/connections", tags=["connections"])


@router.post("", status_code=201, response_model=Connection)
async def create_connection(body: ConnectionCreate, tx: UserTx) -> Connection:
    """Create a connection owned by the caller; a named provider's base_url defaults to its
    public endpoint, a custom one must give it."""
    return await service.create(tx, body)


@router.get("", response_model=Page[Connection])
async def list_connections(
    tx: UserTx, page: PageDep, provider: Provider | None = None
) -> Page[Connection]:
    """The caller's connections, optionally of one provider."""
    return await service.page(tx, page, provider)


@router.get("/{connection_id}", response_model=Connection)
async def get_connection(connection_id: UUID, tx: UserTx) -> Connection:
    """One connection."""
    return await service.get(tx, connection_id)


@router.patch("/{connection_id}", response_model=Connection)
async def update_connection(connection_id: UUID, body: ConnectionUpdate, tx: UserTx) -> Connection:
    """Change a connection; its base_url can change but not be removed (422)."""
    return await service.update(tx, connection_id, body.model_dump(exclude_unset=True))


@router.delete("/{connection_id}", status_code=204, response_class=Response)
async def delete_connection(connection_id: UUID, tx: UserTx) -> Response:
    """Delete a connection: rows that used it lose the link, its mirror reports included."""
    await service.delete(tx, connection_id)
    return Response(status_code=204)
