"""GET /health and GET /me against a real database."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import psycopg
import pytest
from psycopg import sql

from agentplane.apps import build_local_app
from agentplane.db.database import Database
from agentplane.runtime import Runtime
from agentplane.settings import Settings
from tests.support.database import ProvisionedDatabase


async def test_health_reports_database_up(client: httpx.AsyncClient) -> None:
    resp = await client.get("/health")
    assert resp.status_code == 200
    assert resp.json()["database"] == "ok"


async def test_health_is_503_problem_when_database_is_down(settings: Settings) -> None:
    # A port nothing listens on: the pool cannot connect within its timeout.
    db = Database("postgresql://authenticator@127.0.0.1:1/none", connect_timeout=1.0)
    app = build_local_app(Runtime(settings, db))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        resp = await c.get("/health")
    await db.close()
    assert resp.status_code == 503
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"].endswith("/unavailable")


async def test_first_seen_user_gets_an_auth_row_and_sees_no_organizations(
    client: httpx.AsyncClient,
    auth_headers: Callable[[uuid.UUID], dict[str, str]],
    fresh_db: ProvisionedDatabase,
) -> None:
    user = uuid.uuid4()
    resp = await client.get("/me", headers=auth_headers(user))
    assert resp.status_code == 200
    assert resp.json() == {"user_id": str(user), "email": None, "organizations": []}
    with psycopg.connect(fresh_db.admin_url) as conn:
        rows = conn.execute("select id from auth.users where id = %s", (user,)).fetchall()
    assert rows == [(user,)]


def test_callers_cannot_write_auth_users(fresh_db: ProvisionedDatabase) -> None:
    user = uuid.uuid4()
    with psycopg.connect(fresh_db.app_url) as conn:
        conn.execute(
            "select set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', %s, true)",
            (f'{{"sub": "{user}", "role": "authenticated"}}',),
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("insert into auth.users (id) values (%s)", (uuid.uuid4(),))


def test_authenticator_alone_can_read_nothing(fresh_db: ProvisionedDatabase) -> None:
    with psycopg.connect(fresh_db.app_url) as conn:
        for table in ("organizations", "user_keys", "agent_actions", "messages"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("select 1 from {}").format(sql.Identifier("public", table)))
            conn.rollback()
