"""Test data, built the way the product builds it: through the HTTP API of the test app
(its in-process httpx client), or, where a runner or server job would, through the
layer's domain functions. Never by hand-written INSERTs, which drift from the schema.

Each builder checks the status it expects and returns the new row as the API shows it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from agentplane.auth.caller import Caller
from agentplane.db.database import Database
from agentplane.sessions import service as sessions
from agentplane.sessions.models import SessionCreate
from agentplane.tools.catalog import TOOL_NAMES
from tests.support.api import NewUser, Org, User, ensure_known

# What a proposal carries unless the test says otherwise.
PAYLOAD = {"tool": "write_file", "args": {"path": "notes/hello.txt", "content": "hi ✓"}}


# --- people and where they work --------------------------------------------------------


async def create_org(client: httpx.AsyncClient, new_user: NewUser, name: str = "Acme") -> Org:
    """An organization created by a new owner, with a new admin, member and viewer."""
    owner, admin, member, viewer = (new_user() for _ in range(4))
    resp = await client.post("/organizations", json={"name": name}, headers=owner.headers)
    assert resp.status_code == 201, resp.text
    org_id = uuid.UUID(resp.json()["id"])
    for user, role in ((admin, "admin"), (member, "member"), (viewer, "viewer")):
        await ensure_known(client, user)
        resp = await client.post(
            f"/organizations/{org_id}/members",
            json={"user_id": str(user.id), "role": role},
            headers=owner.headers,
        )
        assert resp.status_code == 201, resp.text
    return Org(org_id, owner, admin, member, viewer)


async def create_project(client: httpx.AsyncClient, org: Org, name: str = "p") -> str:
    """A project of `org`, created by its owner."""
    resp = await client.post(
        "/projects",
        json={"organization_id": str(org.id), "name": name},
        headers=org.owner.headers,
    )
    assert resp.status_code == 201, resp.text
    project_id: str = resp.json()["id"]
    return project_id


# --- agents and their runners ----------------------------------------------------------


async def create_agent(
    client: httpx.AsyncClient, project_id: str, user: User, name: str = "scout"
) -> dict[str, Any]:
    """An agent of the project, created by `user`."""
    resp = await client.post(
        "/agents", json={"project_id": project_id, "name": name}, headers=user.headers
    )
    assert resp.status_code == 201, resp.text
    agent: dict[str, Any] = resp.json()
    return agent


async def allow_tools(
    client: httpx.AsyncClient, agent_id: str, user: User, tools: Sequence[str]
) -> dict[str, Any]:
    """The agent's config, otherwise the default, with `tools` as its allowed_tools."""
    resp = await client.put(
        f"/agents/{agent_id}/config",
        json={
            "model": "",
            "system_prompt": "",
            "temperature": 0.7,
            "connection_id": None,
            "allowed_tools": list(tools),
        },
        headers=user.headers,
    )
    assert resp.status_code == 200, resp.text
    config: dict[str, Any] = resp.json()
    return config


async def new_agent(
    client: httpx.AsyncClient, org: Org, name: str = "scout", tools: Sequence[str] = TOOL_NAMES
) -> str:
    """An agent in a new project of `org`, allowed `tools` (every catalog tool)."""
    project_id = await create_project(client, org, f"p-{name}")
    agent_id: str = (await create_agent(client, project_id, org.owner, name))["id"]
    await allow_tools(client, agent_id, org.owner, tools)
    return agent_id


async def issue_token(client: httpx.AsyncClient, agent_id: str, user: User) -> dict[str, Any]:
    """A runner token of the agent, issued by `user` (the secret is in `token`, once)."""
    resp = await client.post(
        f"/agents/{agent_id}/runner-tokens", json={"name": "laptop"}, headers=user.headers
    )
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


@dataclass(frozen=True)
class Runner:
    """A runner of one agent: its token's headers, speaking the protocol over `client`."""

    client: httpx.AsyncClient
    agent_id: str
    token_id: str
    headers: dict[str, str]

    async def register(self, **body: Any) -> dict[str, Any]:
        """A new session (201)."""
        resp = await self.client.post("/runner/sessions", json=body, headers=self.headers)
        assert resp.status_code == 201, resp.text
        session: dict[str, Any] = resp.json()
        return session

    async def heartbeat(self, session_id: str) -> httpx.Response:
        """POST /runner/sessions/{id}/heartbeat."""
        return await self.client.post(
            f"/runner/sessions/{session_id}/heartbeat", headers=self.headers
        )

    async def end(self, session_id: str) -> httpx.Response:
        """DELETE /runner/sessions/{id}."""
        return await self.client.delete(f"/runner/sessions/{session_id}", headers=self.headers)

    async def claim(self, session_id: str, **body: Any) -> httpx.Response:
        """POST /runner/claim for the session."""
        return await self.client.post(
            "/runner/claim", json={"session_id": session_id, **body}, headers=self.headers
        )

    async def claimed(self, session_id: str, **body: Any) -> list[dict[str, Any]]:
        """The items of a successful claim."""
        resp = await self.claim(session_id, **body)
        assert resp.status_code == 200, resp.text
        items: list[dict[str, Any]] = resp.json()["items"]
        return items

    async def result(
        self,
        action_id: str,
        fencing_token: int,
        status: str = "succeeded",
        output: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """POST /runner/actions/{id}/result."""
        return await self.client.post(
            f"/runner/actions/{action_id}/result",
            json={"fencing_token": fencing_token, "status": status, "output": output or {}},
            headers=self.headers,
        )

    async def release(self, action_id: str, fencing_token: int) -> httpx.Response:
        """POST /runner/actions/{id}/release."""
        return await self.client.post(
            f"/runner/actions/{action_id}/release",
            json={"fencing_token": fencing_token},
            headers=self.headers,
        )


async def runner_for(client: httpx.AsyncClient, agent_id: str, user: User) -> Runner:
    """A runner with a fresh token of the agent, issued by `user`."""
    token = await issue_token(client, agent_id, user)
    return Runner(client, agent_id, token["id"], {"Authorization": f"Bearer {token['token']}"})


async def register_session(
    database: Database, agent_id: uuid.UUID, socket_id: str = "sock"
) -> uuid.UUID:
    """An online session of the agent, registered as its runner would (RLS applies)."""
    async with database.transaction(Caller.runner(agent_id)) as tx:
        session = await sessions.register(tx, agent_id, None, SessionCreate(socket_id=socket_id))
    return session.id


async def register_silent_session(
    database: Database, agent_id: uuid.UUID, silent_for_seconds: int
) -> uuid.UUID:
    """A session its runner registered, then left silent for `silent_for_seconds`."""
    session_id = await register_session(database, agent_id)
    async with database.service("test: let time pass") as tx:
        await tx.execute(
            "update public.agent_sessions"
            " set last_heartbeat = now() - make_interval(secs => %s) where id = %s",
            (silent_for_seconds, session_id),
        )
    return session_id


# --- the queue: proposals and their decisions ------------------------------------------


async def post_proposal(
    client: httpx.AsyncClient, agent_id: str, user: User, **extra: Any
) -> httpx.Response:
    """POST a proposal of PAYLOAD (unless `payload` is given) as `user`, whatever comes back."""
    return await client.post(
        f"/agents/{agent_id}/actions", json={"payload": PAYLOAD, **extra}, headers=user.headers
    )


async def propose(
    client: httpx.AsyncClient, agent_id: str, user: User, **extra: Any
) -> dict[str, Any]:
    """A pending action of the agent, proposed by `user`."""
    resp = await post_proposal(client, agent_id, user, **extra)
    assert resp.status_code == 201, resp.text
    action: dict[str, Any] = resp.json()
    return action


async def approved_action(
    client: httpx.AsyncClient, agent_id: str, org: Org, **extra: Any
) -> dict[str, Any]:
    """An action of the agent, proposed by a member and approved (so signed) by an admin."""
    action = await propose(client, agent_id, org.member, **extra)
    resp = await client.post(f"/actions/{action['id']}/approve", headers=org.admin.headers)
    assert resp.status_code == 200, resp.text
    approved: dict[str, Any] = resp.json()
    return approved


async def get_action(client: httpx.AsyncClient, action_id: str, user: User) -> dict[str, Any]:
    """The action as a person sees it."""
    resp = await client.get(f"/actions/{action_id}", headers=user.headers)
    assert resp.status_code == 200, resp.text
    action: dict[str, Any] = resp.json()
    return action


async def transitions(
    client: httpx.AsyncClient, action_id: str, user: User
) -> list[tuple[str | None, str, str]]:
    """The action's audit log as (from, to, actor_role), oldest first."""
    resp = await client.get(f"/actions/{action_id}/events", headers=user.headers)
    assert resp.status_code == 200, resp.text
    return [(e["from_status"], e["to_status"], e["actor_role"]) for e in resp.json()["items"]]


# --- a user's own things: connections and vault keys -----------------------------------


async def create_connection(client: httpx.AsyncClient, user: User, **fields: Any) -> dict[str, Any]:
    """A model connection of `user` (OpenRouter unless the fields say otherwise)."""
    body = {"name": "Router", "provider": "openrouter", "model": "some-model", **fields}
    resp = await client.post("/connections", json=body, headers=user.headers)
    assert resp.status_code == 201, resp.text
    connection: dict[str, Any] = resp.json()
    return connection


async def store_key(
    client: httpx.AsyncClient,
    user: User,
    org: Org,
    key: str,
    provider: str = "openrouter",
    **extra: Any,
) -> dict[str, Any]:
    """A provider key of `user` in the vault, for `org`; the answer never echoes it."""
    resp = await client.post(
        "/keys",
        json={"provider": provider, "key": key, "organization_id": str(org.id), **extra},
        headers=user.headers,
    )
    assert resp.status_code == 201, resp.text
    assert key not in resp.text
    stored: dict[str, Any] = resp.json()
    return stored
