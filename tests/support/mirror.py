"""Mirror reports in tests: conversations written through the API, reports started and
waited for through the API."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.support.api import User

REPORT_DEADLINE_SECONDS = 30.0


async def conversation(
    client: httpx.AsyncClient, user: User, connection_id: str, agent_id: str | None,
    messages: list[tuple[str, str]],
) -> tuple[str, list[str]]:  # fmt: skip
    """A conversation of `user` on the connection (with the agent), holding `messages`
    ((role, content), in order); its id and the messages' ids."""
    resp = await client.post(
        "/conversations",
        json={"title": "t", "agent_connection_id": connection_id, "agent_id": agent_id},
        headers=user.headers,
    )
    assert resp.status_code == 201, resp.text
    conversation_id: str = resp.json()["id"]
    ids = []
    for role, content in messages:
        resp = await client.post(
            f"/conversations/{conversation_id}/messages",
            json={"role": role, "content": content},
            headers=user.headers,
        )
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    return conversation_id, ids


async def start_report(
    client: httpx.AsyncClient, user: User, connection_id: str, **body: Any
) -> dict[str, Any]:
    """A report started through the API (202)."""
    resp = await client.post(
        "/mirror-reports", json={"agent_connection_id": connection_id, **body},
        headers=user.headers,
    )  # fmt: skip
    assert resp.status_code == 202, resp.text
    report: dict[str, Any] = resp.json()
    return report


async def finished_report(client: httpx.AsyncClient, user: User, report_id: str) -> dict[str, Any]:
    """The report once it succeeded or failed (fails the test after the deadline)."""
    end = time.monotonic() + REPORT_DEADLINE_SECONDS
    while True:
        resp = await client.get(f"/mirror-reports/{report_id}", headers=user.headers)
        assert resp.status_code == 200, resp.text
        report: dict[str, Any] = resp.json()
        if report["status"] in ("succeeded", "failed"):
            return report
        if time.monotonic() > end:
            raise AssertionError(f"report {report_id} never finished: {report}")
        await asyncio.sleep(0.05)
