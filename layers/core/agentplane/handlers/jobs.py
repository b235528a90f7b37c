"""The jobs' handlers: the heartbeat cron, the mirror function's schedule and reports, and
the events dispatcher.

No web stack: a job imports neither FastAPI, Starlette nor Mangum, so its cold start pays
only for what it runs (tests/integration/test_handlers_on_events.py pins it). Jobs run on
the process's loop with the process runtime's pool, which stays open between warm
invocations. Each handler is wrapped in Powertools (Lambda context on every log line,
metrics flushed per invocation, a trace segment).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from uuid import UUID

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentplane.handlers import Handler, http_or_job
from agentplane.handlers.loop import run
from agentplane.mirror.service import run_nightly, run_report
from agentplane.observability import logger, metrics, tracer
from agentplane.runtime import Runtime, get_runtime
from agentplane.sessions.reaper import reap

# Metric name -> the reaper count it reports.
REAPER_METRICS = {
    "SessionsReaped": "sessions_offline",
    "LeasesRequeued": "leases_requeued",
    "LeasesFailed": "leases_failed",
    "ActionsExpired": "actions_expired",
    "ApprovalsExpired": "approvals_expired",
    "MirrorReportsOverdue": "reports_failed",
}


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def heartbeat_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """EventBridge schedule: take silent sessions offline, requeue (or fail) lost leases,
    expire undecided proposals and unclaimed approvals; returns the counts."""
    runtime = get_runtime()
    result = run(reap(runtime.database))
    # The backstop of the doorbell kicks: what a lost kick or a requeue above left.
    run(runtime.ring_doorbells())
    counts = result.as_counts()
    for name, key in REAPER_METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=counts[key])
    # Every run has its metrics; a log line only when the run changed something.
    if changed := result.changed():
        logger.info("heartbeat reaped", extra=changed)
    return dict(counts)


async def _mirror_job(runtime: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    if event.get("source") == "aws.events":
        # Each report runs in an async invocation of its own (its failure destination is
        # the DLQ), so one long report does not hold up the others.
        queued = await run_nightly(runtime)
        metrics.add_metric(
            name="MirrorReportsQueued", unit=MetricUnit.Count, value=len(queued.report_ids)
        )
        metrics.add_metric(name="MemoryNodesArchived", unit=MetricUnit.Count, value=queued.archived)
        return {"queued": [str(i) for i in queued.report_ids], "archived": queued.archived}
    if "report_id" in event:
        report_id = UUID(str(event["report_id"]))
        return {"report_id": str(report_id), "status": await run_report(runtime, report_id)}
    raise ValueError(f"the mirror function does not handle this event: {sorted(event)}")


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def mirror_job_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The nightly schedule queues reports; an async `{"report_id"}` invocation runs one."""
    return run(_mirror_job(get_runtime(), event))


async def _events_job(runtime: Runtime) -> dict[str, Any]:
    from agentplane.events.dispatcher import dispatch

    return (await dispatch(runtime)).as_dict()


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def events_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """`{"op": "events"}` (the schedule, or a kick after a commit): publish due events to
    EventBridge and deliver due webhooks; returns the counts."""
    result = run(_events_job(get_runtime()))
    metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=result["published"])
    metrics.add_metric(name="WebhooksDelivered", unit=MetricUnit.Count, value=result["delivered"])
    metrics.add_metric(name="WebhooksFailed", unit=MetricUnit.Count, value=result["failed"])
    return result


def mirror_handler(http: Callable[[], Handler]) -> Handler:
    """The mirror function: HTTP events go to the handler `http()` builds on the first of
    them (so a job never imports the web stack), every other event to its jobs."""
    return http_or_job(http, cast(Handler, mirror_job_handler))
