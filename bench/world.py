"""Benchmark set-up in a migrated database: an organization, its project and agents, a
member who approves, a runner token per agent; and a bulk of pending actions.

Written as the superuser (untimed set-up, like a migration's seed), against the real
schema: the organization's trigger makes its creator the owner, the approving user is
added as a plain `member`, and every inserted action goes through the audit trigger.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

import psycopg
from psycopg.types.json import Jsonb

from agentplane.actions.canonical import payload_sha256
from agentplane.agents.tokens import issue_runner_token
from agentplane.auth.caller import Caller

PROPOSE_CHUNK = 5_000


@dataclass(frozen=True)
class World:
    """The ids the benchmark acts with."""

    organization_id: UUID
    owner_id: UUID
    member_id: UUID
    agent_ids: list[UUID]
    token_ids: list[UUID]  # one runner token per agent, in the same order

    def member(self) -> Caller:
        """The approving member, as a verified token would present them."""
        return Caller.user({"sub": str(self.member_id), "email": "member@bench.local"})

    def runner(self, agent: int = 0) -> Caller:
        """A runner of one agent, as its runner token authenticates it."""
        return Caller.runner(self.agent_ids[agent], token_id=self.token_ids[agent])


def build_world(admin_url: str, *, agents: int = 1) -> World:
    """Create the organization, project, agents, member and runner tokens."""
    owner_id, member_id = uuid4(), uuid4()
    with psycopg.connect(admin_url, autocommit=True) as conn, conn.transaction():
        conn.execute(
            "insert into auth.users (id, email) values (%s, %s), (%s, %s)",
            (owner_id, "owner@bench.local", member_id, "member@bench.local"),
        )
        org = conn.execute(
            "insert into public.organizations (name, created_by) values (%s, %s) returning id",
            ("bench", owner_id),
        ).fetchone()
        assert org is not None
        conn.execute(
            "insert into public.organization_members (organization_id, user_id, role)"
            " values (%s, %s, 'member')",
            (org[0], member_id),
        )
        project = conn.execute(
            "insert into public.projects (organization_id, name, created_by)"
            " values (%s, 'bench', %s) returning id",
            (org[0], owner_id),
        ).fetchone()
        assert project is not None
        agent_ids: list[UUID] = []
        token_ids: list[UUID] = []
        for i in range(agents):
            agent = conn.execute(
                "insert into public.agents (organization_id, project_id, name, created_by)"
                " values (%s, %s, %s, %s) returning id",
                (org[0], project[0], f"bench-agent-{i}", owner_id),
            ).fetchone()
            assert agent is not None
            issued = issue_runner_token()
            token = conn.execute(
                "insert into public.agent_runner_tokens"
                " (organization_id, agent_id, name, token_hash, token_prefix, created_by)"
                " values (%s, %s, 'bench', %s, %s, %s) returning id",
                (org[0], agent[0], issued.token_hash, issued.token_prefix, member_id),
            ).fetchone()
            assert token is not None
            agent_ids.append(agent[0])
            token_ids.append(token[0])
    return World(org[0], owner_id, member_id, agent_ids, token_ids)


def propose_bulk(admin_url: str, world: World, count: int, *, agent: int = 0) -> None:
    """`count` pending actions `{tool: noop, args: {n}}` of one agent, proposed by the
    member, hashed as `service.propose` hashes them (canonical JSON of the jsonb)."""
    payloads = [{"tool": "noop", "args": {"n": n}} for n in range(count)]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for start in range(0, count, PROPOSE_CHUNK):
            chunk = payloads[start : start + PROPOSE_CHUNK]
            conn.execute(
                """
                insert into public.agent_actions
                  (organization_id, agent_id, payload, payload_sha256, source, proposed_by,
                   expires_at)
                select %s, %s, p.payload, p.sha, 'user', %s, now() + interval '1 day'
                  from unnest(%s::jsonb[], %s::text[]) as p (payload, sha)
                """,
                (
                    world.organization_id,
                    world.agent_ids[agent],
                    world.member_id,
                    [Jsonb(p) for p in chunk],
                    [payload_sha256(p) for p in chunk],
                ),
            )
        conn.execute("analyze public.agent_actions")
        conn.execute("analyze public.agent_action_events")
