"""Where the application and the migrator connect, in each mode."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.conninfo import make_conninfo

from agentplane.settings import Settings


@dataclass(frozen=True)
class DatabaseUrls:
    """The application's URL (as `authenticator`) and the migrator's (schema owner)."""

    app: str
    migrate: str


class DatabaseNotConfiguredError(RuntimeError):
    """No database URL, secret or embedded server is available."""


class DatabaseSecretError(RuntimeError):
    """A database secret could not be read (missing, no access, no region)."""


def _secret(name: str) -> str:
    # A secret whose value is a database URL (Powertools caches it for five minutes).
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    try:
        return str(parameters.get_secret(name, max_age=300))
    except GetParameterError as exc:
        raise DatabaseSecretError(f"cannot read the database secret {name!r}: {exc}") from exc


def migrator_url(settings: Settings) -> str | None:
    """The migrator's own URL (`AGENTPLANE_MIGRATE_DATABASE_URL`, else the secret named by
    `AGENTPLANE_MIGRATE_DATABASE_SECRET_NAME`), or None when it has none of its own."""
    if settings.migrate_database_url:
        return settings.migrate_database_url
    if settings.migrate_database_secret_name:
        return _secret(settings.migrate_database_secret_name)
    return None


def through_proxy(url: str, proxy_host: str) -> str:
    """`url` with its host (and port, if `proxy_host` is `host:port`) replaced."""
    host, _, port = proxy_host.partition(":")
    return make_conninfo(url, host=host, **({"port": port} if port else {}))


def urls_from_settings(settings: Settings) -> DatabaseUrls | None:
    """The configured URLs, or None when local mode should start the embedded server."""
    if settings.database_url:
        direct = settings.database_url
    elif settings.database_secret_name:
        direct = _secret(settings.database_secret_name)
    else:
        return None
    # Only the app goes through a proxy or pooler: migrations hold a session-level
    # advisory lock, which a transaction pooler would not keep.
    proxy = settings.database_proxy_host
    app = through_proxy(direct, proxy) if proxy else direct
    return DatabaseUrls(app=app, migrate=migrator_url(settings) or direct)
