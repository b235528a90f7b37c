"""Plain-SQL migrations, applied in file-name order, one transaction each.

Applied files are recorded with a SHA-256 of their bytes in
`agentplane_meta.schema_migrations`; an applied file that was edited afterwards stops
the run with an error that names it (add a new migration instead).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg

# One advisory lock key for "migrations are running" (two deploys at once wait in turn).
MIGRATION_LOCK_KEY = 7_242_190_611


class MigrationError(RuntimeError):
    """Migrations cannot run or cannot continue."""


class MigrationEditedError(MigrationError):
    """A migration that was already applied has been changed on disk."""


@dataclass(frozen=True)
class Migration:
    """One SQL file."""

    name: str
    sql: str
    checksum: str

    @classmethod
    def from_text(cls, name: str, sql: str) -> Migration:
        """A migration from its file name and contents."""
        return cls(name=name, sql=sql, checksum=hashlib.sha256(sql.encode()).hexdigest())

    @property
    def summary(self) -> str:
        """The first line of the file's leading comment (what it is for), or ''."""
        for line in self.sql.splitlines():
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("--"):
                if text := stripped.lstrip("-").strip():
                    return text
                continue
            break
        return ""


@dataclass(frozen=True)
class MigrationStatus:
    """What is applied and what is pending."""

    applied: list[str]
    pending: list[str]
    pending_migrations: list[Migration]


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migrations shipped with the package (or in `directory`), in name order."""
    if directory is not None:
        files = sorted(p for p in directory.iterdir() if p.suffix == ".sql")
        return [Migration.from_text(p.name, p.read_text()) for p in files]
    root = resources.files("agentplane.db") / "migrations"
    names = sorted(e.name for e in root.iterdir() if e.name.endswith(".sql"))
    return [Migration.from_text(n, (root / n).read_text()) for n in names]


def _ensure_ledger(conn: psycopg.Connection) -> None:
    conn.execute("create schema if not exists agentplane_meta")
    conn.execute("revoke all on schema agentplane_meta from public")
    conn.execute(
        """
        create table if not exists agentplane_meta.schema_migrations (
          name text primary key,
          checksum text not null,
          applied_at timestamptz not null default now(),
          duration_ms integer not null
        )
        """
    )


def _check_owner_can_bypass_rls(conn: psycopg.Connection) -> None:
    # Security definer helpers run as the migrating role; tables FORCE row level
    # security, so that role must bypass RLS (superuser, or BYPASSRLS as on Supabase).
    row = conn.execute(
        "select rolsuper or rolbypassrls, current_user from pg_roles where rolname = current_user"
    ).fetchone()
    if not row or not row[0]:
        user = row[1] if row else "?"
        raise MigrationError(
            f"role '{user}' must be a superuser or have BYPASSRLS to own agentplane's schema "
            "(run migrations as the database owner, e.g. 'postgres')"
        )


def _applied(conn: psycopg.Connection) -> dict[str, str]:
    if conn.execute("select to_regclass('agentplane_meta.schema_migrations')").fetchone() == (
        None,
    ):
        return {}
    rows = conn.execute("select name, checksum from agentplane_meta.schema_migrations").fetchall()
    return {name: checksum for name, checksum in rows}


def _verify(applied: dict[str, str], migrations: Sequence[Migration]) -> None:
    by_name = {m.name: m for m in migrations}
    for name, checksum in sorted(applied.items()):
        migration = by_name.get(name)
        if migration is not None and migration.checksum != checksum:
            raise MigrationEditedError(
                f"migration {name} was edited after it was applied "
                f"(recorded checksum {checksum[:12]}…, file now {migration.checksum[:12]}…); "
                "restore the file and add a new migration for the change"
            )


def status(conninfo: str, migrations: Sequence[Migration] | None = None) -> MigrationStatus:
    """Which migrations are applied and which are pending (checksums verified). Reads
    only: a database never migrated has no ledger yet, and everything is pending."""
    migrations = list(migrations) if migrations is not None else load_migrations()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        applied = _applied(conn)
    _verify(applied, migrations)
    pending = [m for m in migrations if m.name not in applied]
    return MigrationStatus(
        applied=[m.name for m in migrations if m.name in applied],
        pending=[m.name for m in pending],
        pending_migrations=pending,
    )


def migrate(
    conninfo: str,
    migrations: Sequence[Migration] | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Apply every pending migration, each in its own transaction; return their names."""
    migrations = list(migrations) if migrations is not None else load_migrations()
    say = progress or (lambda _msg: None)
    applied_now: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        _check_owner_can_bypass_rls(conn)
        conn.execute("select pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            _ensure_ledger(conn)
            applied = _applied(conn)
            _verify(applied, migrations)
            pending = [m for m in migrations if m.name not in applied]
            if not pending:
                say(f"database is up to date ({len(applied)} migrations applied)")
                return []
            for i, migration in enumerate(pending, 1):
                started = time.perf_counter()
                try:
                    with conn.transaction():
                        conn.execute(migration.sql.encode())
                        elapsed_ms = int((time.perf_counter() - started) * 1000)
                        conn.execute(
                            "insert into agentplane_meta.schema_migrations"
                            " (name, checksum, duration_ms) values (%s, %s, %s)",
                            (migration.name, migration.checksum, elapsed_ms),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {migration.name} failed: {exc}") from exc
                applied_now.append(migration.name)
                say(f"[{i}/{len(pending)}] applied {migration.name} ({elapsed_ms} ms)")
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now
