"""Runner sockets in SQL: binding a socket to its session, pings, disconnects, the outbox.

A socket is a doorbell beside the claim path (DESIGN.md §4.2): `socket_id` is the
connection id and `socket_connected_at` says a socket is open. The outbox
(`runner_doorbells`) is written by a trigger on agent_actions in the transaction that
made an action claimable; these functions read it after commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from agentplane.db.rows import Tx, fetch_one
from agentplane.sessions.models import Session
from agentplane.sessions.service import requeue_session_actions

CHANNEL = "agentplane_runner_doorbell"


@dataclass(frozen=True)
class Doorbell:
    """One ring: an action of an agent became claimable."""

    id: int
    agent_id: UUID
    action_id: UUID

    @classmethod
    def from_notify(cls, payload: str) -> Doorbell:
        """The doorbell a NOTIFY on CHANNEL carries (the trigger's JSON)."""
        body: dict[str, Any] = json.loads(payload)
        return cls(int(body["id"]), UUID(body["agent_id"]), UUID(body["action_id"]))

    def message(self) -> dict[str, str]:
        """What the runner's socket receives."""
        return {"type": "doorbell", "action_id": str(self.action_id)}


# In the runner's own transaction: RLS shows it its own agent's sessions only. A live
# session only, so a socket cannot bring an offline session back.
BIND_SOCKET = """
update public.agent_sessions
   set socket_id = %s, socket_connected_at = now(), last_heartbeat = now()
 where id = %s and (status <> 'offline') is true
returning *
"""


async def bind_socket(tx: Tx, session_id: UUID, socket_id: str) -> Session | None:
    """Tie a live session of the runner's agent to this socket; None if there is none."""
    return await fetch_one(tx, Session, BIND_SOCKET, (socket_id, session_id))


# A ping is a heartbeat, found by the connection id (in AWS the ping names nothing else).
PING = """
update public.agent_sessions
   set last_heartbeat = now(), status = 'online'
 where socket_id = %s and socket_connected_at is not null and (status <> 'offline') is true
returning id
"""


async def ping(tx: Tx, socket_id: str) -> UUID | None:
    """A sign of life on the socket's session; its id, or None once it is offline."""
    cur = await tx.execute(PING, (socket_id,))
    row = await cur.fetchone()
    return None if row is None else UUID(str(row[0]))


# Only while the session still holds this socket: a runner that opened a new socket
# before closing the old one (its reconnect) keeps its session.
DISCONNECT = """
update public.agent_sessions
   set status = 'offline', ended_at = coalesce(ended_at, now()), socket_connected_at = null
 where socket_id = %s and socket_connected_at is not null
returning id
"""


async def disconnect(tx: Tx, socket_id: str) -> list[UUID]:
    """The socket closed: its session goes offline and what it held is requeued, as the
    reaper would; the sessions taken offline."""
    cur = await tx.execute(DISCONNECT, (socket_id,))
    ended = [UUID(str(r[0])) for r in await cur.fetchall()]
    await requeue_session_actions(tx, ended, skip_locked=False)
    return ended


MARK_DELIVERED = """
update public.runner_doorbells set delivered_at = now()
 where id = any(%s) and delivered_at is null
"""


async def mark_delivered(tx: Tx, ids: list[int]) -> None:
    """Record that these doorbells were rung."""
    if ids:
        await tx.execute(MARK_DELIVERED, (ids,))


# The AWS dispatcher's batch, oldest first; SKIP LOCKED so two never ring the same row.
DUE = """
select d.id, d.agent_id, d.action_id
  from public.runner_doorbells d
 where d.delivered_at is null
 order by d.id
 limit %s
   for update skip locked
"""

SOCKETS = """
select agent_id, socket_id
  from public.agent_sessions
 where agent_id = any(%s) and socket_connected_at is not null and status <> 'offline'
"""


async def due(tx: Tx, limit: int) -> list[Doorbell]:
    """Up to `limit` doorbells still to ring, locked for this transaction."""
    cur = await tx.execute(DUE, (limit,))
    return [Doorbell(int(r[0]), r[1], r[2]) for r in await cur.fetchall()]


async def open_sockets(tx: Tx, agent_ids: list[UUID]) -> dict[UUID, list[str]]:
    """The open sockets of these agents' live sessions, by agent."""
    cur = await tx.execute(SOCKETS, (agent_ids,))
    sockets: dict[UUID, list[str]] = {}
    for agent_id, socket_id in await cur.fetchall():
        sockets.setdefault(agent_id, []).append(socket_id)
    return sockets


PRUNE = """
delete from public.runner_doorbells
 where id in (
   select id from public.runner_doorbells
    where created_at < now() - make_interval(secs => %s)
    order by id
    limit %s
      for update skip locked)
"""


async def prune(tx: Tx, older_than_seconds: int, *, limit: int) -> int:
    """Drop up to `limit` doorbells older than the threshold (rung or not: the runners'
    slow poll has long found their actions); how many."""
    cur = await tx.execute(PRUNE, (older_than_seconds, limit))
    return cur.rowcount
