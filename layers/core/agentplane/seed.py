"""The demo organization, project and agent that `make dev` gives its demo user.

Written as the demo user itself (RLS applies), and idempotent: a second start finds
the rows it made the first time.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.vault.service import Vault

DEMO_USER_ID = UUID("5eed0000-0000-4000-8000-00000000de40")
DEMO_EMAIL = "demo@agentplane.local"
DEMO_ORG_SLUG = "demo"


@dataclass(frozen=True)
class DemoSeed:
    """The ids of the seeded rows."""

    user_id: UUID
    organization_id: UUID
    project_id: UUID
    agent_id: UUID


def demo_caller() -> Caller:
    """The demo user, as a verified token would present them."""
    return Caller.user({"sub": str(DEMO_USER_ID), "email": DEMO_EMAIL})


async def seed_demo(db: Database) -> DemoSeed:
    """Create (or find) the demo organization, project, agent and agent config."""
    async with db.transaction(demo_caller()) as tx:
        cur = await tx.execute(
            "select id from public.organizations where slug = %s", (DEMO_ORG_SLUG,)
        )
        row = await cur.fetchone()
        if row:
            org_id = row[0]
        else:
            org_id = uuid4()
            # No RETURNING: the row becomes visible once the owner membership exists.
            await tx.execute(
                "insert into public.organizations (id, name, slug, created_by)"
                " values (%s, %s, %s, %s)",
                (org_id, "Demo organization", DEMO_ORG_SLUG, DEMO_USER_ID),
            )
        cur = await tx.execute(
            "select id from public.projects where organization_id = %s and name = %s",
            (org_id, "Demo project"),
        )
        row = await cur.fetchone()
        if row is None:
            cur = await tx.execute(
                "insert into public.projects (organization_id, name, description)"
                " values (%s, %s, %s) returning id",
                (org_id, "Demo project", "Seeded by `make dev`."),
            )
            row = await cur.fetchone()
        assert row is not None
        project_id = row[0]
        cur = await tx.execute(
            "select id from public.agents where project_id = %s and name = %s",
            (project_id, "demo-agent"),
        )
        row = await cur.fetchone()
        if row is None:
            cur = await tx.execute(
                "insert into public.agents (organization_id, project_id, name, description)"
                " values (%s, %s, %s, %s) returning id",
                (org_id, project_id, "demo-agent", "A demo agent with a local runner."),
            )
            row = await cur.fetchone()
        assert row is not None
        agent_id = row[0]
        await tx.execute(
            "insert into public.agent_configs"
            " (agent_id, organization_id, model, system_prompt, allowed_tools)"
            " values (%s, %s, %s, %s, %s) on conflict (agent_id) do nothing",
            (
                agent_id,
                org_id,
                "demo-model",
                "You are a careful assistant. Propose actions; a human approves them.",
                ["read_file", "write_file", "http_get"],
            ),
        )
    return DemoSeed(DEMO_USER_ID, org_id, project_id, agent_id)


DEV_CONNECTION_NAME = "make dev provider"
DEV_KEY_LABEL = "make dev"


async def wire_dev_provider(
    db: Database, vault: Vault, seed: DemoSeed, *, base_url: str, model: str, key: str
) -> None:
    """Point the demo agent at an OpenAI-compatible endpoint (a `custom` connection of
    the demo user) and put the key in the demo user's vault. Idempotent: a restart with
    another URL, model or key replaces them."""
    async with db.transaction(demo_caller()) as tx:
        cur = await tx.execute(
            "select id from public.agent_connections where name = %s", (DEV_CONNECTION_NAME,)
        )
        row = await cur.fetchone()
        if row is None:
            cur = await tx.execute(
                "insert into public.agent_connections (name, provider, base_url, model)"
                " values (%s, 'custom', %s, %s) returning id",
                (DEV_CONNECTION_NAME, base_url, model),
            )
            row = await cur.fetchone()
        else:
            await tx.execute(
                "update public.agent_connections set base_url = %s, model = %s where id = %s",
                (base_url, model, row[0]),
            )
        assert row is not None
        await tx.execute(
            "update public.agent_configs set connection_id = %s, model = '' where agent_id = %s",
            (row[0], seed.agent_id),
        )
        await tx.execute(
            "delete from public.user_keys where provider = 'custom' and label = %s",
            (DEV_KEY_LABEL,),
        )
        await vault.store(
            tx,
            user_id=seed.user_id,
            organization_id=seed.organization_id,
            provider="custom",
            key=key,
            label=DEV_KEY_LABEL,
        )
