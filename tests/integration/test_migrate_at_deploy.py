"""`agentplane db migrate` as `make deploy` runs it: a dry run that applies nothing, and
the migrator's own credentials (a URL, or a Secrets Manager secret under moto) used
instead of the app's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws

from agentplane import cli
from agentplane.db.migrate import load_migrations, migrate, status
from agentplane.settings import get_settings
from tests.support.database import create_database, drop_databases

APP_ENV = (
    "DATABASE_URL",
    "AGENTPLANE_DATABASE_URL",
    "AGENTPLANE_DATABASE_SECRET_NAME",
    "AGENTPLANE_MIGRATE_DATABASE_URL",
    "AGENTPLANE_MIGRATE_DATABASE_SECRET_NAME",
    "AGENTPLANE_MIGRATIONS_DIR",
)


@pytest.fixture
def empty_dbs(pg_server_url: str) -> Iterator[tuple[str, str]]:
    """Two empty databases: the migrator's and one standing in for the app's."""
    names = [f"m_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    urls = [create_database(pg_server_url, name) for name in names]
    yield urls[0], urls[1]
    drop_databases(pg_server_url, *names)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in APP_ENV:
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture
def secrets(clean_env: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Secrets Manager client under moto, with Powertools' secret cache empty around it."""
    from aws_lambda_powertools.utilities import parameters

    for name, value in (
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ):
        clean_env.setenv(name, value)
    parameters.clear_caches()
    try:
        with mock_aws():
            yield boto3.client("secretsmanager", region_name="eu-west-1")
    finally:
        parameters.clear_caches()


def _ledger_exists(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("select to_regclass('agentplane_meta.schema_migrations')").fetchone()
    return row is not None and row[0] is not None


def test_the_dry_run_lists_every_pending_migration_and_applies_nothing(
    empty_dbs: tuple[str, str],
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a database with all but the last two migrations applied
    url, _ = empty_dbs
    shipped = load_migrations()
    migrate(url, shipped[:-2])
    clean_env.setenv("AGENTPLANE_MIGRATE_DATABASE_URL", url)

    # When the dry run runs
    assert cli.main(["db", "migrate", "--dry-run"]) == 0

    # Then it names the two, each with the first line of its comment, and applies neither
    out = capsys.readouterr().out.splitlines()
    listed = [line for line in out if line.startswith("pending")]
    assert listed == [f"pending  {m.name}  {m.summary}" for m in shipped[-2:]]
    assert all(m.summary for m in shipped[-2:])
    assert out[-1] == (
        f"dry run: 2 migration(s) would be applied, nothing applied ({len(shipped) - 2}"
        " already applied)"
    )
    assert status(url).pending == [m.name for m in shipped[-2:]]


def test_the_dry_run_of_a_fresh_database_writes_nothing_at_all(
    empty_dbs: tuple[str, str],
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, _ = empty_dbs
    clean_env.setenv("AGENTPLANE_MIGRATE_DATABASE_URL", url)

    assert cli.main(["db", "migrate", "--dry-run"]) == 0

    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("pending")]
    assert len(listed) == len(load_migrations())
    # Not even the ledger: the dry run only reads.
    assert not _ledger_exists(url)


def test_migrate_uses_the_migrator_secret_and_never_the_app_secret(
    empty_dbs: tuple[str, str],
    clean_env: pytest.MonkeyPatch,
    secrets: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the app's secret and the migrator's, each naming its own database
    migrator_db, app_db = empty_dbs
    secrets.create_secret(Name="agentplane/test/database-url", SecretString=app_db)
    secrets.create_secret(Name="agentplane/test/migrate-database-url", SecretString=migrator_db)
    clean_env.setenv("AGENTPLANE_DATABASE_SECRET_NAME", "agentplane/test/database-url")
    clean_env.setenv(
        "AGENTPLANE_MIGRATE_DATABASE_SECRET_NAME", "agentplane/test/migrate-database-url"
    )

    # When the dry run, then the migration, run as `make deploy` runs them
    assert cli.main(["db", "migrate", "--dry-run"]) == 0
    assert not _ledger_exists(migrator_db)
    assert cli.main(["db", "migrate"]) == 0

    # Then the migrator's database is migrated and the app's is untouched
    out = capsys.readouterr().out
    shipped = load_migrations()
    assert f"applied {len(shipped)} migration(s)" in out
    assert status(migrator_db).pending == []
    assert not _ledger_exists(app_db)


def test_the_migrator_secret_is_read_without_the_app_secret_existing(
    empty_dbs: tuple[str, str],
    clean_env: pytest.MonkeyPatch,
    secrets: Any,
) -> None:
    # The deployer may have no access to the app's secret: it is not even looked up.
    migrator_db, _ = empty_dbs
    secrets.create_secret(Name="agentplane/test/migrate-database-url", SecretString=migrator_db)
    clean_env.setenv("AGENTPLANE_DATABASE_SECRET_NAME", "agentplane/test/no-such-secret")
    clean_env.setenv(
        "AGENTPLANE_MIGRATE_DATABASE_SECRET_NAME", "agentplane/test/migrate-database-url"
    )
    assert cli.main(["db", "status"]) == 0
    assert not _ledger_exists(migrator_db)


def test_a_missing_migrator_secret_is_one_line_and_exit_code_2(
    clean_env: pytest.MonkeyPatch,
    secrets: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clean_env.setenv("AGENTPLANE_MIGRATE_DATABASE_SECRET_NAME", "agentplane/test/not-created")
    assert cli.main(["db", "migrate", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agentplane: cannot read the database secret 'agentplane/test/not-")
    assert len(err.splitlines()) == 1
