"""ASGI middleware every app carries: a body size limit and a correlation id."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentplane.errors import PayloadTooLargeError
from agentplane.http.problems import PROBLEM_JSON
from agentplane.observability import logger

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:=+/-]{1,128}$")


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413 problem+json, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _too_large(self, scope: Scope, send: Send) -> None:
        problem = PayloadTooLargeError(f"the body is larger than {self.max_bytes} bytes")
        body = json.dumps(problem.to_problem(instance=scope.get("path"))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, send)
            return
        # Read the body up to the limit before the app sees it, then replay it.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class CorrelationIdMiddleware:
    """Every log line and response carries one request id.

    The id is API Gateway's request id behind Mangum, else a safe `X-Request-Id` the
    client sent, else a new UUID.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def _request_id(scope: Scope) -> str:
        event: dict[str, Any] = scope.get("aws.event") or {}
        aws_id = (event.get("requestContext") or {}).get("requestId")
        if isinstance(aws_id, str) and _SAFE_ID.match(aws_id):
            return str(aws_id)
        headers: dict[bytes, bytes] = dict(scope.get("headers") or [])
        sent = headers.get(REQUEST_ID_HEADER, b"").decode("latin-1")
        if _SAFE_ID.match(sent):
            return sent
        return str(uuid.uuid4())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        logger.set_correlation_id(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            await send(message)

        await self.app(scope, receive, send_with_id)
