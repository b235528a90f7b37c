"""The catalog's rules: which tools exist, and whether a proposal's tool and arguments
fit the catalog and the agent's `allowed_tools` (422 naming the field otherwise)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from agentplane.errors import ValidationProblemError
from agentplane.tools.catalog import CATALOG, TOOL_NAMES
from agentplane.tools.models import ToolInfo


def list_tools() -> list[ToolInfo]:
    """Every tool of the catalog, in catalog order."""
    return [tool.info() for tool in CATALOG.values()]


def known_tool(name: str) -> str:
    """A validator: `name` is a tool of the catalog (rule `known_tool`)."""
    if name not in CATALOG:
        raise PydanticCustomError(
            "known_tool",
            "{tool} is not a known tool; the tools are {tools} (GET /tools)",
            {"tool": name, "tools": ", ".join(TOOL_NAMES)},
        )
    return name


def _field(field: str, rule: str, message: str) -> dict[str, Any]:
    return {"field": field, "in": "body", "rule": rule, "message": message}


def argument_errors(tool: str, args: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """Each way `args` misses the tool's schema, as field errors under `prefix`."""
    try:
        CATALOG[tool].args.model_validate(args)
    except ValidationError as exc:
        # One error per argument, named by the argument alone: the locations below it
        # name pydantic's union members (`command.list[constrained-str].1`), not JSON.
        errors: dict[str, dict[str, Any]] = {}
        for err in exc.errors():
            field = f"{prefix}.{err['loc'][0]}" if err["loc"] else prefix
            errors.setdefault(field, _field(field, err["type"], err["msg"]))
        return list(errors.values())
    return []


def require_proposable(tool: str, args: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """422 unless `tool` is in the catalog and in the agent's `allowed_tools`, and `args`
    fit its schema; the fields are named as in a proposal (`payload.tool`, `payload.args.x`)."""
    if tool not in CATALOG:
        message = f"{tool} is not a known tool; the tools are {', '.join(TOOL_NAMES)} (GET /tools)"
        raise ValidationProblemError([_field("payload.tool", "known_tool", message)])
    if tool not in allowed:
        message = (
            f"{tool} is not in the agent's allowed_tools"
            f" ({', '.join(allowed) or 'none'}; PUT /agents/{{id}}/config)"
        )
        raise ValidationProblemError([_field("payload.tool", "allowed_tool", message)])
    errors = argument_errors(tool, args, "payload.args")
    if errors:
        raise ValidationProblemError(errors)
