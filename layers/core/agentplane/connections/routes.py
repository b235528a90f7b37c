"""/connections: the caller's own connections to model providers."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response
from psycopg import errors as pg

from agentplane.connections.models import (
    Connection,
    ConnectionCreate,
    ConnectionUpdate,
    Provider,
)
from agentplane.db.crud import Table
from agentplane.db.pagination import Page
from agentplane.errors import ValidationProblemError
from agentplane.http.deps import UserTx
from agentplane.http.pagination import PageDep

router = APIRouter(prefix="/connections", tags=["connections"])
connections = Table("agent_connections", Connection, "connection")

CUSTOM_NEEDS_BASE_URL = "agent_connections_custom_needs_base_url"


@router.post("", status_code=201, response_model=Connection)
async def create_connection(body: ConnectionCreate, tx: UserTx) -> Connection:
    """Create a connection owned by the caller."""
    return await connections.insert(tx, body.model_dump())


@router.get("", response_model=Page[Connection])
async def list_connections(
    tx: UserTx, page: PageDep, provider: Provider | None = None
) -> Page[Connection]:
    """The caller's connections, optionally of one provider."""
    return await connections.page(tx, page, {"provider": provider})


@router.get("/{connection_id}", response_model=Connection)
async def get_connection(connection_id: UUID, tx: UserTx) -> Connection:
    """One connection."""
    return await connections.require(tx, connection_id)


@router.patch("/{connection_id}", response_model=Connection)
async def update_connection(connection_id: UUID, body: ConnectionUpdate, tx: UserTx) -> Connection:
    """Change a connection; a custom one keeps a base_url (422 otherwise)."""
    try:
        return await connections.update(tx, connection_id, body.model_dump(exclude_unset=True))
    except pg.CheckViolation as exc:
        # Only the row knows whether the result is custom without a URL (e.g. a PATCH of
        # provider alone), so the table's check decides and we name the field.
        if exc.diag.constraint_name != CUSTOM_NEEDS_BASE_URL:
            raise
        raise ValidationProblemError(
            [
                {
                    "field": "base_url",
                    "in": "body",
                    "rule": "required_for_custom",
                    "message": "base_url is required when provider is 'custom'",
                }
            ]
        ) from exc


@router.delete("/{connection_id}", status_code=204, response_class=Response)
async def delete_connection(connection_id: UUID, tx: UserTx) -> Response:
    """Delete a connection: rows that used it lose the link; its mirror reports go too."""
    await connections.delete(tx, connection_id)
    return Response(status_code=204)
