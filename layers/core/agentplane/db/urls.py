"""Where the application and the migrator connect, in each mode."""

from __future__ import annotations

from dataclasses import dataclass

from agentplane.settings import Settings


@dataclass(frozen=True)
class DatabaseUrls:
    """The application's URL (as `authenticator`) and the migrator's (schema owner)."""

    app: str
    migrate: str


class DatabaseNotConfiguredError(RuntimeError):
    """No database URL, secret or embedded server is available."""


def urls_from_settings(settings: Settings) -> DatabaseUrls | None:
    """The configured URLs, or None when local mode should start the embedded server."""
    if settings.database_url:
        return DatabaseUrls(
            app=settings.database_url,
            migrate=settings.migrate_database_url or settings.database_url,
        )
    if settings.database_secret_name:
        from aws_lambda_powertools.utilities import parameters

        url = str(parameters.get_secret(settings.database_secret_name, max_age=300))
        return DatabaseUrls(app=url, migrate=settings.migrate_database_url or url)
    return None
