"""Lambda entry points built from the layer: Mangum for HTTP, plain handlers for jobs.

Each is wrapped in Powertools: the Lambda context and a correlation id (the API Gateway
request id) on every log line, metrics flushed per invocation, a trace segment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast
from uuid import UUID

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from fastapi import FastAPI
from mangum import Mangum

from agentplane.db.database import Database
from agentplane.db.urls import urls_from_settings
from agentplane.mirror.service import enqueue_nightly_reports, run_report
from agentplane.observability import logger, metrics, tracer
from agentplane.sessions.reaper import reap
from agentplane.settings import get_settings

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def http_handler(app: FastAPI, *, function: str) -> Handler:
    """A Lambda handler serving `app` for API Gateway HTTP API events."""
    mangum = Mangum(app, lifespan="off", api_gateway_base_path="/")

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        logger.append_keys(function=function)
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


def _job_database() -> Database:
    settings = get_settings()
    urls = urls_from_settings(settings)
    if urls is None:
        raise RuntimeError("jobs need DATABASE_URL or AGENTPLANE_DATABASE_SECRET_NAME")
    return Database(urls.app, max_size=1)


def mirror_handler(app: FastAPI) -> Handler:
    """The mirror function: HTTP routes, the nightly schedule, and async report runs."""
    http = http_handler(app, function="mirror")

    @logger.inject_lambda_context
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def jobs(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            db = _job_database()
            try:
                if event.get("source") == "aws.events":
                    queued = await enqueue_nightly_reports(db)
                    metrics.add_metric(
                        name="MirrorReportsQueued",
                        unit=MetricUnit.Count,
                        value=len(queued.report_ids),
                    )
                    return {"queued": [str(i) for i in queued.report_ids]}
                if "report_id" in event:
                    report_id = UUID(str(event["report_id"]))
                    return {"report_id": str(report_id), "status": await run_report(db, report_id)}
                raise ValueError(f"the mirror function does not handle this event: {sorted(event)}")
            finally:
                await db.close()

        return asyncio.run(run())

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        if "requestContext" in event:
            return http(event, context)
        return cast(dict[str, Any], jobs(event, context))

    return handler


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def heartbeat_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """EventBridge schedule: take silent sessions offline, requeue (or fail) lost leases,
    expire undecided proposals and unclaimed approvals; returns the counts."""

    async def run() -> dict[str, int]:
        db = _job_database()
        try:
            result = await reap(db)
        finally:
            await db.close()
        return result.as_counts()

    counts = asyncio.run(run())
    # Metric name -> the count it reports.
    reported = {
        "SessionsReaped": "sessions_offline",
        "LeasesRequeued": "leases_requeued",
        "LeasesFailed": "leases_failed",
        "ActionsExpired": "actions_expired",
        "ApprovalsExpired": "approvals_expired",
    }
    for name, key in reported.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=counts[key])
    logger.info("heartbeat reaped", extra=counts)
    return dict(counts)
