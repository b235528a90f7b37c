"""The one catalog of tools: the reference runner runs these, the brain offers them to
the model, proposals and agent configs are checked against them, `GET /tools` shows them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentplane.tools.models import (
    UNDO_CONTENT_LIMIT_BYTES,
    HttpGetArgs,
    ReadFileArgs,
    Risk,
    ShellArgs,
    ToolArgs,
    ToolInfo,
    WriteFileArgs,
)


@dataclass(frozen=True)
class Tool:
    """A tool: its name, what the model is told it does, its arguments, reversible or not."""

    name: str
    description: str
    args: type[ToolArgs]
    # Whether POST /actions/{id}/undo can propose its inverse, and why (or why not), as
    # `GET /tools` and the undo's refusal say.
    reversible: bool
    reversibility: str
    # What running it can do at worst, for ordering an inbox (the console shows the
    # riskiest first); a default until approval policies say otherwise.
    risk: Risk = "high"

    def args_schema(self) -> dict[str, Any]:
        """The JSON Schema of the arguments, without pydantic's titles."""
        schema = self.args.model_json_schema()
        schema.pop("title", None)
        schema.pop("description", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return schema

    def info(self) -> ToolInfo:
        """The catalog entry as `GET /tools` shows it."""
        return ToolInfo(
            name=self.name,
            description=self.description,
            reversible=self.reversible,
            reversibility=self.reversibility,
            risk=self.risk,
            args_schema=self.args_schema(),
        )


CATALOG: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "shell",
            "Run a shell command on the user's machine, in the workspace.",
            ShellArgs,
            # A command can do anything, and nothing records what it changed.
            reversible=False,
            reversibility="a command can change anything, and what it changed is not recorded",
            risk="critical",
        ),
        Tool(
            "read_file",
            "Read a text file of the workspace.",
            ReadFileArgs,
            # Not "reversible because harmless": it changed nothing, so there is nothing
            # to undo.
            reversible=False,
            reversibility="a read changes nothing, so there is nothing to undo",
            risk="low",
        ),
        Tool(
            "write_file",
            "Write text to a file of the workspace.",
            WriteFileArgs,
            # The runner reports what it replaced (`previous`): writing that back undoes
            # it, when the previous file existed and was text small enough to be kept.
            reversible=True,
            reversibility=(
                "undone by writing back the previous content, which the runner reports"
                " when the file existed and was UTF-8 text of at most"
                f" {UNDO_CONTENT_LIMIT_BYTES // 1024} KiB"
            ),
            risk="high",
        ),
        Tool(
            "http_get",
            "Fetch a URL with HTTP GET from the user's machine.",
            HttpGetArgs,
            # A GET should be safe, but the server it reached saw it, and may have acted.
            reversible=False,
            reversibility="a request that was sent cannot be unsent",
            risk="medium",
        ),
    )
}
TOOL_NAMES = tuple(CATALOG)


# The payload tool of a workflow's approval gate: decided like any action, never run.
GATE_TOOL = "workflow.approval"


def default_risk(tool: str) -> str:
    """The risk of an action no approval policy matches: the catalog's (a workflow's
    approval gate is medium; a tool outside the catalog cannot be proposed)."""
    if tool in CATALOG:
        return CATALOG[tool].risk
    return "medium" if tool == GATE_TOOL else "high"
