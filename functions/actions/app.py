"""The `actions` function: API Gateway HTTP API (payload v2) events, served through Mangum,
and the runner WebSocket API's `$connect`, `$disconnect` and `$default` events.

Returns the API Gateway proxy response (status, headers, problem+json or JSON body), or
for a WebSocket route `{"statusCode", "body"}`.
"""

from __future__ import annotations

from agentplane.apps import build_actions_app
from agentplane.handlers.http import http_handler
from agentplane.handlers.sockets import sockets_or_http

app = build_actions_app()
handler = sockets_or_http(lambda: http_handler(app, function="actions"))
