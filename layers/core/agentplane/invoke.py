"""Run a function's handler in-process on an event file: the stand-in for `sam local invoke`.

    python -m agentplane.invoke api events/api_get_health.json

`REPLACE_WITH_TOKEN` in the event is replaced by a fresh local token for the demo user,
so authorized routes work against the local database (DATABASE_URL, or the embedded one).
"""

from __future__ import annotations

import argparse
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


def load_event(path: Path, token: str | None) -> dict[str, Any]:
    """The event file, with the token placeholder filled in."""
    text = path.read_text()
    if token is not None:
        text = text.replace(TOKEN_PLACEHOLDER, token)
    event: dict[str, Any] = json.loads(text)
    return event


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
    from agentplane.auth.tokens import mint_token
    from agentplane.cli import database_urls
    from agentplane.db.migrate import load_migrations, migrate
    from agentplane.runtime import get_runtime
    from agentplane.seed import DEMO_EMAIL, DEMO_USER_ID
    from agentplane.settings import get_settings

    settings = get_settings()
    token = mint_token(settings, DEMO_USER_ID, email=DEMO_EMAIL)
    with database_urls(settings) as (urls, _embedded):
        migrate(urls.migrate, load_migrations(settings.migrations_dir))
        # What SAM would put in the function's environment: where its database is.
        os.environ["DATABASE_URL"] = urls.app
        get_settings.cache_clear()
        get_runtime.cache_clear()
        results = invoke(args.function, load_event(args.event, token), repeat=args.repeat)
    result = results[0] if args.repeat == 1 else results
    text = json.dumps(result, indent=2, default=str) + "\n"
    if args.output is not None:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
