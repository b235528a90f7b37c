"""Powertools Logger, Metrics and Tracer shared by the layer (one of each per process)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "agentplane"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="agentplane", service=SERVICE)

Handler = TypeVar("Handler", bound=Callable[..., Any])


class LazyTracer:
    """Powertools' Tracer, built at the first traced invocation, and only if tracing is on.

    Building a Tracer imports the X-Ray SDK's core and botocore (about 0.3 s here), so a
    cold start pays for it only where traces are sent: in Lambda with tracing enabled
    (Powertools' own rule, `Tracer._is_tracer_disabled`), never locally or in tests.
    `tests/integration/test_handlers_on_events.py` pins that importing a function does not
    load the SDK.
    """

    def __init__(self, service: str) -> None:
        self._service = service
        self._tracer: Tracer | None = None

    @property
    def enabled(self) -> bool:
        """Whether this process sends traces."""
        return not Tracer._is_tracer_disabled()

    @property
    def tracer(self) -> Tracer:
        """The Powertools Tracer (built on first use)."""
        if self._tracer is None:
            self._tracer = Tracer(service=self._service)
        return self._tracer

    def capture_lambda_handler(
        self, *, capture_response: bool = True
    ) -> Callable[[Handler], Handler]:
        """Trace a handler as `Tracer.capture_lambda_handler` does, where tracing is on."""

        def decorate(handler: Handler) -> Handler:
            chosen: list[Callable[..., Any]] = []

            @functools.wraps(handler)
            def run(event: Any, context: Any) -> Any:
                if not chosen:
                    chosen.append(
                        self.tracer.capture_lambda_handler(
                            handler, capture_response=capture_response
                        )
                        if self.enabled
                        else handler
                    )
                return chosen[0](event, context)

            return run  # type: ignore[return-value]

        return decorate


tracer = LazyTracer(SERVICE)
