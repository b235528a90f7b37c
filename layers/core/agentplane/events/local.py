"""The events dispatcher on one machine: a task on the runtime's loop, woken by the
runtime's kick after each commit that wrote events, and every `interval` seconds (what
the schedule does in AWS). Used by `agentplane dev` and by the tests."""

from __future__ import annotations

import asyncio
import contextlib

from agentplane.observability import logger
from agentplane.runtime import Runtime


class LocalEvents:
    """The in-process dispatcher of one runtime."""

    def __init__(self, runtime: Runtime, *, interval: float = 2.0) -> None:
        self.runtime = runtime
        self.interval = interval
        self._kicked: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        """Run the dispatcher on the current loop and let the runtime's kicks wake it."""
        self._loop = asyncio.get_running_loop()
        self._kicked = asyncio.Event()
        self.runtime.events_kicker = self.kick
        self._task = self._loop.create_task(self._forever())
        return self._task

    def kick(self) -> None:
        """Wake the dispatcher (after a commit that wrote events)."""
        if self._kicked is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._kicked.set)

    async def _forever(self) -> None:
        from agentplane.events.dispatcher import dispatch

        assert self._kicked is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kicked.wait(), self.interval)
            self._kicked.clear()
            try:
                result = await dispatch(self.runtime)
            except Exception:
                logger.exception("events dispatcher failed")
                continue
            # More may be due than one batch took: go round again at once.
            if result.published or result.delivered or result.retried or result.failed:
                self._kicked.set()

    async def stop(self) -> None:
        """Stop dispatching; what is due waits in the outbox."""
        if self.runtime.events_kicker == self.kick:
            self.runtime.events_kicker = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
