"""The approval gate for people: propose, list, read, decide, audit; the signing key."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Header, Request, Response

from agentplane.actions import service, undo
from agentplane.actions.models import (
    Action,
    ActionEvents,
    ActionProposal,
    ActionStatus,
    BatchDecision,
    BatchDecisionResult,
    Decision,
    UndoRequest,
)
from agentplane.db.pagination import Page
from agentplane.errors import ValidationProblemError
from agentplane.http.deps import RuntimeDep, UserTx
from agentplane.http.etag import conditional_json
from agentplane.http.kicks import after_transitions
from agentplane.http.pagination import OrderedPageDep
from agentplane.observability import logger

router = APIRouter(tags=["actions"])


@router.post("/agents/{agent_id}/actions", status_code=201, response_model=Action)
async def propose_action(
    agent_id: UUID,
    body: ActionProposal,
    tx: UserTx,
    response: Response,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Action:
    """Propose an action for an agent (201); a retry with the same key returns it (200)."""
    key = body.idempotency or idempotency_key
    if body.idempotency and idempotency_key and body.idempotency != idempotency_key:
        raise ValidationProblemError(
            [
                {
                    "field": "idempotency",
                    "in": "body",
                    "rule": "matches_header",
                    "message": "differs from the Idempotency-Key header",
                }
            ]
        )
    action, created = await service.propose(
        tx,
        agent_id,
        body.payload,
        ttl_seconds=body.ttl_seconds,
        idempotency_key=key,
        max_attempts=body.max_attempts,
        signer=lambda: runtime.signer,
        approval_ttl_seconds=runtime.settings.approval_ttl_seconds,
    )
    if not created:
        response.status_code = 200
    else:
        # action.proposed, and a doorbell if its policy approved it at once
        after_transitions(background, runtime, [action])
    return action


@router.get(
    "/actions",
    response_model=Page[Action],
    responses={304: {"description": "Not modified: the `If-None-Match` ETag is current"}},
)
async def list_actions(
    request: Request,
    tx: UserTx,
    page: OrderedPageDep,
    agent_id: UUID | None = None,
    status: ActionStatus | None = None,
) -> Response:
    """The queue and its history, oldest first or `?order=newest` (`?agent_id=&status=`).
    The answer carries an ETag; a poll that sends it back in `If-None-Match` gets 304
    while nothing changed."""
    return conditional_json(request, await service.list_actions(tx, page, agent_id, status))


@router.get("/actions/{action_id}", response_model=Action)
async def get_action(action_id: UUID, tx: UserTx) -> Action:
    """One action, with the approval policy it was proposed under, its risk, each
    approval so far and how many it still needs."""
    return await service.get_action_with_approvals(tx, action_id)


@router.get("/actions/{action_id}/events", response_model=ActionEvents)
async def action_events(action_id: UUID, tx: UserTx) -> ActionEvents:
    """Every transition of the action, oldest first, with its hash chain."""
    return ActionEvents(items=await service.action_events(tx, action_id))


async def _decide(
    decision: str,
    action_id: UUID,
    body: Decision | None,
    tx: UserTx,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> Action:
    action = await service.decide(
        tx,
        action_id,
        decision,
        body.reason if body else None,
        signer=runtime.signer,
        approval_ttl_seconds=runtime.settings.approval_ttl_seconds,
    )
    logger.info(
        "action decided",
        extra={
            "action_id": str(action.id),
            "agent_id": str(action.agent_id),
            "status": action.status,
            "decided_by": str(action.decided_by) if action.decided_by else None,
        },
    )
    after_transitions(background, runtime, [action])
    return action


@router.post("/actions/{action_id}/approve", response_model=Action)
async def approve_action(
    action_id: UUID,
    tx: UserTx,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    body: Decision | None = None,
) -> Action:
    """Approve a pending action and sign the approval (members and up; 409 if decided)."""
    return await _decide("approve", action_id, body, tx, runtime, background)


@router.post("/actions/{action_id}/reject", response_model=Action)
async def reject_action(
    action_id: UUID,
    tx: UserTx,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    body: Decision | None = None,
) -> Action:
    """Reject a pending action (members and up; 409 if already decided)."""
    return await _decide("reject", action_id, body, tx, runtime, background)


@router.post("/actions/{action_id}/cancel", response_model=Action)
async def cancel_action(
    action_id: UUID,
    tx: UserTx,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    body: Decision | None = None,
) -> Action:
    """Cancel a pending or approved action before a runner claims it."""
    return await _decide("cancel", action_id, body, tx, runtime, background)


@router.post("/actions/{action_id}/undo", status_code=201, response_model=Action)
async def undo_action(
    action_id: UUID,
    tx: UserTx,
    response: Response,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    body: UndoRequest | None = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Action:
    """Propose the inverse of an action that succeeded, as a new pending action of the
    same agent that links back to it (`undo_of`) and is decided like any proposal (201;
    a retry with the same Idempotency-Key returns it, 200). Only reversible tools
    (GET /tools): for write_file, the previous content the runner reported is written
    back. 409 says why an action cannot be undone, or names its existing undo."""
    request = body or UndoRequest()
    action, created = await undo.undo(
        tx,
        action_id,
        reason=request.reason,
        ttl_seconds=request.ttl_seconds,
        idempotency_key=idempotency_key,
        signer=lambda: runtime.signer,
        approval_ttl_seconds=runtime.settings.approval_ttl_seconds,
    )
    logger.info(
        "undo proposed",
        extra={"action_id": str(action.id), "undo_of": str(action_id), "new": created},
    )
    if not created:
        response.status_code = 200
    else:
        after_transitions(background, runtime, [action])
    return action


@router.post("/actions/decisions", response_model=BatchDecisionResult)
async def decide_actions(
    body: BatchDecision, tx: UserTx, runtime: RuntimeDep, background: BackgroundTasks
) -> BatchDecisionResult:
    """One decision on up to 100 actions at once, in one transaction. Each is decided as
    its own call would be; those that call would refuse (404, 403, 409) are listed under
    `refused` with the reason, and the rest are decided."""
    decided, refused = await service.decide_many(
        tx,
        body.action_ids,
        body.decision,
        body.reason,
        signer=runtime.signer,
        approval_ttl_seconds=runtime.settings.approval_ttl_seconds,
    )
    logger.info(
        "actions decided",
        extra={
            "decision": body.decision,
            "decided": len(decided),
            "refused": [{"action_id": str(r.action_id), "status": r.error.status} for r in refused],
        },
    )
    after_transitions(background, runtime, decided)
    return BatchDecisionResult(decided=decided, refused=[r.refused() for r in refused])


@router.get("/.well-known/agentplane/signing-key", tags=["runner"])
async def signing_key(runtime: RuntimeDep) -> dict[str, Any]:
    """The JWK Set runners verify approval signatures with (no authentication)."""
    return {"keys": [runtime.signer.jwk]}
