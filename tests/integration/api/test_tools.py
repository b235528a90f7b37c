"""GET /tools: the one catalog of tools, for any signed-in user."""

from __future__ import annotations

import httpx

from agentplane.brain.tools import tool_specs
from agentplane.tools.catalog import TOOL_NAMES
from tests.support.api import NewUser, assert_problem


async def test_any_signed_in_user_reads_the_catalog(
    client: httpx.AsyncClient, new_user: NewUser
) -> None:
    # Given a user of no organization
    user = new_user()
    # When they read the catalog
    resp = await client.get("/tools", headers=user.headers)
    # Then every tool is there with its arguments' schema and whether it can be undone
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    assert [tool["name"] for tool in items] == list(TOOL_NAMES)
    by_name = {tool["name"]: tool for tool in items}
    # (only a write can be undone, by writing back what it replaced; a read changed
    # nothing, a command or a request cannot be taken back), and why
    assert {name: tool["reversible"] for name, tool in by_name.items()} == {
        "shell": False,
        "read_file": False,
        "write_file": True,
        "http_get": False,
    }
    assert "cannot be unsent" in by_name["http_get"]["reversibility"]
    assert "nothing to undo" in by_name["read_file"]["reversibility"]
    assert "not recorded" in by_name["shell"]["reversibility"]
    assert "previous content" in by_name["write_file"]["reversibility"]
    assert {name: tool["risk"] for name, tool in by_name.items()} == {
        "shell": "critical",
        "read_file": "low",
        "write_file": "high",
        "http_get": "medium",
    }
    assert by_name["read_file"]["args_schema"] == {
        "type": "object",
        "properties": {"path": {"type": "string", "minLength": 1, "maxLength": 1000}},
        "required": ["path"],
        "additionalProperties": False,
    }
    # And the model is offered the same schemas
    offered = {spec["function"]["name"]: spec["function"] for spec in tool_specs(list(TOOL_NAMES))}
    for name, tool in by_name.items():
        assert offered[name]["parameters"] == tool["args_schema"]
        assert offered[name]["description"] == tool["description"]


async def test_the_catalog_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/tools"), 401)
