"""The `mirror` function: HTTP API events for the mirror-report routes (through Mangum),
the nightly EventBridge schedule (queues reports), and async `{"report_id"}` invocations.

Returns the API Gateway proxy response, or a summary of the job it ran.
"""

from __future__ import annotations

from agentplane.handlers import Handler
from agentplane.handlers.jobs import mirror_handler


def _http() -> Handler:
    # Built on the first HTTP event: a job never imports FastAPI, Starlette or Mangum.
    from agentplane.apps import build_mirror_app
    from agentplane.handlers.http import http_handler

    return http_handler(build_mirror_app(), function="mirror")


handler = mirror_handler(http=_http)
