"""The benchmarks' PostgreSQL: one embedded server in a temporary directory, and helpers.

Durability is off (fsync, synchronous_commit, full_page_writes), as in the test suite:
the benchmarks measure the work of the queue and of the reaper, not how fast this
machine's disk flushes, and every contestant runs on the same server with the same
settings. The output says so.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from agentplane.db.embedded import start_embedded

DURABILITY_OFF = ("fsync", "synchronous_commit", "full_page_writes")
REPORTED_SETTINGS = (*DURABILITY_OFF, "shared_buffers", "max_connections")


@contextmanager
def embedded_server() -> Iterator[str]:
    """A throw-away embedded server with durability off; yields its superuser URL."""
    with tempfile.TemporaryDirectory(prefix="apbench-", ignore_cleanup_errors=True) as tmp:
        # A short path: the server's unix socket lives under it.
        embedded = start_embedded(Path(tmp) / "data", cleanup="delete", database="postgres")
        try:
            url = embedded.admin_url("postgres")
            with psycopg.connect(url, autocommit=True) as conn:
                for setting in DURABILITY_OFF:
                    conn.execute(
                        sql.SQL("alter system set {} = off").format(sql.Identifier(setting))
                    )
                conn.execute("select pg_reload_conf()")
            yield url
        finally:
            embedded.stop()


def with_database(url: str, dbname: str) -> str:
    """The same server URL, on another database."""
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo("", **params)


def create_database(server_url: str, name: str) -> str:
    """A new empty database (dropped first if it exists); its superuser URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop a database the benchmark created."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def server_settings(url: str) -> dict[str, str]:
    """The settings that matter for reading the numbers, plus the server version."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "select name, current_setting(name) from pg_settings where name = any(%s)",
            (list(REPORTED_SETTINGS),),
        ).fetchall()
        version = conn.execute("show server_version").fetchone()
    return {"server_version": version[0] if version else "?", **dict(rows)}


def server_cpu_seconds(admin_url: str) -> float | None:
    """CPU seconds used so far by the server's live processes (backends and background
    workers), read from /proc; None when they are not this machine's processes.

    Approximate: a process that exits between two readings (an autovacuum worker) takes
    its seconds with it. The benchmarks open their connections before they start timing.
    """
    with psycopg.connect(admin_url, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute("select pid from pg_stat_activity").fetchall()]
    total = 0
    for pid in pids:
        proc = Path(f"/proc/{pid}")
        try:
            if proc.joinpath("comm").read_text().strip() != "postgres":
                return None  # a server elsewhere: this pid is some other process
            fields = proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            # Exited since pg_stat_activity listed it (reading /proc of a process that is
            # exiting fails with ESRCH, not ENOENT).
            continue
        except OSError:
            return None
        total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


class Progress:
    """Counts the items a long phase has done; a line on stderr every few seconds."""

    def __init__(self, label: str, total: int, every_seconds: float = 5.0) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._every = every_seconds
        self._started = self._last = time.monotonic()

    def add(self, n: int = 1) -> None:
        """Count `n` more items done."""
        self.done += n
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            self._say(now)

    def finish(self) -> None:
        """The phase's last line."""
        self._say(time.monotonic())

    def _say(self, now: float) -> None:
        print(
            f"  {self.label}: {self.done:,}/{self.total:,} ({now - self._started:.1f} s)",
            file=sys.stderr,
            flush=True,
        )


def say(message: str) -> None:
    """A progress line on stderr."""
    print(f"  {message}", file=sys.stderr, flush=True)
