from __future__ import annotations

from typing import Any

from tests.support.api import MakeOrg
from tests.support.builders import create_project, new_agent
from tests.support.workflows import save_workflow, start_run, status_is, wait_for_run, node

import httpx


async def test_chain(client: httpx.AsyncClient, make_org: MakeOrg) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    project = await create_project(client, org, "wf")
    definition: dict[str, Any] = {
        "nodes": [
            {"id": "a", "type": "transform", "config": {"expression": "input.n"}},
            {"id": "w", "type": "wait", "config": {"seconds": 0}},
            {"id": "g", "type": "approval", "config": {"agent_id": agent, "title": "go {{ nodes.a.output }}?"}},
            {"id": "b", "type": "transform", "config": {"expression": "{a: nodes.a.output, g: nodes.g.output}"}},
        ],
        "edges": [{"from": "a", "to": "w"}, {"from": "w", "to": "g"}, {"from": "g", "to": "b"}],
    }
    wf = await save_workflow(client, org.member, project, definition)
    run = await start_run(client, org.member, wf["id"], {"n": 7})
    print(run)
    run = await wait_for_run(client, org.member, run["id"], until=lambda r: node(r, "g")["status"] == "waiting")
    action_id = node(run, "g")["action_id"]
    resp = await client.post(f"/actions/{action_id}/approve", json={"reason": "fine"}, headers=org.admin.headers)
    assert resp.status_code == 200, resp.text
    run = await wait_for_run(client, org.member, run["id"], until=status_is("succeeded", "failed"))
    print(run)
    assert run["status"] == "succeeded"
