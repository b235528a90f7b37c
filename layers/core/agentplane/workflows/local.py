"""Workflows on one machine: the real ASL file in moto's Step Functions interpreter, its
Lambda tasks answered in-process by the workflows function's own task handler.

moto's interpreter (`execute_state_machine: True`) runs each execution in threads and
calls Lambda with a plain `boto3.client("lambda")` from boto3's default session. A
`before-call.lambda.Invoke` handler registered on that session answers the call with
what `engine.handle` returns for the event, so botocore never sends it; the coroutine
runs on the loop that owns the database pool (the dev server's or the test session's),
and the interpreter's thread waits for it. `.waitForTaskToken` really pauses until the
dispatcher's `send_task_success`. Nothing here re-implements the loop the ASL describes.

Used by `agentplane dev` and by the tests (moto is a dependency of the `local` and
`dev` extras, never of the Lambda layer).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from agentplane.observability import logger
from agentplane.runtime import Runtime
from agentplane.workflows.sfn import StepFunctions, StepFunctionsError

ASL = Path(__file__).resolve().parents[4] / "statemachines" / "workflow.asl.json"
REGION = "us-east-1"
ACCOUNT = "123456789012"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:agentplane-workflows:live"
STATE_MACHINE = "agentplane-workflow"
# How long an interpreter thread waits for one task's answer.
TASK_TIMEOUT_SECONDS = 300


def asl_path() -> Path:
    """The state machine definition: beside the package in a checkout, or shipped in it."""
    shipped = Path(__file__).with_name("workflow.asl.json")
    return ASL if ASL.exists() else shipped


def definition(function_arn: str = FUNCTION_ARN) -> str:
    """The ASL with its DefinitionSubstitutions filled in, as SAM would."""
    return asl_path().read_text().replace("${WorkflowsFunctionArn}", function_arn)


class LocalWorkflows:
    """The interpreter, the Lambda bridge and the in-process dispatcher of one runtime."""

    def __init__(self, runtime: Runtime, *, dispatch_interval: float = 2.0) -> None:
        self.runtime = runtime
        self.dispatch_interval = dispatch_interval
        self.calls: Counter[tuple[str, str]] = Counter()
        self._mock: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: Any = None
        self._kicked: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self.client: Any = None
        self.state_machine_arn = ""

    # -- the interpreter -------------------------------------------------------------

    def start(self) -> StepFunctions:
        """Start moto's interpreter, create the state machine, install the bridge on this
        runtime. Call on the loop that owns the runtime's database pool."""
        import boto3
        from moto import mock_aws

        self._loop = asyncio.get_running_loop()
        # The interpreter's own logs: every Fail state as an ERROR with its whole parse
        # tree, and botocore's credential notice. The run's outcome is logged by step.
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        logging.getLogger("botocore.credentials").setLevel(logging.WARNING)
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        self.client = boto3.client("stepfunctions", region_name=REGION)
        role = f"arn:aws:iam::{ACCOUNT}:role/agentplane-workflow"
        self.state_machine_arn = self.client.create_state_machine(
            name=STATE_MACHINE, definition=definition(), roleArn=role, type="STANDARD"
        )["stateMachineArn"]
        self.ensure_bridge()
        sfn = BridgedStepFunctions(self, self.client, self.state_machine_arn)
        self.runtime.use_step_functions(sfn)
        self.runtime.workflow_kicker = self.kick
        self._kicked = asyncio.Event()
        return sfn

    def ensure_bridge(self) -> None:
        """Register the Lambda bridge on boto3's current default session (a mock
        started since may have replaced it)."""
        import boto3

        session = boto3._get_default_session()
        with self._lock:
            if session is not self._session:
                session.events.register("before-call.lambda.Invoke", self._invoke)
                self._session = session

    def stop(self) -> None:
        """Stop the dispatcher, the bridge and the interpreter."""
        if self._task is not None:
            self._task.cancel()
        if self._session is not None:
            self._session.events.unregister("before-call.lambda.Invoke", self._invoke)
            self._session = None
        self.runtime.workflow_kicker = None
        if self._mock is not None:
            self._mock.stop()
            self._mock = None

    # -- the Lambda bridge -----------------------------------------------------------

    def _invoke(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        """Answer one Lambda Invoke with the workflows task handler's return value."""
        from botocore.awsrequest import AWSResponse
        from botocore.response import StreamingBody

        from agentplane.workflows.engine import handle

        event = json.loads(params.get("body") or b"{}")
        node = event.get("node") or {}
        self.calls[(str(event.get("op")), str(node.get("id", "")))] += 1
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(handle(self.runtime, event), self._loop)
        parsed: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "live"}
        try:
            body = json.dumps(future.result(TASK_TIMEOUT_SECONDS), default=str).encode()
        except Exception as exc:
            logger.warning(
                "workflow task failed",
                extra={"op": event.get("op"), "error": f"{type(exc).__name__}: {exc}"},
            )
            body = json.dumps(
                {"errorMessage": str(exc), "errorType": type(exc).__name__, "stackTrace": []}
            ).encode()
            parsed["FunctionError"] = "Unhandled"
        parsed["Payload"] = StreamingBody(io.BytesIO(body), len(body))
        parsed["ResponseMetadata"] = {"HTTPStatusCode": 200, "HTTPHeaders": {}}
        return AWSResponse(FUNCTION_ARN, 200, {}, None), parsed

    # -- the dispatcher ----------------------------------------------------------------

    def kick(self) -> None:
        """Wake the dispatcher (after a commit that wrote callbacks)."""
        if self._kicked is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._kicked.set)

    def run_dispatcher(self) -> asyncio.Task[None]:
        """Deliver callbacks when kicked, and every `dispatch_interval` seconds."""
        self._task = asyncio.get_running_loop().create_task(self._dispatch_forever())
        return self._task

    async def _dispatch_forever(self) -> None:
        from agentplane.workflows.dispatcher import dispatch

        assert self._kicked is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kicked.wait(), self.dispatch_interval)
            self._kicked.clear()
            try:
                await dispatch(self.runtime)
            except Exception:
                logger.exception("workflow dispatcher failed")

    async def stop_dispatcher(self) -> None:
        """Stop delivering (the dispatcher is down); pending rows wait in the outbox."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class BridgedStepFunctions(StepFunctions):
    """The local client: makes sure the bridge is on the session before each call that
    may start the interpreter."""

    def __init__(self, local: LocalWorkflows, client: Any, arn: str) -> None:
        super().__init__(client, arn)
        self.local = local

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        self.local.ensure_bridge()
        return await super()._call(method, **kwargs)

    async def stop(self, execution_arn: str, cause: str) -> None:
        """Stop the execution. moto marks it stopped, but a thread waiting for a task
        token only notices when that wait ends (at its TimeoutSeconds): release the
        execution's waits so its threads end now and it reports ABORTED, as AWS does."""
        await super().stop(execution_arn, cause)
        async with self.local.runtime.database.service("local: release a stopped execution") as tx:
            cur = await tx.execute(
                "select task_token from public.workflow_waits where execution_arn = %s",
                (execution_arn,),
            )
            tokens = [row[0] for row in await cur.fetchall()]
        for token in tokens:
            with contextlib.suppress(StepFunctionsError):
                await super().failure(token, "States.Stopped", cause)


def history_transitions(events: list[dict[str, Any]]) -> int:
    """State transitions in an execution's history (each state entered), what Step
    Functions bills."""
    return sum(1 for e in events if str(e.get("type", "")).endswith("StateEntered"))
