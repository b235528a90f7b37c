"""Adopting a report's suggested prompt makes the agent's next prompt version; turns use
it, then the restored one; a second adopt is a 409, a viewer's adopt a 403."""

from __future__ import annotations

import httpx

from tests.support.api import MakeOrg, Org, User
from tests.support.builders import create_connection, new_agent, propose, store_key
from tests.support.fake_provider import FakeProvider, Reply
from tests.support.mirror import conversation, finished_report, start_report

BEFORE = "You are a careful assistant."


async def _weak_report(
    client: httpx.AsyncClient, org: Org, user: User, agent: str, connection: str
) -> dict[str, object]:
    """A heuristic report of `user`'s connection that found rejected shell actions."""
    await conversation(client, user, connection, agent, [("user", "clean up please")])
    for _ in range(3):
        action = await propose(
            client, agent, org.member,
            payload={"tool": "shell", "args": {"command": ["make", "clean"]}},
        )  # fmt: skip
        resp = await client.post(
            f"/actions/{action['id']}/reject", json={"reason": "no shell"},
            headers=org.admin.headers,
        )  # fmt: skip
        assert resp.status_code == 200
    report = await start_report(client, user, connection, analyzer="heuristic")
    return await finished_report(client, user, str(report["id"]))


async def test_adopt_then_restore_changes_what_turns_send(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    with FakeProvider() as fake:
        connection = await create_connection(
            client, org.member, name="local", provider="custom", base_url=fake.base_url
        )
        await store_key(client, org.member, org, "sk-member-1", provider="custom")
        resp = await client.put(
            f"/agents/{agent}/config",
            json={"model": "m1", "system_prompt": BEFORE, "temperature": 0.2,
                  "connection_id": connection["id"], "allowed_tools": ["shell", "read_file"]},
            headers=org.member.headers,
        )  # fmt: skip
        assert resp.status_code == 200, resp.text
        report = await _weak_report(client, org, org.member, agent, connection["id"])
        assert report["status"] == "succeeded"
        suggested = str(report["suggested_prompt"])
        assert suggested.startswith(BEFORE)
        assert suggested != BEFORE

        adopted = await client.post(
            f"/mirror-reports/{report['id']}/adopt", headers=org.member.headers
        )
        assert adopted.status_code == 200, adopted.text
        version = adopted.json()["adopted_prompt_version"]
        versions = (
            await client.get(f"/agents/{agent}/config/versions", headers=org.member.headers)
        ).json()["items"]
        latest = versions[-1]
        assert (latest["version"], latest["source"]) == (version, "adopt")
        assert latest["source_id"] == report["id"]
        assert latest["created_by"] == str(org.member.id)
        again = await client.post(
            f"/mirror-reports/{report['id']}/adopt", headers=org.member.headers
        )
        assert again.status_code == 409

        fake.script(*(Reply(body=FakeProvider.completion("ok")) for _ in range(2)))
        first = await client.post(
            f"/agents/{agent}/turns", json={"message": "hi"}, headers=org.member.headers
        )
        assert first.status_code == 201, first.text
        assert first.json()["reply"]["prompt_version"] == version
        before = next(v["version"] for v in versions if v["system_prompt"] == BEFORE)
        restored = await client.post(
            f"/agents/{agent}/config/versions/{before}/restore", headers=org.member.headers
        )
        assert restored.status_code == 201, restored.text
        second = await client.post(
            f"/agents/{agent}/turns", json={"message": "hi again"}, headers=org.member.headers
        )
        assert second.status_code == 201, second.text

    systems = [r["json"]["messages"][0] for r in fake.requests]
    assert systems[0] == {"role": "system", "content": suggested}
    assert systems[1] == {"role": "system", "content": BEFORE}


async def test_a_viewer_cannot_adopt_into_an_agent_they_only_see(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    connection = await create_connection(client, org.viewer, name="mine")
    report = await _weak_report(client, org, org.viewer, agent, connection["id"])
    assert report["status"] == "succeeded"
    assert report["suggested_prompt"]

    resp = await client.post(f"/mirror-reports/{report['id']}/adopt", headers=org.viewer.headers)

    assert resp.status_code == 403, resp.text
    unchanged = await client.get(f"/mirror-reports/{report['id']}", headers=org.viewer.headers)
    assert unchanged.json()["adopted_at"] is None
