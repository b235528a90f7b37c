"""The console's agents and workflows pages in a real headless Chromium, against
`agentplane dev`: an agent's runner session shows its presence as it changes, with its
metadata as text, next to the agent's config and its actions; a workflow run is drawn as
an SVG DAG whose waiting gate links to the inbox, and it follows the run to its end."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.console import Console

pytestmark = pytest.mark.e2e

# Longer than the pages' polling (sessions every second, a run every 2.5 s).
SEEN_MS = 15_000


def project_of(console: Console) -> str:
    return str(console.client().get(f"/agents/{console.agent}").json()["project_id"])


def test_an_agent_page_shows_its_runner_session_come_and_go(browser: Any, console: Console) -> None:
    # Given an agent of its own with a config, an action proposed for it, and a runner
    # session opened through the runner protocol (its hostname is markup, to be text)
    api = console.client()
    made = api.post("/agents", json={"project_id": project_of(console), "name": "console-e2e"})
    assert made.status_code == 201, made.text
    agent_id = made.json()["id"]
    config = {
        "model": "e2e-model-7",
        "system_prompt": "Be brief.",
        "temperature": 0.3,
        "connection_id": None,
        "allowed_tools": ["read_file"],
    }
    assert api.put(f"/agents/{agent_id}/config", json=config).status_code == 200
    proposed = api.post(
        f"/agents/{agent_id}/actions",
        json={"payload": {"tool": "read_file", "args": {"path": "notes.txt"}}},
    )
    assert proposed.status_code == 201, proposed.text
    action_id = proposed.json()["id"]
    issued = api.post(f"/agents/{agent_id}/runner-tokens", json={"name": "console-e2e"})
    assert issued.status_code == 201, issued.text
    runner = httpx.Client(
        base_url=console.base_url,
        headers={"Authorization": f"Bearer {issued.json()['token']}"},
        timeout=10,
    )
    metadata = {"os": "Linux-6.1-e2e", "hostname": "<b>box-7</b>", "runner_version": "9.9.9"}
    opened = runner.post("/runner/sessions", json={"socket_id": "e2e", "metadata": metadata})
    assert opened.status_code == 201, opened.text
    session_id = opened.json()["id"]

    # When the person opens the agents list and follows the agent's link
    page = browser.new_page()
    page.goto(console.link_for(console.owner_token, page="agents"))
    page.locator(f'#agent-list li[data-agent-id="{agent_id}"] a').click()
    page.wait_for_url(f"**#/agents/{agent_id}")

    # Then the session is online with its metadata, shown as text
    session = page.locator(f'#sessions li[data-session-id="{session_id}"]')
    expect(session.locator(".session-status")).to_have_text("online")
    expect(session.locator(".session-hostname")).to_have_text("<b>box-7</b>")
    assert session.locator("b").count() == 0
    expect(session.locator(".session-os")).to_have_text("Linux-6.1-e2e")
    expect(session.locator(".session-version")).to_have_text("9.9.9")
    # and the config's model and tools, and the action proposed for it, linking to it
    expect(page.locator("#config-model")).to_have_text("e2e-model-7")
    expect(page.locator("#config-allowed-tools")).to_have_text("read_file")
    proposal = page.locator(f'#agent-actions li[data-action-id="{action_id}"]')
    expect(proposal.locator(".action-status")).to_have_text("pending")
    expect(proposal.locator("a")).to_have_text("read_file")
    assert proposal.locator("a").get_attribute("href") == f"#/actions/{action_id}"

    # When the runner ends its session
    assert runner.delete(f"/runner/sessions/{session_id}").status_code == 204

    # Then the page shows it offline without a reload
    expect(session.locator(".session-status")).to_have_text("offline", timeout=SEEN_MS)
    assert session.get_attribute("data-status") == "offline"
    page.close()
    # (the proposal leaves the shared inbox, so other tests see only their own)
    assert api.post(f"/actions/{action_id}/cancel", json={}).status_code == 200


def node(run: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in run["nodes"] if n["id"] == node_id)


def test_a_run_page_draws_the_dag_links_its_gate_to_the_inbox_and_follows_it(
    browser: Any, console: Console, tmp_path: Path
) -> None:
    # Given a workflow: prepare (transform) -> review (approval) -> report (transform)
    api = console.client()
    definition = {
        "nodes": [
            {"id": "prepare", "type": "transform",
             "config": {"expression": "{title: join('', ['ship ', input.name])}"}},
            {"id": "review", "type": "approval",
             "config": {"agent_id": console.agent, "title": "{{ nodes.prepare.output.title }}?"}},
            {"id": "report", "type": "transform",
             "config": {"expression": "{approved_by: nodes.review.output.approved_by,"
                                      " title: nodes.prepare.output.title}"}},
        ],
        "edges": [{"from": "prepare", "to": "review"}, {"from": "review", "to": "report"}],
    }  # fmt: skip
    saved = api.post(
        "/workflows",
        json={"project_id": project_of(console), "name": f"gate-{uuid.uuid4().hex[:6]}",
              "definition": definition},
    )  # fmt: skip
    assert saved.status_code == 201, saved.text

    # When it is run and the person opens the run page
    started = api.post(f"/workflows/{saved.json()['id']}/runs", json={"input": {"name": "v2"}})
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    page = browser.new_page()
    page.goto(console.link_for(console.owner_token, page=f"workflow-runs/{run_id}"))

    # Then the SVG shows the gate waiting, after a succeeded transform, in layers
    review = page.locator('svg#dag g[data-node-id="review"]')
    expect(review).to_have_attribute("data-status", "waiting", timeout=SEEN_MS)
    expect(review).to_have_class("node node-waiting")
    expect(review.locator("text.node-label")).to_have_text("review")
    expect(page.locator('svg#dag g[data-node-id="prepare"]')).to_have_class("node node-succeeded")
    expect(page.locator('svg#dag g[data-node-id="report"]')).to_have_class("node node-pending")
    columns = [
        float(page.locator(f'svg#dag g[data-node-id="{n}"] rect').get_attribute("x") or "nan")
        for n in ("prepare", "review", "report")
    ]
    assert columns == sorted(columns)
    assert len(set(columns)) == 3
    assert page.locator("svg#dag .edge").count() == 2
    assert page.locator("svg#dag defs marker#arrow").count() == 1
    # and the gate links to its inbox entry, in the SVG and in the list under it
    gate = node(api.get(f"/workflow-runs/{run_id}").json(), "review")
    assert gate["action_status"] == "pending"
    inbox_href = f"#/?focus={gate['action_id']}"
    assert page.locator("svg#dag a.node-link").get_attribute("href") == inbox_href
    waiting = page.locator('#waiting li[data-node-id="review"] a')
    assert waiting.get_attribute("href") == inbox_href
    expect(page.locator("#run .run-status")).to_have_text("waiting")
    page.screenshot(path=str(tmp_path / "workflow-run.png"), full_page=True)
    assert (tmp_path / "workflow-run.png").stat().st_size > 0

    # When the person follows the link, the inbox opens with that action selected
    waiting.click()
    selected = page.locator(f'#items li.selected[data-action-id="{gate["action_id"]}"]')
    expect(selected).to_be_visible()
    page.go_back()
    expect(page.locator("svg#dag")).to_be_visible()

    # When the gate is approved through the API
    approved = api.post(f"/actions/{gate['action_id']}/approve", json={"reason": "ship it"})
    assert approved.status_code == 200, approved.text

    # Then the page shows the gate succeeded and the run finished, without a reload
    expect(review).to_have_attribute("data-status", "succeeded", timeout=SEEN_MS)
    expect(page.locator("#run .run-status")).to_have_text("succeeded", timeout=SEEN_MS)
    expect(page.locator('svg#dag g[data-node-id="report"]')).to_have_class("node node-succeeded")
    expect(page.locator("#run-live")).to_have_text("Finished.")
    assert page.locator("#waiting li").count() == 0
    assert page.locator("svg#dag a.node-link").count() == 0
    report = page.locator('#nodes tr[data-node-id="report"] pre.node-output')
    assert '"title": "ship v2"' in report.inner_text()
    page.close()
