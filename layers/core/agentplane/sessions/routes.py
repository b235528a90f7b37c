"""The runner protocol: sessions, heartbeats, claims under lease, results.

`/runner/*` is for runners only (an `aprt_` token; its transaction sees its own agent's
rows and nothing else). People list an agent's sessions under `/agents/{id}/sessions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Request, Response, WebSocket, WebSocketDisconnect

from agentplane.actions.models import Action
from agentplane.agents.tokens import RUNNER_TOKEN_PREFIX
from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.db.pagination import Page
from agentplane.errors import UnauthorizedError
from agentplane.http.deps import RunnerDep, RunnerTx, RuntimeDep, UserTx
from agentplane.http.kicks import after_transitions, kick_events, ring_after_commit
from agentplane.http.pagination import PageDep
from agentplane.observability import logger
from agentplane.sessions import doorbells, service
from agentplane.sessions.models import (
    ActionRelease,
    ActionResult,
    ActionResults,
    ActionResultsOutcome,
    ClaimedActions,
    ClaimRequest,
    RegisteredSession,
    Session,
    SessionCreate,
    SessionStatus,
)
from agentplane.sessions.sockets import REFUSED, UNAVAILABLE, LocalSockets, authenticate

router = APIRouter(tags=["runner"])
# `agentplane dev` only: in AWS the API Gateway WebSocket API holds the sockets
# (sessions/apigw.py).
socket_router = APIRouter(tags=["runner"])


def _agent_of(runner: RunnerDep) -> UUID:
    agent_id = runner.agent_id
    if agent_id is None:  # RunnerDep only builds runner callers; this is a guard
        raise UnauthorizedError("a runner token is required")
    return agent_id


@router.post("/runner/sessions", status_code=201, response_model=RegisteredSession)
async def register_session(
    body: SessionCreate, runner: RunnerDep, tx: RunnerTx, runtime: RuntimeDep, request: Request
) -> RegisteredSession:
    """Register a runner session for the token's agent; it starts online. The answer
    names the doorbell socket's URL (`websocket_url`, null when there is none)."""
    session = await service.register(tx, _agent_of(runner), runner.token_id, body)
    return RegisteredSession(**session.model_dump(), websocket_url=_websocket_url(runtime, request))


def _websocket_url(runtime: RuntimeDep, request: Request) -> str | None:
    """The configured URL (AWS), else the dev server's own /runner/ws."""
    if runtime.settings.runner_websocket_url:
        return runtime.settings.runner_websocket_url
    if runtime.runner_sockets is None:
        return None
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{request.url.netloc}/runner/ws"


@router.post("/runner/sessions/{session_id}/heartbeat", response_model=Session)
async def heartbeat(session_id: UUID, tx: RunnerTx) -> Session:
    """Say the session is alive (409 once the reaper took it offline: register anew)."""
    return await service.heartbeat(tx, session_id)


@router.delete("/runner/sessions/{session_id}", status_code=204, response_class=Response)
async def end_session(
    session_id: UUID, tx: RunnerTx, runtime: RuntimeDep, background: BackgroundTasks
) -> Response:
    """End the session; actions it still holds are requeued (or failed after the last
    attempt), like an expired lease."""
    await service.end_session(tx, session_id)
    ring_after_commit(background, runtime)
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
    after_transitions(background, runtime, [action])
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
    after_transitions(background, runtime, finished)
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
async def release_action(
    action_id: UUID,
    body: ActionRelease,
    tx: RunnerTx,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> Action:
    """Give a claimed action back to the queue without counting the attempt."""
    action = await service.release(tx, action_id, body.fencing_token)
    after_transitions(background, runtime, [action])
    return action


@router.get("/agents/{agent_id}/sessions", response_model=Page[Session])
async def list_sessions(
    agent_id: UUID, tx: UserTx, page: PageDep, status: SessionStatus | None = None
) -> Page[Session]:
    """The agent's runner sessions, oldest first (`?status=`); 404 if the agent is not
    visible."""
    return await service.list_sessions(tx, agent_id, page, status)


def _bearer(websocket: WebSocket) -> str | None:
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.startswith(RUNNER_TOKEN_PREFIX):
        return None
    return token.strip()


def _session_id(websocket: WebSocket) -> UUID | None:
    try:
        return UUID(websocket.query_params.get("session_id", ""))
    except ValueError:
        return None


@socket_router.websocket("/runner/ws")
async def runner_socket(websocket: WebSocket) -> None:
    """The runner doorbell: refused (403 on upgrade) unless the runner token is live and
    `session_id` is a live session of its agent."""
    runtime = websocket.app.state.runtime
    hub: LocalSockets | None = runtime.runner_sockets
    if hub is None:
        await websocket.close(code=UNAVAILABLE)
        return
    session_id = _session_id(websocket)
    runner = await authenticate(hub.database, _bearer(websocket))
    socket_id = f"ws-{uuid.uuid4()}"
    if runner is None or runner.agent_id is None or session_id is None:
        await websocket.close(code=REFUSED)
        return
    async with hub.database.transaction(runner) as tx:
        session = await doorbells.bind_socket(tx, session_id, socket_id)
    if session is None:
        await websocket.close(code=REFUSED)
        return
    agent_id = runner.agent_id
    queue = hub.add(agent_id, socket_id)
    try:
        await websocket.accept()
        if not hub.accept:
            await websocket.close(code=UNAVAILABLE)
            return
        logger.info(
            "runner socket open",
            extra={"session_id": str(session_id), "agent_id": str(agent_id)},
        )
        await _serve(websocket, queue, lambda: _ping(hub.database, runner, socket_id))
    finally:
        hub.remove(agent_id, socket_id)
        async with hub.database.service("runner socket closed: take its session offline") as tx:
            ended = await doorbells.disconnect(tx, socket_id)
        if ended:
            logger.info("runner socket closed", extra={"session_id": str(session_id)})


async def _ping(database: Database, runner: Caller, socket_id: str) -> bool:
    """A heartbeat in the runner's own transaction (in AWS a ping carries no token, so
    sessions/apigw.py finds the session by its connection as the server)."""
    async with database.transaction(runner) as tx:
        return await doorbells.ping(tx, socket_id) is not None


async def _serve(
    websocket: WebSocket,
    queue: asyncio.Queue[dict[str, Any]],
    ping: Callable[[], Awaitable[bool]],
) -> None:
    """Send what is queued and answer pings until either side closes."""

    async def send() -> None:
        while True:
            await websocket.send_text(json.dumps(await queue.get()))

    async def receive() -> None:
        while True:
            try:
                message = json.loads(await websocket.receive_text())
            except (ValueError, TypeError):
                continue
            if isinstance(message, dict) and message.get("type") == "ping":
                if not await ping():
                    await websocket.close(code=REFUSED, reason="session offline")
                    return
                queue.put_nowait({"type": "pong"})

    tasks = [asyncio.create_task(send()), asyncio.create_task(receive())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except WebSocketDisconnect:
        pass
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
