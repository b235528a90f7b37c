"""Lambda entry points built from the layer.

`http` serves a FastAPI app through Mangum; `jobs` runs the scheduled and asynchronous
jobs without importing the web stack; `loop` is the one event loop of the process that
both run on. Import the module a function needs: this package imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def http_or_job(http: Callable[[], Handler], job: Handler) -> Handler:
    """A function that serves both: HTTP events (API Gateway's, with `requestContext`) go
    to the handler `http()` builds on the first of them, so a job never imports the web
    stack; every other event goes to `job`."""
    served: Handler | None = None

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        nonlocal served
        if "requestContext" in event:
            if served is None:
                served = http()
            return served(event, context)
        return job(event, context)

    return handler
