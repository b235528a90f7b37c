"""`/runner/ws` in `agentplane dev`: the process's runner sockets and their listener.

The same protocol as the API Gateway WebSocket API in AWS (sessions/apigw.py): the
upgrade carries the runner token and `?session_id=`; a live session of the token's agent
is tied to the socket (`socket_id`); `{"type": "ping"}` is a heartbeat answered by
`{"type": "pong"}`; `{"type": "doorbell", "action_id"}` comes after an action of the
agent became claimable; closing the socket takes the session offline at once and
requeues what it held. One LISTEN connection per process rings its own sockets, so a
second dev process over the same database rings its runners too. The endpoint is
`socket_router` in sessions/routes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from uuid import UUID

from agentplane.auth.caller import Caller
from agentplane.auth.service import authenticate_runner
from agentplane.db.database import Database
from agentplane.observability import logger
from agentplane.sessions import doorbells
from agentplane.sessions.doorbells import Doorbell

# Close codes (before accept, uvicorn answers the upgrade with 403).
REFUSED = 4403
UNAVAILABLE = 1013
_QUEUE_SIZE = 256
_RELISTEN_DELAY_S = 1.0


class LocalSockets:
    """The process's runner sockets by agent, and the listener that rings them."""

    def __init__(self, database: Database, *, accept: bool = True) -> None:
        self.database = database
        # A test hook (AGENTPLANE_DEV_RUNNER_SOCKETS=off): drop every socket at once.
        self.accept = accept
        self._by_agent: dict[UUID, dict[str, asyncio.Queue[dict[str, Any]]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def add(self, agent_id: UUID, socket_id: str) -> asyncio.Queue[dict[str, Any]]:
        """Register a socket of `agent_id`; the queue its messages go through."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUE_SIZE)
        self._by_agent.setdefault(agent_id, {})[socket_id] = queue
        return queue

    def remove(self, agent_id: UUID, socket_id: str) -> None:
        """Forget a closed socket."""
        sockets = self._by_agent.get(agent_id, {})
        sockets.pop(socket_id, None)
        if not sockets:
            self._by_agent.pop(agent_id, None)

    def ring(self, bell: Doorbell) -> int:
        """Queue the doorbell for this process's sockets of its agent; how many."""
        rung = 0
        for queue in self._by_agent.get(bell.agent_id, {}).values():
            with contextlib.suppress(asyncio.QueueFull):  # a stuck socket: its slow poll
                queue.put_nowait(bell.message())
                rung += 1
        return rung

    async def start(self) -> None:
        """Start listening (call on the loop that serves the sockets)."""
        self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            try:
                async with self.database.listen(doorbells.CHANNEL) as payloads:
                    self.listening.set()
                    async for payload in payloads:
                        bell = Doorbell.from_notify(payload)
                        if self.ring(bell):
                            asyncio.create_task(self._delivered(bell.id))  # noqa: RUF006
            except asyncio.CancelledError:
                raise
            except Exception:
                # The cron's prune and the runners' slow poll cover the gap.
                self.listening.clear()
                logger.exception("runner doorbell listener failed; listening again")
                await asyncio.sleep(_RELISTEN_DELAY_S)

    async def _delivered(self, doorbell_id: int) -> None:
        try:
            async with self.database.service("runner doorbell rung", routine=True) as tx:
                await doorbells.mark_delivered(tx, [doorbell_id])
        except Exception as exc:
            logger.warning("doorbell not marked delivered", extra={"error": str(exc)})


async def authenticate(database: Database, token: str | None) -> Caller | None:
    """The runner a live runner token stands for (an anon transaction asks), else None."""
    if token is None:
        return None
    async with database.transaction(Caller.anon()) as tx:
        return await authenticate_runner(tx, token)
