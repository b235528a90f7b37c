"""`agentplane`: the command line for local mode, migrations and development tokens."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from uuid import UUID

from agentplane import __version__
from agentplane.db.embedded import EmbeddedPostgres, as_role, start_embedded
from agentplane.db.migrate import MigrationError, load_migrations, migrate, status
from agentplane.db.urls import DatabaseSecretError, DatabaseUrls, migrator_url, urls_from_settings
from agentplane.settings import Settings, get_settings


def _say(message: str) -> None:
    print(message, flush=True)


@contextmanager
def database_urls(settings: Settings) -> Iterator[tuple[DatabaseUrls, EmbeddedPostgres | None]]:
    """The configured database, or the embedded one under data_dir (started, then released)."""
    urls = urls_from_settings(settings)
    if urls is not None:
        yield urls, None
        return
    pgdata = settings.data_dir / "pgdata"
    first = not (pgdata / "PG_VERSION").exists()
    _say(
        f"starting embedded PostgreSQL in {pgdata}"
        + (" (first start: initializing, a few seconds)" if first else "")
    )
    embedded = start_embedded(pgdata)
    try:
        admin = embedded.admin_url()
        yield DatabaseUrls(app=as_role(admin), migrate=admin), embedded
    finally:
        embedded.stop()


@contextmanager
def migrator_database(settings: Settings) -> Iterator[str]:
    """Where migrations run: the migrator's own URL or secret when it has one (the app's
    secret is then never read), else the app's database or the embedded one."""
    own = migrator_url(settings)
    if own is not None:
        yield own
        return
    with database_urls(settings) as (urls, _):
        yield urls.migrate


def cmd_db_migrate(settings: Settings, args: argparse.Namespace) -> int:
    migrations = load_migrations(settings.migrations_dir)
    with migrator_database(settings) as url:
        if args.dry_run:
            st = status(url, migrations)
            for migration in st.pending_migrations:
                _say(f"pending  {migration.name}  {migration.summary}".rstrip())
            _say(
                f"dry run: {len(st.pending)} migration(s) would be applied, nothing applied"
                f" ({len(st.applied)} already applied)"
            )
            return 0
        applied = migrate(url, migrations, progress=_say)
    if applied:
        _say(f"applied {len(applied)} migration(s)")
    return 0


def cmd_db_status(settings: Settings, _args: argparse.Namespace) -> int:
    with migrator_database(settings) as url:
        st = status(url, load_migrations(settings.migrations_dir))
    for name in st.applied:
        _say(f"applied  {name}")
    for name in st.pending:
        _say(f"pending  {name}")
    _say(f"{len(st.applied)} applied, {len(st.pending)} pending")
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from agentplane.auth.tokens import mint_token

    _say(mint_token(settings, args.sub, email=args.email, ttl_seconds=args.ttl))
    return 0


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    from agentplane.devserver import serve, unusable_address

    if (problem := unusable_address(args.host, args.port)) is not None:
        print(f"agentplane dev: {problem}", file=sys.stderr)
        return 1
    with database_urls(settings) as (urls, _):
        migrate(urls.migrate, load_migrations(settings.migrations_dir), progress=_say)
        serve(
            settings,
            urls,
            host=args.host,
            port=args.port,
            seed=not args.no_seed,
            cron_interval=args.cron_interval,
        )
    _say("stopped")
    return 0


def cmd_audit_verify(settings: Settings, _args: argparse.Namespace) -> int:
    from agentplane.actions.audit import verify_database

    with database_urls(settings) as (urls, _):
        report = verify_database(urls.app, progress=lambda n: _say(f"  {n} events checked"))
    for broken in report.broken:
        _say(f"BROKEN event {broken.event_id} of action {broken.action_id}: {broken.reason}")
    _say(
        f"{report.chains} chains, {report.events} events: "
        + ("every chain verifies" if report.ok else f"{len(report.broken)} broken rows")
    )
    return 0 if report.ok else 1


def cmd_keys_rotate(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from agentplane.db.database import Database
    from agentplane.runtime import Runtime
    from agentplane.vault.crypto import LocalKeyring

    runtime = Runtime(settings)
    vault = runtime.vault
    keyring = vault.current if isinstance(vault.current, LocalKeyring) else None
    if args.new_master_key:
        if keyring is None:
            _say("--new-master-key is for the local keyring; with KMS, set"
                 " AGENTPLANE_KMS_KEY_ID to the new key and run this again")  # fmt: skip
            return 2
        key_id = keyring.add_master_key()
        keyring.save()
        _say(f"new master key {key_id} is current in {keyring.path} (earlier keys kept)")
    _say(f"re-wrapping data keys under {vault.current.current_kek_id}")

    async def run() -> int:
        database = Database(
            urls.app, min_size=1, max_size=2, check_login_role=not settings.is_local
        )
        try:
            report = await vault.rotate(
                database,
                batch_size=args.batch_size,
                progress=lambda n: _say(f"  {n} data keys re-wrapped"),
            )
            for key_id, reason in report.failed:
                _say(f"FAILED key {key_id}: {reason}")
            _say(f"{report.rewrapped} data keys re-wrapped, {len(report.failed)} failed")
            counts = await vault.kek_counts(database)
            for kek_id, count in sorted(counts.items()):
                _say(f"  {count} key(s) wrapped under {kek_id}")
            if args.retire and keyring is not None and not report.failed:
                in_use = await vault.kek_ids_in_use(database)
                unused = {k for k in keyring.keys if keyring.current_kek_id != f"local:{k}"}
                unused = {k for k in unused if f"local:{k}" not in in_use}
                keyring.retire(unused)
                keyring.save()
                _say(f"retired {len(unused)} master key(s) no key uses any more")
            return 1 if report.failed else 0
        finally:
            await database.close()

    with database_urls(settings) as (urls, _):
        return asyncio.run(run())


def openapi_document() -> str:
    """The OpenAPI document of every route (what docs/openapi.json holds)."""
    import json

    from agentplane.apps import build_local_app

    return json.dumps(build_local_app().openapi(), indent=2, sort_keys=True) + "\n"


def cmd_openapi(_settings: Settings, args: argparse.Namespace) -> int:
    document = openapi_document()
    if args.output == "-":
        sys.stdout.write(document)
    else:
        with open(args.output, "w") as f:
            f.write(document)
        _say(f"wrote {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="agentplane",
        description="The control plane for remote AI agents: local mode, migrations, tokens.",
    )
    parser.add_argument("--version", action="version", version=f"agentplane {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = sub.add_parser("db", help="database migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    db_migrate = db_sub.add_parser(
        "migrate",
        help="apply pending migrations (AGENTPLANE_MIGRATE_DATABASE_URL, the secret named by"
        " AGENTPLANE_MIGRATE_DATABASE_SECRET_NAME, or DATABASE_URL; the embedded database"
        " when none is set)",
    )
    db_migrate.add_argument(
        "--dry-run",
        action="store_true",
        help="list the pending migrations (name and first comment line); apply nothing",
    )
    db_migrate.set_defaults(func=cmd_db_migrate)
    db_sub.add_parser("status", help="list applied and pending migrations").set_defaults(
        func=cmd_db_status
    )

    tok = sub.add_parser("token", help="mint a user token from the local secret (development)")
    tok.add_argument("--sub", type=UUID, required=True, help="the user id (UUID)")
    tok.add_argument("--email", help="the email claim")
    tok.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (3600)")
    tok.set_defaults(func=cmd_token)

    audit = sub.add_parser("audit", help="the action audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    audit_sub.add_parser(
        "verify", help="recompute every action's hash chain; exit 1 naming broken rows"
    ).set_defaults(func=cmd_audit_verify)

    keys = sub.add_parser("keys", help="the BYOK vault's wrapping keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    rotate = keys_sub.add_parser(
        "rotate",
        help="re-wrap every data key under the current key-encryption key (KMS key"
        " AGENTPLANE_KMS_KEY_ID, or the local keyring's current master key); secrets'"
        " ciphertexts are not touched and reads go on throughout",
    )
    rotate.add_argument(
        "--new-master-key",
        action="store_true",
        help="local mode: add a fresh master key to the keyring and make it current first",
    )
    rotate.add_argument(
        "--retire",
        action="store_true",
        help="local mode: afterwards, drop master keys that no stored key uses",
    )
    rotate.add_argument(
        "--batch-size", type=int, default=100, help="keys re-wrapped per transaction (100)"
    )
    rotate.set_defaults(func=cmd_keys_rotate)

    api = sub.add_parser("openapi", help="write the OpenAPI document of every route")
    api.add_argument("--output", default="docs/openapi.json", help="file, or - for stdout")
    api.set_defaults(func=cmd_openapi)

    from agentplane.runner.cli import add_runner_parser

    add_runner_parser(sub)

    dev = sub.add_parser(
        "dev", help="run everything locally: embedded database, migrations, demo data, server"
    )
    dev.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    dev.add_argument("--port", type=int, default=8000, help="port to bind (8000)")
    dev.add_argument("--no-seed", action="store_true", help="do not create the demo data")
    dev.add_argument(
        "--cron-interval",
        type=float,
        default=30.0,
        help="seconds between heartbeat cron runs (reap stale sessions, leases, TTLs) (30)",
    )
    dev.set_defaults(func=cmd_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `agentplane` command."""
    args = build_parser().parse_args(argv)
    settings = get_settings()
    try:
        code: int = args.func(settings, args)
    except (MigrationError, DatabaseSecretError) as exc:
        print(f"agentplane: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
