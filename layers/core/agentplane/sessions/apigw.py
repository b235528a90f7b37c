"""The runner doorbell in AWS: the WebSocket API's routes, and ringing through its
management API (DESIGN.md §4.2).

`$connect` carries the runner token and `?session_id=`: a live session of the token's
agent is tied to the connection (`socket_id` = connectionId), else 401/403 and API
Gateway refuses the upgrade. `$disconnect` takes that session offline and requeues what
it held (best effort: the heartbeat cron is the backstop). `$default` answers
`{"type": "ping"}` with `{"type": "pong"}` and counts it as a heartbeat.

`ring` delivers the outbox after commit: the actions function kicks it after a
decision, release or disconnect, and the heartbeat cron runs it for whatever a lost
kick left. A `GoneException` (410) means the runner vanished: its session goes offline.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from agentplane.db.database import Database
from agentplane.observability import logger
from agentplane.sessions import doorbells
from agentplane.sessions.sockets import authenticate

BATCH = 100


class ConnectionGoneError(Exception):
    """The connection is gone (410): its runner went away without a $disconnect."""


class Connections(Protocol):
    """What ringing needs from API Gateway's management API."""

    def post(self, connection_id: str, message: dict[str, Any]) -> None:
        """Send one message; ConnectionGoneError when the connection is gone."""
        ...


def management_endpoint(websocket_url: str) -> str:
    """The management API of a WebSocket stage: its wss:// URL as https://."""
    scheme, sep, rest = websocket_url.partition("://")
    return f"https://{rest}" if sep and scheme in ("wss", "ws") else websocket_url


class ApiGatewayConnections:
    """`post_to_connection` of one WebSocket API stage (boto3), its client built on the
    first post (a $connect posts nothing)."""

    def __init__(self, client: Callable[[], Any]) -> None:
        self._make_client = client
        self._client: Any = None

    @classmethod
    def for_url(cls, websocket_url: str) -> ApiGatewayConnections:
        """The management client of the stage runners connect to."""

        def client() -> Any:
            import boto3

            endpoint = management_endpoint(websocket_url)
            return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint)

        return cls(client)

    def post(self, connection_id: str, message: dict[str, Any]) -> None:
        """PostToConnection; a GoneException becomes ConnectionGoneError."""
        from botocore.exceptions import ClientError

        if self._client is None:
            self._client = self._make_client()
        try:
            self._client.post_to_connection(
                ConnectionId=connection_id, Data=json.dumps(message).encode()
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "GoneException" or status == 410:
                raise ConnectionGoneError(connection_id) from exc
            raise


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _token(event: dict[str, Any]) -> str | None:
    scheme, _, token = (_header(event, "authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _session_id(event: dict[str, Any]) -> UUID | None:
    try:
        return UUID(str((event.get("queryStringParameters") or {}).get("session_id", "")))
    except ValueError:
        return None


def _reply(event: dict[str, Any], status: int, detail: str = "") -> dict[str, Any]:
    """A route's answer, shaped like the HTTP functions' (a problem+json when refused)."""
    problem = status >= 400
    body = {"title": "Refused", "status": status, "detail": detail} if problem else {}
    return {
        "statusCode": status,
        "headers": {
            "content-type": "application/problem+json" if problem else "application/json",
            "x-request-id": str(event["requestContext"].get("requestId", "")),
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


async def on_connect(database: Database, event: dict[str, Any]) -> dict[str, Any]:
    """$connect: 200 and the session tied to the connection, or 401/403 (refused)."""
    connection_id = str(event["requestContext"]["connectionId"])
    runner = await authenticate(database, _token(event))
    if runner is None or runner.agent_id is None:
        return _reply(event, 401, "the runner token is unknown, revoked or expired")
    session_id = _session_id(event)
    if session_id is None:
        return _reply(event, 403, "session_id must be a live session of this runner's agent")
    async with database.transaction(runner) as tx:
        session = await doorbells.bind_socket(tx, session_id, connection_id)
    if session is None:
        return _reply(event, 403, "session_id must be a live session of this runner's agent")
    logger.info(
        "runner socket open",
        extra={"session_id": str(session_id), "agent_id": str(runner.agent_id)},
    )
    return _reply(event, 200)


async def on_disconnect(database: Database, event: dict[str, Any]) -> list[UUID]:
    """$disconnect: the connection's session goes offline and its claims are requeued."""
    connection_id = str(event["requestContext"]["connectionId"])
    async with database.service("runner socket closed: take its session offline") as tx:
        ended = await doorbells.disconnect(tx, connection_id)
    if ended:
        logger.info("runner socket closed", extra={"session_id": str(ended[0])})
    return ended


async def on_message(
    database: Database, event: dict[str, Any], connections: Connections
) -> dict[str, Any]:
    """$default: a ping is a heartbeat, answered with a pong; anything else is ignored."""
    connection_id = str(event["requestContext"]["connectionId"])
    try:
        message = json.loads(event.get("body") or "")
    except ValueError:
        return _reply(event, 400, "not JSON")
    if not isinstance(message, dict) or message.get("type") != "ping":
        return _reply(event, 400, 'only {"type": "ping"} is understood')
    async with database.service("runner socket ping", routine=True) as tx:
        alive = await doorbells.ping(tx, connection_id)
    if alive is None:
        return _reply(event, 410, "session offline; register a new session")
    await asyncio.to_thread(connections.post, connection_id, {"type": "pong"})
    return _reply(event, 200)


@dataclass
class RingResult:
    """What one `ring` did."""

    doorbells: int = 0
    sent: int = 0
    gone: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts, as a handler returns them."""
        return {"doorbells": self.doorbells, "sent": self.sent, "gone": self.gone}


async def ring(database: Database, connections: Connections, *, limit: int = BATCH) -> RingResult:
    """Ring what the outbox holds, oldest first, until a batch comes back short. A
    connection that is gone takes its session offline (and requeues its claims, whose
    doorbells the next batch rings)."""
    result = RingResult()
    while True:
        async with database.service("runner doorbells", routine=True) as tx:
            due = await doorbells.due(tx, limit)
            sockets = await doorbells.open_sockets(tx, sorted({d.agent_id for d in due}))
            gone: set[str] = set()
            for bell in due:
                for socket_id in sockets.get(bell.agent_id, []):
                    if socket_id in gone:
                        continue
                    try:
                        await asyncio.to_thread(connections.post, socket_id, bell.message())
                    except ConnectionGoneError:
                        gone.add(socket_id)
                        await doorbells.disconnect(tx, socket_id)
                        continue
                    except Exception as exc:
                        # Not retried: the runner's slow poll finds the action.
                        logger.warning(
                            "doorbell not delivered",
                            extra={"action_id": str(bell.action_id), "error": str(exc)},
                        )
                        continue
                    result.sent += 1
            await doorbells.mark_delivered(tx, [d.id for d in due])
        result.doorbells += len(due)
        result.gone += len(gone)
        # A gone socket's requeued claims wrote doorbells of their own: ring those too.
        if len(due) < limit and not gone:
            return result


async def handle(database: Database, event: dict[str, Any], connections: Connections) -> Any:
    """One event of the WebSocket API, by its route."""
    route = event["requestContext"].get("routeKey")
    if route == "$connect":
        return await on_connect(database, event)
    if route == "$disconnect":
        await on_disconnect(database, event)
        await ring(database, connections)
        return _reply(event, 200)
    return await on_message(database, event, connections)


def is_socket_event(event: dict[str, Any]) -> bool:
    """True for an event of the WebSocket API (not the HTTP API)."""
    context = event.get("requestContext") or {}
    return context.get("eventType") in ("CONNECT", "DISCONNECT", "MESSAGE")
