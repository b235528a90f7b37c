"""The WebSocket API's handler: `$connect`, `$disconnect` and `$default` events of the
runner doorbell (sessions/apigw.py), run on the process's loop without the web stack.

Returns what API Gateway expects of a WebSocket route: `{"statusCode", "body"}` (a
`$connect` answered with anything but 2xx refuses the upgrade).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentplane.handlers import Handler
from agentplane.handlers.loop import run
from agentplane.observability import logger, metrics, tracer
from agentplane.runtime import get_runtime
from agentplane.sessions.apigw import handle, is_socket_event


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def socket_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One event of the runner WebSocket API."""
    runtime = get_runtime()
    route = str(event["requestContext"].get("routeKey"))
    result: dict[str, Any] = run(handle(runtime.database, event, runtime.socket_connections))
    metrics.add_metric(
        name=f"RunnerSocket{route.strip('$').capitalize()}", unit=MetricUnit.Count, value=1
    )
    return result


def sockets_or_http(http: Callable[[], Handler]) -> Handler:
    """The actions function: WebSocket API events to `socket_handler`, the rest (HTTP API
    events) to the handler `http()` builds on the first of them."""
    served: Handler | None = None

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        nonlocal served
        if is_socket_event(event):
            return cast(Handler, socket_handler)(event, context)
        if served is None:
            served = http()
        return served(event, context)

    return handler
