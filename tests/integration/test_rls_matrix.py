"""Row Level Security matrix: every table of schema public x operation x caller.

SPEC says, per table, which callers may select, insert, update and delete its target row
(a row of organization A, or a row owned by A's owner). Each generated case acts exactly
as the application does (SET LOCAL role + request.jwt.claims on an `authenticator`
connection), in its own transaction that is rolled back, so cases are independent and
share one world (tests/support/rls_world.py).

- select: the target row is visible (1) or not (0).
- insert: a valid new row is inserted, or refused with 42501 (grant or policy).
- update / delete: exactly one row is affected; a denied attempt affects none or raises
  42501, and the row, read back as service_role in the same transaction, is unchanged.

A table without an entry in SPEC fails test_every_public_table_has_a_spec.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.errors import InsufficientPrivilege

from tests.support.database import ProvisionedDatabase
from tests.support.rls_world import ORG_ROLES, RUNNERS, World, build_world

OPS = ("select", "insert", "update", "delete")
ORG_ACTORS = (*ORG_ROLES, "outsider", "anon")
RUNNER_ACTORS = (*ORG_ACTORS, *RUNNERS)
# Per-user tables: org roles do not matter; `member` is a user who shares an org with owner.
USER_ACTORS = ("owner", "member", "outsider", "anon")

NOBODY: frozenset[str] = frozenset()
OWNER = frozenset({"owner"})
ADMIN_UP = frozenset({"owner", "admin"})
MEMBER_UP = ADMIN_UP | {"member"}
VIEWER_UP = MEMBER_UP | {"viewer"}
AUTHENTICATED = VIEWER_UP | {"outsider"}
RUNNER_OWN = frozenset({"runner_own"})


@dataclass(frozen=True)
class TableSpec:
    """One table's target row, the statements the matrix runs on it, and who may."""

    key: str  # predicate naming the target row
    insert: str  # a valid new row (params: world ids, `me`, `new_id`)
    change: str  # `column = value`: the update's SET clause, and true of the row after it
    select: frozenset[str]
    insert_by: frozenset[str]
    update: frozenset[str]
    delete: frozenset[str]
    actors: tuple[str, ...] = ORG_ACTORS
    table: str = ""  # when the SPEC key names a variant ("templates.public")

    def allowed(self, op: str) -> frozenset[str]:
        return self.insert_by if op == "insert" else getattr(self, op)


def org_scoped(
    key: str,
    insert: str,
    change: str,
    *,
    select: frozenset[str] = VIEWER_UP,
    insert_by: frozenset[str] = MEMBER_UP,
    update: frozenset[str] = MEMBER_UP,
    delete: frozenset[str] = ADMIN_UP,
    actors: tuple[str, ...] = ORG_ACTORS,
) -> TableSpec:
    return TableSpec(key, insert, change, select, insert_by, update, delete, actors)


def user_scoped(key: str, insert: str, change: str) -> TableSpec:
    """Only the owning user (A's owner) touches the row; outsider writes in owner's name."""
    return TableSpec(key, insert, change, OWNER, OWNER, OWNER, OWNER, USER_ACTORS)


SPEC: dict[str, TableSpec] = {
    "organizations": org_scoped(
        "id = %(org_a)s",
        "insert into public.organizations (id, name, created_by)"
        " values (%(new_id)s, 'new', %(me)s)",
        "name = 'rls-matrix'",
        insert_by=AUTHENTICATED,
        update=ADMIN_UP,
        delete=OWNER,
    ),
    # The target is `extra` (a plain member), not any actor's own row: anyone may leave.
    "organization_members": org_scoped(
        "organization_id = %(org_a)s and user_id = %(user_extra)s",
        "insert into public.organization_members (organization_id, user_id, role)"
        " values (%(org_a)s, %(user_newcomer)s, 'member')",
        "role = 'viewer'",
        insert_by=ADMIN_UP,
        update=ADMIN_UP,
    ),
    "projects": org_scoped(
        "id = %(project_a)s",
        "insert into public.projects (organization_id, name) values (%(org_a)s, 'new')",
        "description = 'rls-matrix'",
    ),
    "agents": org_scoped(
        "id = %(agent_a)s",
        "insert into public.agents (organization_id, project_id, name)"
        " values (%(org_a)s, %(project_a)s, 'new')",
        "description = 'rls-matrix'",
        select=VIEWER_UP | RUNNER_OWN,
        actors=RUNNER_ACTORS,
    ),
    "agent_configs": org_scoped(
        "agent_id = %(agent_a)s",
        "insert into public.agent_configs (agent_id, organization_id)"
        " values (%(agent_a_spare)s, %(org_a)s)",
        "system_prompt = 'rls-matrix'",
        select=VIEWER_UP | RUNNER_OWN,
        actors=RUNNER_ACTORS,
    ),
    # Versions are written only by the trigger on agent_configs (members write them by
    # writing the config, test_prompt_versions.py): nobody inserts, edits or deletes one.
    "agent_prompt_versions": org_scoped(
        "id = %(prompt_version_a)s",
        "insert into public.agent_prompt_versions"
        " (organization_id, agent_id, version, system_prompt)"
        " values (%(org_a)s, %(agent_a)s, 99, 'forged')",
        "system_prompt = 'rls-matrix'",
        insert_by=NOBODY,
        update=NOBODY,
        delete=NOBODY,
        actors=RUNNER_ACTORS,
    ),
    "agent_runner_tokens": org_scoped(
        "id = %(token_a)s",
        "insert into public.agent_runner_tokens"
        " (organization_id, agent_id, token_hash, token_prefix) values"
        " (%(org_a)s, %(agent_a)s, md5(%(new_id)s::text) || md5(%(new_id)s::text), 'aprt')",
        "name = 'rls-matrix'",
        select=MEMBER_UP,
        delete=MEMBER_UP,
    ),
    "agent_sessions": org_scoped(
        "id = %(session_a)s",
        "insert into public.agent_sessions (organization_id, agent_id)"
        " values (%(org_a)s, %(agent_a)s)",
        "socket_id = 'rls-matrix'",
        select=VIEWER_UP | RUNNER_OWN,
        insert_by=RUNNER_OWN,
        update=RUNNER_OWN,
        actors=RUNNER_ACTORS,
    ),
    "agent_actions": org_scoped(
        "id = %(action_a)s",
        "insert into public.agent_actions"
        " (organization_id, agent_id, payload, payload_sha256, expires_at) values"
        ' (%(org_a)s, %(agent_a)s, \'{"tool": "shell", "args": {}}\', repeat(\'ab\', 32),'
        " now() + interval '1 hour')",
        # The one column people and runners may both write (test_action_transitions.py
        # covers which columns and moves belong to whom).
        "updated_at = now()",
        select=VIEWER_UP | RUNNER_OWN,
        update=MEMBER_UP | RUNNER_OWN,
        delete=NOBODY,
        actors=RUNNER_ACTORS,
    ),
    "agent_action_events": org_scoped(
        "id = %(event_a)s",
        "insert into public.agent_action_events"
        " (organization_id, action_id, actor_role, to_status, prev_hash, hash) values"
        " (%(org_a)s, %(action_a)s, current_user, 'approved', repeat('ab', 32), repeat('cd', 32))",
        "to_status = 'rls-matrix'",
        select=VIEWER_UP | RUNNER_OWN,
        # Only the trigger on agent_actions writes events (see test_action_audit.py).
        insert_by=NOBODY,
        update=NOBODY,
        delete=NOBODY,
        actors=RUNNER_ACTORS,
    ),
    # Approval policies: members read them, admins write them.
    "approval_policies": org_scoped(
        "id = %(policy_a)s",
        "insert into public.approval_policies (organization_id, name) values (%(org_a)s, 'new')",
        "name = 'rls-matrix'",
        insert_by=ADMIN_UP,
        update=ADMIN_UP,
    ),
    # An approval is a person's own, of a pending action, in a role its policy allows
    # (the trigger's rules: test_approval_policies.py); append-only for everyone.
    "action_approvals": org_scoped(
        "id = %(approval_a)s",
        "insert into public.action_approvals (action_id, approver_id)"
        " values (%(action_a)s, %(me)s)",
        "reason = 'rls-matrix'",
        update=NOBODY,
        delete=NOBODY,
    ),
    "workflows": org_scoped(
        "id = %(workflow_a)s",
        "insert into public.workflows (organization_id, project_id, name)"
        " values (%(org_a)s, %(project_a)s, 'new')",
        "description = 'rls-matrix'",
    ),
    "workflow_runs": org_scoped(
        "id = %(run_a)s",
        "insert into public.workflow_runs (organization_id, workflow_id)"
        " values (%(org_a)s, %(workflow_a)s)",
        "error = 'rls-matrix'",
    ),
    # Task tokens are the server's alone: no person or runner reads or writes a wait.
    "workflow_waits": org_scoped(
        "id = %(wait_a)s",
        "insert into public.workflow_waits"
        " (organization_id, run_id, node_id, attempt, action_id, kind, task_token) values"
        " (%(org_a)s, %(run_a)s, 'other', 1, %(action_a_spare)s, 'action', 'stolen')",
        "execution_arn = 'rls-matrix'",
        select=NOBODY,
        insert_by=NOBODY,
        update=NOBODY,
        delete=NOBODY,
        actors=RUNNER_ACTORS,
    ),
    # Viewers read a run's callbacks; members write only the start and stop rows (the
    # dispatcher, as service_role, alone records deliveries).
    "workflow_outbox": org_scoped(
        "id = %(outbox_start_a)s",
        "insert into public.workflow_outbox (organization_id, run_id, kind)"
        " values (%(org_a)s, %(run_a)s, 'stop')",
        "last_error = 'rls-matrix'",
        update=NOBODY,
        delete=NOBODY,
        actors=RUNNER_ACTORS,
    ),
    # A node's callback (success or failure) comes only from the trigger on
    # agent_actions: nobody inserts one, even into their own organization.
    "workflow_outbox.callback": TableSpec(
        "id = %(outbox_success_a)s",
        "insert into public.workflow_outbox (organization_id, run_id, kind, wait_id)"
        " values (%(org_a)s, %(run_a)s, 'success', %(wait_a)s)",
        "last_error = 'rls-matrix'",
        select=VIEWER_UP,
        insert_by=NOBODY,
        update=NOBODY,
        delete=NOBODY,
        actors=RUNNER_ACTORS,
        table="workflow_outbox",
    ),
    # Events come only from triggers and private.emit_event (service role): people read
    # their organizations', nobody writes one.
    "agent_events": org_scoped(
        "id = %(agent_event_a)s",
        "insert into public.agent_events (organization_id, type)"
        " values (%(org_a)s, 'action.forged')",
        "last_error = 'rls-matrix'",
        insert_by=NOBODY,
        update=NOBODY,
        delete=NOBODY,
        actors=RUNNER_ACTORS,
    ),
    # Admins register and delete webhooks, members read them; nobody edits one (a new
    # URL is a new webhook with a new secret).
    "webhooks": org_scoped(
        "id = %(webhook_a)s",
        "insert into public.webhooks (organization_id, url, events, secret_ciphertext,"
        " secret_nonce, wrapped_data_key, kek_id) values (%(org_a)s, 'https://example.com/h',"
        " array['*'], decode('00', 'hex'), decode('00', 'hex'), decode('00', 'hex'), 'local')",
        "description = 'rls-matrix'",
        select=MEMBER_UP,
        insert_by=ADMIN_UP,
        update=NOBODY,
        actors=RUNNER_ACTORS,
    ),
    # Deliveries are the dispatcher's (service role) to write; members read them.
    "webhook_deliveries": org_scoped(
        "id = %(delivery_a)s",
        "insert into public.webhook_deliveries (organization_id, webhook_id, event_id,"
        " event_type) values (%(org_a)s, %(webhook_a)s, %(agent_event_a)s, 'action.forged')",
        "last_error = 'rls-matrix'",
        select=MEMBER_UP,
        insert_by=NOBODY,
        update=NOBODY,
        delete=NOBODY,
        actors=RUNNER_ACTORS,
    ),
    # Doorbells are the server's to ring: no person or runner reads or writes one (a
    # runner hears of its own agent's over its socket).
    "runner_doorbells": org_scoped(
        "id = %(doorbell_a)s",
        "insert into public.runner_doorbells (organization_id, agent_id, action_id)"
        " values (%(org_a)s, %(agent_a)s, %(action_a)s)",
        "delivered_at = now()",
        select=NOBODY,
        insert_by=NOBODY,
        update=NOBODY,
        delete=NOBODY,
        actors=RUNNER_ACTORS,
    ),
    # The vault: only the key's user, never the organization's other members.
    "user_keys": org_scoped(
        "id = %(key_a)s",
        "insert into public.user_keys (organization_id, user_id, provider, key_ciphertext, nonce,"
        " wrapped_data_key, kek_id, last4) values (%(org_a)s, %(me)s, 'openrouter',"
        " decode('00', 'hex'), decode(repeat('00', 12), 'hex'), decode('00', 'hex'),"
        " 'local', 'abcd')",
        "label = 'rls-matrix'",
        select=OWNER,
        insert_by=VIEWER_UP,
        update=OWNER,
        delete=OWNER,
    ),
    "agent_connections": user_scoped(
        "id = %(connection_owner)s",
        "insert into public.agent_connections (user_id, name, provider, base_url, model)"
        " values (%(user_owner)s, 'new', 'hermes', 'http://127.0.0.1:1/v1', 'm')",
        "status = 'online'",
    ),
    "conversations": user_scoped(
        "id = %(conversation_owner)s",
        "insert into public.conversations (user_id, agent_connection_id)"
        " values (%(user_owner)s, %(connection_owner)s)",
        "title = 'rls-matrix'",
    ),
    "messages": user_scoped(
        "id = %(message_owner)s",
        "insert into public.messages (user_id, conversation_id, role)"
        " values (%(user_owner)s, %(conversation_owner)s, 'user')",
        "content = 'rls-matrix'",
    ),
    "memory_nodes": user_scoped(
        "id = %(memory_owner)s",
        "insert into public.memory_nodes (user_id, label, category, strength, source)"
        " values (%(user_owner)s, 'new', 'fact', 0.9, 'chat')",
        "strength = 0.25",
    ),
    "skills": user_scoped(
        "id = %(skill_owner)s",
        "insert into public.skills (user_id, name, category, score, template_prompt)"
        " values (%(user_owner)s, 'new', 'c', 0.5, 'p')",
        "template_prompt = 'rls-matrix'",
    ),
    # The owner reads their skill's versions; only the trigger on skills writes them, and
    # they go only with their skill (test_skill_versions.py).
    "skill_versions": TableSpec(
        "skill_id = %(skill_owner)s and version = 1",
        "insert into public.skill_versions (skill_id, user_id, version, name, score)"
        " values (%(skill_owner)s, %(me)s, 2, 'new', 0)",
        "template_prompt = 'rls-matrix'",
        select=OWNER,
        insert_by=NOBODY,
        update=NOBODY,
        delete=NOBODY,
        actors=USER_ACTORS,
    ),
    "tasks": user_scoped(
        "id = %(task_owner)s",
        "insert into public.tasks (user_id, connection_id, title)"
        " values (%(user_owner)s, %(connection_owner)s, 'new')",
        "status = 'in_progress'",
    ),
    "mirror_reports": user_scoped(
        "id = %(mirror_owner)s",
        # A finished report: the connection already has its one open report.
        "insert into public.mirror_reports (user_id, agent_connection_id, status, title)"
        " values (%(user_owner)s, %(connection_owner)s, 'succeeded', 'new')",
        "title = 'rls-matrix'",
    ),
    "templates": user_scoped(
        "id = %(template_owner)s",
        "insert into public.templates (author_id, name, payload)"
        " values (%(user_owner)s, 'new', '{\"skills\": [], \"seed_memory\": []}')",
        "category = 'rls-matrix'",
    ),
    # The outsider's public template: every authenticated user reads it, its author alone
    # changes it; anyone may publish a template of their own.
    "templates.public": TableSpec(
        "id = %(template_public)s",
        "insert into public.templates (author_id, name, is_public, payload)"
        " values (%(me)s, 'new', true, '{\"skills\": [], \"seed_memory\": []}')",
        "name = 'rls-matrix'",
        select=frozenset({"owner", "member", "outsider"}),
        insert_by=frozenset({"owner", "member", "outsider"}),
        update=frozenset({"outsider"}),
        delete=frozenset({"outsider"}),
        actors=USER_ACTORS,
        table="templates",
    ),
}


def table_of(name: str) -> str:
    return SPEC[name].table or name


@dataclass(frozen=True)
class Case:
    target: str  # a SPEC key
    op: str
    actor: str
    spec: TableSpec = field(repr=False, compare=False)

    @property
    def allowed(self) -> bool:
        return self.actor in self.spec.allowed(self.op)

    def __str__(self) -> str:
        return f"{self.target}-{self.op}-{self.actor}"


CASES = [
    Case(name, op, actor, spec)
    for name, spec in SPEC.items()
    for op in OPS
    for actor in spec.actors
]


@pytest.fixture(scope="module")
def world(make_database: Callable[[], ProvisionedDatabase]) -> World:
    db = make_database()
    return build_world(db.admin_url, db.app_url)


@pytest.fixture(scope="module")
def app_conn(world: World) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(world.app_url, autocommit=True) as conn:
        yield conn


def as_caller(conn: psycopg.Connection[Any], world: World, actor: str) -> None:
    """Act as `actor` for the rest of the current transaction, as the application does."""
    role, claims = world.claims(actor)
    conn.execute(
        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
        (role, json.dumps(claims)),
    )


def count(conn: psycopg.Connection[Any], query: str | sql.Composed, params: dict[str, Any]) -> int:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def visible(conn: psycopg.Connection[Any], query: sql.Composed, params: dict[str, Any]) -> int:
    """The rows a count query sees; a table the caller has no grant on shows none."""
    try:
        with conn.transaction():
            return count(conn, query, params)
    except InsufficientPrivilege:
        return 0


def refused(conn: psycopg.Connection[Any], stmt: sql.Composed, params: dict[str, Any]) -> bool:
    """Run a write that must not happen: True when it raised 42501 or touched no row."""
    try:
        with conn.transaction():
            return conn.execute(stmt, params).rowcount == 0
    except InsufficientPrivilege:
        return True


@pytest.mark.parametrize("case", CASES, ids=str)
def test_rls_matrix(world: World, app_conn: psycopg.Connection[Any], case: Case) -> None:
    spec, conn, params = case.spec, app_conn, world.params(case.actor)
    # The SPEC's predicates and assignments are SQL text of this module's own.
    table = sql.Identifier("public", table_of(case.target))
    key, change = sql.SQL(spec.key), sql.SQL(spec.change)
    target = sql.SQL("from {} where {}").format(table, key)
    with conn.transaction(force_rollback=True):
        as_caller(conn, world, case.actor)
        if case.op == "select":
            assert visible(conn, sql.SQL("select count(*) {}").format(target), params) == int(
                case.allowed
            )
            return
        if case.op == "insert":
            if case.allowed:
                assert conn.execute(spec.insert, params).rowcount == 1
            else:
                with pytest.raises(InsufficientPrivilege), conn.transaction():
                    conn.execute(spec.insert, params)
            return
        if case.op == "update":
            stmt = sql.SQL("update {} set {} where {}").format(table, change, key)
        else:
            stmt = sql.SQL("delete {}").format(target)
        if case.allowed:
            assert conn.execute(stmt, params).rowcount == 1
        else:
            assert refused(conn, stmt, params)
        # What really happened, seen by the server role that sees every row.
        as_caller(conn, world, "service")
        present = count(conn, sql.SQL("select count(*) {}").format(target), params)
        changed = count(
            conn,
            sql.SQL("select count(*) {} and coalesce({}, false)").format(target, change),
            params,
        )
        if case.op == "update":
            assert (present, changed) == (1, int(case.allowed))
        else:
            assert present == int(not case.allowed)


def _count_all(name: str) -> sql.Composed:
    return sql.SQL("select count(*) from {}").format(sql.Identifier("public", name))


def public_tables(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute("select tablename from pg_tables where schemaname = 'public'")
    return {r[0] for r in rows}


def test_every_public_table_has_a_spec(world: World) -> None:
    with psycopg.connect(world.admin_url) as conn:
        tables = public_tables(conn)
    assert tables == {table_of(name) for name in SPEC}


def test_service_role_reads_every_table(world: World, app_conn: psycopg.Connection[Any]) -> None:
    with app_conn.transaction(force_rollback=True):
        tables = public_tables(app_conn)
        as_caller(app_conn, world, "service")
        counts = {t: count(app_conn, _count_all(t), {}) for t in tables}
    assert tables
    assert {t: n for t, n in counts.items() if n < 1} == {}


def test_anon_sees_no_rows(world: World, app_conn: psycopg.Connection[Any]) -> None:
    with app_conn.transaction(force_rollback=True):
        tables = public_tables(app_conn)
        as_caller(app_conn, world, "anon")
        counts = {t: visible(app_conn, _count_all(t), {}) for t in tables}
    assert tables
    assert {t: n for t, n in counts.items() if n} == {}


def test_viewer_can_leave_the_organization(world: World, app_conn: psycopg.Connection[Any]) -> None:
    params = world.params("viewer")
    with app_conn.transaction(force_rollback=True):
        as_caller(app_conn, world, "viewer")
        cur = app_conn.execute(
            "delete from public.organization_members"
            " where organization_id = %(org_a)s and user_id = %(me)s",
            params,
        )
        assert cur.rowcount == 1
        assert count(app_conn, "select count(*) from public.projects", params) == 0


@pytest.mark.parametrize("actor", ["owner", "viewer", "outsider"])
def test_nobody_creates_an_organization_in_another_users_name(
    world: World, app_conn: psycopg.Connection[Any], actor: str
) -> None:
    victim = "admin" if actor == "owner" else "owner"
    params = {**world.params(actor), "victim": world.user(victim)}
    with app_conn.transaction(force_rollback=True):
        as_caller(app_conn, world, actor)
        with pytest.raises(InsufficientPrivilege):
            app_conn.execute(
                "insert into public.organizations (id, name, created_by)"
                " values (%(new_id)s, 'stolen', %(victim)s)",
                params,
            )


def test_audit_log_is_append_only_but_follows_its_action(world: World) -> None:
    """Not even the table owner edits or deletes an event; deleting the action removes them."""
    params = world.params("owner")
    with psycopg.connect(world.admin_url, autocommit=True) as conn:
        for stmt in (
            "update public.agent_action_events set to_status = 'x' where id = %(event_a)s",
            "delete from public.agent_action_events where id = %(event_a)s",
        ):
            with pytest.raises(InsufficientPrivilege), conn.transaction():
                conn.execute(stmt, params)
        events = "select count(*) from public.agent_action_events where id = %(event_a)s"
        with conn.transaction(force_rollback=True):
            conn.execute("delete from public.agent_actions where id = %(action_a)s", params)
            assert count(conn, events, params) == 0
        # Through the cascade from the organization too (organization -> agents ->
        # actions), and with no event left behind that names a missing action
        with conn.transaction(force_rollback=True):
            assert count(conn, events, params) == 1
            conn.execute("delete from public.organizations where id = %(org_a)s", params)
            assert count(conn, events, params) == 0
            orphans = (
                "select count(*) from public.agent_action_events e where not exists"
                " (select 1 from public.agent_actions a where a.id = e.action_id)"
            )
            assert count(conn, orphans, {}) == 0
