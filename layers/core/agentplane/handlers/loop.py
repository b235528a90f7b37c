"""The process's one event loop, kept from the first invocation to the last.

Lambda keeps a warm process between invocations, and a psycopg pool belongs to the loop
it was opened on. So every handler runs its coroutines on this loop: the jobs through
`run`, the HTTP functions through Mangum, which runs each request on the thread's current
loop (`process_loop` makes this one current). An `asyncio.run` per invocation would leave
the pool on a closed loop after the first event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from functools import lru_cache
from typing import Any, TypeVar

T = TypeVar("T")


@lru_cache(maxsize=1)
def _runner() -> asyncio.Runner:
    return asyncio.Runner()


def process_loop() -> asyncio.AbstractEventLoop:
    """The loop, created on first use and made the thread's current loop (Mangum's)."""
    loop = _runner().get_loop()
    asyncio.set_event_loop(loop)
    return loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on the process's loop."""
    return _runner().run(coro)


def close_process_loop() -> None:
    """Close the loop: the end of a local run (Lambda freezes the process with it open)."""
    _runner().close()
    _runner.cache_clear()
