"""The brain's chat-completions client against a fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from agentplane.brain.provider import (
    DEFAULT_BASE_URLS,
    ChatClient,
    Completion,
    ProviderError,
    ProviderTimeoutError,
    ToolCall,
)
from agentplane.observability import logger
from tests.support.fake_provider import FakeProvider, Reply, demo_reply

API_KEY = "sk-or-v1-test-key-that-must-never-leak-0123456789"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a careful agent."},
    {"role": "user", "content": "Write the notes file."},
]


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
        timeout_seconds=5.0, max_retries=2, backoff_seconds=0.01, max_backoff_seconds=0.05
    )
    yield client
    await client.aclose()


@pytest.fixture
def provider_log() -> Iterator[io.StringIO]:
    """Everything the Powertools logger writes during the test, formatted as it would be."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    std_logger = logging.getLogger(logger.service)
    std_logger.addHandler(handler)
    yield stream
    std_logger.removeHandler(handler)


def _log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def _complete(chat: ChatClient, fake: FakeProvider, **overrides: Any) -> Completion:
    arguments: dict[str, Any] = {
        "provider": "openrouter",
        "base_url": fake.base_url,
        "api_key": API_KEY,
        "model": "nousresearch/hermes-4-70b",
        "messages": MESSAGES,
    }
    arguments.update(overrides)
    return await chat.complete(**arguments)


async def test_tool_calls_are_parsed_and_the_request_is_sent_exactly(
    chat: ChatClient, fake: FakeProvider
) -> None:
    # Given a provider answering two tool calls, one of them with invalid JSON arguments
    first = FakeProvider.tool_call("call_a", "write_file", {"path": "a.txt", "content": "A"})
    second = FakeProvider.tool_call("call_b", "http_get", '{"url": "https://x.test"')
    body = FakeProvider.completion(tool_calls=[first, second], model="hermes-4-70b-2025")
    fake.script(Reply(body=body))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "write_file",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
            },
        }
    ]

    # When the brain asks for a completion, trailing slash and all
    completion = await _complete(
        chat, fake, base_url=fake.base_url + "/", tools=tools, temperature=0.2
    )

    # Then the tool calls come back exactly, raw arguments untouched
    assert completion.tool_calls == [
        ToolCall(id="call_a", name="write_file", arguments='{"path": "a.txt", "content": "A"}'),
        ToolCall(id="call_b", name="http_get", arguments='{"url": "https://x.test"'),
    ]
    assert completion.content == ""
    assert completion.model == "hermes-4-70b-2025"
    assert completion.finish_reason == "tool_calls"
    assert completion.usage == body["usage"]
    assert completion.raw_message == body["choices"][0]["message"]
    # And the provider received exactly what was asked, with the key as a bearer token
    assert len(fake.requests) == 1
    request = fake.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["json"] == {
        "model": "nousresearch/hermes-4-70b",
        "messages": MESSAGES,
        "tools": tools,
        "temperature": 0.2,
    }
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert request["headers"]["content-type"] == "application/json"


async def test_a_text_answer_omits_tools_and_temperature_from_the_request(
    chat: ChatClient, fake: FakeProvider
) -> None:
    body = FakeProvider.completion("Hello there.")
    del body["model"], body["usage"]
    fake.script(Reply(body=body))

    completion = await _complete(chat, fake, tools=[], temperature=None)

    assert completion.content == "Hello there."
    assert completion.tool_calls == []
    assert completion.model == "nousresearch/hermes-4-70b"
    assert completion.finish_reason == "stop"
    assert completion.usage == {}
    assert fake.requests[0]["json"] == {"model": "nousresearch/hermes-4-70b", "messages": MESSAGES}


async def test_tool_calls_of_other_types_are_ignored(chat: ChatClient, fake: FakeProvider) -> None:
    call = FakeProvider.tool_call("call_1", "write_file", {"path": "x"})
    other = {"id": "ws_1", "type": "web_search", "web_search": {"query": "x"}}
    fake.script(Reply(body=FakeProvider.completion("Done.", tool_calls=[other, call])))

    completion = await _complete(chat, fake)

    assert completion.content == "Done."
    assert completion.tool_calls == [
        ToolCall(id="call_1", name="write_file", arguments='{"path": "x"}')
    ]
    assert completion.raw_message["tool_calls"] == [other, call]


async def test_a_429_is_retried_until_the_provider_answers(
    chat: ChatClient, fake: FakeProvider
) -> None:
    fake.script(
        Reply(status=429, body={"error": {"message": "rate limited"}}),
        Reply(body=FakeProvider.completion("second time lucky")),
    )

    completion = await _complete(chat, fake)

    assert completion.content == "second time lucky"
    assert len(fake.requests) == 2


async def test_retry_after_is_honoured_and_capped(
    chat: ChatClient, fake: FakeProvider, provider_log: io.StringIO
) -> None:
    fake.script(
        Reply(status=429, headers={"Retry-After": "0"}),
        Reply(status=503, headers={"Retry-After": "3600"}),
        Reply(body=FakeProvider.completion("ok")),
    )

    completion = await _complete(chat, fake)

    assert completion.content == "ok"
    assert len(fake.requests) == 3
    retries = [line for line in _log_lines(provider_log) if "wait_seconds" in line]
    assert [(r["status"], r["attempt"], r["wait_seconds"]) for r in retries] == [
        (429, 1, 0.0),
        (503, 2, 0.05),  # an hour, capped by max_backoff_seconds
    ]


async def test_5xx_exhausts_the_retries_and_names_the_provider_message(
    chat: ChatClient, fake: FakeProvider
) -> None:
    overloaded = Reply(status=500, body={"error": {"message": "upstream overloaded", "code": 500}})
    fake.script(overloaded, overloaded, overloaded, Reply(body=FakeProvider.completion("late")))

    with pytest.raises(ProviderError) as caught:
        await _complete(chat, fake)

    err = caught.value
    assert type(err) is ProviderError
    assert err.status == 502
    assert err.provider_status == 500
    assert err.detail == "openrouter answered 500: upstream overloaded"
    assert len(fake.requests) == 3
    assert err.to_problem() == {
        "type": "https://agentplane.dev/problems/provider-error",
        "title": "Model provider error",
        "status": 502,
        "detail": "openrouter answered 500: upstream overloaded",
        "provider": "openrouter",
        "provider_status": 500,
    }


async def test_a_long_provider_message_is_truncated(chat: ChatClient, fake: FakeProvider) -> None:
    fake.script(Reply(status=422, body={"error": {"message": "x" * 5000}}))

    with pytest.raises(ProviderError) as caught:
        await _complete(chat, fake)

    assert caught.value.detail == "openrouter answered 422: " + "x" * 500


async def test_a_400_is_not_retried(chat: ChatClient, fake: FakeProvider) -> None:
    fake.script(Reply(status=400, body={"error": {"message": "model not found"}}))

    with pytest.raises(ProviderError) as caught:
        await _complete(chat, fake)

    assert caught.value.provider_status == 400
    assert caught.value.detail == "openrouter answered 400: model not found"
    assert len(fake.requests) == 1


async def test_a_refused_key_never_appears_in_errors_or_logs(
    chat: ChatClient,
    fake: FakeProvider,
    provider_log: io.StringIO,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a provider that refuses the key and, carelessly, echoes it back
    caplog.set_level(logging.DEBUG)
    fake.script(Reply(status=401, body={"error": {"message": f"No auth for key {API_KEY}"}}))

    # When the brain calls it
    with pytest.raises(ProviderError) as caught:
        await _complete(chat, fake)

    # Then the problem says the key was refused, without saying what the key is
    err = caught.value
    assert err.status == 502
    assert err.provider_status == 401
    assert err.detail == "openrouter refused the API key (401): No auth for key [redacted]"
    assert len(fake.requests) == 1
    # And the key is nowhere: not in the error, its problem, the client, or any log line
    assert API_KEY not in str(err)
    assert API_KEY not in repr(err)
    assert API_KEY not in json.dumps(err.to_problem())
    assert API_KEY not in repr(chat)
    logged = provider_log.getvalue()
    assert '"attempt":1' in logged.replace(" ", "")
    assert API_KEY not in logged
    assert API_KEY not in caplog.text
    for record in caplog.records:
        assert API_KEY not in repr(vars(record))


async def test_a_slow_provider_times_out_without_a_retry(fake: FakeProvider) -> None:
    fake.script(Reply(delay_seconds=1.0), Reply(body=FakeProvider.completion("never asked")))
    chat = ChatClient(timeout_seconds=0.2, max_retries=2, backoff_seconds=0.01)
    try:
        with pytest.raises(ProviderTimeoutError) as caught:
            await _complete(chat, fake)
    finally:
        await chat.aclose()

    err = caught.value
    assert err.status == 504
    assert err.provider_status is None
    assert err.detail == "openrouter did not answer within 0.2 s"
    assert err.to_problem()["type"] == "https://agentplane.dev/problems/provider-timeout"
    assert len(fake.requests) == 1


async def test_an_unreachable_provider_is_retried_then_reported(
    chat: ChatClient, provider_log: io.StringIO
) -> None:
    # A port nothing listens on: bound, then closed.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(ProviderError) as caught:
        await chat.complete(
            provider="nous",
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key=API_KEY,
            model="hermes-4",
            messages=MESSAGES,
        )

    err = caught.value
    assert type(err) is ProviderError
    assert err.status == 502
    assert err.provider_status is None
    assert err.detail.startswith("nous could not be reached after 3 attempt(s)")
    attempts = [line["attempt"] for line in _log_lines(provider_log) if line.get("provider")]
    assert attempts == [1, 2, 3]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("<html>502 Bad Gateway</html>", id="not-json"),
        pytest.param({"id": "x", "object": "chat.completion"}, id="no-choices"),
        pytest.param({"choices": []}, id="empty-choices"),
        pytest.param({"choices": [{"finish_reason": "stop"}]}, id="no-message"),
        pytest.param(
            {"choices": [{"message": {"tool_calls": [{"type": "function", "id": "c"}]}}]},
            id="tool-call-without-function",
        ),
    ],
)
async def test_a_2xx_that_is_not_a_chat_completion_is_a_provider_error(
    chat: ChatClient, fake: FakeProvider, body: dict[str, Any] | str
) -> None:
    fake.script(Reply(body=body))

    with pytest.raises(ProviderError) as caught:
        await _complete(chat, fake)

    assert caught.value.status == 502
    assert caught.value.provider_status == 200
    assert caught.value.detail == "openrouter returned a response that is not a chat completion"
    assert len(fake.requests) == 1


async def test_a_2xx_carrying_an_error_reports_its_message(
    chat: ChatClient, fake: FakeProvider
) -> None:
    fake.script(Reply(body={"error": {"message": "provider returned error", "code": 502}}))

    with pytest.raises(ProviderError) as caught:
        await _complete(chat, fake)

    assert caught.value.detail == (
        "openrouter returned a response that is not a chat completion: provider returned error"
    )


def test_default_base_urls() -> None:
    assert DEFAULT_BASE_URLS == {
        "openrouter": "https://openrouter.ai/api/v1",
        "nous": "https://inference-api.nousresearch.com/v1",
        "hermes": "https://inference-api.nousresearch.com/v1",
    }


async def test_the_demo_script_writes_then_reports() -> None:
    # The demo behaviour, served through the real client.
    demo = FakeProvider(responder=demo_reply)
    chat = ChatClient(timeout_seconds=5.0)
    with demo:
        try:
            asked = await _complete(chat, demo, messages=[MESSAGES[1]])
            call = asked.tool_calls[0]
            assert (call.name, json.loads(call.arguments)) == (
                "write_file",
                {"path": "notes/hello.txt", "content": "hello from the agent\n"},
            )
            history = [
                MESSAGES[1],
                asked.raw_message,
                {"role": "tool", "tool_call_id": call.id, "content": "wrote 21 bytes"},
            ]
            reported = await _complete(chat, demo, messages=history)
            plain = await _complete(chat, demo, messages=[{"role": "user", "content": "hi"}])
        finally:
            await chat.aclose()

    assert reported.content == "The runner reported: wrote 21 bytes"
    assert reported.tool_calls == []
    assert plain.content == "ok"


@pytest.mark.parametrize("base_url", ["ftp://127.0.0.1/v1", "http://[::1/v1", "models/v1"])
async def test_an_unusable_base_url_is_a_provider_error(chat: ChatClient, base_url: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await chat.complete(
            provider="custom", base_url=base_url, api_key=API_KEY, model="m", messages=MESSAGES
        )

    assert caught.value.status == 502
    assert caught.value.provider_status is None
    assert caught.value.detail.startswith("the base URL of custom is not usable: ")
