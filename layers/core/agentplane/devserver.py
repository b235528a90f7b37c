"""`agentplane dev`: every route of every function in one process, on the local database."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shlex
import signal
import socket
from typing import Any

from agentplane.auth.tokens import mint_token
from agentplane.db.database import Database
from agentplane.db.urls import DatabaseUrls
from agentplane.observability import logger
from agentplane.runtime import Runtime
from agentplane.seed import DEMO_EMAIL, DEMO_USER_ID, DemoSeed, seed_demo, wire_dev_provider
from agentplane.sessions.reaper import reap
from agentplane.settings import Settings

DEV_TOKEN_TTL_SECONDS = 12 * 3600


async def _seed(settings: Settings, app_url: str) -> DemoSeed:
    db = Database(app_url, max_size=1)
    try:
        seed = await seed_demo(db)
        if settings.dev_provider_url:
            key = settings.dev_provider_key
            await wire_dev_provider(
                db,
                Runtime(settings, db).vault,
                seed,
                base_url=settings.dev_provider_url,
                model=settings.dev_provider_model,
                # Local OpenAI-compatible servers often take any key.
                key=key.get_secret_value() if key else "no-key-needed",
            )
        return seed
    finally:
        await db.close()


def unusable_address(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on (one line), or None when it can: bound and
    released at once, before the database starts and a token is printed."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.create_server((host, port), family=family):
            return None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return (
                f"port {port} on {host} is already in use (another agentplane dev?);"
                f" choose another with --port, e.g. make dev PORT={port + 1}"
            )
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose --host or --port"


def _banner(settings: Settings, seed: DemoSeed | None, base_url: str) -> str:
    lines = [
        "",
        f"agentplane is serving on {base_url}  (OpenAPI: {base_url}/docs, Ctrl-C stops)",
    ]
    if seed is not None:
        token = mint_token(
            settings, DEMO_USER_ID, email=DEMO_EMAIL, ttl_seconds=DEV_TOKEN_TTL_SECONDS
        )
        lines += [
            f"demo user     {DEMO_USER_ID} ({DEMO_EMAIL})",
            f"organization  {seed.organization_id}",
            f"project       {seed.project_id}",
            f"agent         {seed.agent_id}",
            "token (12 h):",
            f"  export AGENTPLANE_TOKEN={token}",
            # In the fragment: a browser never sends it to a server or writes it to a log.
            f"console: {base_url}/console#token={token}",
            "try:",
            f'  curl -s -H "Authorization: Bearer $AGENTPLANE_TOKEN" {base_url}/me',
            f"  curl -s {shlex.quote(base_url + '/health')}",
        ]
        if settings.dev_provider_url:
            turn = shlex.quote(f"{base_url}/agents/{seed.agent_id}/turns")
            lines += [
                f"the agent talks to {settings.dev_provider_url}"
                f" (model {settings.dev_provider_model}); hold a turn:",
                f'  curl -s -H "Authorization: Bearer $AGENTPLANE_TOKEN"'
                f" -H 'Content-Type: application/json' -X POST {turn}"
                """ -d '{"message": "please write a hello note"}'""",
            ]
        else:
            lines.append(
                "agent turns: set AGENTPLANE_DEV_PROVIDER_URL (and _KEY, _MODEL) to an"
                " OpenAI-compatible endpoint and restart"
            )
    return "\n".join(lines) + "\n"


def serve(
    settings: Settings,
    urls: DatabaseUrls,
    *,
    host: str,
    port: int,
    seed: bool = True,
    cron_interval: float = 30.0,
) -> None:
    """Seed the demo data, print a token and a curl line, serve until Ctrl-C."""
    import uvicorn

    from agentplane.apps import build_local_app

    demo = asyncio.run(_seed(settings, urls.app)) if seed else None
    runtime = Runtime(
        settings,
        Database(urls.app, max_size=settings.db_pool_max_size),
    )
    app = build_local_app(runtime)
    config = uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="on")
    server = uvicorn.Server(config)
    print(_banner(settings, demo, f"http://{host}:{port}"), flush=True)
    # uvicorn shuts down gracefully, then re-raises the signal it captured through the
    # handler that was there before it: a SIGTERM (a supervisor, `kill`) becomes the same
    # KeyboardInterrupt as Ctrl-C, so the caller's cleanup stops the embedded PostgreSQL
    # too (the default handler would end the process before it). Either is the normal
    # way to stop a dev server, not an error.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_with_cron(server, runtime, cron_interval))
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


async def _serve_with_cron(
    server: Any, runtime: Runtime, interval: float, nightly_interval: float = 3600.0
) -> None:
    """Serve, and run the heartbeat cron every `interval` seconds beside it (what the
    EventBridge schedule does in AWS), with workflows on the local Step Functions
    interpreter and its callback dispatcher."""
    from agentplane.events.local import LocalEvents
    from agentplane.mirror.service import local_runner, run_nightly
    from agentplane.sessions.sockets import LocalSockets
    from agentplane.workflows.local import LocalWorkflows

    sockets = LocalSockets(runtime.database, accept=runtime.settings.dev_runner_sockets == "on")
    await sockets.start()
    runtime.runner_sockets = sockets
    workflows = LocalWorkflows(runtime)
    workflows.start()
    workflows.run_dispatcher()
    # Events: a log line and the in-process bus, and webhooks delivered from here.
    events = LocalEvents(runtime)
    events.start()
    # Mirror reports run as tasks here (an async invoke of the mirror function in AWS);
    # the nightly job runs on its own timer.
    runtime.mirror_runner = local_runner(runtime)

    async def nightly() -> None:
        while True:
            await asyncio.sleep(nightly_interval)
            try:
                queued = await run_nightly(runtime)
            except Exception:
                logger.exception("nightly mirror job failed")
                continue
            if queued.report_ids:
                logger.info(
                    "nightly mirror reports started", extra={"count": len(queued.report_ids)}
                )

    async def cron() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                result = await reap(runtime.database)
            except Exception:
                logger.exception("heartbeat cron failed")
                continue
            if changed := result.changed():
                logger.info("heartbeat cron reaped", extra=changed)
                # Expired or failed actions may be what a workflow node waits for.
                await runtime.kick_workflows()
                await runtime.kick_events()

    task = asyncio.create_task(cron())
    nightly_task = asyncio.create_task(nightly())
    try:
        await server.serve()
    finally:
        for running in (task, nightly_task):
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        await events.stop()
        await workflows.stop_dispatcher()
        workflows.stop()
        await sockets.stop()
