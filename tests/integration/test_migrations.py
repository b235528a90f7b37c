"""Migrations: a fresh database migrates, a second run is a no-op, edits are refused."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from agentplane.db.migrate import (
    Migration,
    MigrationEditedError,
    load_migrations,
    migrate,
    status,
)
from tests.support.database import create_database, drop_databases


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    name = f"m_{uuid.uuid4().hex[:12]}"
    yield create_database(pg_server_url, name)
    drop_databases(pg_server_url, name)


def test_fresh_database_migrates_then_second_run_is_a_no_op(empty_db_url: str) -> None:
    shipped = load_migrations()
    assert [m.name for m in shipped] == sorted(m.name for m in shipped)
    messages: list[str] = []

    applied = migrate(empty_db_url, progress=messages.append)

    assert applied == [m.name for m in shipped]
    assert len(messages) == len(shipped)
    with psycopg.connect(empty_db_url) as conn:
        tables = conn.execute(
            "select count(*) from pg_tables where schemaname = 'public'"
        ).fetchone()
        ledger = conn.execute(
            "select name, checksum from agentplane_meta.schema_migrations order by name"
        ).fetchall()
    assert tables is not None
    assert tables[0] >= 20
    assert ledger == [(m.name, m.checksum) for m in shipped]

    assert migrate(empty_db_url) == []
    assert status(empty_db_url).pending == []


def test_new_migration_is_applied_on_top(empty_db_url: str) -> None:
    migrate(empty_db_url)
    extra = Migration.from_text(
        "29990101000000_add_note.sql",
        "alter table public.projects add column note text;",
    )
    assert migrate(empty_db_url, [*load_migrations(), extra]) == [extra.name]
    with psycopg.connect(empty_db_url) as conn:
        cols = conn.execute(
            "select column_name from information_schema.columns"
            " where table_name = 'projects' and column_name = 'note'"
        ).fetchall()
    assert cols == [("note",)]


def test_edited_applied_migration_is_refused_by_name(empty_db_url: str) -> None:
    shipped = load_migrations()
    migrate(empty_db_url, shipped)
    victim = shipped[3]
    edited = [
        Migration.from_text(m.name, m.sql + "\n-- edited\n") if m.name == victim.name else m
        for m in shipped
    ]
    extra = Migration.from_text("29990101000000_new.sql", "select 1;")

    with pytest.raises(MigrationEditedError, match=victim.name):
        migrate(empty_db_url, [*edited, extra])

    # Nothing after the check ran: the new file is still pending.
    with psycopg.connect(empty_db_url) as conn:
        row = conn.execute(
            "select count(*) from agentplane_meta.schema_migrations where name = %s",
            (extra.name,),
        ).fetchone()
    assert row == (0,)


def test_a_failing_migration_leaves_nothing_half_applied(empty_db_url: str) -> None:
    migrate(empty_db_url)
    broken = Migration.from_text(
        "29990101000000_broken.sql",
        "create table public.half (id int); select no_such_function();",
    )
    with pytest.raises(Exception, match=broken.name):
        migrate(empty_db_url, [*load_migrations(), broken])
    with psycopg.connect(empty_db_url) as conn:
        half = conn.execute("select to_regclass('public.half')").fetchone()
        recorded = conn.execute(
            "select count(*) from agentplane_meta.schema_migrations where name = %s",
            (broken.name,),
        ).fetchone()
    assert half == (None,)
    assert recorded == (0,)


def test_two_concurrent_runs_apply_each_file_once(empty_db_url: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(empty_db_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(len(r) for r in results) == [0, len(load_migrations())]


def test_cli_refuses_an_edited_migration_with_exit_code_2(
    empty_db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agentplane import cli
    from agentplane.settings import get_settings

    migrations_dir = tmp_path / "migrations"
    migrations_dir.mkdir()
    first = migrations_dir / "20260101000000_one.sql"
    first.write_text("create table public.cli_probe (id int);")
    monkeypatch.setenv("DATABASE_URL", empty_db_url)
    monkeypatch.setenv("AGENTPLANE_MIGRATIONS_DIR", str(migrations_dir))
    get_settings.cache_clear()
    try:
        assert cli.main(["db", "migrate"]) == 0
        first.write_text("create table public.cli_probe (id bigint);")
        assert cli.main(["db", "migrate"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "20260101000000_one.sql" in err
    assert "edited" in err
