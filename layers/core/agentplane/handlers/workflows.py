"""The workflows function: HTTP routes, Step Functions task events, the callback
dispatcher and the events dispatcher (`{"op": "events"}`, see handlers/jobs.py).

A task event (`{"op": ...}`, from the state machine or the dispatcher's schedule) runs
on the process's loop with the process runtime, without the web stack; an HTTP event
goes to the app `http()` builds on the first of them (tests/integration/
test_handlers_on_events.py pins that a task never imports FastAPI). A task that fails
raises, so Lambda reports a function error and the state machine's Catch sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from agentplane.handlers import Handler, http_or_job
from agentplane.handlers.loop import run
from agentplane.observability import logger, metrics, tracer
from agentplane.runtime import get_runtime


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def workflow_task_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One op of the state machine (step, run_node, wait_node, fail) or the dispatcher."""
    from agentplane.workflows.engine import handle

    result = run(handle(get_runtime(), event))
    # One count per op; the dispatcher's also what it delivered and settled.
    metrics.add_metric(name=f"WorkflowOp_{event.get('op')}", unit=MetricUnit.Count, value=1)
    if event.get("op") == "dispatch":
        metrics.add_metric(
            name="WorkflowCallbacksDelivered", unit=MetricUnit.Count, value=result["delivered"]
        )
        metrics.add_metric(
            name="WorkflowCallbacksSettled",
            unit=MetricUnit.Count,
            value=sum(result["settled"].values()),
        )
    return result


def workflows_handler(http: Callable[[], Handler]) -> Handler:
    """HTTP events to the handler `http()` builds on the first of them, `{"op":
    "events"}` to the events dispatcher, every other event to the task handler."""
    from agentplane.handlers.jobs import events_handler

    def job(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        if event.get("op") == "events":
            return cast(Handler, events_handler)(event, context)
        return cast(Handler, workflow_task_handler)(event, context)

    return http_or_job(http, job)
