"""Contract routes whose features land later answer 501 problem+json, after auth."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.integration.api.conftest import User, assert_problem

CALLS = [
    ("POST", f"/agents/{uuid.uuid4()}/turns", {"message": "hi"}),
]


@pytest.mark.parametrize(("method", "path", "body"), CALLS)
async def test_pending_routes_are_501_for_users_and_401_for_nobody(
    client: httpx.AsyncClient,
    new_user: Callable[[], User],
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    user = new_user()
    resp = await client.request(method, path, json=body, headers=user.headers)
    assert_problem(resp, 501, "not-implemented")
    assert_problem(await client.request(method, path, json=body), 401)
