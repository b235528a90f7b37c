"""The OpenAI-compatible chat-completions client the brain calls an agent's model with.

One `ChatClient` per process holds one pooled `httpx.AsyncClient`. A call retries what is
safe to retry (429, 5xx, a provider that could not be reached) and nothing that may
already be generating tokens on the provider's side (a timeout after the request was
sent), because a retry there doubles the cost. Every failure is a `ProviderError`, which
the problem+json handlers turn into a 502 (504 for a timeout). The API key goes into one
request header and nowhere else: not into logs, exception messages or reprs.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentplane.connections.models import DEFAULT_BASE_URLS as DEFAULT_BASE_URLS
from agentplane.errors import ProblemError
from agentplane.observability import logger

# How much of a provider's error message makes it into a problem's detail.
ERROR_MESSAGE_LIMIT = 500
_REDACTED = "[redacted]"


class ProviderError(ProblemError):
    """The model provider failed, refused the request, or answered something unusable."""

    status, type_slug, title = 502, "provider-error", "Model provider error"

    def __init__(self, detail: str, *, provider: str, provider_status: int | None = None) -> None:
        super().__init__(detail, provider=provider, provider_status=provider_status)
        self.provider = provider
        self.provider_status = provider_status


class ProviderTimeoutError(ProviderError):
    """The provider accepted the request but did not answer in time."""

    status, type_slug, title = 504, "provider-timeout", "Model provider timed out"


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for; `arguments` is its raw, unvalidated JSON."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Completion:
    """The first choice of a chat completion, parsed, with the message as returned."""

    content: str
    tool_calls: list[ToolCall]
    model: str
    finish_reason: str | None
    usage: dict[str, Any]
    raw_message: dict[str, Any]


# The response shape, as much of it as the brain relies on; providers add fields freely.
class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class _FunctionCall(_Lenient):
    name: str
    # The spec says a JSON string; a few providers send the object itself, or null.
    arguments: str | dict[str, Any] | None = None


class _ToolCallEntry(_Lenient):
    id: str
    type: str = "function"
    function: _FunctionCall


class _Message(_Lenient):
    # A string, null (tool calls only) or, from a few providers, a list of content parts.
    content: str | list[Any] | None = None
    # Validated entry by entry, so an entry of another type cannot spoil the rest.
    tool_calls: list[Any] | None = None


class _Choice(_Lenient):
    message: _Message
    finish_reason: str | None = None


class _ChatCompletion(_Lenient):
    choices: list[_Choice] = Field(min_length=1)
    model: str | None = None
    usage: dict[str, Any] | None = None


class _ErrorBody(_Lenient):
    message: str | None = None


class _ErrorEnvelope(_Lenient):
    error: _ErrorBody | str | None = None


class _Unreached(Exception):
    """The request never reached the provider (refused, unresolvable, connect timeout)."""


class _TimedOut(Exception):
    """The request was sent but the answer did not arrive within the time allowed."""


class _Progress:
    """How far one request got, from httpx's `trace` extension."""

    def __init__(self) -> None:
        self.traced = False
        self.sent = False

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        """Record an httpcore event (e.g. `http11.send_request_headers.started`)."""
        self.traced = True
        if "send_request_headers" in event:
            self.sent = True

    @property
    def unreached(self) -> bool:
        """True when the request certainly never left this process."""
        # Without trace events (a custom transport) assume the worst for the wallet: sent.
        return self.traced and not self.sent


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, _REDACTED) if secret else text


def _error_message(response: httpx.Response) -> str | None:
    """The provider's `error.message` (or string `error`), when the body carries one."""
    try:
        envelope = _ErrorEnvelope.model_validate_json(response.content)
    except ValidationError:
        return None
    error = envelope.error
    message = error if isinstance(error, str) else error.message if error else None
    if not message:
        return None
    return message[:ERROR_MESSAGE_LIMIT]


def _retry_after(response: httpx.Response) -> float | None:
    """The `Retry-After` header in seconds; None when absent or an HTTP date."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _text(content: str | list[Any] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = [
        part["text"]
        for part in content
        if isinstance(part, dict)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    ]
    return "".join(parts)


def _tool_calls(entries: list[Any] | None) -> list[ToolCall]:
    calls: list[ToolCall] = []
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("type", "function") != "function":
            continue
        parsed = _ToolCallEntry.model_validate(entry)
        arguments = parsed.function.arguments
        if arguments is None:
            arguments = ""
        elif not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        calls.append(ToolCall(id=parsed.id, name=parsed.function.name, arguments=arguments))
    return calls


class ChatClient:
    """Calls `POST {base_url}/chat/completions` with retries, timeouts and problem errors."""

    def __init__(
        self,
        *,
        timeout_seconds: float = 60.0,
        max_retries: int = 2,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout_seconds = timeout_seconds
        self._max_retries = max(0, max_retries)
        self._backoff_seconds = backoff_seconds
        self._max_backoff_seconds = max_backoff_seconds
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return (
            f"ChatClient(timeout_seconds={self._timeout_seconds}, max_retries={self._max_retries})"
        )

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout_seconds), transport=self._transport
            )
        return self._http

    async def aclose(self) -> None:
        """Close the pooled connections; the client may be used again afterwards."""
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()

    async def complete(
        self,
        *,
        provider: str,
        base_url: str,
        api_key: str,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        temperature: float | None = None,
    ) -> Completion:
        """One chat completion; raises ProviderError (502) or ProviderTimeoutError (504)."""
        url = f"{base_url.rstrip('/')}/chat/completions"
        body: dict[str, Any] = {"model": model, "messages": messages}
        if tools:
            body["tools"] = tools
        if temperature is not None:
            body["temperature"] = temperature
        headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        attempt = 0
        while True:
            attempt += 1
            retries_left = attempt <= self._max_retries
            started = time.monotonic()
            try:
                response = await self._send(url, headers, body)
            except _Unreached as exc:
                reason = _redact(str(exc), api_key)
                outcome = _outcome(provider, model, None, attempt, started, error=reason)
                if retries_left:
                    wait = self._backoff(attempt)
                    outcome["wait_seconds"] = round(wait, 3)
                    logger.warning("model provider unreachable, retrying", extra=outcome)
                    await asyncio.sleep(wait)
                    continue
                logger.warning("model provider unreachable", extra=outcome)
                raise ProviderError(
                    f"{provider} could not be reached after {attempt} attempt(s): {reason}",
                    provider=provider,
                ) from None
            except _TimedOut:
                outcome = _outcome(provider, model, None, attempt, started)
                logger.warning("model provider timed out", extra=outcome)
                raise ProviderTimeoutError(
                    f"{provider} did not answer within {self._timeout_seconds:g} s",
                    provider=provider,
                ) from None
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                reason = _redact(str(exc), api_key)
                outcome = _outcome(provider, model, None, attempt, started, error=reason)
                logger.warning("model provider base URL unusable", extra=outcome)
                raise ProviderError(
                    f"the base URL of {provider} is not usable: {reason}", provider=provider
                ) from None
            except httpx.HTTPError as exc:
                # The connection broke after the request went out: not retried (cost).
                reason = _redact(f"{type(exc).__name__}: {exc}", api_key)
                outcome = _outcome(provider, model, None, attempt, started, error=reason)
                logger.warning("model provider connection failed", extra=outcome)
                raise ProviderError(
                    f"the connection to {provider} failed: {reason}", provider=provider
                ) from None

            status = response.status_code
            outcome = _outcome(provider, model, status, attempt, started)
            if (status == 429 or status >= 500) and retries_left:
                wait = self._backoff(attempt, _retry_after(response))
                outcome["wait_seconds"] = round(wait, 3)
                logger.warning("model provider busy, retrying", extra=outcome)
                await asyncio.sleep(wait)
                continue
            if not response.is_success:
                logger.warning("model provider answered an error", extra=outcome)
                raise self._status_error(provider, response, api_key)
            logger.info("model provider answered", extra=outcome)
            return self._parse(provider, model, response, api_key)

    async def _send(
        self, url: str, headers: dict[str, str], body: dict[str, Any]
    ) -> httpx.Response:
        """One request under one deadline for the whole exchange, errors sorted by phase."""
        progress = _Progress()
        try:
            async with asyncio.timeout(self._timeout_seconds):
                return await self._client().post(
                    url, json=body, headers=headers, extensions={"trace": progress.trace}
                )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _Unreached(f"{type(exc).__name__}: {exc}") from None
        except httpx.TimeoutException:
            raise _TimedOut from None
        except TimeoutError:
            if progress.unreached:
                raise _Unreached(f"no connection within {self._timeout_seconds:g} s") from None
            raise _TimedOut from None

    def _backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retry number `attempt`: Retry-After if given, else full jitter."""
        if retry_after is not None:
            return min(retry_after, self._max_backoff_seconds)
        ceiling = min(self._max_backoff_seconds, self._backoff_seconds * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret

    @staticmethod
    def _status_error(provider: str, response: httpx.Response, api_key: str) -> ProviderError:
        status = response.status_code
        message = _error_message(response)
        if status in (401, 403):
            detail = f"{provider} refused the API key ({status})"
        else:
            detail = f"{provider} answered {status}"
        if message:
            detail = f"{detail}: {_redact(message, api_key)}"
        return ProviderError(detail, provider=provider, provider_status=status)

    @staticmethod
    def _parse(
        provider: str, requested_model: str, response: httpx.Response, api_key: str
    ) -> Completion:
        try:
            raw = response.json()
            parsed = _ChatCompletion.model_validate(raw)
            choice = parsed.choices[0]
            tool_calls = _tool_calls(choice.message.tool_calls)
            raw_message = raw["choices"][0]["message"]
        except (ValueError, ValidationError):
            # ValidationError is a ValueError; json.JSONDecodeError too.
            detail = f"{provider} returned a response that is not a chat completion"
            message = _error_message(response)
            if message:
                detail = f"{detail}: {_redact(message, api_key)}"
            raise ProviderError(
                detail, provider=provider, provider_status=response.status_code
            ) from None
        return Completion(
            content=_text(choice.message.content),
            tool_calls=tool_calls,
            model=parsed.model or requested_model,
            finish_reason=choice.finish_reason,
            usage=parsed.usage or {},
            raw_message=raw_message,
        )


def _outcome(
    provider: str, model: str, status: int | None, attempt: int, started: float, **more: Any
) -> dict[str, Any]:
    """The log fields of one attempt: never the key, never the messages."""
    elapsed_ms = round((time.monotonic() - started) * 1000)
    return {
        "provider": provider,
        "model": model,
        "status": status,
        "attempt": attempt,
        "elapsed_ms": elapsed_ms,
        **more,
    }
