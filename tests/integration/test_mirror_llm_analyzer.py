"""The LLM mirror analyzer over real HTTP: a `complete` built on the brain's ChatClient
talks to the fake OpenAI-compatible server on 127.0.0.1. Chunks fit the token budget and
cover every item once; invented evidence is dropped and counted; an unusable reply is
retried once, then the fallback answers; a provider that is down falls back at once."""

from __future__ import annotations

import difflib
import io
import json
import logging
import math
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentplane.brain.provider import ChatClient
from agentplane.mirror.analysis import (
    Analysis,
    Corpus,
    CorpusAction,
    CorpusMessage,
    Finding,
)
from agentplane.mirror.llm_analyzer import MAP_SYSTEM, REDUCE_SYSTEM, Complete, LlmAnalyzer
from agentplane.observability import logger
from tests.support.fake_provider import FakeProvider, Reply

API_KEY = "sk-owner-byok-key-5151"
CURRENT_PROMPT = "You are a helpful agent.\nAlways run shell commands without asking.\n"
# The fences inside pin that a reply is read whole first, and a fenced reply greedily.
SUGGESTED_PROMPT = (
    "You are a helpful agent.\nAsk before running a shell command that deletes files.\n"
    "Quote commands in ```sh blocks```.\n"
)
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment must not stand between the client and 127.0.0.1.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


@pytest.fixture
async def chat() -> AsyncIterator[ChatClient]:
    client = ChatClient(
        timeout_seconds=5.0, max_retries=1, backoff_seconds=0.01, max_backoff_seconds=0.02
    )
    yield client
    await client.aclose()


@pytest.fixture
def analysis_log() -> Iterator[io.StringIO]:
    """What the Powertools logger writes during the test."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    std_logger = logging.getLogger(logger.service)
    std_logger.addHandler(handler)
    yield stream
    std_logger.removeHandler(handler)


class StubFallback:
    """The heuristic analyzer's stand-in: one fixed finding, and how often it was asked."""

    name = "heuristic"

    def __init__(self) -> None:
        self.calls = 0

    async def analyze(self, corpus: Corpus) -> Analysis:
        self.calls += 1
        return Analysis(
            weaknesses=[Finding(title="stub finding", frequency=1)],
            notes=["from the stub"],
            analyzer="heuristic",
        )


def complete_on(chat: ChatClient, base_url: str) -> Complete:
    """The `complete` the report runner builds: the owner's key, one chat request."""

    async def complete(messages: list[dict[str, Any]]) -> str:
        completion = await chat.complete(
            provider="custom",
            base_url=base_url,
            api_key=API_KEY,
            model="owner-model",
            messages=messages,
            temperature=0,
        )
        return completion.content

    return complete


def make_corpus(
    n_messages: int = 6, *, content: str = "please clean the build folder", actions: int = 1
) -> Corpus:
    messages = [
        CorpusMessage(
            id=uuid.uuid4(),
            conversation_id=uuid.UUID(int=1 + i // 20),
            role="user" if i % 2 == 0 else "assistant",
            content=f"{content} #{i}",
            created_at=T0 + timedelta(minutes=i),
        )
        for i in range(n_messages)
    ]
    acts = [
        CorpusAction(
            id=uuid.uuid4(),
            status="rejected",
            tool="shell",
            args={"command": "rm -rf build"},
            decision_reason="never delete without asking",
            output=None,
            attempt=1,
            created_at=T0 + timedelta(minutes=i, seconds=30),
        )
        for i in range(actions)
    ]
    return Corpus(
        connection_id=uuid.uuid4(),
        connection_name="laptop hermes",
        agent_id=uuid.uuid4(),
        system_prompt=CURRENT_PROMPT,
        since=None,
        until=T0 + timedelta(days=1),
        messages=messages,
        actions=acts,
    )


def reply_json(payload: dict[str, Any] | str, *, fenced: bool = False) -> Reply:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    if fenced:
        text = f"Here is the review:\n```json\n{text}\n```\n"
    return Reply(body=FakeProvider.completion(text))


def finding(title: str, evidence: list[Any], severity: str = "high") -> dict[str, Any]:
    return {
        "title": title,
        "detail": "seen in the rejections",
        "evidence": [str(e) for e in evidence],
        "frequency": len(evidence),
        "severity": severity,
    }


def reduce_payload(evidence: list[Any]) -> dict[str, Any]:
    return {
        "strengths": [finding("answers politely", evidence[:1], "low")],
        "weaknesses": [finding("deletes without asking", evidence)],
        "recommendations": [finding("ask before deleting", evidence[:1], "medium")],
        "suggested_prompt": {
            "prompt": SUGGESTED_PROMPT,
            # The model's own diff is never trusted.
            "diff": "@@ nonsense @@",
            "changes": [
                {
                    "change": "ask before deleting files",
                    "rationale": "the owner rejected deletions",
                    "evidence": [str(e) for e in evidence],
                }
            ],
        },
        "skills": [
            {
                "name": "safe cleanup",
                "category": "shell",
                "description": "clean a folder after confirming",
                "template_prompt": "Confirm, then clean {folder}.",
                "score": 0.7,
                "evidence": [str(e) for e in evidence[:1]],
            }
        ],
    }


def report_line(stream: io.StringIO) -> dict[str, Any]:
    """The analyzer's one log line of the test."""
    lines = [json.loads(x) for x in stream.getvalue().splitlines() if x.strip()]
    report = [x for x in lines if x.get("message") == "mirror llm analysis"]
    assert len(report) == 1, report
    line: dict[str, Any] = report[0]
    return line


def request_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = request["json"]["messages"]
    return messages


def estimated_tokens(request: dict[str, Any]) -> int:
    return math.ceil(sum(len(m["content"]) for m in request_messages(request)) / 4)


def step_of(request: dict[str, Any]) -> str:
    system = request_messages(request)[0]["content"]
    return {MAP_SYSTEM: "map", REDUCE_SYSTEM: "reduce"}.get(system, "?")


ITEM_ID = re.compile(r"\[[ma]:([0-9a-f-]{36})\]")


def chunk_model(request_json: dict[str, Any] | None) -> Reply:
    """A model that cites the first item of each chunk, and merges what it is given."""
    messages = (request_json or {}).get("messages") or []
    if messages and messages[0]["content"] == MAP_SYSTEM:
        first = ITEM_ID.search(messages[1]["content"])
        cited = [first.group(1)] if first else []
        return reply_json({"weaknesses": [finding("asks to delete", cited)]})
    cited = re.findall(r"[0-9a-f]{8}-[0-9a-f-]{27}", messages[-1]["content"])[:3]
    return reply_json(reduce_payload(cited))


async def test_chunks_fit_the_budget_and_carry_every_item_exactly_once(
    chat: ChatClient,
) -> None:
    # Given ~200 messages of ~300 characters, a few actions, and one oversized message
    budget = 1500
    fake = FakeProvider(responder=chunk_model)
    corpus = make_corpus(200, content="x" * 300, actions=5)
    huge = CorpusMessage(
        id=uuid.uuid4(),
        conversation_id=uuid.UUID(int=99),
        role="user",
        content="y" * 20_000,
        created_at=T0 + timedelta(minutes=100, seconds=10),
    )
    corpus.messages.append(huge)
    analyzer = LlmAnalyzer(
        complete_on(chat, fake.base_url), fallback=StubFallback(), token_budget=budget
    )

    # When it analyzes the corpus
    with fake:
        analysis = await analyzer.analyze(corpus)

    # Then every request fits the budget, there are several map requests and one reduce
    assert analysis.analyzer == "llm", analysis.notes
    steps = [step_of(r) for r in fake.requests]
    assert steps.count("reduce") == 1
    assert steps[-1] == "reduce"
    assert steps.count("map") == len(steps) - 1 >= 10
    assert all(estimated_tokens(r) <= budget for r in fake.requests), [
        estimated_tokens(r) for r in fake.requests
    ]
    # And every item appears in exactly one map request, the oversized one truncated
    map_texts = [request_messages(r)[1]["content"] for r in fake.requests[:-1]]
    for item_id in corpus.evidence_ids():
        assert sum(text.count(f":{item_id}]") for text in map_texts) == 1, item_id
    assert "y" * 1000 in "".join(map_texts)
    assert "y" * 20_000 not in "".join(map_texts)
    assert "truncated 1 item(s) longer than a chunk" in analysis.notes
    # And the reduce sees findings, not the raw messages
    reduce_text = request_messages(fake.requests[-1])[1]["content"]
    assert "[m:" not in reduce_text
    assert "x" * 300 not in reduce_text
    assert CURRENT_PROMPT in reduce_text


async def test_more_chunks_than_allowed_keeps_the_newest(chat: ChatClient) -> None:
    fake = FakeProvider(responder=chunk_model)
    corpus = make_corpus(60, content="z" * 300, actions=0)
    analyzer = LlmAnalyzer(
        complete_on(chat, fake.base_url), fallback=StubFallback(), token_budget=1500, max_chunks=2
    )

    with fake:
        analysis = await analyzer.analyze(corpus)

    assert [step_of(r) for r in fake.requests] == ["map", "map", "reduce"]
    map_text = "".join(request_messages(r)[1]["content"] for r in fake.requests[:2])
    assert str(corpus.messages[-1].id) in map_text
    assert str(corpus.messages[0].id) not in map_text
    assert any(n.startswith("analyzed the newest 2 of ") for n in analysis.notes)


async def test_invented_evidence_is_dropped_and_counted(
    chat: ChatClient, fake: FakeProvider
) -> None:
    # Given a map reply and a reduce reply that cite ids the corpus does not hold
    corpus = make_corpus()
    real = [corpus.actions[0].id, corpus.messages[0].id]
    invented_in_map = uuid.uuid4()
    invented_in_reduce = [uuid.uuid4(), uuid.uuid4()]
    fake.script(
        reply_json({"weaknesses": [finding("deletes", [*real, invented_in_map, "msg-7"])]}),
        reply_json(reduce_payload([*real, *invented_in_reduce])),
    )
    analyzer = LlmAnalyzer(complete_on(chat, fake.base_url), fallback=StubFallback())

    # When it analyzes
    analysis = await analyzer.analyze(corpus)

    # Then the merge never saw the map's invented id, and no finding keeps any
    assert str(invented_in_map) not in request_messages(fake.requests[1])[1]["content"]
    known = corpus.evidence_ids()
    cited = [e for f in analysis.weaknesses for e in f.evidence]
    assert cited
    assert set(cited) <= known
    assert analysis.suggested_prompt is not None
    assert set(analysis.suggested_prompt.changes[0].evidence) == set(real)
    # map: 1 invented + 1 unparsable; reduce: 2 in the weakness + 2 in the change
    assert analysis.dropped_evidence == 6
    assert "dropped 6 evidence id(s) the model cited that are not in the corpus" in (analysis.notes)
    assert analysis.analyzer == "llm"


async def test_an_unusable_reply_is_retried_once_then_the_fallback_answers(
    chat: ChatClient, fake: FakeProvider, analysis_log: io.StringIO
) -> None:
    # Given a model that answers prose twice
    fallback = StubFallback()
    fake.script(reply_json("I think the agent is fine."), reply_json("{still not json"))
    analyzer = LlmAnalyzer(complete_on(chat, fake.base_url), fallback=fallback)

    # When it analyzes
    analysis = await analyzer.analyze(make_corpus())

    # Then exactly two requests went out, the second saying what was wrong
    assert len(fake.requests) == 2
    retry = request_messages(fake.requests[1])
    assert retry[:2] == request_messages(fake.requests[0])
    assert retry[-1]["role"] == "user"
    assert "not JSON" in retry[-1]["content"]
    # And the fallback's analysis comes back, with the reason
    assert fallback.calls == 1
    assert analysis.analyzer == "heuristic"
    assert analysis.weaknesses[0].title == "stub finding"
    assert analysis.notes[0] == "from the stub"
    assert analysis.notes[-1].startswith("fell back to heuristic: map 1/1: the reply is not JSON")
    assert "after one retry" in analysis.notes[-1]
    assert report_line(analysis_log) | {"connection_id": None} == {
        **report_line(analysis_log),
        "connection_id": None,
        "requests": 2,
        "retries": 1,
        "fell_back": True,
        "fallback_kind": "invalid_reply",
        "analyzer": "heuristic",
    }


async def test_a_schema_error_is_named_in_the_retry_and_a_good_retry_is_used(
    chat: ChatClient, fake: FakeProvider
) -> None:
    corpus = make_corpus()
    evidence = [corpus.actions[0].id]
    fake.script(
        reply_json({"weaknesses": [{"title": "", "severity": "catastrophic"}]}),
        reply_json({"weaknesses": [finding("deletes", evidence)]}),
        reply_json(reduce_payload(evidence)),
    )
    fallback = StubFallback()
    analyzer = LlmAnalyzer(complete_on(chat, fake.base_url), fallback=fallback)

    analysis = await analyzer.analyze(corpus)

    assert [step_of(r) for r in fake.requests] == ["map", "map", "reduce"]
    correction = request_messages(fake.requests[1])[-1]["content"]
    assert "weaknesses.0.title" in correction
    assert "weaknesses.0.severity" in correction
    assert fallback.calls == 0
    assert analysis.analyzer == "llm"


async def test_a_provider_error_falls_back_at_once(chat: ChatClient, fake: FakeProvider) -> None:
    # Given a provider that answers 500 to everything
    fake.script(*[Reply(status=500, body={"error": {"message": "overloaded"}})] * 5)
    fallback = StubFallback()
    analyzer = LlmAnalyzer(complete_on(chat, fake.base_url), fallback=fallback)

    analysis = await analyzer.analyze(make_corpus())

    # Then only the client's own retry went out (max_retries=1), none of the analyzer's
    assert len(fake.requests) == 2
    assert fallback.calls == 1
    assert analysis.analyzer == "heuristic"
    assert analysis.notes[-1] == (
        "fell back to heuristic: map 1/1: ProviderError: custom answered 500: overloaded"
    )


async def test_a_closed_port_falls_back_with_the_reason(chat: ChatClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fallback = StubFallback()
    analyzer = LlmAnalyzer(complete_on(chat, f"http://127.0.0.1:{port}/v1"), fallback=fallback)

    analysis = await analyzer.analyze(make_corpus())

    assert fallback.calls == 1
    assert analysis.analyzer == "heuristic"
    assert analysis.notes[-1].startswith("fell back to heuristic: map 1/1: ProviderError:")
    assert "could not be reached" in analysis.notes[-1]
    assert API_KEY not in analysis.notes[-1]


async def test_a_good_run_cites_the_corpus_and_diffs_the_prompts(
    chat: ChatClient, fake: FakeProvider, analysis_log: io.StringIO
) -> None:
    # Given a model that answers in fenced JSON blocks
    corpus = make_corpus()
    evidence = [corpus.actions[0].id, corpus.messages[2].id]
    fake.script(
        reply_json({"weaknesses": [finding("deletes", evidence)]}, fenced=True),
        reply_json(reduce_payload([f"a:{evidence[0]}", f"[m:{evidence[1]}]"]), fenced=True),
    )
    analyzer = LlmAnalyzer(complete_on(chat, fake.base_url), fallback=StubFallback())

    # When it analyzes
    analysis = await analyzer.analyze(corpus)

    # Then the findings cite corpus ids only, with frequency and severity
    assert analysis.notes == []
    assert analysis.analyzer == "llm"
    assert analysis.dropped_evidence == 0
    known = corpus.evidence_ids()
    for group in (analysis.strengths, analysis.weaknesses, analysis.recommendations):
        assert group
        assert all(f.evidence and set(f.evidence) <= known for f in group)
    assert analysis.weaknesses[0].evidence == evidence
    assert analysis.weaknesses[0].severity == "high"
    assert analysis.weaknesses[0].frequency == 2
    # And the diff is computed from the prompts, not the model's
    prompt = analysis.suggested_prompt
    assert prompt is not None
    assert prompt.prompt == SUGGESTED_PROMPT
    expected = "".join(
        difflib.unified_diff(
            CURRENT_PROMPT.splitlines(keepends=True),
            SUGGESTED_PROMPT.splitlines(keepends=True),
            fromfile="current",
            tofile="suggested",
        )
    )
    assert prompt.diff == expected
    assert "-Always run shell" in prompt.diff
    assert prompt.changes[0].evidence == evidence
    assert analysis.skills[0].name == "safe cleanup"
    assert analysis.skills[0].evidence
    # And one log line says what happened, without the conversations' words
    report = report_line(analysis_log)
    assert report["chunks"] == 1
    assert report["requests"] == 2
    assert report["fell_back"] is False
    assert report["dropped_evidence"] == 0
    assert "clean the build folder" not in analysis_log.getvalue()


async def test_an_empty_corpus_asks_nothing(chat: ChatClient, fake: FakeProvider) -> None:
    analyzer = LlmAnalyzer(complete_on(chat, fake.base_url), fallback=StubFallback())

    analysis = await analyzer.analyze(make_corpus(0, actions=0))

    assert fake.requests == []
    assert analysis.analyzer == "llm"
    assert analysis.notes == ["nothing to analyze in this period"]


def test_a_budget_too_small_for_a_chunk_is_refused() -> None:
    async def never(messages: list[dict[str, Any]]) -> str:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="token_budget"):
        LlmAnalyzer(never, fallback=StubFallback(), token_budget=100)
