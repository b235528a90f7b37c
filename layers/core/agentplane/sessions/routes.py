"""The runner protocol: sessions, heartbeats, claims under lease, results.

`/runner/*` is for runners only (an `aprt_` token; its transaction sees its own agent's
rows and nothing else). People list an agent's sessions under `/agents/{id}/sessions`.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Response

from agentplane.actions.models import Action
from agentplane.db.pagination import Page
from agentplane.errors import UnauthorizedError
from agentplane.http.deps import RunnerDep, RunnerTx, RuntimeDep, UserTx
from agentplane.http.pagination import PageDep
from agentplane.http.workflow_kick import kick_events, kick_if_workflow
from agentplane.observability import logger
from agentplane.sessions import service
from agentplane.sessions.models import (
    ActionRelease,
    ActionResult,
    ActionResults,
    ActionResultsOutcome,
    ClaimedActions,
    ClaimRequest,
    Session,
    SessionCreate,
    SessionStatus,
)

router = APIRouter(tags=["runner"])


def _agent_of(runner: RunnerDep) -> UUID:
    agent_id = runner.agent_id
    if agent_id is None:  # RunnerDep only builds runner callers; this is a guard
        raise UnauthorizedError("a runner token is required")
    return agent_id


@router.post("/runner/sessions", status_code=201, response_model=Session)
async def register_session(body: SessionCreate, runner: RunnerDep, tx: RunnerTx) -> Session:
    """Register a runner session for the token's agent; it starts online."""
    return await service.register(tx, _agent_of(runner), runner.token_id, body)


@router.post("/runner/sessions/{session_id}/heartbeat", response_model=Session)
async def heartbeat(session_id: UUID, tx: RunnerTx) -> Session:
    """Say the session is alive (409 once the reaper took it offline: register anew)."""
    return await service.heartbeat(tx, session_id)


@router.delete("/runner/sessions/{session_id}", status_code=204, response_class=Response)
async def end_session(session_id: UUID, tx: RunnerTx) -> Response:
    """End the session; actions it still holds are requeued (or failed after the last
    attempt), like an expired lease."""
    await service.end_session(tx, session_id)
    return Response(status_code=204)


@router.post("/runner/claim", response_model=ClaimedActions)
async def claim(
    body: ClaimRequest,
    runner: RunnerDep,
    tx: RunnerTx,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> ClaimedActions:
    """Lease up to `max` approved actions to an online session of this runner, oldest
    first; each comes with its signed approval and a fencing token."""
    agent_id = _agent_of(runner)
    items = await service.claim(
        tx, agent_id, body.session_id, max_items=body.max, lease_seconds=body.lease_seconds
    )
    if items:  # an idle runner polls every few seconds: empty claims are not news
        kick_events(background, runtime)  # action.claimed
        logger.info(
            "actions claimed",
            extra={
                "agent_id": str(agent_id),
                "session_id": str(body.session_id),
                "count": len(items),
                "action_ids": [str(i.id) for i in items],
            },
        )
    return ClaimedActions(items=items)


@router.post("/runner/actions/{action_id}/result", response_model=Action)
async def report_result(
    action_id: UUID,
    body: ActionResult,
    tx: RunnerTx,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> Action:
    """Report how a claimed action ended (409 with `current_status` if the fencing
    token is no longer current)."""
    try:
        action = await service.report_result(
            tx, action_id, body.fencing_token, body.status, body.output
        )
    except service.StaleFencingTokenError as exc:
        _log_stale(action_id, body.fencing_token, exc.extra.get("current_status"))
        raise
    logger.info("action finished", extra={"action_id": str(action_id), "status": action.status})
    kick_if_workflow(background, runtime, [action])
    return action


@router.post("/runner/results", response_model=ActionResultsOutcome)
async def report_results(
    body: ActionResults, tx: RunnerTx, runtime: RuntimeDep, background: BackgroundTasks
) -> ActionResultsOutcome:
    """Report up to 50 results at once, in one transaction; each is accepted only with
    its current fencing token, and a stale one is refused alone (under `refused`)."""
    finished, refused = await service.report_results(
        tx,
        [
            service.ResultItem(r.action_id, r.fencing_token, r.status, r.output)
            for r in body.results
        ],
    )
    outcome = ActionResultsOutcome(finished=finished, refused=[r.refused() for r in refused])
    tokens = {r.action_id: r.fencing_token for r in body.results}
    for item in outcome.refused:
        if item.status == 409:
            _log_stale(item.action_id, tokens[item.action_id], item.current_status)
    logger.info(
        "action results reported",
        extra={
            "finished": len(finished),
            "refused": len(refused),
            "succeeded": sum(1 for a in finished if a.status == "succeeded"),
        },
    )
    kick_if_workflow(background, runtime, finished)
    return outcome


def _log_stale(action_id: UUID, fencing_token: int, current_status: str | None) -> None:
    """A runner reported with a lost lease: worth an operator's look if it recurs (leases
    too short for the work, or a runner that keeps going after the reaper gave up)."""
    logger.warning(
        "result refused: the lease was lost",
        extra={
            "action_id": str(action_id),
            "fencing_token": fencing_token,
            "current_status": current_status,
        },
    )


@router.post("/runner/actions/{action_id}/release", response_model=Action)
async def release_action(action_id: UUID, body: ActionRelease, tx: RunnerTx) -> Action:
    """Give a claimed action back to the queue without counting the attempt."""
    return await service.release(tx, action_id, body.fencing_token)


@router.get("/agents/{agent_id}/sessions", response_model=Page[Session])
async def list_sessions(
    agent_id: UUID, tx: UserTx, page: PageDep, status: SessionStatus | None = None
) -> Page[Session]:
    """The agent's runner sessions, oldest first (`?status=`); 404 if the agent is not
    visible."""
    return await service.list_sessions(tx, agent_id, page, status)
