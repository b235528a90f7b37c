"""Which URL the app and the migrator connect with, from the settings alone."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

from agentplane.db.urls import migrator_url, through_proxy, urls_from_settings
from agentplane.settings import Settings

APP = "postgresql://authenticator:app-pw@db.internal:5432/agentplane?sslmode=require"
OWNER = "postgresql://postgres:owner-pw@db.internal:5432/agentplane"


def test_the_migrator_url_wins_over_the_app_url() -> None:
    settings = Settings(database_url=APP, migrate_database_url=OWNER)
    assert migrator_url(settings) == OWNER
    assert urls_from_settings(settings) is not None
    assert urls_from_settings(settings).migrate == OWNER  # type: ignore[union-attr]


def test_without_credentials_of_its_own_the_migrator_has_none() -> None:
    assert migrator_url(Settings(database_url=APP)) is None


def test_a_proxy_replaces_the_host_of_the_app_url_only() -> None:
    settings = Settings(
        database_url=APP, database_proxy_host="agentplane.proxy-abc.us-east-1.rds.amazonaws.com"
    )
    urls = urls_from_settings(settings)
    assert urls is not None
    app = conninfo_to_dict(urls.app)
    assert app["host"] == "agentplane.proxy-abc.us-east-1.rds.amazonaws.com"
    assert (app["port"], app["user"], app["password"], app["dbname"], app["sslmode"]) == (
        "5432",
        "authenticator",
        "app-pw",
        "agentplane",
        "require",
    )
    # Migrations hold a session-level advisory lock: they go to the database itself.
    assert urls.migrate == APP


def test_a_pooler_may_name_its_port() -> None:
    pooled = conninfo_to_dict(through_proxy(APP, "pooler.example.com:6543"))
    assert (pooled["host"], pooled["port"]) == ("pooler.example.com", "6543")
