"""FastAPI dependencies: the runtime, the verified caller and the caller's transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agentplane.agents.tokens import RUNNER_TOKEN_PREFIX
from agentplane.auth.caller import Caller
from agentplane.auth.service import authenticate_runner
from agentplane.db.rows import Tx
from agentplane.errors import UnauthorizedError
from agentplane.runtime import Runtime

bearer = HTTPBearer(auto_error=False, description="A user JWT (Supabase-issued or local).")


def get_runtime(request: Request) -> Runtime:
    """The process runtime the app was built with."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def current_user(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The verified user behind the bearer token; 401 otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("an 'Authorization: Bearer <token>' header is required")
    if credentials.credentials.startswith(RUNNER_TOKEN_PREFIX):
        # Not a JWT at all: say what it is rather than that it does not decode.
        raise UnauthorizedError(
            "this is a runner token (aprt_...): it works only on the runner routes;"
            " user routes need a user token (a JWT)"
        )
    claims = runtime.verifier.verify(credentials.credentials)
    return Caller.user(claims)


UserDep = Annotated[Caller, Depends(current_user)]


async def user_transaction(runtime: RuntimeDep, caller: UserDep) -> AsyncIterator[Tx]:
    """The request's one transaction, as the calling user (RLS decides what it sees)."""
    async with runtime.database.transaction(caller) as conn:
        yield conn


# scope="function": the transaction commits (or fails, as a problem) before the response
# is sent, so a client never sees a 2xx for a write that did not commit.
UserTx = Annotated[Tx, Depends(user_transaction, scope="function")]


async def current_runner(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The runner behind a runner token (`aprt_...`); 401 unless it is live."""
    if credentials is None or not credentials.credentials.startswith(RUNNER_TOKEN_PREFIX):
        raise UnauthorizedError("a runner token ('Authorization: Bearer aprt_...') is required")
    # Before the runner has an identity it is nobody: the lookup runs as anon and can only
    # call private.authenticate_runner, which answers for a live token and nothing else.
    async with runtime.database.transaction(Caller.anon()) as tx:
        runner = await authenticate_runner(tx, credentials.credentials)
    if runner is None:
        raise UnauthorizedError("the runner token is unknown, revoked or expired")
    return runner


RunnerDep = Annotated[Caller, Depends(current_runner)]


async def runner_transaction(runtime: RuntimeDep, caller: RunnerDep) -> AsyncIterator[Tx]:
    """The request's one transaction, as the runner (RLS: its own agent only)."""
    async with runtime.database.transaction(caller) as conn:
        yield conn


RunnerTx = Annotated[Tx, Depends(runner_transaction, scope="function")]
