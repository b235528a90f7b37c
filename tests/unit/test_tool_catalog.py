"""The one tool catalog: the reference runner has exactly its tools and checks their
arguments against the same schemas the server does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentplane.runner.models import ActionRefusedError
from agentplane.runner.tools import Toolbox
from agentplane.tools.catalog import CATALOG, TOOL_NAMES
from agentplane.tools.service import argument_errors


def test_the_runner_has_a_handler_for_every_catalog_tool(tmp_path: Path) -> None:
    box = Toolbox(tmp_path / "ws")
    assert tuple(box._tools) == TOOL_NAMES


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("read_file", {"path": ""}),
        ("write_file", {"path": "a", "content": "x", "append": 1}),
        ("shell", {"command": "ls", "timeout_seconds": 601}),
        ("shell", {"command": "ls", "timeout_seconds": None}),
        ("http_get", {"url": "https://example.test/", "timeout_seconds": 601}),
    ],
)
def test_what_the_server_refuses_the_runner_refuses(
    tmp_path: Path, tool: str, args: dict[str, Any]
) -> None:
    assert argument_errors(tool, args, "args")
    with pytest.raises(ActionRefusedError) as refused:
        Toolbox(tmp_path / "ws", allow_shell=True).run({"tool": tool, "args": args})
    assert refused.value.reason == "bad_args"


def test_every_tool_says_what_it_does_and_its_schema_forbids_unknown_keys() -> None:
    for tool in CATALOG.values():
        assert tool.description
        assert tool.args_schema()["additionalProperties"] is False
