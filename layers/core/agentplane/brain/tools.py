"""The tools an agent's model may call: their JSON schemas (sent to the model) and the
check of a call's arguments before it becomes a pending action.

These mirror the reference runner's tools (`agentplane.runner.tools`); the runner still
checks everything again, and only runs what a person approved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentplane.actions.models import ActionPayload


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ShellArgs(_Args):
    """`shell`: one command line, run in the runner's workspace."""

    command: Annotated[str, Field(min_length=1, max_length=10_000)]
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] | None = None
    cwd: Annotated[str, Field(max_length=1000)] | None = None


class ReadFileArgs(_Args):
    """`read_file`: a file of the runner's workspace."""

    path: Annotated[str, Field(min_length=1, max_length=1000)]


class WriteFileArgs(_Args):
    """`write_file`: write (or append to) a file of the runner's workspace."""

    path: Annotated[str, Field(min_length=1, max_length=1000)]
    content: Annotated[str, Field(max_length=1_000_000)]
    append: bool = False


class HttpGetArgs(_Args):
    """`http_get`: fetch a URL from the runner's machine."""

    url: Annotated[str, Field(pattern=r"^https?://\S+$", max_length=2000)]
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] | None = None


@dataclass(frozen=True)
class Tool:
    """A tool as the model sees it, and the model of its arguments."""

    name: str
    description: str
    args: type[_Args]

    def spec(self) -> dict[str, Any]:
        """The OpenAI `tools` entry."""
        schema = self.args.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": schema},
        }


CATALOG: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool("shell", "Run a shell command on the user's machine, in the workspace.", ShellArgs),
        Tool("read_file", "Read a text file of the workspace.", ReadFileArgs),
        Tool("write_file", "Write text to a file of the workspace.", WriteFileArgs),
        Tool("http_get", "Fetch a URL with HTTP GET from the user's machine.", HttpGetArgs),
    )
}


def tool_specs(allowed: list[str]) -> list[dict[str, Any]]:
    """The specs of the allowed tools that exist, in the order allowed."""
    return [CATALOG[name].spec() for name in allowed if name in CATALOG]


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
