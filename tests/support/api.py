"""Speaking to the test app over HTTP: who calls, and reading what comes back."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx


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


# The types of the `new_user` and `make_org` fixtures (tests/conftest.py).
NewUser = Callable[[], User]
MakeOrg = Callable[..., Awaitable[Org]]


async def ensure_known(client: httpx.AsyncClient, user: User) -> None:
    """Make the user's first request, which creates their auth.users row."""
    resp = await client.get("/me", headers=user.headers)
    assert resp.status_code == 200, resp.text


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


def field_rules(problem: dict[str, Any]) -> list[tuple[str, str]]:
    """The (field, rule) pairs of a 422."""
    return [(e["field"], e["rule"]) for e in problem["errors"]]


def at(text: str) -> datetime:
    """A timestamp of a response."""
    return datetime.fromisoformat(text)
