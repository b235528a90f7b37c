"""The callback dispatcher: delivers the workflow outbox to Step Functions.

Rows are written in the transaction that made them true (a decision, a runner's result,
a run started, resumed or cancelled). The dispatcher takes due rows `FOR UPDATE SKIP
LOCKED`, so two dispatchers at once never send the same row, sends each, and records
the outcome in the same transaction. An answer that settles the row for good is an
outcome of its own (`TaskDoesNotExist`, `TaskTimedOut`, `InvalidToken`, an execution
that is gone or already exists), logged and shown on the run; anything else (throttling,
the network) is retried with backoff until `MAX_ATTEMPTS`.

It also heartbeats the open waits of `action` nodes (their Task states have
`HeartbeatSeconds`): while agentplane still tracks the action, the execution hears so;
if the dispatcher or the database is gone for longer, the task times out instead of
hanging silently.

Runs on the schedule (`{"op": "dispatch"}` every minute), when the actions function
kicks it after a decision or result, and in-process after the workflows routes commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from agentplane.observability import logger
from agentplane.runtime import Runtime
from agentplane.workflows.engine import ACTION_ERRORS, execution_name
from agentplane.workflows.sfn import SETTLED, StepFunctionsError

MAX_ATTEMPTS = 20
BATCH = 100

DUE = """
select o.id, o.run_id, o.kind, o.node_id, o.action_id, o.body, o.attempts,
       w.task_token, w.attempt, r.execution_arn
  from public.workflow_outbox o
  join public.workflow_runs r on r.id = o.run_id
  left join public.workflow_waits w on w.id = o.wait_id
 where o.delivered_at is null and o.next_attempt_at <= now() {only}
 order by o.next_attempt_at, o.id
 limit %s
   for update of o skip locked
"""
DELIVERED = """
update public.workflow_outbox
   set delivered_at = now(), outcome = %s, attempts = attempts + 1, last_error = %s
 where id = %s
"""
RETRY = """
update public.workflow_outbox
   set attempts = attempts + 1, last_error = %s,
       next_attempt_at = now() + make_interval(secs => %s)
 where id = %s
"""
STARTED = """
update public.workflow_runs
   set execution_arn = %s, status = case when status = 'pending' then 'running' else status end,
       started_at = coalesce(started_at, now())
 where id = %s
"""
HEARTBEATS = """
select w.id, w.task_token
  from public.workflow_waits w
  join public.agent_actions a on a.id = w.action_id
 where w.resolved_at is null and w.kind = 'action'
   and coalesce(w.heartbeat_at, w.created_at) <= now() - make_interval(secs => %s)
   and a.status in ('pending', 'approved', 'claimed')
 order by coalesce(w.heartbeat_at, w.created_at)
 limit %s
   for update of w skip locked
"""


@dataclass
class DispatchResult:
    """What one dispatch did."""

    delivered: int = 0
    settled: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    heartbeats: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The counts, as the handler returns them."""
        return {
            "delivered": self.delivered,
            "settled": self.settled,
            "retried": self.retried,
            "heartbeats": self.heartbeats,
        }


def _callback_output(run_id: UUID, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": str(run_id),
        "results": [
            {
                "node_id": row["node_id"],
                "attempt": row["attempt"],
                "status": "succeeded",
                "action_id": str(row["action_id"]),
            }
        ],
    }


async def _deliver(runtime: Runtime, row: dict[str, Any]) -> str | None:
    """Send one row; the ARN of an execution it started, if any."""
    sfn = runtime.step_functions
    body = row["body"]
    kind = row["kind"]
    if kind == "start":
        name = execution_name(row["run_id"], int(body.get("execution", 1)))
        return await sfn.start(name, {"run_id": str(row["run_id"])})
    if kind == "stop":
        if row["execution_arn"]:
            await sfn.stop(row["execution_arn"], body.get("cause", "cancelled"))
        return None
    if row["task_token"] is None:
        raise StepFunctionsError("TaskDoesNotExist", "the wait of this callback is gone")
    if kind == "success":
        await sfn.success(row["task_token"], _callback_output(row["run_id"], row))
    else:
        status = str(body.get("action_status", "failed"))
        cause = {
            "action_id": str(row["action_id"]),
            "action_status": status,
            "reason": body.get("reason"),
            "output": body.get("output"),
        }
        await sfn.failure(
            row["task_token"],
            ACTION_ERRORS.get(status, "Action.Failed"),
            json.dumps(cause, default=str)[:32000],
        )
    return None


async def dispatch(
    runtime: Runtime, *, ids: list[int] | None = None, limit: int = BATCH
) -> DispatchResult:
    """Deliver what is due (only rows `ids`, when given), then heartbeat open waits."""
    result = DispatchResult()
    if not runtime.settings.workflow_state_machine_arn and "step_functions" not in vars(runtime):
        logger.warning("workflow dispatcher: no state machine is configured; nothing delivered")
        return result
    only = "and o.id = any(%s)" if ids is not None else ""
    args: tuple[Any, ...] = (ids, limit) if ids is not None else (limit,)
    async with runtime.database.service("workflow callbacks", routine=True) as tx:
        cur = await tx.execute(DUE.format(only=only), args)
        assert cur.description is not None
        names = [c.name for c in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]
        for row in rows:
            log = {
                "run_id": str(row["run_id"]),
                "outbox_id": row["id"],
                "kind": row["kind"],
                "node_id": row["node_id"],
            }
            try:
                started = await _deliver(runtime, row)
            except StepFunctionsError as exc:
                if exc.code in SETTLED:
                    outcome = SETTLED[exc.code]
                    await tx.execute(DELIVERED, (outcome, str(exc)[:2000], row["id"]))
                    result.settled[outcome] = result.settled.get(outcome, 0) + 1
                    logger.warning(
                        "workflow callback settled without delivery",
                        extra={**log, "outcome": outcome, "error": str(exc)},
                    )
                    continue
                attempts = int(row["attempts"]) + 1
                if attempts >= MAX_ATTEMPTS:
                    await tx.execute(DELIVERED, ("gave_up", str(exc)[:2000], row["id"]))
                    result.settled["gave_up"] = result.settled.get("gave_up", 0) + 1
                    logger.error("workflow callback given up", extra={**log, "error": str(exc)})
                    continue
                await tx.execute(RETRY, (str(exc)[:2000], min(2**attempts, 300), row["id"]))
                result.retried += 1
                logger.warning(
                    "workflow callback will be retried",
                    extra={**log, "attempts": attempts, "error": str(exc)},
                )
                continue
            await tx.execute(DELIVERED, ("delivered", None, row["id"]))
            if started is not None:
                await tx.execute(STARTED, (started, row["run_id"]))
            result.delivered += 1
            logger.info("workflow callback delivered", extra=log)
    if ids is None:
        result.heartbeats = await heartbeat(runtime)
    return result


async def heartbeat(runtime: Runtime, *, limit: int = BATCH) -> int:
    """SendTaskHeartbeat for open `action` waits not heartbeaten for a third of their
    HeartbeatSeconds (counted from the wait's start); how many were sent.

    Only `TaskTimedOut` closes a wait: the task is over and its execution has moved on.
    A token that is not found (yet, or any more) leaves the wait open, so the action's
    result still becomes its callback, whose delivery records how it settled. (moto's
    interpreter, for one, knows a token's heartbeat only once the task's Lambda has
    returned, a moment after the wait is stored.)"""
    interval = max(1, runtime.settings.workflow_heartbeat_seconds // 3)
    sent = 0
    async with runtime.database.service("workflow heartbeats", routine=True) as tx:
        cur = await tx.execute(HEARTBEATS, (interval, limit))
        for wait_id, token in await cur.fetchall():
            try:
                await runtime.step_functions.heartbeat(token)
            except StepFunctionsError as exc:
                timed_out = exc.code == "TaskTimedOut"
                await tx.execute(
                    "update public.workflow_waits set heartbeat_at = now(),"
                    " resolved_at = case when %s then now() end where id = %s",
                    (timed_out, wait_id),
                )
                logger.warning(
                    "workflow heartbeat not delivered",
                    extra={"wait_id": str(wait_id), "error": str(exc), "closed": timed_out},
                )
                continue
            await tx.execute(
                "update public.workflow_waits set heartbeat_at = now() where id = %s", (wait_id,)
            )
            sent += 1
    return sent
