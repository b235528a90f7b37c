"""The Step Functions calls the workflows function makes, off the event loop.

botocore is blocking, so each call runs in a worker thread. Errors come back as
`StepFunctionsError` with AWS's error code, so the dispatcher can tell an answer that
settles a callback for good (`SETTLED`) from one worth retrying.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# Error codes that end a callback's delivery, and the outcome each is recorded as.
SETTLED = {
    "TaskDoesNotExist": "task_does_not_exist",
    "TaskTimedOut": "task_timed_out",
    "InvalidToken": "invalid_token",
    "ExecutionDoesNotExist": "execution_does_not_exist",
    "ExecutionAlreadyExists": "execution_already_exists",
}


class StepFunctionsError(Exception):
    """A Step Functions call failed; `code` is AWS's error code (or the exception's)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class StepFunctions:
    """One state machine's executions and task tokens."""

    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self.client = client
        self.state_machine_arn = state_machine_arn

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return await asyncio.to_thread(getattr(self.client, method), **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise StepFunctionsError(
                str(error.get("Code", "ClientError")), str(error.get("Message", exc))
            ) from exc
        except BotoCoreError as exc:
            raise StepFunctionsError(type(exc).__name__, str(exc)) from exc

    async def start(self, name: str, execution_input: dict[str, Any]) -> str:
        """Start an execution named `name` (idempotent by name); its ARN."""
        answer = await self._call(
            "start_execution",
            stateMachineArn=self.state_machine_arn,
            name=name,
            input=json.dumps(execution_input),
        )
        return str(answer["executionArn"])

    async def stop(self, execution_arn: str, cause: str) -> None:
        """Stop an execution."""
        await self._call("stop_execution", executionArn=execution_arn, cause=cause[:32000])

    async def success(self, token: str, output: dict[str, Any]) -> None:
        """Resume a waiting task with `output`."""
        await self._call("send_task_success", taskToken=token, output=json.dumps(output))

    async def failure(self, token: str, error: str, cause: str) -> None:
        """Fail a waiting task with `error` (its Catch sees {Error, Cause})."""
        await self._call("send_task_failure", taskToken=token, error=error[:256], cause=cause)

    async def heartbeat(self, token: str) -> None:
        """Tell a waiting task with HeartbeatSeconds that its work goes on."""
        await self._call("send_task_heartbeat", taskToken=token)

    async def describe(self, execution_arn: str) -> dict[str, Any]:
        """An execution's status and times."""
        return await self._call("describe_execution", executionArn=execution_arn)

    async def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """Every event of an execution's history, oldest first."""
        events: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
            if token:
                kwargs["nextToken"] = token
            page = await self._call("get_execution_history", **kwargs)
            events.extend(page.get("events", []))
            token = page.get("nextToken")
            if not token:
                return events
