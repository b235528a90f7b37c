"""The `mirror` function: HTTP API events for the mirror-report routes (through Mangum),
the nightly EventBridge schedule (queues reports), and async `{"report_id"}` invocations.

Returns the API Gateway proxy response, or a summary of the job it ran.
"""

from __future__ import annotations

from agentplane.apps import build_mirror_app
from agentplane.lambda_handlers import mirror_handler

app = build_mirror_app()
handler = mirror_handler(app)
