"""The embedded PostgreSQL of local mode (pgserver): data under `.agentplane/`."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

DEFAULT_DATABASE = "agentplane"
APP_ROLE = "authenticator"


@dataclass
class EmbeddedPostgres:
    """A running embedded server and the URLs to reach it."""

    pgdata: Path
    server: Any  # pgserver.PostgresServer (untyped)

    def admin_url(self, database: str = DEFAULT_DATABASE) -> str:
        """A superuser URL (migrations, test set-up)."""
        return str(self.server.get_uri(database))

    def stop(self) -> None:
        """Release this process's handle; the server stops when no process holds one."""
        self.server.cleanup()


def start_embedded(
    pgdata: Path,
    *,
    cleanup: Literal["stop", "delete"] | None = "stop",
    database: str = DEFAULT_DATABASE,
) -> EmbeddedPostgres:
    """Start (or attach to) the embedded server in `pgdata` and create `database`."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server  # local mode only, not in the layer

    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    forget_dead_handles(pgdata)
    server = get_server(pgdata, cleanup_mode=cleanup)
    embedded = EmbeddedPostgres(pgdata=pgdata, server=server)
    create_database_if_missing(embedded.admin_url("postgres"), database)
    return embedded


HANDLES_FILE = ".handle_pids.json"


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop the processes that no longer exist from pgserver's list of handle holders.

    pgserver stops the server when its last holder lets go; a holder that was killed
    (SIGKILL, a crash) never lets go, and the server would then run on after every
    later command. Returns the pids forgotten."""
    path = pgdata / HANDLES_FILE
    if not path.exists():
        return []
    try:
        pids = [int(p) for p in json.loads(path.read_text())]
    except (ValueError, TypeError):
        pids = []
    dead = [pid for pid in pids if not _process_exists(pid)]
    if dead:
        # Re-read just before writing, so a holder that registered meanwhile stays
        # (pgserver keeps this list without a lock between processes).
        current = [int(p) for p in json.loads(path.read_text())]
        path.write_text(json.dumps([pid for pid in current if pid not in dead]))
    return dead


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def create_database_if_missing(admin_url: str, database: str) -> None:
    """CREATE DATABASE unless it exists (the name is quoted as an identifier)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(
                psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(database))
            )


def as_role(url: str, role: str = APP_ROLE) -> str:
    """The same URL, connecting as another role (the app connects as `authenticator`)."""
    params = conninfo_to_dict(url)
    params["user"] = role
    params.pop("password", None)
    return make_conninfo("", **params)
