"""The caller's connections to model providers: its SQL, run in the caller's transaction."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from agentplane.connections.models import (
    Connection,
    ConnectionCreate,
    ConnectionStatus,
    Provider,
)
from agentplane.db.crud import Table
from agentplane.db.pagination import Page, PageRequest
from agentplane.db.rows import Tx

connections = Table("agent_connections", Connection, "connection")

# Only a change of presence writes (and moves updated_at).
MARK = "update public.agent_connections set status = %s where id = %s and status <> %s"


async def create(tx: Tx, body: ConnectionCreate) -> Connection:
    """A new connection owned by the caller (user_id defaults to auth.uid())."""
    return await connections.insert(tx, body.to_row())


async def find(tx: Tx, name: str) -> Connection | None:
    """The caller's oldest connection with this name, if any."""
    return await connections.find(tx, name=name)


async def page(tx: Tx, request: PageRequest, provider: Provider | None) -> Page[Connection]:
    """The caller's connections, optionally of one provider."""
    return await connections.page(tx, request, {"provider": provider})


async def get(tx: Tx, connection_id: UUID) -> Connection:
    """One of the caller's connections, or 404."""
    return await connections.require(tx, connection_id)


async def update(tx: Tx, connection_id: UUID, values: dict[str, Any]) -> Connection:
    """Change a connection (an explicit null base_url is refused by NOT NULL: 422)."""
    return await connections.update(tx, connection_id, values)


async def delete(tx: Tx, connection_id: UUID) -> None:
    """Delete a connection: conversations, tasks and reports that used it lose the link."""
    await connections.delete(tx, connection_id)


async def mark(tx: Tx, connection_id: UUID, status: ConnectionStatus) -> None:
    """Record how the last call through the connection went: `online` when the provider
    answered, `error` when it failed (RLS: the caller's own connections only)."""
    await tx.execute(MARK, (status, connection_id, status))
