"""A workflow's `llm` node: one turn of an agent's model, with the run's starter's key.

The node runs as the person who started the run, so RLS and the brain's endpoint rules
apply exactly as in a turn (`agent_endpoint`: a stranger's agent is not found, a base URL
someone else set never receives the starter's key). Like a turn, no transaction is held
while the model thinks: the endpoint and the key are read in one transaction of the
starter, then the provider is called outside it. The output is the reply's text, or its
JSON validated against the config's `output_schema` (Draft 2020-12).

Every failure is an `LlmNodeError` with a stable `error` name and a `cause` sentence for
the run's state; neither ever holds the key or the prompt.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any
from uuid import UUID

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing.exceptions import Unresolvable

from agentplane.auth.caller import Caller
from agentplane.brain.service import (
    AgentNotConnectedError,
    Endpoint,
    ForeignEndpointError,
    agent_endpoint,
)
from agentplane.errors import ForbiddenError, NotFoundError, ProblemError, ServiceUnavailableError
from agentplane.observability import logger
from agentplane.vault.service import KeyUnreadableError, MissingKeyError
from agentplane.workflows.definition import LlmConfig

if TYPE_CHECKING:  # the provider client (and httpx) load on the first call, not at import
    from agentplane.brain.provider import Completion
    from agentplane.runtime import Runtime

# A reply given as one fenced block (```json ... ``` or ``` ... ```), prose around it allowed.
FENCED = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)\r?\n?[ \t]*```", re.DOTALL)
# How much of a reply or a schema message a cause quotes.
CAUSE_LIMIT = 500


class LlmNodeError(Exception):
    """The llm node failed: `error` is a stable name (`Llm.SchemaMismatch`), `cause` a
    sentence saying what was wrong (never the key, never the prompt)."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


def _problem_name(exc: ProblemError) -> str:
    """The node's error name for a brain, vault or provider problem."""
    from agentplane.brain.provider import ProviderError

    # Subclasses first: ForeignEndpointError and MissingKeyError are ConflictErrors.
    names: list[tuple[type[ProblemError], str]] = [
        (AgentNotConnectedError, "Llm.NotConnected"),
        (ForeignEndpointError, "Llm.Forbidden"),
        (MissingKeyError, "Llm.MissingKey"),
        (KeyUnreadableError, "Llm.KeyUnreadable"),
        (ProviderError, "Llm.ProviderError"),
        (NotFoundError, "Llm.NotFound"),
        (ForbiddenError, "Llm.Forbidden"),
        (ServiceUnavailableError, "Llm.Unavailable"),
    ]
    for kind, name in names:
        if isinstance(exc, kind):
            return name
    return "Llm.Failed"


def _clip(text: str) -> str:
    return text if len(text) <= CAUSE_LIMIT else text[:CAUSE_LIMIT] + "…"


def _parse_json(text: str) -> Any:
    """The reply as JSON: the whole text, or else its first fenced block."""
    candidates = [text.strip()]
    fenced = FENCED.search(text)
    if fenced:
        candidates.append(fenced.group(1).strip())
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise LlmNodeError(
        "Llm.InvalidJson",
        "the model's reply is not JSON (nor a ```json block holding JSON): "
        + (repr(_clip(text)) if text.strip() else "the reply is empty"),
    )


def _validated(value: Any, schema: dict[str, Any]) -> Any:
    """`value` when it fits `schema` (Draft 2020-12), else Llm.SchemaMismatch naming where."""
    try:
        error = best_match(Draft202012Validator(schema).iter_errors(value))
    except Unresolvable as exc:
        # Saving checks the schema's shape, not its $refs; none is fetched over the network.
        raise LlmNodeError(
            "Llm.InvalidSchema", f"output_schema has a $ref that cannot be resolved: {exc}"
        ) from exc
    if error is None:
        return value
    raise LlmNodeError(
        "Llm.SchemaMismatch",
        f"the model's JSON does not match output_schema at {error.json_path}:"
        f" {_clip(error.message)} (schema rule {'/'.join(map(str, error.schema_path))})",
    )


async def _endpoint_and_key(
    runtime: Runtime, user_id: UUID, agent_id: UUID
) -> tuple[Endpoint, str]:
    """In one transaction of the starter: where the agent's model is, and their key for it."""
    caller = Caller.acting_for(user_id)
    async with runtime.database.transaction(caller) as tx:
        endpoint = await agent_endpoint(tx, agent_id)
        api_key = await runtime.vault.key_for(
            tx,
            user_id=user_id,
            organization_id=endpoint.organization_id,
            provider=endpoint.provider,
            purpose=f"workflow llm node with agent {agent_id}",
        )
    return endpoint, api_key


async def run_llm_node(
    runtime: Runtime, *, user_id: UUID, config: LlmConfig, prompt: str, system: str | None
) -> dict[str, Any]:
    """One model call for an llm node as the run's starter: `{text, model, usage?}`, or
    with an output_schema `{json, text, model, usage?}`; LlmNodeError otherwise.

    `prompt` and `system` come rendered; a `system` of None takes the agent's own."""
    from agentplane.brain.provider import ProviderError

    started = time.monotonic()
    log: dict[str, Any] = {"agent_id": str(config.agent_id), "user_id": str(user_id)}
    outcome = "Llm.Failed"
    try:
        try:
            endpoint, api_key = await _endpoint_and_key(runtime, user_id, config.agent_id)
        except ProblemError as exc:
            raise LlmNodeError(_problem_name(exc), exc.detail) from exc
        log.update(provider=endpoint.provider, model=endpoint.model)
        instructions = endpoint.system_prompt if system is None else system
        messages: list[dict[str, Any]] = []
        if instructions:
            messages.append({"role": "system", "content": instructions})
        messages.append({"role": "user", "content": prompt})
        try:
            completion: Completion = await runtime.chat.complete(
                provider=endpoint.provider,
                base_url=endpoint.base_url,
                api_key=api_key,
                model=endpoint.model,
                messages=messages,
                temperature=endpoint.temperature,
            )
        except ProviderError as exc:
            raise LlmNodeError("Llm.ProviderError", exc.detail) from exc
        log["model"] = completion.model
        output: dict[str, Any] = {"text": completion.content, "model": completion.model}
        if completion.usage:
            output["usage"] = completion.usage
        if config.output_schema is not None:
            value = _parse_json(completion.content)
            output = {"json": _validated(value, config.output_schema), **output}
        outcome = "ok"
        return output
    except LlmNodeError as exc:
        outcome = exc.error
        raise
    finally:
        log.update(outcome=outcome, duration_ms=round((time.monotonic() - started) * 1000))
        (logger.info if outcome == "ok" else logger.warning)("workflow llm node", extra=log)
