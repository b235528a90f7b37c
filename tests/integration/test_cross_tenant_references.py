"""References between rows cannot cross tenants, though foreign keys ignore RLS.

Per-user rows point at the same user's rows through composite foreign keys
(`(connection_id, user_id)`); queue rows stay inside one agent or organization the same
way; references that cross scopes (a conversation's agent, an agent config's connection,
a skill's source template) must name a row the caller can see.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.support.database import ProvisionedDatabase
from tests.support.rls_world import HEX64, PAYLOAD, World, build_world


@dataclass(frozen=True)
class Ref:
    actor: str
    sql: str
    allowed: bool


REFS: dict[str, Ref] = {
    # another user's rows, from a user-scoped row
    "mirror-report-on-anothers-connection": Ref(
        "outsider",
        # A finished report: the connection already has its one open report.
        "insert into public.mirror_reports (user_id, agent_connection_id, status)"
        " values (%(me)s, %(connection_owner)s, 'succeeded')",
        allowed=False,
    ),
    "task-on-anothers-conversation": Ref(
        "outsider",
        "insert into public.tasks (user_id, title, conversation_id)"
        " values (%(me)s, 't', %(conversation_owner)s)",
        allowed=False,
    ),
    "task-on-anothers-connection": Ref(
        "outsider",
        "insert into public.tasks (user_id, title, connection_id)"
        " values (%(me)s, 't', %(connection_owner)s)",
        allowed=False,
    ),
    "memory-under-anothers-node": Ref(
        "outsider",
        "insert into public.memory_nodes (user_id, label, parent_id)"
        " values (%(me)s, 'l', %(memory_owner)s)",
        allowed=False,
    ),
    "memory-on-anothers-connection": Ref(
        "outsider",
        "insert into public.memory_nodes (user_id, label, connection_id)"
        " values (%(me)s, 'l', %(connection_owner)s)",
        allowed=False,
    ),
    "conversation-on-anothers-connection": Ref(
        "outsider",
        "insert into public.conversations (user_id, agent_connection_id)"
        " values (%(me)s, %(connection_owner)s)",
        allowed=False,
    ),
    "message-in-anothers-conversation": Ref(
        "outsider",
        "insert into public.messages (user_id, conversation_id, role)"
        " values (%(me)s, %(conversation_owner)s, 'user')",
        allowed=False,
    ),
    # rows of an organization one does not belong to
    "conversation-with-a-foreign-agent": Ref(
        "outsider",
        "insert into public.conversations (user_id, agent_id) values (%(me)s, %(agent_a)s)",
        allowed=False,
    ),
    "conversation-moved-to-a-foreign-agent": Ref(
        "outsider",
        "update public.conversations set agent_id = %(agent_a)s"
        " where id = %(conversation_outsider)s",
        allowed=False,
    ),
    "skill-from-anothers-private-template": Ref(
        "outsider",
        "insert into public.skills (user_id, name, source_template_id)"
        " values (%(me)s, 's', %(template_owner)s)",
        allowed=False,
    ),
    "config-pointing-at-anothers-connection": Ref(
        "member",
        "update public.agent_configs set connection_id = %(connection_owner)s"
        " where agent_id = %(agent_a)s",
        allowed=False,
    ),
    # the queue stays inside one agent / organization
    "session-on-another-agents-token": Ref(
        "runner_own",
        "insert into public.agent_sessions (organization_id, agent_id, runner_token_id)"
        " values (%(org_a)s, %(agent_a)s, %(token_b)s)",
        allowed=False,
    ),
    "action-leased-to-another-agents-session": Ref(
        "owner",
        "insert into public.agent_actions (organization_id, agent_id, payload,"
        " payload_sha256, expires_at, session_id)"
        " values (%(org_a)s, %(agent_a)s, %(payload)s, %(hex)s, now(), %(session_b)s)",
        allowed=False,
    ),
    "action-of-another-organizations-run": Ref(
        "owner",
        "insert into public.agent_actions (organization_id, agent_id, payload,"
        " payload_sha256, expires_at, workflow_run_id)"
        " values (%(org_a)s, %(agent_a)s, %(payload)s, %(hex)s, now(), %(run_b)s)",
        allowed=False,
    ),
    # what stays allowed
    "conversation-with-own-agent-and-connection": Ref(
        "owner",
        "insert into public.conversations (user_id, agent_id, agent_connection_id)"
        " values (%(me)s, %(agent_a)s, %(connection_owner)s)",
        allowed=True,
    ),
    "skill-from-a-public-template": Ref(
        "owner",
        "insert into public.skills (user_id, name, source_template_id)"
        " values (%(me)s, 's', %(template_public)s)",
        allowed=True,
    ),
    "config-pointing-at-own-connection": Ref(
        "owner",
        "update public.agent_configs set connection_id = %(connection_owner)s"
        " where agent_id = %(agent_a)s",
        allowed=True,
    ),
    "action-leased-to-own-agents-session": Ref(
        "owner",
        "insert into public.agent_actions (organization_id, agent_id, payload,"
        " payload_sha256, expires_at, session_id)"
        " values (%(org_a)s, %(agent_a)s, %(payload)s, %(hex)s, now(), %(session_a)s)",
        allowed=True,
    ),
}


@pytest.fixture(scope="module")
def world(make_database: Callable[[], ProvisionedDatabase]) -> World:
    db = make_database()
    return build_world(db.admin_url, db.app_url)


@pytest.fixture
def conn(world: World) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(world.app_url) as c:
        yield c
        c.rollback()


def _act_as(conn: psycopg.Connection[Any], world: World, actor: str) -> None:
    role, claims = world.claims(actor)
    conn.execute(
        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
        (role, json.dumps(claims)),
    )


def _params(world: World, actor: str) -> dict[str, Any]:
    return {**world.params(actor), "payload": PAYLOAD, "hex": HEX64}


@pytest.mark.parametrize("name", sorted(REFS))
def test_reference(world: World, conn: psycopg.Connection[Any], name: str) -> None:
    ref = REFS[name]
    _act_as(conn, world, ref.actor)
    if ref.allowed:
        assert conn.execute(ref.sql, _params(world, ref.actor)).rowcount == 1
    else:
        with pytest.raises(
            (psycopg.errors.ForeignKeyViolation, psycopg.errors.InsufficientPrivilege)
        ):
            conn.execute(ref.sql, _params(world, ref.actor))


def test_other_members_can_edit_a_config_that_uses_someone_elses_connection(
    world: World, conn: psycopg.Connection[Any]
) -> None:
    # Given the owner attached their own connection to the agent
    _act_as(conn, world, "owner")
    conn.execute(
        "update public.agent_configs set connection_id = %(connection_owner)s"
        " where agent_id = %(agent_a)s",
        world.ids,
    )
    # When another member edits the prompt (the connection is not theirs to see)
    _act_as(conn, world, "member")
    cur = conn.execute(
        "update public.agent_configs set system_prompt = 'be brief', connection_id = connection_id"
        " where agent_id = %(agent_a)s",
        world.ids,
    )
    # Then the edit goes through: only setting a new connection is checked
    assert cur.rowcount == 1
