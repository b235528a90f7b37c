"""The runner's doorbell socket: a thread that holds the WebSocket and wakes the loop.

The socket only says "an action may be claimable" (DESIGN.md §4.2); the loop still
claims over HTTP. The thread pings inside API Gateway's 10 minute idle timeout, opens a
new socket before its 2 hour limit and only then closes the old one (so the session
keeps its claims), and after a failure retries with jittered exponential backoff while
the loop polls.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

logger = logging.getLogger("agentplane.runner.socket")


@dataclass(frozen=True)
class SocketOptions:
    """How the socket paces itself."""

    ping_interval_s: float = 300.0
    # API Gateway closes a connection after 2 hours: reconnect well before.
    max_age_s: float = 110 * 60.0
    open_timeout_s: float = 5.0
    first_retry_s: float = 1.0
    max_retry_s: float = 60.0


class DoorbellSocket(threading.Thread):
    """Holds the socket of the current session; calls `ring(action_id)` on a doorbell."""

    def __init__(
        self,
        url: str,
        token: str,
        session_id: Callable[[], UUID],
        ring: Callable[[str | None], None],
        options: SocketOptions | None = None,
        *,
        user_agent: str = "agentplane-runner",
    ) -> None:
        super().__init__(name="agentplane-runner-socket", daemon=True)
        self._url = url
        self._token = token
        self._session_id = session_id
        self._ring = ring
        self._options = options or SocketOptions()
        self._user_agent = user_agent
        self._halted = threading.Event()
        self._connected = threading.Event()
        self._socket: Any = None
        self.connects = 0

    @property
    def connected(self) -> bool:
        """True while a socket is open."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the socket to open; whether it did."""
        return self._connected.wait(timeout)

    def reconnect(self) -> None:
        """Drop the socket (a new session needs its own); the thread opens another."""
        socket = self._socket
        if socket is not None:
            socket.close()

    def halt(self) -> None:
        """Close the socket and stop."""
        self._halted.set()
        socket = self._socket
        if socket is not None:
            socket.close()
        self.join(timeout=5.0)

    def _open(self) -> Any:
        from websockets.sync.client import connect

        query = urlencode({"session_id": str(self._session_id())})
        return connect(
            f"{self._url}?{query}",
            additional_headers={"Authorization": f"Bearer {self._token}"},
            user_agent_header=self._user_agent,
            open_timeout=self._options.open_timeout_s,
            # Application pings (below) are what API Gateway counts as traffic.
            ping_interval=None,
            close_timeout=2.0,
        )

    def run(self) -> None:
        failures = 0
        while not self._halted.is_set():
            try:
                socket = self._open()
            except Exception as exc:
                failures += 1
                self._lost(f"could not open the socket ({type(exc).__name__}: {exc})", failures)
                continue
            failures = 0
            while socket is not None:
                self._socket = socket
                self.connects += 1
                logger.info(
                    "doorbell socket %s to %s",
                    "reconnected" if self.connects > 1 else "connected",
                    self._url,
                )
                self._connected.set()
                # Something may have become claimable while no socket was open.
                self._ring(None)
                reason = self._hold(socket)
                if reason is not None:
                    failures += 1
                    self._lost(reason, failures)
                    break
                socket = self._renew(socket)

    def _lost(self, reason: str, failures: int) -> None:
        self._connected.clear()
        if self._halted.is_set():
            return
        retry = self._options.first_retry_s * 2.0 ** (failures - 1)
        delay = min(self._options.max_retry_s, retry) * random.uniform(0.5, 1.0)  # noqa: S311
        logger.info("doorbell socket lost: %s; polling, retrying in %.1f s", reason, delay)
        self._halted.wait(delay)

    def _hold(self, socket: Any) -> str | None:
        """Read the socket until it fails (why), or until halted or due for renewal
        (None)."""
        from websockets.exceptions import ConnectionClosed

        opened = time.monotonic()
        next_ping = opened + self._options.ping_interval_s
        try:
            while not self._halted.is_set():
                now = time.monotonic()
                if now - opened >= self._options.max_age_s:
                    return None
                if now >= next_ping:
                    socket.send(json.dumps({"type": "ping"}))
                    next_ping = now + self._options.ping_interval_s
                try:
                    text = socket.recv(timeout=max(0.05, min(next_ping - now, 1.0)))
                except TimeoutError:
                    continue
                self._receive(text)
        except ConnectionClosed as exc:
            return f"closed ({exc})"
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def _renew(self, old: Any) -> Any:
        """The next socket, opened before the old one closes (the server ends a session
        only when it still holds the closing socket); None when halted or it failed."""
        if self._halted.is_set():
            old.close()
            return None
        try:
            new = self._open()
        except Exception as exc:
            logger.info("doorbell socket renewal failed (%s); opening anew", exc)
            new = None
        old.close()
        return new

    def _receive(self, text: Any) -> None:
        try:
            message = json.loads(text)
        except (TypeError, ValueError):
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == "doorbell":
            action_id = message.get("action_id")
            logger.debug("doorbell for action %s", action_id)
            self._ring(str(action_id) if action_id else None)
