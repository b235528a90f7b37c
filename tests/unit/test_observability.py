"""The tracer is built only where traces are sent: importing or running a handler
elsewhere loads no X-Ray SDK."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from agentplane.observability import LazyTracer


def test_a_handler_runs_untraced_where_tracing_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # Outside Lambda (no LAMBDA_TASK_ROOT), as in tests and `make dev`
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    tracer = LazyTracer("test")
    calls: list[Any] = []

    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
        calls.append(event)
        return {"ok": True}

    assert not tracer.enabled
    assert handler({"n": 1}, None) == {"ok": True}
    assert handler({"n": 2}, None) == {"ok": True}
    assert calls == [{"n": 1}, {"n": 2}]
    assert handler.__name__ == "handler"
    assert "aws_xray_sdk.core" not in sys.modules


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({"LAMBDA_TASK_ROOT": "/var/task"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}, False),
        ({}, False),
    ],
    ids=["lambda", "lambda-disabled", "sam-local", "local"],
)
def test_tracing_follows_the_powertools_rule(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], enabled: bool
) -> None:
    for name in ("LAMBDA_TASK_ROOT", "POWERTOOLS_TRACE_DISABLED", "AWS_SAM_LOCAL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert LazyTracer("test").enabled is enabled
