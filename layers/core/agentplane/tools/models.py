"""The arguments of each catalog tool (what a proposal's `args` must fit, and what the
model is offered as a JSON Schema), and a catalog entry as `GET /tools` shows it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentplane.models import OutputModel

# The limits are the reference runner's (agentplane.runner.tools): what passes here is
# what a runner accepts, so an approved action is not refused later for its arguments.
MAX_SHELL_TIMEOUT_S = 600.0
MAX_HTTP_TIMEOUT_S = 600.0
# The largest previous content a write_file reports (and an undo can restore). Its result
# goes back in one request under the server's 1 MiB body limit, where JSON may escape a
# byte as six characters (\u0001): 128 KiB always fits, beside the rest of the output.
UNDO_CONTENT_LIMIT_BYTES = 128 * 1024
WorkspacePath = Annotated[str, Field(min_length=1, max_length=1000)]
CommandLine = Annotated[str, Field(min_length=1, max_length=10_000)]
Argv = Annotated[
    list[Annotated[str, Field(max_length=10_000)]], Field(min_length=1, max_length=1000)
]


class ToolArgs(BaseModel):
    """Arguments of a tool: no unknown keys, no coercion (a person approves them as is)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ShellArgs(ToolArgs):
    """`shell`: a command line through /bin/sh, or an argv list run without a shell."""

    command: (
        Annotated[str, Field(min_length=1, max_length=10_000)]
        | Annotated[
            list[Annotated[str, Field(max_length=10_000)]], Field(min_length=1, max_length=1000)
        ]
    )
    timeout_seconds: Annotated[float, Field(gt=0, le=MAX_SHELL_TIMEOUT_S)] = 30.0
    cwd: WorkspacePath = "."


class ReadFileArgs(ToolArgs):
    """`read_file`: a file of the runner's workspace."""

    path: WorkspacePath


class WriteFileArgs(ToolArgs):
    """`write_file`: write (or append to) a file of the runner's workspace."""

    path: WorkspacePath
    content: Annotated[str, Field(max_length=1_000_000)]
    append: bool = False


class HttpGetArgs(ToolArgs):
    """`http_get`: fetch a URL from the runner's machine."""

    url: Annotated[str, Field(pattern=r"^https?://\S+$", max_length=2000)]
    timeout_seconds: Annotated[float, Field(gt=0, le=MAX_HTTP_TIMEOUT_S)] = 10.0


Risk = Literal["low", "medium", "high", "critical"]


class ToolInfo(OutputModel):
    """One tool of the catalog."""

    name: str
    description: str
    # True when POST /actions/{id}/undo can propose an action that undoes it (write_file).
    reversible: bool
    # Why it is reversible or not.
    reversibility: str
    # low | medium | high | critical: what running it can do at worst.
    risk: Risk
    args_schema: dict[str, Any]


class ToolCatalog(OutputModel):
    """Every tool a runner may be asked to run, by name."""

    items: list[ToolInfo]
    next_cursor: None = None
