"""Reports with the owner's own key: the LLM analyzer through the connection's provider
(a local fake on 127.0.0.1), and the heuristic fallback, with its reason, when the
provider is down."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from agentplane.mirror.llm_analyzer import MAP_SYSTEM, REDUCE_SYSTEM
from tests.support.api import MakeOrg
from tests.support.builders import create_connection, new_agent, store_key
from tests.support.fake_provider import FakeProvider, Reply
from tests.support.mirror import conversation, finished_report, start_report


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    """The connection's provider: a local OpenAI-compatible server."""
    with FakeProvider() as server:
        yield server


async def test_a_report_with_a_key_is_written_by_the_llm_with_known_evidence_only(
    client: httpx.AsyncClient, make_org: MakeOrg, fake: FakeProvider
) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    connection = await create_connection(
        client, org.member, name="local", provider="custom", base_url=fake.base_url, model="m1"
    )
    await store_key(client, org.member, org, "sk-owner-7777", provider="custom")
    _, ids = await conversation(client, org.member, connection["id"], agent, [
        ("user", "Is the build green?"), ("assistant", "Yes."),
    ])  # fmt: skip
    invented = "00000000-0000-4000-8000-000000000000"
    finding = {"title": "Short, direct answers", "detail": "", "evidence": [ids[1], invented],
               "frequency": 1, "severity": "low"}  # fmt: skip
    fake.script(
        Reply(body=FakeProvider.completion(json.dumps(
            {"strengths": [finding], "weaknesses": [], "recommendations": []}))),
        Reply(body=FakeProvider.completion(json.dumps(
            {"strengths": [finding], "weaknesses": [], "recommendations": [],
             "suggested_prompt": {"prompt": "Answer briefly.",
                                  "changes": [{"change": "add brevity", "rationale": "it works"}]},
             "skills": []}))),
    )  # fmt: skip

    report = await finished_report(
        client, org.member, (await start_report(client, org.member, connection["id"]))["id"]
    )

    assert report["status"] == "succeeded", report
    assert report["analyzer"] == "llm"
    assert [s["evidence"] for s in report["strengths"]] == [[ids[1]]]
    assert report["dropped_evidence"] >= 1
    assert report["suggested_prompt"] == "Answer briefly."
    assert "+Answer briefly." in report["suggested_prompt_diff"]
    systems = [r["json"]["messages"][0]["content"] for r in fake.requests]
    assert systems == [MAP_SYSTEM, REDUCE_SYSTEM]
    assert {r["headers"]["authorization"] for r in fake.requests} == {"Bearer sk-owner-7777"}


async def test_a_provider_that_is_down_gives_a_heuristic_report_that_says_why(
    client: httpx.AsyncClient, make_org: MakeOrg, fake: FakeProvider
) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    connection = await create_connection(
        client, org.member, name="local", provider="custom", base_url=fake.base_url, model="m1"
    )
    await store_key(client, org.member, org, "sk-owner-7777", provider="custom")
    await conversation(client, org.member, connection["id"], agent, [("user", "hello?")])
    down = Reply(status=503, body={"error": {"message": "overloaded"}})
    fake.script(down, down, down, down)

    report = await finished_report(
        client, org.member,
        (await start_report(client, org.member, connection["id"], analyzer="llm"))["id"],
    )  # fmt: skip

    assert report["status"] == "succeeded", report
    assert report["analyzer"] == "heuristic"
    assert any(n.startswith("fell back to heuristic") and "503" in n for n in report["notes"])
