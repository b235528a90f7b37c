"""/workflows and /workflow-runs for people: the CRUD cycle and versions, the 422s that
name each bad node or edge, who may do what, the 409s of cancel and resume, and the task
token that never leaves the server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import psycopg

from tests.support.api import (
    MakeOrg,
    NewUser,
    Org,
    User,
    assert_problem,
    collect_pages,
    field_rules,
)
from tests.support.builders import create_project, new_agent
from tests.support.database import ProvisionedDatabase
from tests.support.workflows import get_run, node_is, save_workflow, start_run, status_is
from tests.support.workflows import wait_for_run as wait_for


def gate(agent_id: str) -> dict[str, Any]:
    """A definition whose first node is an approval gate: its run stays waiting."""
    return {
        "nodes": [
            {"id": "g", "type": "approval", "config": {"agent_id": agent_id, "title": "go?"}},
            {"id": "t", "type": "transform", "config": {"expression": "nodes.g.output"}},
        ],
        "edges": [{"from": "g", "to": "t"}],
    }


QUICK: dict[str, Any] = {
    "nodes": [{"id": "t", "type": "transform", "config": {"expression": "input.n"}}],
    "edges": [],
}


def transforms(*ids: str) -> list[dict[str, Any]]:
    return [{"id": i, "type": "transform", "config": {"expression": "input"}} for i in ids]


async def post_workflow(
    client: httpx.AsyncClient, user: User, project_id: str, definition: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        "/workflows",
        json={"project_id": project_id, "name": "flow", "definition": definition},
        headers=user.headers,
    )


async def problem_of(
    client: httpx.AsyncClient, org: Org, project_id: str, definition: dict[str, Any]
) -> dict[str, Any]:
    """The 422 a member gets saving `definition`."""
    resp = await post_workflow(client, org.member, project_id, definition)
    return assert_problem(resp, 422, "validation")


def only_error(problem: dict[str, Any]) -> dict[str, Any]:
    assert len(problem["errors"]) == 1, problem
    error: dict[str, Any] = problem["errors"][0]
    return error


async def waiting_run(client: httpx.AsyncClient, org: Org, workflow_id: str) -> dict[str, Any]:
    """A run of the gate definition, started by a member, waiting at its gate."""
    run = await start_run(client, org.member, workflow_id)
    return await wait_for(client, org.member, run["id"], until=node_is("g", "waiting"))


# --- the CRUD cycle and versions --------------------------------------------------------


async def test_create_read_list_update_delete(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    org = await make_org()
    project = await create_project(client, org, "wf")
    other_project = await create_project(client, org, "other")
    # Given a member saves a workflow
    resp = await client.post(
        "/workflows",
        json={"project_id": project, "name": "  Nightly  ", "definition": QUICK},
        headers=org.member.headers,
    )
    assert resp.status_code == 201, resp.text
    workflow = resp.json()
    assert workflow["name"] == "Nightly"
    assert workflow["version"] == 1
    assert workflow["organization_id"] == str(org.id)
    assert workflow["project_id"] == project
    assert workflow["created_by"] == str(org.member.id)
    assert workflow["definition"] == QUICK
    # When a viewer reads it, they get the same row
    got = await client.get(f"/workflows/{workflow['id']}", headers=org.viewer.headers)
    assert got.status_code == 200, got.text
    assert got.json() == workflow
    # When a member renames it, only the name changes and the version moves on
    patched = await client.patch(
        f"/workflows/{workflow['id']}", json={"name": "Daily"}, headers=org.member.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Daily"
    assert patched.json()["definition"] == QUICK
    assert patched.json()["version"] == 2
    assert patched.json()["updated_at"] > workflow["updated_at"]
    # And it is listed under its project, not under the other one
    listed = await client.get(
        "/workflows", params={"project_id": project}, headers=org.viewer.headers
    )
    assert [w["id"] for w in listed.json()["items"]] == [workflow["id"]]
    elsewhere = await client.get(
        "/workflows", params={"project_id": other_project}, headers=org.viewer.headers
    )
    assert elsewhere.json() == {"items": [], "next_cursor": None}
    # Then an admin deletes it, and it is gone
    deleted = await client.delete(f"/workflows/{workflow['id']}", headers=org.admin.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/workflows/{workflow['id']}", headers=org.owner.headers)
    assert_problem(gone, 404, "not-found")


async def test_list_paginates_and_filters_by_project(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    other = await make_org("Other")
    project = await create_project(client, org, "wf")
    second = await create_project(client, org, "second")
    created = [
        (await save_workflow(client, org.member, project, QUICK, name=f"w{i}"))["id"]
        for i in range(5)
    ]
    in_second = (await save_workflow(client, org.member, second, QUICK))["id"]
    await save_workflow(client, other.member, await create_project(client, other), QUICK)

    items, pages = await collect_pages(
        client, "/workflows", org.viewer.headers, limit=2, project_id=project
    )

    assert [i["id"] for i in items] == created
    assert pages == 3
    first = await client.get("/workflows", params={"limit": 2}, headers=org.viewer.headers)
    assert len(first.json()["items"]) == 2
    assert first.json()["next_cursor"]
    # Without the filter: every workflow of the caller's organizations, no other
    everything, _ = await collect_pages(client, "/workflows", org.viewer.headers, limit=50)
    assert [i["id"] for i in everything] == [*created, in_second]


async def test_every_save_bumps_the_version(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    org = await make_org()
    project = await create_project(client, org, "wf")
    workflow = await save_workflow(client, org.member, project, QUICK)
    changed = {
        "nodes": [{"id": "u", "type": "transform", "config": {"expression": "input"}}],
        "edges": [],
    }
    versions = []
    for body in ({"description": "one"}, {"definition": changed}, {"description": "one"}, {}):
        resp = await client.patch(
            f"/workflows/{workflow['id']}", json=body, headers=org.member.headers
        )
        assert resp.status_code == 200, resp.text
        versions.append(resp.json()["version"])
    assert versions == [2, 3, 4, 5]
    got = await client.get(f"/workflows/{workflow['id']}", headers=org.member.headers)
    assert got.json()["version"] == 5
    assert got.json()["definition"] == changed
    assert got.json()["description"] == "one"


async def test_concurrent_saves_get_a_version_each(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    project = await create_project(client, org, "wf")
    workflow = await save_workflow(client, org.member, project, QUICK)
    bodies = [{"definition": {"nodes": transforms(f"n{i}"), "edges": []}} for i in range(4)]

    saves = await asyncio.gather(
        *(
            client.patch(f"/workflows/{workflow['id']}", json=body, headers=org.member.headers)
            for body in bodies
        )
    )

    assert [r.status_code for r in saves] == [200] * 4, [r.text for r in saves]
    assert sorted(r.json()["version"] for r in saves) == [2, 3, 4, 5]
    got = await client.get(f"/workflows/{workflow['id']}", headers=org.member.headers)
    assert got.json()["version"] == 5


async def test_a_run_keeps_its_version_and_definition_after_a_patch(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    project = await create_project(client, org, "wf")
    workflow = await save_workflow(client, org.member, project, gate(agent))
    # Given a run waits at its gate
    run = await waiting_run(client, org, workflow["id"])
    assert run["workflow_version"] == 1
    assert run["status"] == "waiting"
    # When the workflow is changed under it
    patched = await client.patch(
        f"/workflows/{workflow['id']}", json={"definition": QUICK}, headers=org.member.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == 2
    # Then the run still shows the version and the definition it started with
    again = await get_run(client, org.viewer, run["id"])
    assert again["workflow_version"] == 1
    assert again["definition"] == workflow["definition"]
    assert [n["id"] for n in again["nodes"]] == ["g", "t"]
    # And a new run gets the new version
    fresh = await start_run(client, org.member, workflow["id"], {"n": 3})
    assert fresh["workflow_version"] == 2
    assert fresh["definition"] == QUICK
    listed = await client.get(f"/workflows/{workflow['id']}/runs", headers=org.viewer.headers)
    assert listed.status_code == 200, listed.text
    assert [(r["id"], r["workflow_version"]) for r in listed.json()["items"]] == [
        (run["id"], 1),
        (fresh["id"], 2),
    ]
    await client.post(f"/workflow-runs/{run['id']}/cancel", headers=org.member.headers)


# --- 422s naming the node or edge -------------------------------------------------------


async def test_a_cycle_is_refused_showing_its_path(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    project = await create_project(client, org, "wf")
    definition = {
        "nodes": transforms("start", "a", "b", "c"),
        "edges": [
            {"from": "start", "to": "a"},
            {"from": "a", "to": "b"},
            {"from": "b", "to": "c"},
            {"from": "c", "to": "a"},
        ],
    }
    error = only_error(await problem_of(client, org, project, definition))
    assert (error["field"], error["rule"]) == ("definition.edges", "acyclic")
    assert "a -> b -> c -> a" in error["message"]
    assert error["node"] == "a"


async def test_an_edge_to_itself_is_a_cycle(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    org = await make_org()
    project = await create_project(client, org, "wf")
    definition = {"nodes": transforms("a"), "edges": [{"from": "a", "to": "a"}]}
    error = only_error(await problem_of(client, org, project, definition))
    assert (error["field"], error["rule"]) == ("definition.edges.0", "acyclic")
    assert error["edge"] == "a->a"


async def test_duplicate_node_ids_are_refused(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    org = await make_org()
    project = await create_project(client, org, "wf")
    definition = {"nodes": transforms("a", "b", "a"), "edges": []}
    error = only_error(await problem_of(client, org, project, definition))
    assert (error["field"], error["rule"]) == ("definition.nodes.2.id", "unique")
    assert error["node"] == "a"


async def test_an_edge_to_an_unknown_node_is_refused(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    project = await create_project(client, org, "wf")
    definition = {
        "nodes": transforms("a", "b"),
        "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "ghost"}],
    }
    error = only_error(await problem_of(client, org, project, definition))
    assert (error["field"], error["rule"]) == ("definition.edges.1.to", "known_node")
    assert error["edge"] == "b->ghost"
    assert "ghost" in error["message"]


async def test_a_bad_when_is_refused(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    org = await make_org()
    project = await create_project(client, org, "wf")
    definition = {
        "nodes": transforms("a", "b"),
        "edges": [{"from": "a", "to": "b", "when": "nodes.a.output =="}],
    }
    error = only_error(await problem_of(client, org, project, definition))
    assert (error["field"], error["rule"], error["edge"]) == (
        "definition.edges.0.when",
        "jmespath",
        "a->b",
    )


async def test_an_action_with_an_unknown_tool_is_refused(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    project = await create_project(client, org, "wf")
    definition = {
        "nodes": [{"id": "x", "type": "action", "config": {"agent_id": agent, "tool": "rm"}}],
        "edges": [],
    }
    error = only_error(await problem_of(client, org, project, definition))
    assert (error["field"], error["rule"], error["node"]) == (
        "definition.nodes.0.config.tool",
        "known_tool",
        "x",
    )


async def test_a_transform_with_a_bad_expression_is_refused(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    project = await create_project(client, org, "wf")
    definition = {
        "nodes": [{"id": "t", "type": "transform", "config": {"expression": "input.[["}}],
        "edges": [],
    }
    error = only_error(await problem_of(client, org, project, definition))
    assert (error["field"], error["rule"], error["node"]) == (
        "definition.nodes.0.config.expression",
        "jmespath",
        "t",
    )


async def test_a_wait_needs_seconds_or_an_expression(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    project = await create_project(client, org, "wf")
    definition = {"nodes": [{"id": "w", "type": "wait", "config": {}}], "edges": []}
    error = only_error(await problem_of(client, org, project, definition))
    assert (error["field"], error["node"]) == ("definition.nodes.0.config", "w")
    assert "seconds" in error["message"]


async def test_an_llm_output_schema_must_be_a_json_schema(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    project = await create_project(client, org, "wf")
    config = {"agent_id": agent, "prompt": "hi", "output_schema": {"type": "banana"}}
    definition = {"nodes": [{"id": "m", "type": "llm", "config": config}], "edges": []}
    error = only_error(await problem_of(client, org, project, definition))
    assert (error["field"], error["rule"], error["node"]) == (
        "definition.nodes.0.config.output_schema",
        "json_schema",
        "m",
    )


async def test_a_missing_agent_id_is_refused(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    org = await make_org()
    project = await create_project(client, org, "wf")
    definition = {
        "nodes": [{"id": "g", "type": "approval", "config": {"title": "go?"}}],
        "edges": [],
    }
    error = only_error(await problem_of(client, org, project, definition))
    assert (error["field"], error["rule"], error["node"]) == (
        "definition.nodes.0.config.agent_id",
        "missing",
        "g",
    )


async def test_an_unknown_node_type_is_refused_with_the_rest(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    project = await create_project(client, org, "wf")
    definition = {
        "nodes": [*transforms("a"), {"id": "s", "type": "shell", "config": {}}],
        "edges": [{"from": "a", "to": "s"}, {"from": "s", "to": "ghost"}],
    }
    problem = await problem_of(client, org, project, definition)
    # The node of the unknown type is named, and the edge's problem is reported with it
    # (an edge to that node is not "unknown": the node is there, its type is wrong)
    assert field_rules(problem) == [
        ("definition.nodes.1.type", "known_type"),
        ("definition.edges.1.to", "known_node"),
    ]
    error = problem["errors"][0]
    assert (error["in"], error["node"]) == ("body", "s")
    assert "'shell'" in error["message"]
    assert "transform" in error["message"]


async def test_an_agent_of_another_organization_is_refused(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    other = await make_org("Other")
    foreign = await new_agent(client, other)
    project = await create_project(client, org, "wf")
    problem = await problem_of(client, org, project, gate(foreign))
    error = only_error(problem)
    assert (error["field"], error["rule"], error["node"]) == (
        "definition.nodes.0.config.agent_id",
        "known_agent",
        "g",
    )
    # The same agent id is refused on PATCH too
    workflow = await save_workflow(client, org.member, project, QUICK)
    resp = await client.patch(
        f"/workflows/{workflow['id']}",
        json={"definition": gate(foreign)},
        headers=org.member.headers,
    )
    assert only_error(assert_problem(resp, 422, "validation"))["rule"] == "known_agent"


async def test_every_error_of_a_definition_is_reported_at_once(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    project = await create_project(client, org, "wf")
    definition = {
        "nodes": [
            {"id": "a", "type": "action", "config": {"agent_id": agent, "tool": "rm"}},
            {"id": "t", "type": "transform", "config": {"expression": "[["}},
            {"id": "w", "type": "wait", "config": {"seconds": 1, "seconds_expression": "input"}},
            {"id": "t", "type": "transform", "config": {"expression": "input"}},
        ],
        "edges": [
            {"from": "a", "to": "nowhere"},
            {"from": "a", "to": "t", "when": "=="},
        ],
    }
    problem = await problem_of(client, org, project, definition)
    assert sorted((e["field"], e["rule"]) for e in problem["errors"]) == sorted(
        [
            ("definition.nodes.0.config.tool", "known_tool"),
            ("definition.nodes.1.config.expression", "jmespath"),
            ("definition.nodes.2.config", "value_error"),
            ("definition.nodes.3.id", "unique"),
            ("definition.edges.0.to", "known_node"),
            ("definition.edges.1.when", "jmespath"),
        ]
    )
    assert all("node" in e or "edge" in e for e in problem["errors"]), problem
    # Nothing was saved
    listed = await client.get("/workflows", headers=org.member.headers)
    assert listed.json()["items"] == []


# --- who may do what --------------------------------------------------------------------


async def test_strangers_get_404_on_workflows_and_runs(
    client: httpx.AsyncClient, make_org: MakeOrg, new_user: NewUser
) -> None:
    org = await make_org()
    stranger = (await make_org("Other")).owner
    agent = await new_agent(client, org)
    project = await create_project(client, org, "wf")
    workflow = await save_workflow(client, org.member, project, gate(agent))
    run = await waiting_run(client, org, workflow["id"])
    wf, rn = f"/workflows/{workflow['id']}", f"/workflow-runs/{run['id']}"
    for caller in (stranger, new_user()):
        calls = [
            client.get(wf, headers=caller.headers),
            client.patch(wf, json={"name": "mine"}, headers=caller.headers),
            client.delete(wf, headers=caller.headers),
            client.post(f"{wf}/runs", json={"input": {}}, headers=caller.headers),
            client.get(f"{wf}/runs", headers=caller.headers),
            client.get(rn, headers=caller.headers),
            client.post(f"{rn}/cancel", headers=caller.headers),
            client.post(f"{rn}/resume", headers=caller.headers),
        ]
        for call in calls:
            assert_problem(await call, 404, "not-found")
        listed = await client.get("/workflows", headers=caller.headers)
        assert listed.json()["items"] == []
        created = await post_workflow(client, caller, project, QUICK)
        assert_problem(created, 404, "not-found")
    # Nothing changed
    got = await client.get(wf, headers=org.member.headers)
    assert (got.json()["name"], got.json()["version"]) == ("flow", 1)
    assert (await get_run(client, org.member, run["id"]))["status"] == "waiting"
    runs = await client.get(f"{wf}/runs", headers=org.member.headers)
    assert [r["id"] for r in runs.json()["items"]] == [run["id"]]
    await client.post(f"{rn}/cancel", headers=org.member.headers)


async def test_viewers_read_but_do_not_write(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    project = await create_project(client, org, "wf")
    workflow = await save_workflow(client, org.member, project, gate(agent))
    run = await waiting_run(client, org, workflow["id"])
    wf, rn = f"/workflows/{workflow['id']}", f"/workflow-runs/{run['id']}"
    viewer = org.viewer.headers
    # Reading is allowed
    for path in (wf, f"{wf}/runs", rn):
        resp = await client.get(path, headers=viewer)
        assert resp.status_code == 200, (path, resp.text)
    # Writing is not
    created = await post_workflow(client, org.viewer, project, QUICK)
    assert_problem(created, 403, "forbidden")
    assert_problem(await client.patch(wf, json={"name": "x"}, headers=viewer), 403, "forbidden")
    assert_problem(await client.post(f"{wf}/runs", json={}, headers=viewer), 403, "forbidden")
    assert_problem(await client.post(f"{rn}/cancel", headers=viewer), 403, "forbidden")
    assert_problem(await client.post(f"{rn}/resume", headers=viewer), 403, "forbidden")
    assert_problem(await client.delete(wf, headers=viewer), 403, "forbidden")
    # And nothing changed
    assert (await get_run(client, org.member, run["id"]))["status"] == "waiting"
    runs = await client.get(f"{wf}/runs", headers=viewer)
    assert [r["id"] for r in runs.json()["items"]] == [run["id"]]
    got = await client.get(wf, headers=viewer)
    assert (got.json()["name"], got.json()["version"]) == ("flow", 1)
    await client.post(f"{rn}/cancel", headers=org.member.headers)


async def test_members_create_and_start_but_only_admins_delete(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    project = await create_project(client, org, "wf")
    workflow = await save_workflow(client, org.member, project, QUICK)
    run = await start_run(client, org.member, workflow["id"], {"n": 42})
    assert run["started_by"] == str(org.member.id)
    assert run["workflow_version"] == 1
    done = await wait_for(client, org.member, run["id"], until=status_is("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    assert_problem(
        await client.delete(f"/workflows/{workflow['id']}", headers=org.member.headers),
        403,
        "forbidden",
    )
    still = await client.get(f"/workflows/{workflow['id']}", headers=org.member.headers)
    assert still.status_code == 200
    for user in (org.admin, org.owner):
        mine = await save_workflow(client, org.member, project, QUICK)
        resp = await client.delete(f"/workflows/{mine['id']}", headers=user.headers)
        assert resp.status_code == 204, resp.text
    # Deleting a workflow deletes its runs
    resp = await client.delete(f"/workflows/{workflow['id']}", headers=org.admin.headers)
    assert resp.status_code == 204, resp.text
    gone = await client.get(f"/workflow-runs/{run['id']}", headers=org.owner.headers)
    assert_problem(gone, 404, "not-found")


async def test_a_workflow_with_a_run_in_flight_is_not_deleted(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    project = await create_project(client, org, "wf")
    workflow = await save_workflow(client, org.member, project, gate(agent))
    run = await waiting_run(client, org, workflow["id"])
    action_id = run["nodes"][0]["action_id"]
    wf = f"/workflows/{workflow['id']}"
    # A member is still refused as such; an admin is told to cancel the run first (the
    # cascade would leave its execution unstopped and its gate pending in the inbox)
    assert_problem(await client.delete(wf, headers=org.member.headers), 403, "forbidden")
    problem = assert_problem(await client.delete(wf, headers=org.admin.headers), 409, "conflict")
    assert problem["live_runs"] == [run["id"]]
    assert (await get_run(client, org.member, run["id"]))["status"] == "waiting"
    # Once the run is cancelled, so is its gate, and the workflow can go
    cancelled = await client.post(f"/workflow-runs/{run['id']}/cancel", headers=org.member.headers)
    assert cancelled.status_code == 200, cancelled.text
    gate_action = await client.get(f"/actions/{action_id}", headers=org.admin.headers)
    assert gate_action.json()["status"] == "cancelled"
    assert (await client.delete(wf, headers=org.admin.headers)).status_code == 204
    assert_problem(await client.get(wf, headers=org.admin.headers), 404, "not-found")


async def test_a_workflow_without_nodes_cannot_be_started(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    project = await create_project(client, org, "wf")
    resp = await client.post(
        "/workflows", json={"project_id": project, "name": "empty"}, headers=org.member.headers
    )
    assert resp.status_code == 201, resp.text
    workflow = resp.json()
    assert workflow["definition"] == {"nodes": [], "edges": []}
    started = await client.post(
        f"/workflows/{workflow['id']}/runs", json={}, headers=org.member.headers
    )
    assert_problem(started, 409, "conflict")
    runs = await client.get(f"/workflows/{workflow['id']}/runs", headers=org.member.headers)
    assert runs.json()["items"] == []


# --- cancel and resume ------------------------------------------------------------------


async def test_cancel_of_an_ended_run_and_resume_of_one_that_did_not_fail_are_409(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    project = await create_project(client, org, "wf")
    quick = await save_workflow(client, org.member, project, QUICK)
    run = await start_run(client, org.member, quick["id"], {"n": 1})
    done = await wait_for(client, org.member, run["id"], until=status_is("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    rn = f"/workflow-runs/{run['id']}"
    # A finished run is neither cancelled nor resumed
    for verb in ("cancel", "resume"):
        problem = assert_problem(
            await client.post(f"{rn}/{verb}", headers=org.member.headers), 409, "conflict"
        )
        assert problem["current_status"] == "succeeded", problem
    assert (await get_run(client, org.member, run["id"]))["status"] == "succeeded"
    # A waiting run is not resumed; once cancelled, it is not cancelled again
    gated = await save_workflow(client, org.member, project, gate(agent))
    waiting = await waiting_run(client, org, gated["id"])
    wn = f"/workflow-runs/{waiting['id']}"
    problem = assert_problem(
        await client.post(f"{wn}/resume", headers=org.member.headers), 409, "conflict"
    )
    assert problem["current_status"] == "waiting"
    cancelled = await client.post(f"{wn}/cancel", headers=org.member.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    for verb, status in (("cancel", "cancelled"), ("resume", "cancelled")):
        problem = assert_problem(
            await client.post(f"{wn}/{verb}", headers=org.member.headers), 409, "conflict"
        )
        assert problem["current_status"] == status


# --- the task token ---------------------------------------------------------------------


async def test_the_task_token_never_appears_in_a_response(
    client: httpx.AsyncClient, make_org: MakeOrg, fresh_db: ProvisionedDatabase
) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    project = await create_project(client, org, "wf")
    workflow = await save_workflow(client, org.member, project, gate(agent))
    run = await waiting_run(client, org, workflow["id"])
    action_id = next(n for n in run["nodes"] if n["id"] == "g")["action_id"]
    assert action_id
    # Given the gate's token, as only the server can read it
    with psycopg.connect(fresh_db.admin_url) as conn:
        row = conn.execute(
            "select task_token from public.workflow_waits where run_id = %s and node_id = 'g'",
            (uuid.UUID(run["id"]),),
        ).fetchone()
    assert row is not None
    token: str = row[0]
    assert len(token) > 8
    # Then no response a person can get shows it
    paths = [
        f"/workflow-runs/{run['id']}",
        f"/workflows/{workflow['id']}/runs",
        f"/actions/{action_id}",
        f"/actions/{action_id}/events",
        "/actions",
    ]
    for user in (org.owner, org.member, org.viewer):
        for path in paths:
            resp = await client.get(path, headers=user.headers)
            assert resp.status_code == 200, (path, resp.text)
            assert token not in resp.text, path
    # Nor the decision that releases it, nor the run after it
    approved = await client.post(f"/actions/{action_id}/approve", headers=org.admin.headers)
    assert approved.status_code == 200, approved.text
    assert token not in approved.text
    done = await wait_for(client, org.member, run["id"], until=status_is("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    assert token not in str(done)
