"""The demo organization, project and agent that `make dev` gives its demo user.

Written as the demo user itself (RLS applies) through the same services the API calls,
and idempotent: a second start finds the rows it made the first time.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from agentplane.agents import service as agents
from agentplane.agents.models import AgentConfigUpdate, AgentCreate
from agentplane.auth.caller import Caller
from agentplane.connections import service as connections
from agentplane.connections.models import ConnectionCreate
from agentplane.db.database import Database
from agentplane.db.pagination import MAX_LIMIT, PageRequest
from agentplane.organizations import service as organizations
from agentplane.organizations.models import OrganizationCreate
from agentplane.projects import service as projects
from agentplane.projects.models import ProjectCreate
from agentplane.vault.service import Vault

DEMO_USER_ID = UUID("5eed0000-0000-4000-8000-00000000de40")
DEMO_EMAIL = "demo@agentplane.local"
DEMO_ORG_SLUG = "demo"
DEMO_PROJECT = "Demo project"
DEMO_AGENT = "demo-agent"
DEMO_CONFIG = AgentConfigUpdate(
    model="demo-model",
    system_prompt="You are a careful assistant. Propose actions; a human approves them.",
    temperature=0.7,
    connection_id=None,
    allowed_tools=["read_file", "write_file", "http_get"],
)


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
        org = await organizations.find_organization(tx, DEMO_ORG_SLUG)
        if org is None:
            org = await organizations.create_organization(
                tx, DEMO_USER_ID, OrganizationCreate(name="Demo organization", slug=DEMO_ORG_SLUG)
            )
        project = await projects.find_project(tx, org.id, DEMO_PROJECT)
        if project is None:
            project = await projects.create_project(
                tx,
                ProjectCreate(
                    organization_id=org.id, name=DEMO_PROJECT, description="Seeded by `make dev`."
                ),
            )
        agent = await agents.find_agent(tx, project.id, DEMO_AGENT)
        if agent is None:
            agent = await agents.create_agent(
                tx,
                AgentCreate(
                    project_id=project.id,
                    name=DEMO_AGENT,
                    description="A demo agent with a local runner.",
                ),
            )
            # Only a new agent gets the demo config: a restart keeps what the user set.
            await agents.replace_config(tx, agent.id, DEMO_CONFIG)
    return DemoSeed(DEMO_USER_ID, org.id, project.id, agent.id)


DEV_CONNECTION_NAME = "make dev provider"
DEV_KEY_LABEL = "make dev"


async def wire_dev_provider(
    db: Database, vault: Vault, seed: DemoSeed, *, base_url: str, model: str, key: str
) -> None:
    """Point the demo agent at an OpenAI-compatible endpoint (a `custom` connection of
    the demo user) and put the key in the demo user's vault. Idempotent: a restart with
    another URL, model or key replaces them."""
    async with db.transaction(demo_caller()) as tx:
        connection = await connections.find(tx, DEV_CONNECTION_NAME)
        if connection is None:
            connection = await connections.create(
                tx,
                ConnectionCreate(
                    name=DEV_CONNECTION_NAME, provider="custom", base_url=base_url, model=model
                ),
            )
        else:
            await connections.update(tx, connection.id, {"base_url": base_url, "model": model})
        config = await agents.get_config(tx, seed.agent_id)
        # No model of its own: the agent speaks with the connection's model.
        update = config.model_dump(include=set(AgentConfigUpdate.model_fields))
        await agents.replace_config(
            tx,
            seed.agent_id,
            AgentConfigUpdate(**{**update, "model": "", "connection_id": connection.id}),
        )
        stored = await vault.list(tx, PageRequest(limit=MAX_LIMIT, after=None), provider="custom")
        for old in stored.items:
            if old.label == DEV_KEY_LABEL:
                await vault.delete(tx, old.id)
        await vault.store(
            tx,
            user_id=seed.user_id,
            organization_id=seed.organization_id,
            provider="custom",
            key=key,
            label=DEV_KEY_LABEL,
        )
