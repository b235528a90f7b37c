"""The test server's databases: URLs of one database, and creating and dropping them.

The session fixtures in tests/conftest.py migrate a template once and clone it for each
test (CREATE DATABASE ... TEMPLATE takes milliseconds); tests that need an empty
database make one here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

TEST_JWT_SECRET = "test-secret-" + "x" * 40


@dataclass(frozen=True)
class ProvisionedDatabase:
    """One database of the test server: its superuser URL and the app's (authenticator)."""

    name: str
    admin_url: str
    app_url: str


def with_database(url: str, dbname: str, **overrides: Any) -> str:
    """The same server URL, naming another database (and any other parameter)."""
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    params.update(overrides)
    return make_conninfo("", **params)


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    """A new database on the server (empty, or a copy of `template`); its superuser URL."""
    statement = sql.SQL("create database {}").format(sql.Identifier(name))
    if template is not None:
        statement += sql.SQL(" template {}").format(sql.Identifier(template))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(statement)
    return with_database(server_url, name)


def drop_databases(server_url: str, *names: str) -> None:
    """Drop the databases if they exist, whoever is still connected to them."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        for name in names:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
