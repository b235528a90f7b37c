"""Test session fixtures: a real PostgreSQL, a migrated template, a fresh database per test.

The session starts its own embedded PostgreSQL (pgserver) in a temporary directory, or
uses the server behind DATABASE_URL (a role that may create databases and roles).
Migrations run once into a template database; each test that needs a database gets a
copy (CREATE DATABASE ... TEMPLATE), which takes milliseconds and leaves nothing behind.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from agentplane.apps import build_local_app
from agentplane.auth.tokens import mint_token
from agentplane.db.database import Database
from agentplane.db.migrate import migrate
from agentplane.runtime import Runtime
from agentplane.settings import Settings
from tests.support.api import MakeOrg, NewUser, Org, User
from tests.support.builders import create_org
from tests.support.database import (
    TEST_JWT_SECRET,
    ProvisionedDatabase,
    create_database,
    drop_databases,
    with_database,
)

TEMPLATE_DB = "agentplane_test_template"


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser URL of the test session's PostgreSQL server."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    from agentplane.db.embedded import start_embedded

    # A short path: the server's unix socket lives here and socket paths are limited.
    pgdata = Path(tmp_path_factory.mktemp("pg", numbered=True)) / "data"
    embedded = start_embedded(pgdata, cleanup="delete", database="postgres")
    url = embedded.admin_url("postgres")
    with psycopg.connect(url, autocommit=True) as conn:
        # Durability buys nothing in a throw-away test cluster.
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(sql.SQL("alter system set {} = off").format(sql.Identifier(setting)))
        conn.execute("select pg_reload_conf()")
    yield url
    embedded.stop()


@pytest.fixture(scope="session")
def authenticator_password() -> str:
    """The password the tests give the `authenticator` role (unused under trust auth)."""
    return secrets.token_hex(16)


@pytest.fixture(scope="session")
def template_database(pg_server_url: str, authenticator_password: str) -> str:
    """A database migrated once, that every per-test database is cloned from."""
    drop_databases(pg_server_url, TEMPLATE_DB)
    migrate(create_database(pg_server_url, TEMPLATE_DB))
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("alter role authenticator password {}").format(
                sql.Literal(authenticator_password)
            )
        )
    return TEMPLATE_DB


@pytest.fixture(scope="session")
def make_database(
    pg_server_url: str, template_database: str, authenticator_password: str
) -> Iterator[Callable[[], ProvisionedDatabase]]:
    """A factory of fresh migrated databases, all dropped by the end of the session."""
    created: list[str] = []

    def make() -> ProvisionedDatabase:
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin_url = create_database(pg_server_url, name, template=template_database)
        created.append(name)
        return ProvisionedDatabase(
            name=name,
            admin_url=admin_url,
            app_url=with_database(
                pg_server_url, name, user="authenticator", password=authenticator_password
            ),
        )

    yield make
    drop_databases(pg_server_url, *created)


@pytest.fixture
def fresh_db(
    make_database: Callable[[], ProvisionedDatabase], pg_server_url: str
) -> Iterator[ProvisionedDatabase]:
    """A clean, migrated database for this test alone, dropped after it. (Kept to the
    session's end, a few hundred 10 MB copies made the cluster's stop and removal take
    about a minute.)"""
    db = make_database()
    yield db
    drop_databases(pg_server_url, db.name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings of a test: fixed JWT secret, data under the test's temporary directory."""
    return Settings(stage="test", jwt_secret=TEST_JWT_SECRET, data_dir=tmp_path / ".agentplane")


@pytest.fixture
async def database(fresh_db: ProvisionedDatabase) -> AsyncIterator[Database]:
    """The application's pool on this test's database (connects as authenticator)."""
    db = Database(fresh_db.app_url, max_size=8)
    yield db
    await db.close()


@pytest.fixture
async def client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the local app (every router), in process."""
    app = build_local_app(Runtime(settings, database))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def token_for(settings: Settings) -> Callable[..., str]:
    """Mint a valid user token: token_for(user_id, email=None)."""

    def make(user_id: uuid.UUID, email: str | None = None) -> str:
        return mint_token(settings, user_id, email=email)

    return make


@pytest.fixture
def auth_headers(token_for: Callable[..., str]) -> Callable[[uuid.UUID], dict[str, str]]:
    """`Authorization` headers for a user id."""

    def make(user_id: uuid.UUID) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(user_id)}"}

    return make


@pytest.fixture
def new_user(auth_headers: Callable[[uuid.UUID], dict[str, str]]) -> NewUser:
    """A fresh user (their auth row appears on their first request)."""

    def make() -> User:
        user_id = uuid.uuid4()
        return User(user_id, auth_headers(user_id))

    return make


@pytest.fixture
def make_org(client: httpx.AsyncClient, new_user: NewUser) -> MakeOrg:
    """Create an organization through the API, with an admin, a member and a viewer."""

    async def make(name: str = "Acme") -> Org:
        return await create_org(client, new_user, name)

    return make
