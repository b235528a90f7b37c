"""The runner loop: register, claim, verify, run, report; heartbeat beside it; stop cleanly.

Safety properties, in the order the code keeps them:
- Nothing runs unless `verify.verify_claim` and the toolbox's argument checks pass; a
  refusal is reported as failed with `{"refused": true, ...}`.
- An action runs only within its lease, measured on this machine's monotonic clock from
  the moment the claim was sent (so clock skew cannot stretch it): one whose lease has
  run out is not started, and a tool's timeout is capped to what is left. Once a lease
  has expired another runner may hold the action, so running on would run it twice.
- A stop request (SIGINT/SIGTERM, `stop()`) lets the action in flight finish, releases
  the claimed ones not started, and closes the session.

Transport: claims always go over HTTP. With a doorbell socket open (`ws`, or `auto` when
the server offers one) the loop claims at once on a doorbell and otherwise polls only
slowly, in case a doorbell was lost; `auto` polls at the normal interval while the socket
is down (runner/socket.py retries it).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from agentplane.runner.client import (
    ProtocolError,
    ResultTooLargeError,
    RunnerAuthError,
    RunnerClient,
    ServerUnavailableError,
    SessionOfflineError,
    StaleFencingTokenError,
)
from agentplane.runner.models import ActionRefusedError, ClaimedAction, RunnerSession, ToolResult
from agentplane.runner.socket import DoorbellSocket
from agentplane.runner.verify import VerificationKey, load_signing_keys, verify_claim

logger = logging.getLogger(__name__)

# An action is not started with less lease than this left, and a tool's timeout ends
# this long before the lease does, leaving time to report the result.
LEASE_MARGIN_S = 2.0
# A signature that does not verify triggers a fresh look at the server's keys (a key
# rotation), at most this often.
KEY_REFRESH_INTERVAL_S = 300.0
_PAUSE_SLICE_S = 0.2

Transport = Literal["auto", "ws", "poll"]
# Opens the doorbell socket: (url, the current session's id, ring) -> its thread.
SocketFactory = Callable[
    [str, Callable[[], uuid.UUID], Callable[[str | None], None]], DoorbellSocket
]


class ToolRunner(Protocol):
    """What the loop needs from the toolbox."""

    def run(self, payload: Any, *, time_limit: float | None = None) -> ToolResult:
        """Run a verified payload; raise ActionRefusedError to refuse it."""
        ...


@dataclass(frozen=True)
class RunnerOptions:
    """How the loop claims and paces itself (the `agentplane runner` flags)."""

    max_claim: int = 1
    lease_seconds: int = 60
    poll_interval_s: float = 2.0
    heartbeat_interval_s: float = 20.0
    once: bool = False
    transport: Transport = "poll"
    # While the doorbell socket is open: a claim this often anyway.
    slow_poll_interval_s: float = 30.0


class Runner:
    """Claims approved actions for one agent and runs the ones that verify."""

    def __init__(
        self,
        client: RunnerClient,
        toolbox: ToolRunner,
        options: RunnerOptions,
        *,
        metadata: Mapping[str, Any],
        socket_id: str | None = None,
        open_socket: SocketFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._toolbox = toolbox
        self._options = options
        self._metadata = dict(metadata)
        self._socket_id = socket_id or f"runner-{uuid.uuid4()}"
        self._clock = clock
        self._now = now
        self._keys: list[VerificationKey] = []
        self._keys_fetched_at = 0.0
        self._session: RunnerSession | None = None
        self._session_lock = threading.Lock()
        self._closing = False
        self._stopping = False
        self._fatal: RunnerAuthError | None = None
        self._open_socket = open_socket
        self._socket: DoorbellSocket | None = None
        # Set by a doorbell (from the socket's thread); the loop's pause ends at once.
        self._wake = threading.Event()
        self._claim_reason = "startup"

    # -- control -------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to stop after the action in flight. Safe from a signal handler
        (it only sets a flag) and from any thread."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        """True once a stop was asked for."""
        return self._stopping

    @property
    def socket(self) -> DoorbellSocket | None:
        """The doorbell socket's thread, once started (None: polling only)."""
        return self._socket

    @property
    def session(self) -> RunnerSession | None:
        """The current session, if registered."""
        return self._session

    def run(self) -> int:
        """Run until stopped (or, with `once`, until a claim comes back empty); 0 when done.

        Raises RunnerAuthError when the token is refused, ServerUnavailableError or
        ProtocolError when the server cannot be used at start (or at all, with `once`).
        """
        self._load_keys()
        self._session = self._client.register(self._socket_id, self._metadata)
        logger.info("session %s registered for agent %s", self._session.id, self._session.agent_id)
        heartbeat = _Heartbeat(self._beat, self._options.heartbeat_interval_s)
        heartbeat.start()
        self._start_socket(self._session.websocket_url)
        try:
            self._loop()
        finally:
            heartbeat.halt()
            self._close_session()
            if self._socket is not None:
                self._socket.halt()
        if self._fatal is not None:
            raise self._fatal
        return 0

    # -- transport -----------------------------------------------------------------

    def _start_socket(self, url: str | None) -> None:
        transport = self._options.transport
        if transport == "poll" or self._options.once:
            logger.info("transport: polling every %.1f s", self._options.poll_interval_s)
            return
        if url is None or self._open_socket is None:
            logger.warning(
                "transport: the server offers no doorbell socket; polling every %.1f s",
                self._options.poll_interval_s,
            )
            return
        self._socket = self._open_socket(url, lambda: self._current_session().id, self._ring)
        self._socket.start()

    def _ring(self, action_id: str | None) -> None:
        """A doorbell (or a fresh socket): claim now."""
        self._claim_reason = "doorbell" if action_id else "socket opened"
        self._wake.set()

    def _idle_interval(self) -> float:
        """How long to wait before the next claim when the queue is empty."""
        if self._socket is None:
            return self._options.poll_interval_s
        if self._socket.connected or self._options.transport == "ws":
            return self._options.slow_poll_interval_s
        return self._options.poll_interval_s

    # -- the loop ------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping:
            claimed = self._claim()
            if claimed is None:
                self._pause(self._options.poll_interval_s)
                continue
            actions, lease_deadline = claimed
            if not actions:
                if self._options.once:
                    logger.info("queue empty; exiting (--once)")
                    return
                self._pause(self._idle_interval())
                continue
            self._claim_reason = "drain"
            for index, action in enumerate(actions):
                if self._stopping:
                    self._release(actions[index:])
                    break
                self._process(action, lease_deadline)
        if self._stopping:
            logger.info("stopped")

    def _claim(self) -> tuple[list[ClaimedAction], float] | None:
        """The claimed actions and their lease deadline (monotonic); None on a failure."""
        session = self._current_session()
        self._wake.clear()
        logger.debug("claim (%s)", self._claim_reason)
        self._claim_reason = "poll"
        sent_at = self._clock()
        try:
            items = self._client.claim(
                session.id, self._options.max_claim, self._options.lease_seconds
            )
        except SessionOfflineError as exc:
            logger.warning("claim refused, session offline (%s); registering again", exc)
            self._reregister(session)
            return None
        except (ServerUnavailableError, ProtocolError) as exc:
            if self._options.once:
                raise
            logger.error("claim failed: %s", exc)
            return None
        actions: list[ClaimedAction] = []
        for item in items:
            try:
                actions.append(ClaimedAction.model_validate(item))
            except ValidationError as exc:
                # Without an id and fencing token there is nothing to answer with; the
                # lease will expire on the server.
                ident = item.get("id") if isinstance(item, Mapping) else None
                logger.error("unreadable claim (id %s) ignored: %s", ident, exc)
        if actions:
            logger.info("claimed %d action(s)", len(actions))
        return actions, sent_at + self._options.lease_seconds

    def _process(self, action: ClaimedAction, lease_deadline: float) -> None:
        started = self._clock()
        time_left = lease_deadline - started - LEASE_MARGIN_S
        if time_left <= 0:
            logger.warning(
                "action %s tool=%s not started: its lease ran out while waiting",
                action.id,
                action.tool,
            )
            self._release([action])
            return
        result = self._execute(action, time_left)
        reported = self._report(action, result)
        refusal = result.refusal_reason
        logger.info(
            "action %s tool=%s status=%s%s duration=%.3fs%s",
            action.id,
            action.tool,
            result.status,
            f" refused={refusal}" if refusal else "",
            self._clock() - started,
            "" if reported else " (result not recorded)",
        )

    def _execute(self, action: ClaimedAction, time_left: float) -> ToolResult:
        try:
            self._verify(action)
            return self._toolbox.run(action.payload, time_limit=time_left)
        except ActionRefusedError as exc:
            return ToolResult.refused(exc.reason, exc.detail)
        except Exception as exc:
            # A fault in a tool must not take the runner (and its other claims) down.
            logger.exception("action %s: the tool failed unexpectedly", action.id)
            return ToolResult("failed", {"error": "runner_error", "detail": type(exc).__name__})

    def _verify(self, action: ClaimedAction) -> None:
        agent_id = self._current_session().agent_id
        try:
            verify_claim(action, self._keys, agent_id=agent_id, now=self._now())
        except ActionRefusedError as exc:
            if exc.reason != "bad_signature" or not self._refresh_keys():
                raise
            verify_claim(action, self._keys, agent_id=agent_id, now=self._now())

    def _report(self, action: ClaimedAction, result: ToolResult) -> bool:
        try:
            try:
                self._client.report(action.id, action.fencing_token, result.status, result.output)
            except ResultTooLargeError as exc:
                logger.warning("action %s: result too large for the server (%s)", action.id, exc)
                summary = {"error": "output_too_large", "detail": str(exc), "truncated": True}
                self._client.report(action.id, action.fencing_token, result.status, summary)
        except StaleFencingTokenError as exc:
            logger.warning(
                "action %s: result dropped, the lease was lost (fencing token %d is stale): %s",
                action.id,
                action.fencing_token,
                exc,
            )
            return False
        except (ServerUnavailableError, ProtocolError, ResultTooLargeError) as exc:
            logger.error("action %s: result could not be reported: %s", action.id, exc)
            return False
        return True

    def _release(self, actions: Sequence[ClaimedAction]) -> None:
        for action in actions:
            try:
                self._client.release(action.id, action.fencing_token)
            except StaleFencingTokenError:
                logger.info("action %s: release not needed, the lease had already gone", action.id)
            except (ServerUnavailableError, ProtocolError) as exc:
                logger.warning("action %s: release failed (%s)", action.id, exc)
            else:
                logger.info("action %s tool=%s released, not started", action.id, action.tool)

    def _pause(self, seconds: float) -> None:
        # Short slices rather than an Event: stop() may run in a signal handler, where
        # taking the Event's lock could deadlock.
        # A doorbell ends the pause at once (the Event is set from another thread only).
        deadline = time.monotonic() + seconds
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            if self._wake.wait(min(left, _PAUSE_SLICE_S)):
                return

    # -- keys ----------------------------------------------------------------------

    def _load_keys(self) -> None:
        try:
            keys = load_signing_keys(self._client.signing_keys())
        except ValueError as exc:
            raise ProtocolError(f"signing keys: {exc}") from exc
        if not keys:
            raise ProtocolError("signing keys: the server publishes no Ed25519 key")
        self._keys, self._keys_fetched_at = keys, self._clock()
        logger.info("loaded %d signing key(s)", len(keys))

    def _refresh_keys(self) -> bool:
        """Fetch the keys again if they were not fetched recently; True if refreshed."""
        if self._clock() - self._keys_fetched_at < KEY_REFRESH_INTERVAL_S:
            return False
        try:
            self._load_keys()
        except (ServerUnavailableError, ProtocolError) as exc:
            logger.warning("could not refresh the signing keys: %s", exc)
            return False
        return True

    # -- session -------------------------------------------------------------------

    def _current_session(self) -> RunnerSession:
        with self._session_lock:
            assert self._session is not None, "run() registers the session first"
            return self._session

    def _reregister(self, stale: RunnerSession) -> None:
        with self._session_lock:
            if self._closing or self._session is not stale:
                return  # closing, or the other thread registered already
            try:
                self._session = self._client.register(self._socket_id, self._metadata)
            except (ServerUnavailableError, ProtocolError) as exc:
                logger.error("could not register a new session: %s", exc)
                return
            logger.info("session %s registered (replacing %s)", self._session.id, stale.id)
            if self._socket is not None:
                self._socket.reconnect()  # the socket belongs to the session it opened with

    def _beat(self) -> None:
        if self._socket is not None and self._socket.connected:
            return  # the socket's pings are the heartbeat, and its close says we left
        session = self._current_session()
        try:
            self._client.heartbeat(session.id)
        except SessionOfflineError as exc:
            logger.warning("session %s went offline (%s); registering again", session.id, exc)
            self._reregister(session)
        except RunnerAuthError as exc:
            logger.error("heartbeat refused: %s", exc)
            self._fatal = exc
            self.stop()
        except (ServerUnavailableError, ProtocolError) as exc:
            logger.warning("heartbeat failed: %s", exc)

    def _close_session(self) -> None:
        with self._session_lock:
            self._closing = True
            session = self._session
        if session is None:
            return
        try:
            self._client.deregister(session.id)
        except (RunnerAuthError, ServerUnavailableError, ProtocolError) as exc:
            logger.warning("session %s: deregister failed (%s)", session.id, exc)
        else:
            logger.info("session %s closed", session.id)


class _Heartbeat(threading.Thread):
    """Calls `beat` every `interval` seconds until halted, so a long action cannot let
    the session go stale."""

    def __init__(self, beat: Callable[[], None], interval: float) -> None:
        super().__init__(name="agentplane-runner-heartbeat", daemon=True)
        self._beat = beat
        self._interval = interval
        self._halted = threading.Event()

    def run(self) -> None:
        while not self._halted.wait(self._interval):
            try:
                self._beat()
            except Exception:
                # The thread must outlive a fault, or the session would go stale.
                logger.exception("heartbeat failed unexpectedly")

    def halt(self) -> None:
        """Stop beating; waits briefly for a beat in progress."""
        self._halted.set()
        self.join(timeout=5.0)
