"""The HTTP functions' handler: an API Gateway HTTP API event, served through Mangum.

Wrapped in Powertools: the Lambda context and a correlation id (the API Gateway request
id) on every log line, metrics flushed per invocation, a trace segment.
"""

from __future__ import annotations

from typing import Any, cast

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from fastapi import FastAPI
from mangum import Mangum

from agentplane.handlers import Handler
from agentplane.handlers.loop import process_loop
from agentplane.observability import logger, metrics, tracer


def http_handler(app: FastAPI, *, function: str) -> Handler:
    """A Lambda handler serving `app` for API Gateway HTTP API events."""
    # Mangum adopts the thread's current loop: make it the process's before it looks.
    process_loop()
    mangum = Mangum(app, lifespan="off", api_gateway_base_path="/")

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        logger.append_keys(function=function)
        # Each request runs on the current loop, which must stay the one the pool is on.
        process_loop()
        result: dict[str, Any] = mangum(event, cast(Any, context))
        status = int(result.get("statusCode", 0))
        metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
        if status >= 500:
            metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
        logger.info(
            "request served",
            extra={"route": event.get("routeKey"), "status": status},
        )
        return result

    return cast(Handler, handler)
