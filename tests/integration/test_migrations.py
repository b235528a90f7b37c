"""Migrations: a fresh database migrates, a second run is a no-op, edits are refused."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from agentplane.db.migrate import (
    Migration,
    MigrationEditedError,
    load_migrations,
    migrate,
    status,
)
from agentplane.templates.models import Payload
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


def test_the_seed_migrations_carry_existing_rows_over(empty_db_url: str) -> None:
    # Given a database at the schema before the seed migrations, with rows in the old
    # shape (as the API wrote them, and a payload a client wrote past it)
    before = [m for m in load_migrations() if m.name < "20261201000100"]
    migrate(empty_db_url, before)
    user = uuid.uuid4()
    old_bundle = {
        "skills": [{"name": "triage", "description": "", "instructions": "label it"}],
        "memory": [
            {"kind": "fact", "label": "tz", "content": "UTC", "importance": 0.9},
            {"kind": "note", "label": "bare"},
        ],
    }
    with psycopg.connect(empty_db_url) as conn:
        conn.execute("insert into auth.users (id) values (%s)", (user,))
        connections = {
            status: conn.execute(
                "insert into public.agent_connections (user_id, name, provider, base_url, model,"
                " status, updated_at) values (%s, %s, %s, %s, 'm', %s, '2026-01-01')"
                " returning id",
                (user, status, provider, url, status),
            ).fetchone()[0]  # type: ignore[index]
            for status, provider, url in (
                ("active", "openrouter", None),
                ("inactive", "nous", None),
                ("error", "custom", "http://127.0.0.1:9/v1"),
            )
        }
        conn.execute(
            "insert into public.tasks (user_id, title, status, updated_at)"
            " values (%s, 't', 'todo', '2026-01-01')",
            (user,),
        )
        conn.execute(
            "insert into public.templates (user_id, name, bundle, updated_at)"
            " values (%s, 'api', %s, '2026-01-01'), (%s, 'raw', %s, '2026-01-01')",
            (user, Jsonb(old_bundle), user, Jsonb({"skills": None, "memory": [1, "x"]})),
        )
        conn.execute(
            "insert into public.skills (user_id, name, instructions) values (%s, 's', 'do it')",
            (user,),
        )
        conn.execute(
            "insert into public.memory_nodes (user_id, label, kind, importance)"
            " values (%s, 'l', 'preference', 0.3)",
            (user,),
        )
        conn.execute(
            "insert into public.mirror_reports (user_id, connection_id) values (%s, %s)",
            (user, connections["active"]),
        )

    # When the rest of the migrations run
    applied = migrate(empty_db_url)

    # Then every row reads in the seed's names and values, and none looks edited
    assert applied[0] == "20261201000100_seed_agent_connections.sql"
    with psycopg.connect(empty_db_url) as conn:
        rows = conn.execute(
            "select status, base_url, updated_at = '2026-01-01' from public.agent_connections"
            " order by name"
        ).fetchall()
        assert rows == [
            ("offline", "https://openrouter.ai/api/v1", True),
            ("error", "http://127.0.0.1:9/v1", True),
            ("offline", "https://inference-api.nousresearch.com/v1", True),
        ]
        assert conn.execute(
            "select status, updated_at = '2026-01-01' from public.tasks"
        ).fetchall() == [("pending", True)]
        payloads = dict(
            conn.execute(
                "select name, payload from public.templates where updated_at = '2026-01-01'"
            ).fetchall()
        )
        assert payloads == {
            "api": {
                "skills": [{"name": "triage", "description": "", "template_prompt": "label it"}],
                "seed_memory": [
                    {"category": "fact", "label": "tz", "content": "UTC", "strength": 0.9},
                    {"category": "note", "label": "bare"},
                ],
            },
            # What is not a list of objects is kept as it was, and installs refuse it
            "raw": {"skills": None, "seed_memory": [1, "x"]},
        }
        assert Payload.model_validate(payloads["api"]).seed_memory[1].strength == 0.5
        assert conn.execute("select template_prompt, status from public.skills").fetchall() == [
            ("do it", "draft")
        ]
        assert conn.execute("select category, strength from public.memory_nodes").fetchall() == [
            ("preference", pytest.approx(0.3))
        ]
        assert conn.execute("select agent_connection_id from public.mirror_reports").fetchall() == [
            (connections["active"],)
        ]


def test_live_runner_tokens_get_the_default_lifetime(empty_db_url: str) -> None:
    # Given a token issued before lifetimes existed (no expires_at), and a revoked one
    before = [m for m in load_migrations() if m.name < "20261202000100"]
    migrate(empty_db_url, before)
    user = uuid.uuid4()
    with psycopg.connect(empty_db_url) as conn:
        conn.execute("insert into auth.users (id) values (%s)", (user,))
        org = conn.execute(
            "insert into public.organizations (name, created_by) values ('o', %s) returning id",
            (user,),
        ).fetchone()[0]  # type: ignore[index]
        project = conn.execute(
            "insert into public.projects (organization_id, name) values (%s, 'p') returning id",
            (org,),
        ).fetchone()[0]  # type: ignore[index]
        agent = conn.execute(
            "insert into public.agents (organization_id, project_id, name)"
            " values (%s, %s, 'a') returning id",
            (org, project),
        ).fetchone()[0]  # type: ignore[index]
        for name, revoked in (("live", None), ("revoked", "2026-01-01")):
            conn.execute(
                "insert into public.agent_runner_tokens (organization_id, agent_id, name,"
                " token_hash, token_prefix, created_by, revoked_at)"
                " values (%s, %s, %s, md5(%s) || md5(%s), 'aprt', %s, %s)",
                (org, agent, name, name, name, user, revoked),
            )
    # When the rest of the migrations run
    migrate(empty_db_url)
    # Then the live token expires in 90 days and the revoked one is left alone
    with psycopg.connect(empty_db_url) as conn:
        rows = dict(
            conn.execute(
                "select name, round(extract(epoch from expires_at - now()) / 86400)"
                " from public.agent_runner_tokens"
            ).fetchall()
        )
    assert rows == {"live": 90, "revoked": None}
