"""Which URL the app and the migrator connect with, from the settings alone."""

from __future__ import annotations

from agentplane.db.urls import migrator_url, urls_from_settings
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
