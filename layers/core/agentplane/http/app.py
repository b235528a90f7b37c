"""The FastAPI app factory every function and the local server share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from agentplane import __version__
from agentplane.http.middleware import BodyLimitMiddleware, CorrelationIdMiddleware
from agentplane.http.problems import install_problem_handlers
from agentplane.runtime import Runtime
from agentplane.settings import get_settings


def create_app(
    routers: Iterable[APIRouter],
    *,
    runtime: Runtime | None = None,
    title: str = "agentplane",
) -> FastAPI:
    """An app serving `routers`, with problem+json errors and the process runtime."""
    rt = runtime or Runtime(get_settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await rt.close()

    app = FastAPI(
        title=title,
        version=__version__,
        lifespan=lifespan,
        description="The control plane for remote AI agents.",
    )
    app.state.runtime = rt
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=rt.settings.max_body_bytes)
    app.add_middleware(CorrelationIdMiddleware)
    for router in routers:
        app.include_router(router)
    return app
