"""The runner protocol over HTTP: one method per endpoint, errors as typed exceptions.

Transient failures (connection errors, timeouts, 429 and 5xx) are retried with bounded,
jittered exponential backoff, then raised as ServerUnavailableError. Every /runner/*
call carries the runner token; it is never logged, and never sent to the signing-key
endpoint, which needs none.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
from pydantic import ValidationError

from agentplane.runner.models import ResultStatus, RunnerSession

logger = logging.getLogger(__name__)

SIGNING_KEY_PATH = "/.well-known/agentplane/signing-key"
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class RunnerClientError(Exception):
    """A runner protocol call did not do what was asked."""


class RunnerAuthError(RunnerClientError):
    """The server refused the runner token (401) or what it may do (403); not retried."""


class ServerUnavailableError(RunnerClientError):
    """The server could not be reached or kept failing (after the retries)."""


class ProtocolError(RunnerClientError):
    """The server answered with an unexpected status or body."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class SessionOfflineError(RunnerClientError):
    """The server no longer considers this session online (409): register a new one."""


class StaleFencingTokenError(RunnerClientError):
    """The claim's lease was lost (409): the result or release was not accepted."""


class ResultTooLargeError(RunnerClientError):
    """The server refused a result body as too large (413)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure."""

    attempts: int = 5
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def delay(self, retry: int) -> float:
        """Seconds before retry number `retry` (0-based): exponential, capped, jittered."""
        ceiling = min(self.max_delay_s, self.first_delay_s * 2.0**retry)
        # Jitter spreads out runners reconnecting together after an outage (not crypto).
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311


def problem_detail(response: httpx.Response) -> str:
    """The `detail` (or `title`) of a problem+json response, else the start of its body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        for key in ("detail", "title"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return response.text[:200] or response.reason_phrase


class RunnerClient:
    """The runner side of the protocol, over an httpx.Client whose base_url is the server."""

    def __init__(
        self,
        http: httpx.Client,
        token: str,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http
        self._auth = {"Authorization": f"Bearer {token}"}
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"RunnerClient({self._http.base_url})"

    def _request(
        self, method: str, path: str, *, json: Any = None, auth: bool = True
    ) -> httpx.Response:
        failure = ""
        for attempt in range(self._retry.attempts):
            try:
                response = self._http.request(
                    method, path, json=json, headers=self._auth if auth else None
                )
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in (401, 403):
                    raise RunnerAuthError(
                        f"{method} {path}: {response.status_code} {problem_detail(response)}"
                    )
                if response.status_code not in TRANSIENT_STATUSES:
                    return response
                failure = f"{response.status_code} {problem_detail(response)}"
            if attempt + 1 < self._retry.attempts:
                delay = self._retry.delay(attempt)
                logger.warning(
                    "%s %s failed (%s); retrying in %.1f s", method, path, failure, delay
                )
                self._sleep(delay)
        raise ServerUnavailableError(
            f"{method} {path}: {failure} (gave up after {self._retry.attempts} attempts)"
        )

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ProtocolError(f"{what}: the response is not JSON", response.status_code) from exc

    @staticmethod
    def _unexpected(response: httpx.Response, what: str) -> ProtocolError:
        return ProtocolError(
            f"{what}: {response.status_code} {problem_detail(response)}", response.status_code
        )

    def _session(self, response: httpx.Response, what: str) -> RunnerSession:
        try:
            return RunnerSession.model_validate(self._json(response, what))
        except ValidationError as exc:
            raise ProtocolError(f"{what}: not a session: {exc}", response.status_code) from exc

    def signing_keys(self) -> Any:
        """The server's JWK Set (no authentication)."""
        response = self._request("GET", SIGNING_KEY_PATH, auth=False)
        if response.status_code != 200:
            raise self._unexpected(response, "signing keys")
        return self._json(response, "signing keys")

    def register(self, socket_id: str, metadata: Mapping[str, Any]) -> RunnerSession:
        """Open a session for this runner's agent."""
        response = self._request(
            "POST", "/runner/sessions", json={"socket_id": socket_id, "metadata": dict(metadata)}
        )
        if response.status_code not in (200, 201):
            raise self._unexpected(response, "register")
        return self._session(response, "register")

    def heartbeat(self, session_id: UUID) -> RunnerSession:
        """Keep the session online; SessionOfflineError when the server let it go."""
        response = self._request("POST", f"/runner/sessions/{session_id}/heartbeat")
        if response.status_code in (404, 409):
            raise SessionOfflineError(f"session {session_id}: {problem_detail(response)}")
        if response.status_code != 200:
            raise self._unexpected(response, "heartbeat")
        return self._session(response, "heartbeat")

    def deregister(self, session_id: UUID) -> None:
        """Close the session; the server releases whatever it still holds."""
        response = self._request("DELETE", f"/runner/sessions/{session_id}")
        if response.status_code not in (200, 204, 404):
            raise self._unexpected(response, "deregister")

    def claim(self, session_id: UUID, max_actions: int, lease_seconds: int) -> list[Any]:
        """Up to `max_actions` approved actions under a lease, as the server sent them."""
        response = self._request(
            "POST",
            "/runner/claim",
            json={
                "session_id": str(session_id),
                "max": max_actions,
                "lease_seconds": lease_seconds,
            },
        )
        if response.status_code == 409:
            raise SessionOfflineError(f"session {session_id}: {problem_detail(response)}")
        if response.status_code != 200:
            raise self._unexpected(response, "claim")
        body = self._json(response, "claim")
        if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
            raise ProtocolError('claim: the response has no "items" list', response.status_code)
        return list(body["items"])

    def report(
        self,
        action_id: UUID,
        fencing_token: int,
        status: ResultStatus,
        output: Mapping[str, Any],
    ) -> None:
        """Record an action's result under the claim's fencing token."""
        response = self._request(
            "POST",
            f"/runner/actions/{action_id}/result",
            json={"fencing_token": fencing_token, "status": status, "output": dict(output)},
        )
        if response.status_code == 409:
            raise StaleFencingTokenError(problem_detail(response))
        if response.status_code == 413:
            raise ResultTooLargeError(problem_detail(response))
        if response.status_code != 200:
            raise self._unexpected(response, f"result of {action_id}")

    def release(self, action_id: UUID, fencing_token: int) -> None:
        """Hand a claimed, unstarted action back to the queue (no attempt counted)."""
        response = self._request(
            "POST", f"/runner/actions/{action_id}/release", json={"fencing_token": fencing_token}
        )
        if response.status_code == 409:
            raise StaleFencingTokenError(problem_detail(response))
        if response.status_code != 200:
            raise self._unexpected(response, f"release of {action_id}")
