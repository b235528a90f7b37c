"""The apps each HTTP function serves, and the local app that serves them all.

Every function's routes come from the same routers; `make dev` composes all of them in
one process, so nothing is written twice for local use. Each builder imports only its
own function's routers, so a function's cold start does not pay for the others'.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from agentplane.http.app import create_app
from agentplane.runtime import Runtime


def api_routers() -> list[APIRouter]:
    """Routes of the `api` function (CRUD)."""
    from agentplane.agents.routes import router as agents_router
    from agentplane.auth.routes import router as identity_router
    from agentplane.brain.routes import router as brain_router
    from agentplane.connections.routes import router as connections_router
    from agentplane.conversations.routes import router as conversations_router
    from agentplane.http.console import router as console_router
    from agentplane.http.health import router as health_router
    from agentplane.memory.routes import router as memory_router
    from agentplane.organizations.routes import router as organizations_router
    from agentplane.projects.routes import router as projects_router
    from agentplane.skills.routes import router as skills_router
    from agentplane.tasks.routes import router as tasks_router
    from agentplane.templates.routes import router as templates_router
    from agentplane.vault.routes import router as vault_router

    return [
        health_router,
        identity_router,
        organizations_router,
        projects_router,
        agents_router,
        connections_router,
        conversations_router,
        memory_router,
        skills_router,
        tasks_router,
        templates_router,
        vault_router,
        brain_router,
        console_router,
    ]


def actions_routers() -> list[APIRouter]:
    """Routes of the `actions` function (approval and runner protocol, webhooks)."""
    from agentplane.actions.routes import router as actions_router
    from agentplane.events.routes import router as webhooks_router
    from agentplane.policies.routes import router as policies_router
    from agentplane.sessions.routes import router as runner_router
    from agentplane.tools.routes import router as tools_router

    return [actions_router, runner_router, tools_router, policies_router, webhooks_router]


def mirror_routers() -> list[APIRouter]:
    """Routes of the `mirror` function (mirror reports)."""
    from agentplane.mirror.routes import router as mirror_router

    return [mirror_router]


def workflows_routers() -> list[APIRouter]:
    """Routes of the `workflows` function (workflow definitions and runs)."""
    from agentplane.workflows.routes import router as workflows_router

    return [workflows_router]


def build_api_app(runtime: Runtime | None = None) -> FastAPI:
    """The api function's app."""
    return create_app(api_routers(), runtime=runtime, title="agentplane api")


def build_actions_app(runtime: Runtime | None = None) -> FastAPI:
    """The actions function's app."""
    return create_app(actions_routers(), runtime=runtime, title="agentplane actions")


def build_mirror_app(runtime: Runtime | None = None) -> FastAPI:
    """The mirror function's app."""
    return create_app(mirror_routers(), runtime=runtime, title="agentplane mirror")


def build_workflows_app(runtime: Runtime | None = None) -> FastAPI:
    """The workflows function's app."""
    return create_app(workflows_routers(), runtime=runtime, title="agentplane workflows")


def build_local_app(runtime: Runtime | None = None) -> FastAPI:
    """Every function's routes in one app, for `agentplane dev`."""
    from agentplane.sessions.routes import socket_router as runner_socket_router

    routers = [
        *api_routers(),
        *actions_routers(),
        *mirror_routers(),
        *workflows_routers(),
        runner_socket_router,
    ]
    return create_app(routers, runtime=runtime, title="agentplane")
