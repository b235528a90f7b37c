"""The Step Functions task handler: the ops `statemachines/workflow.asl.json` sends.

    step       persist the last wave's results, run `transform` nodes inline, and say
               what comes next: the run's end, one node (`single`), a wave (`ready`,
               run by a Map state), a retry's backoff, or a fresh execution
    run_node   an `llm` node: one model turn with the starter's key
    wait_node  an `action` or `approval` node: its pending action and the task token in
               one transaction; the execution resumes when the dispatcher sends the
               token back after the action is final
    fail       the execution caught an error: the run is failed, resumable

Server jobs, so each works as `service_role` (and says why); an `llm` node's model call
works as the run's starter (workflows/llm.py). Every op is idempotent under the Lambda
retries the state machine makes: results are applied only to the attempt they are for.
"""

from __future__ import annotations

import json
import math
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from agentplane.actions.models import ActionPayload
from agentplane.actions.service import propose
from agentplane.db.rows import Tx
from agentplane.errors import ProblemError
from agentplane.observability import logger
from agentplane.runtime import Runtime
from agentplane.tools.catalog import GATE_TOOL
from agentplane.workflows import state as st
from agentplane.workflows.definition import (
    ActionConfig,
    ApprovalConfig,
    Graph,
    LlmConfig,
    WaitConfig,
    evaluate,
    graph_of,
    render,
)

# Seconds a wait may outlast its action's TTL (decision, claim, run, callback delivery).
WAIT_MARGIN_SECONDS = 900
# Estimated history events per wave: the step task and its choice, plus per node a
# Map iteration and its states (Step Functions counts ~5 events per Task state).
EVENTS_PER_STEP = 8
EVENTS_PER_SINGLE = 6
EVENTS_PER_MAP = 6
EVENTS_PER_ITEM = 10


class WorkflowRunNotFoundError(Exception):
    """The op names a run that does not exist (deleted with its workflow)."""


class NodeError(Exception):
    """A node that cannot be run as configured (its tool is not allowed, its wait's
    expression is not a number): the node fails with this reason."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(cause)
        self.error = error
        self.cause = cause


LOCK_RUN = "select * from public.workflow_runs where id = %s for update"
READ_RUN = "select * from public.workflow_runs where id = %s"
SAVE_STATE = """
update public.workflow_runs
   set state = %s, status = %s, output = coalesce(%s, output), error = %s,
       finished_at = case when %s in ('succeeded', 'failed') then now() else finished_at end,
       started_at = coalesce(started_at, now())
 where id = %s
"""


async def _run(tx: Tx, run_id: UUID, *, lock: bool) -> dict[str, Any]:
    cur = await tx.execute(LOCK_RUN if lock else READ_RUN, (run_id,))
    row = await cur.fetchone()
    if row is None:
        raise WorkflowRunNotFoundError(f"workflow run {run_id} does not exist")
    assert cur.description is not None
    return dict(zip((c.name for c in cur.description), row, strict=True))


def _error(error: str, cause: str, **extra: Any) -> dict[str, Any]:
    return {"Error": error, "Cause": cause, **extra}


def _caught(error: Any) -> dict[str, Any]:
    """A Catch's `{Error, Cause}`, with a Lambda error's JSON cause unwrapped."""
    if not isinstance(error, dict):
        return _error("Workflow.Error", str(error))
    cause = error.get("Cause")
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and "errorMessage" in parsed:
            return _error(str(parsed.get("errorType", error.get("Error"))), parsed["errorMessage"])
        if isinstance(parsed, dict) and "action_status" in parsed:
            # A callback's failure: what became of the node's action, and why.
            reason = parsed.get("reason")
            text = f"action {parsed.get('action_id')} was {parsed['action_status']}"
            return {
                "Error": str(error.get("Error")),
                **parsed,
                "Cause": f"{text}: {reason}" if reason else text,
            }
    return _error(str(error.get("Error", "Workflow.Error")), str(cause or ""))


def _results(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node result in the execution's state, whichever path made it: a Map's
    item results, a callback's or run_node's `{results: [...]}`, a caught single node
    (`failed_node`), or a single `wait` node that is simply over."""
    found: list[dict[str, Any]] = []

    def add(item: Any) -> None:
        if isinstance(item, list):
            for x in item:
                add(x)
        elif isinstance(item, dict):
            if "results" in item:
                add(item["results"])
            elif "node_id" in item:
                found.append(item)
            elif isinstance(item.get("node"), dict) and item["node"].get("type") == "wait":
                node = item["node"]
                found.append(
                    {"node_id": node["id"], "attempt": node.get("attempt"), "status": "succeeded"}
                )

    add(state.get("results"))
    single = state.get("single") or {}
    if "failed_node" in state:
        found.append(
            {
                "node_id": state["failed_node"],
                "attempt": single.get("attempt"),
                "status": "failed",
                "error": state.get("error"),
            }
        )
    elif single.get("type") == "wait" and not found:
        found.append(
            {"node_id": single["id"], "attempt": single.get("attempt"), "status": "succeeded"}
        )
    return found


ACTION_ERRORS = {
    "rejected": "Action.Rejected",
    "expired": "Action.Expired",
    "cancelled": "Action.Cancelled",
    "failed": "Action.Failed",
}
ACTION_ROW = """
select status, output, decision_reason, decided_by, decided_at
  from public.agent_actions where id = %s
"""


async def _apply(tx: Tx, graph: Graph, nodes: dict[str, Any], result: dict[str, Any]) -> None:
    node_id = result.get("node_id")
    if node_id not in nodes:
        return
    node = nodes[node_id]
    attempt = result.get("attempt")
    if node["status"] not in ("running", "waiting") or (
        attempt is not None and int(attempt) != int(node.get("attempts", 0))
    ):
        return  # a stale or repeated result: already applied
    config = graph.configs[node_id]
    node_type = graph.nodes[node_id].type
    extra: dict[str, Any] = {}
    output: Any = result.get("output")
    reason = None
    if node.get("action_id"):
        cur = await tx.execute(ACTION_ROW, (node["action_id"],))
        row = await cur.fetchone()
        if row is not None:
            status, action_output, reason, decided_by, decided_at = row
            extra["action_status"] = status
            if node_type == "approval":
                output = {
                    "approved_by": str(decided_by) if decided_by else None,
                    "reason": reason,
                    "decided_at": decided_at.isoformat() if decided_at else None,
                }
            else:
                output = action_output
    if node_type == "llm" and result.get("status") == "succeeded":
        output = node.pop("pending_output", output)
    if result.get("status") == "succeeded":
        st.succeed(node, output, **extra)
    else:
        error = (
            _caught(result.get("error"))
            if result.get("error")
            else _error("Workflow.NodeFailed", f"node {node_id} failed")
        )
        status = extra.get("action_status")
        if status in ACTION_ERRORS:
            # What became of the action, from the database (the callback's cause is a
            # copy, and not every Step Functions implementation keeps it).
            text = f"action {node['action_id']} was {status}"
            error = {
                "Error": ACTION_ERRORS[status],
                "Cause": f"{text}: {reason}" if reason else text,
                "action_id": node["action_id"],
                "action_status": status,
            }
        st.fail(
            node,
            config.max_attempts,
            config.backoff_seconds,
            error,
            output=output if node_type == "action" else None,
            **extra,
        )


def _transform(
    graph: Graph, run_input: dict[str, Any], state: dict[str, Any], node_id: str
) -> None:
    node = state["nodes"][node_id]
    config = graph.configs[node_id]
    st.start(node)
    try:
        output = evaluate(config.expression, st.context(run_input, state))  # type: ignore[attr-defined]
    except ValueError as exc:
        st.fail(
            node, config.max_attempts, config.backoff_seconds, _error("Transform.Failed", str(exc))
        )
        return
    st.succeed(node, output)


def _item(
    runtime: Runtime, graph: Graph, run_input: dict[str, Any], state: dict[str, Any], node_id: str
) -> dict[str, Any] | None:
    """The Map item of a ready node (marked running); None when it failed to start."""
    node = state["nodes"][node_id]
    node_type = graph.nodes[node_id].type
    config = graph.configs[node_id]
    attempt = st.start(node)
    item: dict[str, Any] = {"id": node_id, "type": node_type, "attempt": attempt}
    if isinstance(config, WaitConfig):
        seconds: Any = config.seconds
        if config.seconds_expression is not None:
            try:
                seconds = evaluate(config.seconds_expression, st.context(run_input, state))
            except ValueError as exc:
                seconds = exc
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            st.fail(
                node,
                config.max_attempts,
                config.backoff_seconds,
                _error(
                    "Wait.BadSeconds", f"seconds_expression gave {seconds!r}, not a number >= 0"
                ),
            )
            return None
        item["seconds"] = math.ceil(seconds)
    elif isinstance(config, ActionConfig):
        item["timeout_seconds"] = (
            config.ttl_seconds + runtime.settings.approval_ttl_seconds + WAIT_MARGIN_SECONDS
        )
        item["heartbeat_seconds"] = runtime.settings.workflow_heartbeat_seconds
    elif isinstance(config, ApprovalConfig):
        item["timeout_seconds"] = config.ttl_seconds + WAIT_MARGIN_SECONDS
    return item


NONE = {"id": "", "type": "none"}


async def step(
    runtime: Runtime, execution: dict[str, Any], execution_arn: str | None
) -> dict[str, Any]:
    """Apply the execution's results and plan what comes next (see the module doc)."""
    run_id = UUID(str(execution["run_id"]))
    results = _results(execution)
    answer: dict[str, Any] = {
        "run_id": str(run_id),
        "status": "running",
        "ready": [],
        "single": NONE,
        "wait_seconds": 0,
    }
    continue_as: dict[str, Any] | None = None
    async with runtime.database.service("workflow step") as tx:
        run = await _run(tx, run_id, lock=True)
        current = execution_name(run_id, int(run["executions"]))
        if execution_arn and not execution_arn.endswith(f":{current}"):
            logger.warning(
                "a superseded execution asked for a step; it ends",
                extra={"run_id": str(run_id), "execution_arn": execution_arn},
            )
            return {**answer, "status": "superseded"}
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return {**answer, "status": run["status"]}
        if execution_arn and run["execution_arn"] != execution_arn:
            await tx.execute(
                "update public.workflow_runs set execution_arn = %s where id = %s",
                (execution_arn, run_id),
            )
        graph = graph_of(run["definition"])
        state = run["state"]
        nodes = state.setdefault("nodes", {})
        for node_id in graph.order:
            nodes.setdefault(node_id, {"status": "pending", "attempts": 0})
        for result in results:
            await _apply(tx, graph, nodes, result)
        run_input = run["input"]
        while True:
            edge = st.frontier(graph, run_input, state)
            transforms = [n for n in edge.ready if graph.nodes[n].type == "transform"]
            if not transforms or edge.unhandled:
                break
            for node_id in transforms:
                _transform(graph, run_input, state, node_id)
        status, error, output = "running", None, None
        if edge.unhandled:
            failed = edge.unhandled[0]
            cause = nodes[failed].get("error") or {}
            status = "failed"
            error = f"node {failed} failed: {cause.get('Error', '')}: {cause.get('Cause', '')}"
        elif edge.done:
            status, output = "succeeded", st.sinks_output(graph, state)
        elif not edge.ready:
            wait = min(edge.delayed.values(), default=None)
            if wait is None:
                status, error = "failed", "the run has nothing to run and is not finished"
            else:
                seconds = max(1, math.ceil((wait - st.now()).total_seconds()))
                answer.update(status="backoff", wait_seconds=seconds)
        else:
            estimate = EVENTS_PER_STEP + (
                EVENTS_PER_SINGLE
                if len(edge.ready) == 1
                else EVENTS_PER_MAP + EVENTS_PER_ITEM * len(edge.ready)
            )
            spent = int(state.get("history_events", 0))
            if spent and spent + estimate > runtime.settings.workflow_history_budget:
                continue_as = await _continue(tx, run)
                state["history_events"] = 0
                answer["status"] = "continued"
            else:
                state["history_events"] = spent + estimate
                items = [
                    item
                    for n in edge.ready
                    if (item := _item(runtime, graph, run_input, state, n)) is not None
                ]
                if not items:  # each failed to start: plan again at once
                    answer.update(status="backoff", wait_seconds=0)
                elif len(items) == 1:
                    answer["single"] = items[0]
                else:
                    answer["ready"] = items
        if status != "running":
            answer["status"] = status
        run_status = (
            status
            if status != "running"
            else ("waiting" if any(n["status"] == "waiting" for n in nodes.values()) else "running")
        )
        await tx.execute(
            SAVE_STATE,
            (
                Jsonb(state),
                run_status,
                Jsonb(output) if output is not None else None,
                error,
                run_status,
                run_id,
            ),
        )
    if status in ("succeeded", "failed"):
        logger.info(
            "workflow run ended", extra={"run_id": str(run_id), "status": status, "error": error}
        )
    if continue_as is not None:
        from agentplane.workflows.dispatcher import dispatch

        await dispatch(runtime, ids=[continue_as["outbox_id"]])
    return answer


START_EXECUTION = """
insert into public.workflow_outbox (organization_id, run_id, kind, body)
values (%s, %s, 'start', %s)
returning id
"""


def execution_name(run_id: UUID, n: int) -> str:
    """The name of a run's n-th execution (StartExecution is idempotent by name)."""
    return f"{run_id}-{n}"


async def start_execution(tx: Tx, run: dict[str, Any]) -> int:
    """Queue the run's next execution in the caller's transaction; the outbox row id."""
    n = int(run["executions"]) + 1
    await tx.execute(
        "update public.workflow_runs set executions = %s where id = %s", (n, run["id"])
    )
    # The row names only the execution's number: its name and input come from the row's
    # run (which the foreign key keeps in the row's organization), never from the body.
    body = {"execution": n}
    cur = await tx.execute(START_EXECUTION, (run["organization_id"], run["id"], Jsonb(body)))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def _continue(tx: Tx, run: dict[str, Any]) -> dict[str, Any]:
    """Hand the run to a fresh execution before this one's history grows too long."""
    outbox_id = await start_execution(tx, run)
    logger.info(
        "workflow run continues in a fresh execution",
        extra={"run_id": str(run["id"]), "execution": int(run["executions"]) + 1},
    )
    return {"outbox_id": outbox_id}


async def run_node(runtime: Runtime, run_id: UUID, item: dict[str, Any]) -> dict[str, Any]:
    """An `llm` node: render its prompt, call the model as the starter, keep the output
    on the node (so large outputs never travel through the execution's state)."""
    node_id = str(item["id"])
    attempt = item.get("attempt")
    async with runtime.database.service("workflow llm node") as tx:
        run = await _run(tx, run_id, lock=False)
    graph = graph_of(run["definition"])
    config = graph.configs[node_id]
    result: dict[str, Any] = {"node_id": node_id, "attempt": attempt}
    if not isinstance(config, LlmConfig):
        raise NodeError(
            "Workflow.NotAnLlmNode", f"node {node_id} is a {graph.nodes[node_id].type} node"
        )
    from agentplane.workflows.llm import LlmNodeError, run_llm_node

    ctx = st.context(run["input"], run["state"])
    try:
        prompt = render(config.prompt, ctx)
        system = render(config.system, ctx) if config.system is not None else None
        output = await run_llm_node(
            runtime,
            user_id=run["started_by"],
            config=config,
            prompt=prompt if isinstance(prompt, str) else json.dumps(prompt),
            system=system if isinstance(system, str) or system is None else json.dumps(system),
        )
    except LlmNodeError as exc:
        return {
            "run_id": str(run_id),
            "results": [{**result, "status": "failed", "error": _error(exc.error, exc.cause)}],
        }
    except ValueError as exc:
        return {
            "run_id": str(run_id),
            "results": [
                {**result, "status": "failed", "error": _error("Template.Failed", str(exc))}
            ],
        }
    async with runtime.database.service("workflow llm node output") as tx:
        locked = await _run(tx, run_id, lock=True)
        node = locked["state"]["nodes"].get(node_id, {})
        if node.get("status") == "running" and node.get("attempts") == attempt:
            node["pending_output"] = output
            await tx.execute(
                "update public.workflow_runs set state = %s where id = %s",
                (Jsonb(locked["state"]), run_id),
            )
    return {"run_id": str(run_id), "results": [{**result, "status": "succeeded"}]}


UPSERT_WAIT = """
insert into public.workflow_waits
  (organization_id, run_id, node_id, attempt, action_id, kind, task_token, execution_arn)
values (%s, %s, %s, %s, %s, %s, %s, %s)
on conflict (action_id) do update
  set task_token = excluded.task_token, execution_arn = excluded.execution_arn,
      resolved_at = null
returning id
"""
CALLBACK_NOW = """
insert into public.workflow_outbox
  (organization_id, run_id, kind, wait_id, node_id, action_id, body)
values (%s, %s, %s, %s, %s, %s, %s)
"""
FINAL = {
    "approval": {"approved": True, "rejected": False, "expired": False, "cancelled": False},
    "action": {
        "succeeded": True,
        "failed": False,
        "rejected": False,
        "expired": False,
        "cancelled": False,
    },
}


async def wait_node(
    runtime: Runtime, run_id: UUID, item: dict[str, Any], task_token: str, execution_arn: str | None
) -> dict[str, Any]:
    """An `action` or `approval` node: propose its action and store the task token, in
    one transaction. The task resumes when the token is sent back (dispatcher.py)."""
    node_id = str(item["id"])
    attempt = int(item.get("attempt") or 1)
    async with runtime.database.service("workflow wait node") as tx:
        run = await _run(tx, run_id, lock=True)
        if run["status"] == "cancelled":
            raise NodeError("Workflow.Cancelled", f"run {run_id} was cancelled")
        graph = graph_of(run["definition"])
        config = graph.configs[node_id]
        ctx = st.context(run["input"], run["state"])
        kind = graph.nodes[node_id].type
        try:
            if isinstance(config, ActionConfig):
                args = render(config.args, ctx)
                payload = ActionPayload.model_validate({"tool": config.tool, "args": args})
                gate = False
            elif isinstance(config, ApprovalConfig):
                title, details = render(config.title, ctx), render(config.details, ctx)
                payload = ActionPayload.model_construct(
                    tool=GATE_TOOL,
                    args={
                        "workflow_run_id": str(run_id),
                        "node_id": node_id,
                        "title": title,
                        "details": details,
                    },
                )
                gate = True
            else:
                raise NodeError("Workflow.NotAWaitNode", f"node {node_id} is a {kind} node")
        except ValueError as exc:
            raise NodeError("Template.Failed", f"node {node_id}: {exc}") from None
        try:
            action, _ = await propose(
                tx,
                config.agent_id,
                payload,
                ttl_seconds=config.ttl_seconds,
                idempotency_key=f"workflow:{run_id}:{run['executions']}:{node_id}:{attempt}",
                max_attempts=3,
                source="workflow",
                workflow_run_id=run_id,
                workflow_node_id=node_id,
                gate=gate,
                proposed_by=run["started_by"],
                signer=lambda: runtime.signer,
                approval_ttl_seconds=runtime.settings.approval_ttl_seconds,
            )
        except ProblemError as exc:
            raise NodeError("Action.NotProposed", f"node {node_id}: {exc.detail}") from None
        cur = await tx.execute(
            UPSERT_WAIT,
            (
                run["organization_id"],
                run_id,
                node_id,
                attempt,
                action.id,
                kind,
                task_token,
                execution_arn,
            ),
        )
        wait_row = await cur.fetchone()
        assert wait_row is not None
        final = FINAL[kind].get(action.status)
        if final is not None:  # a retried task whose action was decided meanwhile
            await tx.execute(
                "update public.workflow_waits set resolved_at = now() where id = %s", (wait_row[0],)
            )
            await tx.execute(
                CALLBACK_NOW,
                (
                    run["organization_id"],
                    run_id,
                    "success" if final else "failure",
                    wait_row[0],
                    node_id,
                    action.id,
                    Jsonb({"action_status": action.status, "attempt": attempt}),
                ),
            )
        state = run["state"]
        node = state["nodes"][node_id]
        if node.get("attempts") == attempt and node["status"] in ("running", "waiting"):
            node.update(status="waiting", action_id=str(action.id), action_status=action.status)
        await tx.execute(
            "update public.workflow_runs set state = %s, status = 'waiting' where id = %s",
            (Jsonb(state), run_id),
        )
    logger.info(
        "workflow node waits for its action",
        extra={
            "run_id": str(run_id),
            "node_id": node_id,
            "action_id": str(action.id),
            "kind": kind,
        },
    )
    if final is not None:
        from agentplane.workflows.dispatcher import dispatch

        await dispatch(runtime)
    return {"node_id": node_id, "action_id": str(action.id)}


async def fail(runtime: Runtime, run_id: UUID, error: Any) -> dict[str, Any]:
    """The execution caught an error outside any node: the run is failed (resumable)."""
    caught = _caught(error)
    message = f"{caught.get('Error')}: {caught.get('Cause')}"
    async with runtime.database.service("workflow run failed") as tx:
        await tx.execute(
            "update public.workflow_runs set status = 'failed', error = %s, finished_at = now()"
            " where id = %s and status not in ('succeeded', 'failed', 'cancelled')",
            (message[:2000], run_id),
        )
    logger.error("workflow execution failed", extra={"run_id": str(run_id), "error": message})
    return {"run_id": str(run_id), "status": "failed"}


async def handle(runtime: Runtime, event: dict[str, Any]) -> dict[str, Any]:
    """Dispatch one task event on its `op` (the state machine's, or the schedule's
    `{"op": "dispatch"}`)."""
    op = event.get("op")
    if op == "dispatch":
        from agentplane.workflows.dispatcher import dispatch

        return (await dispatch(runtime)).as_dict()
    if op == "step":
        execution = event.get("state") or {k: v for k, v in event.items() if k != "op"}
        return await step(runtime, execution, event.get("execution_arn"))
    run_id = UUID(str(event["run_id"]))
    if op == "run_node":
        return await run_node(runtime, run_id, event["node"])
    if op == "wait_node":
        return await wait_node(
            runtime, run_id, event["node"], str(event["task_token"]), event.get("execution_arn")
        )
    if op == "fail":
        return await fail(runtime, run_id, event.get("error"))
    raise ValueError(
        f"the workflows function has no op {op!r}; ops: step, run_node, wait_node, fail, dispatch"
    )
