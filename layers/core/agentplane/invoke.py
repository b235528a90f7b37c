"""Run a function's handler in-process on an event file: the stand-in for `sam local invoke`.

    python -m agentplane.invoke api events/api_get_health.json

Placeholders in the event are filled in against the local database (DATABASE_URL, or the
embedded one), so the sample events reach real rows of the demo data:

- `REPLACE_WITH_TOKEN`: a fresh user token for the demo user;
- `REPLACE_WITH_RUNNER_TOKEN`: a new runner token of the demo agent;
- `REPLACE_WITH_SESSION_ID`: an online session of that runner;
- `REPLACE_WITH_ACTION_ID`: a new pending action of the demo agent, proposed for it;
- `REPLACE_WITH_RUN_ID`: a new run (no execution yet) of a demo workflow of the demo
  agent, an approval gate then an llm node; the workflows task events act on it.

An HTTP result's base64 body is decoded before it is printed; a 5xx exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import importlib
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FUNCTIONS = ("api", "actions", "heartbeat", "mirror", "workflows")
TOKEN_PLACEHOLDER = "REPLACE_WITH_TOKEN"  # noqa: S105 (a placeholder, not a secret)
RUNNER_TOKEN_PLACEHOLDER = "REPLACE_WITH_RUNNER_TOKEN"  # noqa: S105 (a placeholder)
SESSION_PLACEHOLDER = "REPLACE_WITH_SESSION_ID"
ACTION_PLACEHOLDER = "REPLACE_WITH_ACTION_ID"
RUN_PLACEHOLDER = "REPLACE_WITH_RUN_ID"
PLACEHOLDERS = (RUNNER_TOKEN_PLACEHOLDER, SESSION_PLACEHOLDER, ACTION_PLACEHOLDER, RUN_PLACEHOLDER)
# The action REPLACE_WITH_ACTION_ID stands for: harmless, and what the sample approves.
SAMPLE_ACTION = {"tool": "read_file", "args": {"path": "README.md"}}


class EventFileError(Exception):
    """The event file is missing or is not a JSON object; the message is one line."""


@dataclass
class LocalContext:
    """The attributes of a Lambda context that Powertools and Mangum read."""

    function_name: str
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    aws_request_id: str = ""
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"
        )

    def get_remaining_time_in_millis(self) -> int:
        """Lambda's time budget (fixed locally)."""
        return 30_000


def read_event_text(path: Path) -> str:
    """The event file's text; EventFileError naming the file when it cannot be read."""
    try:
        return path.read_text()
    except FileNotFoundError:
        raise EventFileError(f"no event file {path} (the samples are in events/)") from None
    except OSError as exc:
        raise EventFileError(f"cannot read the event file {path}: {exc.strerror}") from None


def load_event(
    path: Path, token: str | None, values: dict[str, str] | None = None
) -> dict[str, Any]:
    """The event file, with the token placeholder (and any other in `values`) filled in."""
    text = read_event_text(path)
    if token is not None:
        text = text.replace(TOKEN_PLACEHOLDER, token)
    for placeholder, value in (values or {}).items():
        text = text.replace(placeholder, value)
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventFileError(
            f"the event file {path} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if not isinstance(event, dict):
        raise EventFileError(f"the event file {path} is not a JSON object")
    return event


async def demo_fixtures(app_url: str, placeholders: set[str]) -> dict[str, str]:
    """Rows of the demo agent for the placeholders an event uses, made as its user and its
    runner would make them: a runner token, an online session, a pending action."""
    from agentplane.actions import service as actions
    from agentplane.actions.models import DEFAULT_TTL_SECONDS, ActionPayload
    from agentplane.agents import service as agents
    from agentplane.agents.models import RunnerTokenCreate
    from agentplane.auth.caller import Caller
    from agentplane.auth.service import authenticate_runner
    from agentplane.db.database import Database
    from agentplane.seed import demo_caller, seed_demo
    from agentplane.sessions import service as sessions
    from agentplane.sessions.models import SessionCreate

    values: dict[str, str] = {}
    if not placeholders:
        return values
    db = Database(app_url, max_size=1)
    try:
        seed = await seed_demo(db)
        if placeholders & {RUNNER_TOKEN_PLACEHOLDER, SESSION_PLACEHOLDER}:
            async with db.transaction(demo_caller()) as tx:
                created = await agents.create_runner_token(
                    tx,
                    seed.agent_id,
                    RunnerTokenCreate(name="make invoke", expires_in_seconds=3600),
                    default_lifetime_days=1,
                )
            values[RUNNER_TOKEN_PLACEHOLDER] = created.token
            if SESSION_PLACEHOLDER in placeholders:
                async with db.transaction(Caller.anon()) as tx:
                    runner = await authenticate_runner(tx, created.token)
                assert runner is not None
                async with db.transaction(runner) as tx:
                    session = await sessions.register(
                        tx, seed.agent_id, created.id, SessionCreate(socket_id="make invoke")
                    )
                values[SESSION_PLACEHOLDER] = str(session.id)
        if ACTION_PLACEHOLDER in placeholders:
            async with db.transaction(demo_caller()) as tx:
                action, _ = await actions.propose(
                    tx,
                    seed.agent_id,
                    ActionPayload.model_validate(SAMPLE_ACTION),
                    ttl_seconds=DEFAULT_TTL_SECONDS,
                )
            values[ACTION_PLACEHOLDER] = str(action.id)
        if RUN_PLACEHOLDER in placeholders:
            values[RUN_PLACEHOLDER] = await _demo_run(db, seed.project_id, seed.agent_id)
    finally:
        await db.close()
    return values


async def _demo_run(db: Any, project_id: uuid.UUID, agent_id: uuid.UUID) -> str:
    """A run of a two-node demo workflow, as `POST /workflows/{id}/runs` writes it
    before its execution starts."""
    from agentplane.seed import demo_caller
    from agentplane.workflows import service as workflows
    from agentplane.workflows.definition import Definition
    from agentplane.workflows.engine import start_execution
    from agentplane.workflows.models import WorkflowCreate

    gate = {"agent_id": str(agent_id), "title": "Summarize {{ input.topic }}?"}
    summary = {"agent_id": str(agent_id), "prompt": "Summarize {{ input.topic }}."}
    definition = Definition.model_validate(
        {
            "nodes": [
                {"id": "gate", "type": "approval", "config": gate},
                {"id": "summary", "type": "llm", "config": summary},
            ],
            "edges": [{"from": "gate", "to": "summary"}],
        }
    )
    async with db.transaction(demo_caller()) as tx:
        workflow = await workflows.create_workflow(
            tx, WorkflowCreate(project_id=project_id, name="make invoke", definition=definition)
        )
        run = await workflows.insert_run(tx, workflow, {"topic": "the week"})
        # Its first execution is queued (named `<run id>-1`, as the sample step's ARN);
        # `make invoke` has no state machine to start it on.
        await start_execution(tx, run)
    return str(run["id"])


def readable(result: Any) -> Any:
    """An HTTP result with its base64 body decoded (when it is text), for printing."""
    if isinstance(result, list):
        return [readable(r) for r in result]
    if not (isinstance(result, dict) and result.get("isBase64Encoded")):
        return result
    try:
        body = base64.b64decode(str(result.get("body", "")), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return result  # binary: printed as it came
    return {**result, "body": body, "isBase64Encoded": False}


def server_errors(results: list[Any]) -> list[int]:
    """The 5xx status codes among HTTP results."""
    return [
        r["statusCode"]
        for r in results
        if isinstance(r, dict) and isinstance(r.get("statusCode"), int) and r["statusCode"] >= 500
    ]


def invoke(function: str, event: dict[str, Any], repeat: int = 1) -> list[Any]:
    """Import `functions.<function>.app` as Lambda would and call its handler `repeat`
    times in the same process: the first call is the cold start, the rest are warm."""
    from agentplane.handlers.loop import close_process_loop, run
    from agentplane.runtime import get_runtime

    module = importlib.import_module(f"functions.{function}.app")
    try:
        return [
            module.handler(event, LocalContext(function_name=f"agentplane-{function}"))
            for _ in range(repeat)
        ]
    finally:
        # Lambda freezes the process with its pool open; a local run closes it, on the
        # process's loop that every handler ran on, then the loop.
        run(get_runtime().close())
        close_process_loop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `make invoke`."""
    parser = argparse.ArgumentParser(
        prog="python -m agentplane.invoke", description="Run a handler on an event file."
    )
    parser.add_argument("function", choices=FUNCTIONS)
    parser.add_argument("event", type=Path)
    parser.add_argument(
        "--output", type=Path, help="write the handler's result here instead of stdout"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="invoke N times in one (warm) process; prints a list"
    )
    args = parser.parse_args(argv)
    try:
        # Before any database starts: a wrong path is one line, at once.
        text = read_event_text(args.event)
    except EventFileError as exc:
        print(f"invoke: {exc}", file=sys.stderr)
        return 2
    from agentplane.auth.tokens import mint_token
    from agentplane.cli import database_urls
    from agentplane.db.migrate import load_migrations, migrate
    from agentplane.runtime import get_runtime
    from agentplane.seed import DEMO_EMAIL, DEMO_USER_ID
    from agentplane.settings import get_settings

    settings = get_settings()
    token = mint_token(settings, DEMO_USER_ID, email=DEMO_EMAIL)
    wanted = {p for p in PLACEHOLDERS if p in text}
    with database_urls(settings) as (urls, _embedded):
        migrate(urls.migrate, load_migrations(settings.migrations_dir))
        try:
            event = load_event(args.event, token, asyncio.run(demo_fixtures(urls.app, wanted)))
        except EventFileError as exc:
            print(f"invoke: {exc}", file=sys.stderr)
            return 2
        # What SAM would put in the function's environment: where its database is.
        os.environ["DATABASE_URL"] = urls.app
        get_settings.cache_clear()
        get_runtime.cache_clear()
        results = invoke(args.function, event, repeat=args.repeat)
    result = readable(results[0] if args.repeat == 1 else results)
    text = json.dumps(result, indent=2, default=str) + "\n"
    if args.output is not None:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    if failed := server_errors(results):
        print(f"invoke: the handler answered {', '.join(map(str, failed))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
