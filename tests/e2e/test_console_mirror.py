"""The console's mirror pages in a real headless Chromium against `agentplane dev`: a
report started from the list page is followed until it finishes, its findings link to the
messages they cite (the conversation opens with that message highlighted and in view),
the suggested prompt is a line diff against the agent's current one, and Adopt makes it
the agent's prompt; a viewer's Adopt is off (the API refuses it, and the page says why),
and a conversation is its owner's alone."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.console import Console

pytestmark = pytest.mark.e2e

MARKUP = "<img src=x onerror=window.pwned=1> is this what you see?"
# Plain statements, none of them a question, a correction or a thanks: they only push the
# cited message below the fold.
FILLER = [
    "The build on main is green.",
    "Staging runs release four.",
    "Our database sits in Frankfurt.",
    "Marketing wants the banner blue.",
    "The office closes at six.",
    "Lena reviews the pull requests.",
    "Backups run every night.",
    "The invoice template changed last week.",
    "Support tickets moved to the new tracker.",
    "Our API has three regions.",
    "The design review is on Thursday.",
    "Coffee machine on floor two is broken.",
]


def _connection(api: httpx.Client) -> str:
    """A connection of the caller's of its own (one open report per connection)."""
    resp = api.post(
        "/connections",
        json={
            "name": f"mirror-{uuid.uuid4().hex[:8]}",
            "provider": "custom",
            "base_url": "http://127.0.0.1:9/v1",
            "model": "m",
        },
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _conversation(
    api: httpx.Client, connection: str, agent: str, messages: list[tuple[str, str]]
) -> tuple[str, list[str]]:
    """A conversation of the caller's on `connection` with `agent`: its id, its messages' ids."""
    resp = api.post(
        "/conversations",
        json={"title": "mirror e2e", "agent_connection_id": connection, "agent_id": agent},
    )
    assert resp.status_code == 201, resp.text
    conversation = str(resp.json()["id"])
    ids = []
    for role, content in messages:
        sent = api.post(
            f"/conversations/{conversation}/messages", json={"role": role, "content": content}
        )
        assert sent.status_code == 201, sent.text
        ids.append(str(sent.json()["id"]))
    return conversation, ids


def test_a_report_cites_its_evidence_diffs_the_prompt_and_is_adopted(
    browser: Any, console: Console, tmp_path: Path
) -> None:
    api, agent = console.client(), console.agent
    current = api.get(f"/agents/{agent}/config").json()["system_prompt"]
    connection = _connection(api)
    # Given a long conversation whose assistant refuses at the end (a weakness), after a
    # message with markup in it,
    filler = [
        m for i, text in enumerate(FILLER) for m in (("user", text), ("assistant", f"Noted ({i})."))
    ]
    long_talk = [
        ("user", MARKUP),
        ("assistant", "Yes, as text."),
        *filler,
        ("user", "Deploy the site to production now."),
        ("assistant", "I can't do that."),
    ]
    long_id, long_ids = _conversation(api, connection, agent, long_talk)
    refusal = long_ids[-1]
    # and a short one resolved at once (a strength)
    resolved = [
        ("user", "List the files."),
        ("assistant", "a.txt and b.txt."),
        ("user", "Thanks, that works."),
    ]
    _conversation(api, connection, agent, resolved)

    # and an action of the agent that the owner rejected (a weakness citing an action)
    risky = {"tool": "write_file", "args": {"path": "/etc/hosts", "content": "x"}}
    proposed = api.post(f"/agents/{agent}/actions", json={"payload": risky})
    assert proposed.status_code == 201, proposed.text
    action = proposed.json()["id"]
    rejected = api.post(f"/actions/{action}/reject", json={"reason": "not that file"})
    assert rejected.status_code == 200, rejected.text

    # When the owner starts a heuristic report of that connection from the list page
    page = browser.new_page()
    page.goto(console.link_for(console.owner_token, "mirror-reports"))
    form = page.locator("#start-report")
    form.locator("select[name=connection]").select_option(connection)
    form.locator("select[name=analyzer]").select_option("heuristic")
    form.locator("button[type=submit]").click()

    # Then the report page follows it until it succeeded, with its findings
    expect(page.locator("#report-status")).to_have_text("succeeded", timeout=15_000)
    report_id = page.url.rsplit("/", 1)[1]
    assert api.get(f"/mirror-reports/{report_id}").json()["status"] == "succeeded"
    expect(page.locator("#weaknesses")).to_contain_text("The assistant refuses requests")
    expect(page.locator("#strengths")).to_contain_text("Tasks resolved in few turns")
    cited = page.locator(f'#weaknesses a[href="#/conversations/{long_id}?message={refusal}"]')
    expect(cited).to_have_count(1)
    expect(page.locator(f'#weaknesses a[href="#/actions/{action}"]')).to_have_count(1)
    # and the suggested prompt as a diff: the current prompt kept, rules added, none removed
    diff = page.locator("#prompt-diff")
    added = diff.locator(".line.add").all_inner_texts()
    assert "+ ## Rules learned from past conversations" in added
    assert any(line.startswith("+ - When you cannot do something") for line in added)
    assert diff.locator(".line.del").count() == 0
    kept = diff.locator(".line:not(.add):not(.del)").all_inner_texts()
    assert f"  {current.splitlines()[0]}" in kept
    page.screenshot(path=str(tmp_path / "mirror-report.png"), full_page=True)
    assert (tmp_path / "mirror-report.png").stat().st_size > 0

    # When the owner follows the refusal's evidence link
    cited.click()
    # Then the conversation opens with that message highlighted and scrolled into view
    message = page.locator(f'li[data-message-id="{refusal}"]')
    expect(message).to_have_class(re.compile(r"\bcited\b"))
    expect(message).to_be_in_viewport()
    assert page.locator("li.message.cited").count() == 1
    assert page.locator("li.message").count() == len(long_talk)
    # and markup in a message is text
    first = page.locator(f'li[data-message-id="{long_ids[0]}"] pre.content')
    assert first.inner_text() == MARKUP
    assert page.evaluate("window.pwned") is None

    # When the owner goes back and adopts the suggested prompt
    page.go_back()
    adopt = page.locator("#adopt")
    expect(adopt).to_be_enabled()
    adopt.click()
    # Then the page names the new prompt version, and the diff is empty
    outcome = page.locator("#adopt-outcome")
    expect(outcome).to_contain_text("prompt is now version")
    expect(page.locator("#prompt-same")).to_be_visible()
    assert page.locator("#prompt-diff .line.add, #prompt-diff .line.del").count() == 0
    expect(adopt).to_be_disabled()
    # and the agent's prompt is the suggested one, recorded as an adopt of this report
    report = api.get(f"/mirror-reports/{report_id}").json()
    assert api.get(f"/agents/{agent}/config").json()["system_prompt"] == report["suggested_prompt"]
    versions = api.get(f"/agents/{agent}/config/versions?limit=200").json()["items"]
    latest = versions[-1]
    assert (latest["source"], latest["source_id"]) == ("adopt", report_id)
    assert latest["version"] == report["adopted_prompt_version"]
    assert f"version {latest['version']}" in outcome.inner_text()

    # And the list of reports links to it, finished
    page.goto(f"{console.base_url}/console#/mirror-reports")
    listed = page.locator(f'#reports tr[data-report-id="{report_id}"]')
    expect(listed).to_contain_text("succeeded")
    assert listed.locator("a").first.get_attribute("href") == f"#/mirror-reports/{report_id}"
    page.close()


def test_a_viewer_cannot_adopt_and_a_conversation_is_its_owners_alone(
    browser: Any, console: Console
) -> None:
    agent = console.agent
    _, viewer_token = console.add_member("viewer")
    viewer = console.client(viewer_token)
    connection = _connection(viewer)
    conversation, ids = _conversation(
        viewer, connection, agent, [("user", "Delete the logs."), ("assistant", "I won't do that.")]
    )
    started = viewer.post(
        "/mirror-reports", json={"agent_connection_id": connection, "analyzer": "heuristic"}
    )
    assert started.status_code == 202, started.text
    report_id = started.json()["id"]

    # When the viewer opens their report
    page = browser.new_page()
    page.goto(console.link_for(viewer_token, f"mirror-reports/{report_id}"))
    expect(page.locator("#report-status")).to_have_text("succeeded", timeout=15_000)
    expect(page.locator("#prompt-diff .line.add").first).to_be_visible()
    # Then its Adopt is off
    adopt = page.locator("#adopt")
    expect(adopt).to_be_disabled()
    # and were it on, the API refuses the viewer and the page says why
    page.locator('#mirror-report[data-evidence="located"]').wait_for()
    page.evaluate("document.getElementById('adopt').disabled = false")
    adopt.click()
    refused = viewer.post(f"/mirror-reports/{report_id}/adopt")
    assert refused.status_code == 403
    expect(page.locator("#adopt-outcome")).to_have_text(f"Not adopted: {refused.json()['detail']}")
    assert viewer.get(f"/mirror-reports/{report_id}").json()["adopted_at"] is None
    page.close()

    # When the owner of the organization opens the viewer's conversation
    owner = browser.new_page()
    owner.goto(
        console.link_for(console.owner_token, f"conversations/{conversation}?message={ids[1]}")
    )
    # Then it is not theirs to read, and none of it shows
    expect(owner.locator("#not-yours")).to_contain_text("not yours to read")
    assert owner.locator("li.message").count() == 0
    owner.close()
