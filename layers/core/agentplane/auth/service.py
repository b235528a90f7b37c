"""Identity lookups in SQL: a user's memberships, and the runner behind a runner token."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from agentplane.agents.tokens import hash_runner_token
from agentplane.auth.caller import Caller
from agentplane.auth.models import Membership
from agentplane.db.rows import Tx, fetch_all, fetch_one

MEMBERSHIPS = """
select m.organization_id, o.name, m.role
from public.organization_members m
join public.organizations o on o.id = m.organization_id
where m.user_id = (select auth.uid())
order by o.created_at, o.id
"""
# The one function anon may call: it answers for a live token and for nothing else
# (test_runner_protocol.py::test_runner_routes_need_a_live_runner_token).
AUTHENTICATE_RUNNER = "select token_id, agent_id from private.authenticate_runner(%s)"


@dataclass(frozen=True)
class _RunnerIdentity:
    token_id: UUID
    agent_id: UUID


async def memberships(tx: Tx) -> list[Membership]:
    """The caller's organizations with their role in each, oldest organization first."""
    return await fetch_all(tx, Membership, MEMBERSHIPS)


async def authenticate_runner(tx: Tx, token: str) -> Caller | None:
    """The runner a runner token stands for, or None unless the token is live.

    Runs in an anon transaction: before the runner has an identity it is nobody.
    """
    found = await fetch_one(tx, _RunnerIdentity, AUTHENTICATE_RUNNER, (hash_runner_token(token),))
    if found is None:
        return None
    return Caller.runner(agent_id=found.agent_id, token_id=found.token_id)
