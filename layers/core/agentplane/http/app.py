"""The FastAPI app factory every function and the local server share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from agentplane import __version__
from agentplane.http.docs import install_docs
from agentplane.http.middleware import BodyLimitMiddleware, CorrelationIdMiddleware
from agentplane.http.problems import PROBLEM_RESPONSES, Problem, install_problem_handlers
from agentplane.runtime import Runtime, get_runtime


def create_app(
    routers: Iterable[APIRouter],
    *,
    runtime: Runtime | None = None,
    title: str = "agentplane",
) -> FastAPI:
    """An app serving `routers`, with problem+json errors and `runtime` (by default the
    process's, which the function's jobs share)."""
    rt = runtime or get_runtime()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await rt.close()

    app = FastAPI(
        title=title,
        version=__version__,
        lifespan=lifespan,
        description="The control plane for remote AI agents.",
        # Served by install_docs from local assets, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = rt
    install_docs(app)
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=rt.settings.max_body_bytes)
    app.add_middleware(CorrelationIdMiddleware)
    for router in routers:
        app.include_router(router, responses=PROBLEM_RESPONSES)
    _add_problem_schema(app)
    return app


def _add_problem_schema(app: FastAPI) -> None:
    """Put the Problem schema into the OpenAPI components the responses refer to."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(
                Problem.model_json_schema(
                    ref_template="#/components/schemas/{model}", by_alias=True
                ).get("$defs", {})
            )
            problem = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}", by_alias=True
            )
            problem.pop("$defs", None)
            components["Problem"] = problem
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
