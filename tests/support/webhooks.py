"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records what it is
sent and answers with the status the test sets."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEADLINE_SECONDS = 20.0
# The tries per delivery in the events tests' settings (tests/integration/events/conftest.py).
MAX_ATTEMPTS = 3


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """The server's URL, what it got, and the status it answers with."""

    url: str
    status: int = 204
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def got(self) -> list[Received]:
        """The requests so far."""
        with self.lock:
            return list(self.requests)

    async def wait_for(
        self, until: Callable[[list[Received]], bool], deadline: float = DEADLINE_SECONDS
    ) -> list[Received]:
        """Poll the requests until `until(requests)`; fail saying what came after `deadline`."""
        end = time.monotonic() + deadline
        while True:
            got = self.got()
            if until(got):
                return got
            if time.monotonic() > end:
                raise AssertionError(f"the receiver did not get there in {deadline} s: {got}")
            await asyncio.sleep(0.02)


@contextmanager
def receiver(status: int = 204) -> Iterator[Receiver]:
    """A receiver on a free port of 127.0.0.1, for the duration of the block."""
    state: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            rec: Receiver = state["receiver"]
            with rec.lock:
                rec.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                status = rec.status
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec = Receiver(f"http://127.0.0.1:{server.server_port}/hook", status=status)
    state["receiver"] = rec
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
