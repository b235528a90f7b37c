"""The console's browser tests' parts: where Chromium is, a stand-in for Supabase Auth
on 127.0.0.1 that issues real tokens, the running dev server as `Console`, and `Team`, an
organization of a test's own (so its inbox holds only what the test put there)."""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from agentplane.auth.tokens import mint_token
from agentplane.settings import Settings
from tests.support.dev_server import DevServer

CHROMIUM = "/usr/bin/chromium"
# What the machine's closed network needs (docs of the browser setup on this machine).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ANON_KEY = "anon-key-of-the-test-project"


@dataclass
class FakeSupabaseAuth:
    """Supabase Auth's password and refresh grants and logout, as the console calls them,
    issuing real tokens signed with the dev server's secret."""

    data_dir: Path
    users: dict[str, tuple[str, uuid.UUID]] = field(default_factory=dict)
    refresh_tokens: dict[str, tuple[uuid.UUID, str]] = field(default_factory=dict)
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)
    url: str = ""

    def add_user(self, email: str, password: str) -> uuid.UUID:
        user_id = uuid.uuid4()
        self.users[email] = (password, user_id)
        return user_id

    def session(self, user_id: uuid.UUID, email: str) -> dict[str, Any]:
        refresh = secrets.token_urlsafe(16)
        self.refresh_tokens[refresh] = (user_id, email)
        access = mint_token(Settings(data_dir=self.data_dir), user_id, email=email)
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": 3600,
            "refresh_token": refresh,
            "user": {"id": str(user_id), "email": email},
        }


def auth_handler(auth: FakeSupabaseAuth) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _cors(self) -> None:
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Headers", "apikey, content-type, authorization")
            self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")

        def _answer(self, status: int, body: dict[str, Any] | None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self._cors()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_OPTIONS(self) -> None:
            self.send_response(204)
            self._cors()
            self.end_headers()

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            grant = parse_qs(url.query).get("grant_type", [None])[0]
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            auth.calls.append((url.path, grant or "", self.headers.get("apikey")))
            if self.headers.get("apikey") != ANON_KEY:
                return self._answer(401, {"message": "Invalid API key"})
            if url.path == "/auth/v1/token" and grant == "password":
                known = auth.users.get(body.get("email", ""))
                if not known or known[0] != body.get("password"):
                    refused = {
                        "error": "invalid_grant",
                        "error_description": "Invalid login credentials",
                    }
                    return self._answer(400, refused)
                return self._answer(200, auth.session(known[1], body["email"]))
            if url.path == "/auth/v1/token" and grant == "refresh_token":
                held = auth.refresh_tokens.pop(body.get("refresh_token", ""), None)
                if held is None:
                    return self._answer(400, {"error": "invalid_grant"})
                return self._answer(200, auth.session(*held))
            if url.path == "/auth/v1/logout":
                return self._answer(204, None)
            return self._answer(404, {"message": "not found"})

    return Handler


@dataclass
class Console:
    """The running dev server, its console link, demo agent, and ways to act as people."""

    server: DevServer
    link: str
    agent: str
    data_dir: Path
    auth: FakeSupabaseAuth

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def owner_token(self) -> str:
        return self.link.split("#token=", 1)[1]

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client of the API as the owner (or as the holder of `token`)."""
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token or self.owner_token}"},
            timeout=10,
        )

    def token_for(self, user_id: uuid.UUID, email: str | None = None) -> str:
        """A user token minted from the dev server's local secret."""
        return mint_token(Settings(data_dir=self.data_dir), user_id, email=email)

    def link_for(self, token: str, page: str = "") -> str:
        """The console link of `token` (then the page after `#/`, e.g. `actions/<id>`)."""
        return f"{self.base_url}/console#token={token}" + (f"&page={page}" if page else "")

    def organization(self) -> str:
        return str(self.client().get("/me").json()["organizations"][0]["organization_id"])

    def add_member(
        self, role: str, organization_id: str | None = None, admin_token: str | None = None
    ) -> tuple[uuid.UUID, str]:
        """A new person with `role` in an organization (the demo one unless named, added
        by the holder of `admin_token`, the demo owner unless given): their id and token."""
        user_id = uuid.uuid4()
        token = self.token_for(user_id)
        assert self.client(token).get("/me").status_code == 200  # now they are known
        added = self.client(admin_token).post(
            f"/organizations/{organization_id or self.organization()}/members",
            json={"user_id": str(user_id), "role": role},
        )
        assert added.status_code == 201, added.text
        return user_id, token


@dataclass
class Team:
    """A new organization of its own (so its inbox holds only what a test put there): its
    owner's token, and one agent allowed every catalog tool."""

    console: Console
    owner_id: uuid.UUID
    owner_token: str
    organization_id: str
    agent_id: str

    def client(self, token: str | None = None) -> httpx.Client:
        return self.console.client(token or self.owner_token)

    def link(self, page: str = "", token: str | None = None) -> str:
        return self.console.link_for(token or self.owner_token, page)

    def propose(self, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """A pending action of the team's agent, proposed by the owner."""
        resp = self.client().post(
            f"/agents/{self.agent_id}/actions", json={"payload": payload, **extra}
        )
        assert resp.status_code == 201, resp.text
        action: dict[str, Any] = resp.json()
        return action

    def add(self, role: str) -> tuple[uuid.UUID, str]:
        """A new person with `role` in the team: their id and token."""
        return self.console.add_member(role, self.organization_id, self.owner_token)


def new_team(console: Console, name: str = "team") -> Team:
    """An organization, project and agent (every tool allowed) of a new owner."""
    from agentplane.tools.catalog import TOOL_NAMES

    owner_id = uuid.uuid4()
    token = console.token_for(owner_id, email=f"{name}-{owner_id.hex[:6]}@example.com")
    api = console.client(token)
    org = api.post("/organizations", json={"name": name})
    assert org.status_code == 201, org.text
    project = api.post("/projects", json={"organization_id": org.json()["id"], "name": "p"})
    assert project.status_code == 201, project.text
    agent = api.post("/agents", json={"project_id": project.json()["id"], "name": f"{name}-agent"})
    assert agent.status_code == 201, agent.text
    config = api.put(
        f"/agents/{agent.json()['id']}/config",
        json={
            "model": "demo-model",
            "system_prompt": "You are careful.",
            "temperature": 0.7,
            "connection_id": None,
            "allowed_tools": list(TOOL_NAMES),
        },
    )
    assert config.status_code == 200, config.text
    return Team(console, owner_id, token, org.json()["id"], agent.json()["id"])
