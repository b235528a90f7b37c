"""The `workflows` function: HTTP API events for the workflow and run routes (through
Mangum), the state machine's task events (`{"op": "step" | "run_node" | "wait_node" |
"fail"}`) and the callback dispatcher's (`{"op": "dispatch"}`, every minute and when the
actions function kicks it).

Returns the API Gateway proxy response, or the op's result.
"""

from __future__ import annotations

from agentplane.handlers import Handler
from agentplane.handlers.workflows import workflows_handler


def _http() -> Handler:
    # Built on the first HTTP event: a task never imports FastAPI, Starlette or Mangum.
    from agentplane.apps import build_workflows_app
    from agentplane.handlers.http import http_handler

    return http_handler(build_workflows_app(), function="workflows")


handler = workflows_handler(http=_http)
