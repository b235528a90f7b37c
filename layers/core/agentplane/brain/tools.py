"""The tools an agent's model may call: their specs (sent to the model) and the check of
a call's arguments before it becomes a pending action.

Both come from the one catalog (`agentplane.tools.catalog`) the reference runner runs;
the runner still checks everything again, and only runs what a person approved.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from agentplane.actions.models import ActionPayload
from agentplane.tools.catalog import CATALOG, Tool


def tool_spec(tool: Tool) -> dict[str, Any]:
    """The OpenAI `tools` entry of a catalog tool."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.args_schema(),
        },
    }


def tool_specs(allowed: list[str]) -> list[dict[str, Any]]:
    """The specs of the allowed tools that exist, in the order allowed."""
    return [tool_spec(CATALOG[name]) for name in allowed if name in CATALOG]


class ToolCallRefusedError(Exception):
    """A tool call that will not become an action; the message says why (to the model)."""


def storable_text(text: str, limit: int | None = None) -> str:
    """Model output made storable: NUL and lone surrogates replaced, cut at `limit`."""
    clean = text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return clean if limit is None else clean[:limit]


def _no_constants(name: str) -> Any:
    raise ToolCallRefusedError(f"the arguments hold {name}, which is not a JSON number")


def check_call(name: str, arguments: str, allowed: list[str]) -> dict[str, Any]:
    """The call's arguments as the model gave them, once the tool is allowed and they
    fit its schema; ToolCallRefusedError otherwise."""
    if name not in CATALOG:
        raise ToolCallRefusedError(f"there is no tool named {name!r}")
    if name not in allowed:
        raise ToolCallRefusedError(f"the tool {name!r} is not allowed for this agent")
    try:
        args = json.loads(arguments or "{}", parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise ToolCallRefusedError(f"the arguments are not valid JSON: {exc.msg}") from exc
    if not isinstance(args, dict):
        raise ToolCallRefusedError("the arguments must be a JSON object")
    try:
        CATALOG[name].args.model_validate(args)
        # What the action will store: every string storable text (no NUL characters).
        ActionPayload.model_validate({"tool": name, "args": args})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
        )
        raise ToolCallRefusedError(f"invalid arguments for {name}: {problems}") from exc
    return args
