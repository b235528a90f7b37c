"""What the catalog must say of every table, policy, view and function agentplane creates."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.database import ProvisionedDatabase

# Columns a policy may filter on; each must lead an index of its table.
POLICY_COLUMNS = (
    "organization_id",
    "user_id",
    "author_id",
    "agent_id",
    "id",
    "action_id",
    "is_public",
)


@pytest.fixture(scope="module")
def catalog(make_database: object) -> Iterator[psycopg.Connection]:
    db: ProvisionedDatabase = make_database()  # type: ignore[operator]
    with psycopg.connect(db.admin_url, autocommit=True) as conn:
        yield conn


def _public_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1"
    ).fetchall()
    return [r[0] for r in rows]


def test_every_public_table_has_rls_enabled_and_forced(catalog: psycopg.Connection) -> None:
    rows = catalog.execute(
        "select c.relname, c.relrowsecurity, c.relforcerowsecurity"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind in ('r', 'p')"
    ).fetchall()
    assert len(rows) >= 20
    offenders = [name for name, enabled, forced in rows if not (enabled and forced)]
    assert offenders == []


def test_every_public_table_has_policies(catalog: psycopg.Connection) -> None:
    with_policies = {
        r[0]
        for r in catalog.execute(
            "select distinct tablename from pg_policies where schemaname = 'public'"
        ).fetchall()
    }
    assert set(_public_tables(catalog)) - with_policies == set()


def test_no_policy_is_granted_to_public_and_each_names_its_role(
    catalog: psycopg.Connection,
) -> None:
    rows = catalog.execute(
        "select tablename, policyname, roles from pg_policies where schemaname = 'public'"
    ).fetchall()
    allowed = {"authenticated", "agent_runner", "service_role"}
    assert len(rows) >= 60
    for table, policy, roles in rows:
        assert "public" not in roles, f"{table}: policy {policy!r} is granted to public"
        assert set(roles) <= allowed, f"{table}: policy {policy!r} names {roles}"


def test_policies_call_auth_uid_through_a_subselect(catalog: psycopg.Connection) -> None:
    # `(select auth.uid())` is evaluated once per statement, not once per row.
    rows = catalog.execute(
        "select tablename, policyname, coalesce(qual, '') || ' ' || coalesce(with_check, '')"
        " from pg_policies where schemaname = 'public'"
    ).fetchall()
    assert sum("auth.uid()" in expr for _, _, expr in rows) >= 20
    for table, policy, expr in rows:
        bare = re.sub(r"\(\s*SELECT\s+auth\.uid\(\)[^)]*\)", "", expr, flags=re.IGNORECASE)
        assert "auth.uid()" not in bare, f"{table}: policy {policy!r} calls auth.uid() per row"
        bare = re.sub(r"\(\s*SELECT\s+private\.\w+\([^)]*\)[^)]*\)", "", expr, flags=re.I)
        assert "private." not in bare, f"{table}: policy {policy!r} calls a helper per row"


def test_no_view_runs_with_its_owners_rights(catalog: psycopg.Connection) -> None:
    rows = catalog.execute(
        "select c.relname, c.reloptions from pg_class c"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind in ('v', 'm')"
    ).fetchall()
    definer_views = [
        name for name, options in rows if "security_invoker=true" not in (options or [])
    ]
    assert definer_views == []


def test_security_definer_functions_pin_an_empty_search_path(catalog: psycopg.Connection) -> None:
    rows = catalog.execute(
        "select n.nspname || '.' || p.proname, p.proconfig from pg_proc p"
        " join pg_namespace n on n.oid = p.pronamespace"
        " where p.prosecdef and n.nspname in ('public', 'private', 'auth')"
    ).fetchall()
    assert rows, "expected the membership helpers to be security definer"
    unpinned = [name for name, config in rows if 'search_path=""' not in (config or [])]
    assert unpinned == []
    public_definers = [name for name, _ in rows if name.startswith("public.")]
    assert public_definers == []


def test_columns_policies_filter_on_are_indexed(catalog: psycopg.Connection) -> None:
    policies = catalog.execute(
        "select tablename, coalesce(qual, '') || ' ' || coalesce(with_check, '')"
        " from pg_policies where schemaname = 'public'"
    ).fetchall()
    leading = {
        (table, column)
        for table, column in catalog.execute(
            """
            select t.relname, a.attname
            from pg_index i
            join pg_class t on t.oid = i.indrelid
            join pg_namespace n on n.oid = t.relnamespace
            join pg_attribute a on a.attrelid = t.oid and a.attnum = i.indkey[0]
            where n.nspname = 'public'
            """
        ).fetchall()
    }
    assert ("projects", "organization_id") in leading
    missing = set()
    for table, expr in policies:
        for column in POLICY_COLUMNS:
            if re.search(rf"(?<![\w.]){column}\b", expr) and (table, column) not in leading:
                missing.add((table, column))
    # A partial index covers is_public; everything else must lead an index.
    missing.discard(("templates", "is_public"))
    assert missing == set()


def test_status_role_and_provider_columns_are_checked(catalog: psycopg.Connection) -> None:
    rows = catalog.execute(
        """
        select c.table_name, c.column_name
        from information_schema.columns c
        where c.table_schema = 'public'
          and c.column_name in ('status', 'role', 'provider')
        """
    ).fetchall()
    checks = catalog.execute(
        "select conrelid::regclass::text, pg_get_constraintdef(oid) from pg_constraint"
        " where contype = 'c' and connamespace = 'public'::regnamespace"
    ).fetchall()
    unchecked = [
        (table, column)
        for table, column in rows
        if not any(
            t in (table, f"public.{table}") and re.search(rf"\b{column}\b", d) for t, d in checks
        )
    ]
    assert rows
    assert unchecked == []


def test_every_table_with_updated_at_has_its_trigger(catalog: psycopg.Connection) -> None:
    rows = catalog.execute(
        """
        select c.table_name from information_schema.columns c
        where c.table_schema = 'public' and c.column_name = 'updated_at'
          and not exists (
            select 1 from pg_trigger t
            where t.tgrelid = ('public.' || c.table_name)::regclass
              and t.tgfoid = 'private.set_updated_at'::regproc
          )
        """
    ).fetchall()
    assert rows == []
