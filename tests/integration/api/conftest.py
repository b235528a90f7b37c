"""Fixtures for API tests: users with tokens, and data built through the API itself."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest


@dataclass(frozen=True)
class User:
    """A user with a valid token."""

    id: uuid.UUID
    headers: dict[str, str] = field(repr=False)


@dataclass(frozen=True)
class Org:
    """An organization built through the API, with a user for each role."""

    id: uuid.UUID
    owner: User
    admin: User
    member: User
    viewer: User


@pytest.fixture
def new_user(auth_headers: Callable[[uuid.UUID], dict[str, str]]) -> Callable[[], User]:
    """A fresh user (their auth row appears on their first request)."""

    def make() -> User:
        user_id = uuid.uuid4()
        return User(user_id, auth_headers(user_id))

    return make


async def ensure_known(client: httpx.AsyncClient, user: User) -> None:
    """Make the user's first request, which creates their auth.users row."""
    resp = await client.get("/me", headers=user.headers)
    assert resp.status_code == 200, resp.text


@pytest.fixture
def make_org(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> Callable[..., Awaitable[Org]]:
    """Create an organization through the API, with an admin, a member and a viewer."""

    async def make(name: str = "Acme") -> Org:
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

    return make


async def collect_pages(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], limit: int, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Follow next_cursor to the end; return every item and how many pages it took."""
    items: list[dict[str, Any]] = []
    pages = 0
    cursor: str | None = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        resp = await client.get(path, params=query, headers=headers)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert len(body["items"]) <= limit
        items.extend(body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def assert_problem(resp: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    """The response is a problem+json of this status (and type slug)."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    if slug is not None:
        assert body["type"].endswith("/" + slug), body
    return body
