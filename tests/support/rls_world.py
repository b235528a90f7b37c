"""The data the RLS matrix runs against: two organizations and their users' rows.

Organization A has an owner, an admin, a member, a viewer and one more member (`extra`,
whose membership row is what the matrix updates and deletes). The `outsider` owns
organization B and holds no role in A; `newcomer` exists in auth.users and belongs to
nothing. Every organization-scoped table has a row in each organization; every
user-scoped table has a row owned by A's owner and one owned by the outsider.

Rows are written by the superuser (RLS does not apply to it); ids are generated here so
the matrix can name its target rows.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

# The org A roles, in the order the matrix lists them.
ORG_ROLES = ("owner", "admin", "member", "viewer")
USERS = (*ORG_ROLES, "extra", "outsider", "newcomer")
RUNNERS = ("runner_own", "runner_other")

HEX64 = "ab" * 32
PAYLOAD = json.dumps({"tool": "shell", "args": {}})
EMPTY_PAYLOAD = json.dumps({"skills": [], "seed_memory": []})


@dataclass(frozen=True)
class World:
    """Ids of every row the matrix refers to, and how to connect."""

    app_url: str
    admin_url: str
    ids: dict[str, Any] = field(default_factory=dict)

    def user(self, name: str) -> uuid.UUID:
        user_id: uuid.UUID = self.ids[f"user_{name}"]
        return user_id

    def claims(self, actor: str) -> tuple[str, dict[str, Any]]:
        """The database role and JWT claims a transaction acting as `actor` sets."""
        if actor == "anon":
            return "anon", {"role": "anon"}
        if actor == "service":
            return "service_role", {"role": "service_role"}
        if actor in RUNNERS:
            agent = self.ids["agent_a"] if actor == "runner_own" else self.ids["agent_b"]
            return "agent_runner", {"role": "agent_runner", "agent_id": str(agent)}
        return "authenticated", {"sub": str(self.user(actor)), "role": "authenticated"}

    def params(self, actor: str) -> dict[str, Any]:
        """Query parameters of one case: every world id, plus `me` and a fresh `new_id`.

        `me` is the actor's own user id; callers without one (anon, runners) get the
        owner's, i.e. they try to write in the owner's name.
        """
        me = self.user(actor) if actor in USERS else self.user("owner")
        return {**self.ids, "me": me, "new_id": uuid.uuid4()}


def _insert(conn: psycopg.Connection[Any], table: str, **values: Any) -> uuid.UUID:
    """Insert one row as the superuser, generating `id` unless given; return the id."""
    row_id: uuid.UUID = values.setdefault("id", uuid.uuid4())
    schema, _, name = table.rpartition(".")
    conn.execute(
        sql.SQL("insert into {} ({}) values ({})").format(
            sql.Identifier(schema or "public", name),
            sql.SQL(", ").join(map(sql.Identifier, values)),
            sql.SQL(", ").join(map(sql.Placeholder, values)),
        ),
        values,
    )
    return row_id


def _org_rows(conn: psycopg.Connection[Any], org: uuid.UUID, suffix: str) -> dict[str, Any]:
    """A project, agents, config and its prompt version, runner token, session, actions,
    event, workflow, run, the run's wait and its outbox rows, a published event, a webhook
    and a delivery."""
    ids: dict[str, Any] = {}
    ids[f"project_{suffix}"] = _insert(conn, "projects", organization_id=org, name="p")
    common = {"organization_id": org}
    for name in (f"agent_{suffix}", f"agent_{suffix}_spare"):
        ids[name] = _insert(
            conn, "agents", **common, project_id=ids[f"project_{suffix}"], name=name
        )
    agent = {**common, "agent_id": ids[f"agent_{suffix}"]}
    conn.execute(
        "insert into public.agent_configs (agent_id, organization_id) values (%s, %s)",
        (agent["agent_id"], org),
    )
    # The config's version 1, written by the trigger on agent_configs.
    ids[f"prompt_version_{suffix}"] = conn.execute(
        "select id from public.agent_prompt_versions where agent_id = %s", (agent["agent_id"],)
    ).fetchone()[0]  # type: ignore[index]
    ids[f"token_{suffix}"] = _insert(
        conn,
        "agent_runner_tokens",
        **agent,
        token_hash=uuid.uuid4().hex * 2,
        token_prefix="aprt",
    )
    ids[f"session_{suffix}"] = _insert(
        conn, "agent_sessions", **agent, runner_token_id=ids[f"token_{suffix}"]
    )
    ids[f"action_{suffix}"] = _insert(
        conn,
        "agent_actions",
        **agent,
        payload=PAYLOAD,
        payload_sha256=HEX64,
        expires_at="2999-01-01T00:00:00Z",
        session_id=ids[f"session_{suffix}"],
    )
    event = conn.execute(
        "insert into public.agent_action_events"
        " (organization_id, action_id, actor_role, to_status, prev_hash, hash)"
        " values (%s, %s, 'service_role', 'pending', null, %s) returning id",
        (org, ids[f"action_{suffix}"], HEX64),
    ).fetchone()
    assert event is not None
    ids[f"event_{suffix}"] = event[0]
    ids[f"workflow_{suffix}"] = _insert(
        conn, "workflows", **common, project_id=ids[f"project_{suffix}"], name="w"
    )
    ids[f"run_{suffix}"] = _insert(
        conn, "workflow_runs", **common, workflow_id=ids[f"workflow_{suffix}"]
    )
    # A second action of the run (the one the spare wait would be for), then the run's
    # wait with its task token, and its outbox rows: the start, and the callback of the
    # wait.
    run = {**common, "run_id": ids[f"run_{suffix}"]}
    ids[f"action_{suffix}_spare"] = _insert(
        conn,
        "agent_actions",
        **agent,
        payload=PAYLOAD,
        payload_sha256=HEX64,
        expires_at="2999-01-01T00:00:00Z",
    )
    ids[f"wait_{suffix}"] = _insert(
        conn,
        "workflow_waits",
        **run,
        node_id="gate",
        attempt=1,
        action_id=ids[f"action_{suffix}"],
        kind="action",
        task_token=f"token-of-{suffix}",
    )
    for kind, extra in (("start", {}), ("success", {"wait_id": ids[f"wait_{suffix}"]})):
        row = conn.execute(
            "insert into public.workflow_outbox (organization_id, run_id, kind, wait_id)"
            " values (%s, %s, %s, %s) returning id",
            (org, run["run_id"], kind, extra.get("wait_id")),
        ).fetchone()
        assert row is not None
        ids[f"outbox_{kind}_{suffix}"] = row[0]
    # The audit rows above became events (the trigger on agent_action_events); a webhook
    # of the organization's admin, and a delivery of one of those events to it.
    agent_event = conn.execute(
        "select id from public.agent_events where organization_id = %s order by id limit 1",
        (org,),
    ).fetchone()
    assert agent_event is not None
    ids[f"agent_event_{suffix}"] = agent_event[0]
    ids[f"webhook_{suffix}"] = _insert(
        conn,
        "webhooks",
        **common,
        url="https://example.com/hook",
        events=["*"],
        secret_ciphertext=b"ciphertext",
        secret_nonce=bytes(12),
        wrapped_data_key=b"wrapped",
        kek_id="local",
        created_by=conn.execute(
            "select created_by from public.organizations where id = %s", (org,)
        ).fetchone()[0],  # type: ignore[index]
    )
    ids[f"delivery_{suffix}"] = _insert(
        conn,
        "webhook_deliveries",
        **common,
        webhook_id=ids[f"webhook_{suffix}"],
        event_id=ids[f"agent_event_{suffix}"],
        event_type="action.proposed",
    )
    doorbell = conn.execute(
        "insert into public.runner_doorbells (organization_id, agent_id, action_id)"
        " values (%s, %s, %s) returning id",
        (org, agent["agent_id"], ids[f"action_{suffix}"]),
    ).fetchone()
    assert doorbell is not None
    ids[f"doorbell_{suffix}"] = doorbell[0]
    return ids


def _user_rows(conn: psycopg.Connection[Any], user: uuid.UUID, who: str) -> dict[str, Any]:
    """One row per user-scoped table, owned by `user`, named `<table>_<who>`."""
    mine = {"user_id": user}
    ids: dict[str, Any] = {}
    ids[f"connection_{who}"] = _insert(
        conn,
        "agent_connections",
        **mine,
        name="c",
        provider="openrouter",
        base_url="https://openrouter.ai/api/v1",
        model="m",
    )
    ids[f"conversation_{who}"] = _insert(
        conn, "conversations", **mine, title="t", agent_connection_id=ids[f"connection_{who}"]
    )
    ids[f"message_{who}"] = _insert(
        conn, "messages", **mine, conversation_id=ids[f"conversation_{who}"], role="user"
    )
    ids[f"memory_{who}"] = _insert(
        conn, "memory_nodes", **mine, label="l", category="fact", strength=0.7, source="chat"
    )
    ids[f"skill_{who}"] = _insert(
        conn, "skills", **mine, name="s", category="c", score=0.5, template_prompt="p"
    )
    ids[f"task_{who}"] = _insert(
        conn, "tasks", **mine, title="t", connection_id=ids[f"connection_{who}"]
    )
    ids[f"mirror_{who}"] = _insert(
        conn, "mirror_reports", **mine, agent_connection_id=ids[f"connection_{who}"], title="r"
    )
    ids[f"template_{who}"] = _insert(
        conn, "templates", author_id=user, name="private", category="c", payload=EMPTY_PAYLOAD
    )
    return ids


def build_world(admin_url: str, app_url: str) -> World:
    """Write the world into a fresh migrated database (committed) and return its ids."""
    ids: dict[str, Any] = {}
    with psycopg.connect(admin_url) as conn:
        for name in USERS:
            ids[f"user_{name}"] = _insert(conn, "auth.users", email=name)
        # The creator becomes the owner (trigger); the other roles are added here.
        ids["org_a"] = _insert(conn, "organizations", name="A", created_by=ids["user_owner"])
        ids["org_b"] = _insert(conn, "organizations", name="B", created_by=ids["user_outsider"])
        for role in ("admin", "member", "viewer", "extra"):
            conn.execute(
                "insert into public.organization_members (organization_id, user_id, role)"
                " values (%s, %s, %s)",
                (ids["org_a"], ids[f"user_{role}"], "member" if role == "extra" else role),
            )
        ids |= _org_rows(conn, ids["org_a"], "a")
        ids |= _org_rows(conn, ids["org_b"], "b")
        # A policy of each organization, and an approval of each spare action by one of
        # its people (the trigger checks their role, as for anyone).
        for suffix, approver in (("a", "user_member"), ("b", "user_outsider")):
            org = ids[f"org_{suffix}"]
            ids[f"policy_{suffix}"] = _insert(
                conn, "approval_policies", organization_id=org, name="p", tool_pattern="shell"
            )
            row = conn.execute(
                "insert into public.action_approvals (action_id, approver_id)"
                " values (%s, %s) returning id",
                (ids[f"action_{suffix}_spare"], ids[approver]),
            ).fetchone()
            assert row is not None
            ids[f"approval_{suffix}"] = row[0]
        ids["key_a"] = _insert(
            conn,
            "user_keys",
            organization_id=ids["org_a"],
            user_id=ids["user_owner"],
            provider="openrouter",
            key_ciphertext=b"ciphertext",
            nonce=bytes(12),
            wrapped_data_key=b"wrapped",
            kek_id="local",
            last4="abcd",
        )
        ids |= _user_rows(conn, ids["user_owner"], "owner")
        ids |= _user_rows(conn, ids["user_outsider"], "outsider")
        ids["template_public"] = _insert(
            conn,
            "templates",
            author_id=ids["user_outsider"],
            name="public",
            is_public=True,
            payload=EMPTY_PAYLOAD,
        )
    return World(app_url=app_url, admin_url=admin_url, ids=ids)
