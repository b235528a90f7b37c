"""The `api` function: API Gateway HTTP API (payload v2) events, served through Mangum.

Returns the API Gateway proxy response (status, headers, problem+json or JSON body).
"""

from __future__ import annotations

from agentplane.apps import build_api_app
from agentplane.handlers.http import http_handler

app = build_api_app()
handler = http_handler(app, function="api")
