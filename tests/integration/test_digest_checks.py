"""Value rules of the action queue: hex digest columns accept a lowercase 64-digit hex
string and nothing else; an action's status and payload only what the queue knows. The
rules are domains (checked when a value is stored), so they hold on INSERT and on an
UPDATE that sets the column."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.database import ProvisionedDatabase

GOOD = "0123456789abcdef" * 4
BAD = [
    "",
    GOOD[:-1],  # 63 digits
    GOOD + "0",  # 65 digits
    GOOD[:-1] + "g",  # not hex
    GOOD.upper(),  # hex, but upper case
    GOOD[:-1] + "\n",  # a newline where the last digit should be
    " " + GOOD[1:],
]
# (table, column): every hex digest column
COLUMNS = [
    ("agent_actions", "payload_sha256"),
    ("agent_action_events", "hash"),
    ("agent_action_events", "prev_hash"),
    ("agent_runner_tokens", "token_hash"),
]


def _insert(conn: psycopg.Connection, table: str, column: str, value: str) -> None:
    """A row with `column` set to `value`; foreign keys are not checked (replica mode),
    CHECK constraints are."""
    org, ref = uuid.uuid4(), uuid.uuid4()
    rows = {
        "agent_actions": (
            "insert into public.agent_actions (organization_id, agent_id, payload,"
            ' payload_sha256, expires_at) values (%s, %s, \'{"tool": "t"}\', %s, now())',
            (org, ref, value if column == "payload_sha256" else GOOD),
        ),
        "agent_action_events": (
            "insert into public.agent_action_events (organization_id, action_id,"
            " actor_role, to_status, prev_hash, hash)"
            " overriding system value values (%s, %s, 'service_role', 'pending', %s, %s)",
            (
                org,
                ref,
                value if column == "prev_hash" else None,
                value if column == "hash" else GOOD,
            ),
        ),
        "agent_runner_tokens": (
            "insert into public.agent_runner_tokens (organization_id, agent_id, token_hash,"
            " token_prefix, created_by) values (%s, %s, %s, 'aprt_x', %s)",
            (org, ref, value, ref),
        ),
    }
    query, args = rows[table]
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute(query.encode(), args)
        raise psycopg.Rollback


@pytest.fixture(scope="module")
def admin(make_database: object) -> Iterator[psycopg.Connection]:
    db: ProvisionedDatabase = make_database()  # type: ignore[operator]
    with psycopg.connect(db.admin_url, autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize(("table", "column"), COLUMNS)
def test_a_lowercase_hex_digest_is_accepted(
    admin: psycopg.Connection, table: str, column: str
) -> None:
    _insert(admin, table, column, GOOD)


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize(("table", "column"), COLUMNS)
def test_anything_else_is_refused(
    admin: psycopg.Connection, table: str, column: str, value: str
) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as refused:
        _insert(admin, table, column, value)
    assert refused.value.diag.constraint_name == "sha256_hex_check"


@pytest.mark.parametrize("value", BAD)
def test_an_update_that_sets_a_digest_is_checked_too(admin: psycopg.Connection, value: str) -> None:
    # (The payload guard refuses changing an action's digest; a runner token's is not
    # guarded, so its UPDATE shows the domain's check.)
    def insert_then_update() -> None:
        with admin.transaction():
            admin.execute("set local session_replication_role = replica")
            admin.execute(
                "insert into public.agent_runner_tokens (organization_id, agent_id,"
                " token_hash, token_prefix, created_by) values (%s, %s, %s, 'aprt_x', %s)",
                (uuid.uuid4(), uuid.uuid4(), GOOD, uuid.uuid4()),
            )
            admin.execute("update public.agent_runner_tokens set token_hash = %s", (value,))

    with pytest.raises(psycopg.errors.CheckViolation) as refused:
        insert_then_update()
    assert refused.value.diag.constraint_name == "sha256_hex_check"


STATUSES = ["pending", "approved", "rejected", "expired", "cancelled", "claimed", "succeeded",
            "failed"]  # fmt: skip


def _insert_action(conn: psycopg.Connection, status: str, payload: str) -> None:
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute(
            "insert into public.agent_actions (organization_id, agent_id, status, payload,"
            " payload_sha256, expires_at, approval_signature, session_id, lease_expires_at)"
            " values (%s, %s, %s, %s::jsonb, %s, now(), 'sig', %s, now())",
            (uuid.uuid4(), uuid.uuid4(), status, payload, GOOD, uuid.uuid4()),
        )
        raise psycopg.Rollback


@pytest.mark.parametrize("status", STATUSES)
def test_every_status_of_the_queue_is_accepted(admin: psycopg.Connection, status: str) -> None:
    _insert_action(admin, status, '{"tool": "t"}')


@pytest.mark.parametrize("status", ["", "Pending", "done", "claimed ", "queued"])
def test_an_unknown_status_is_refused(admin: psycopg.Connection, status: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as refused:
        _insert_action(admin, status, '{"tool": "t"}')
    assert refused.value.diag.constraint_name == "action_status_check"


@pytest.mark.parametrize(
    "payload", ['{"tool": "t"}', '{"tool": "t", "args": {}}', '{"tool": "t", "args": {"a": [1]}}']
)
def test_a_tool_with_object_args_is_a_payload(admin: psycopg.Connection, payload: str) -> None:
    _insert_action(admin, "pending", payload)


@pytest.mark.parametrize(
    "payload",
    ["[]", '"t"', "{}", '{"tool": 1}', '{"tool": null}', '{"tool": "t", "args": []}',
     '{"tool": "t", "args": "x"}'],
)  # fmt: skip
def test_anything_else_is_not_a_payload(admin: psycopg.Connection, payload: str) -> None:
    with pytest.raises(psycopg.errors.CheckViolation) as refused:
        _insert_action(admin, "pending", payload)
    assert refused.value.diag.constraint_name == "action_payload_check"
