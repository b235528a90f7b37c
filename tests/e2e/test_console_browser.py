"""The approval console in a real headless Chromium (Debian's, driven by Playwright),
against `agentplane dev`: the link's token goes from the fragment to sessionStorage, the
inbox shows the exact payload with hidden characters made visible and its hash checked,
Reject has the focus, a reason goes with a decision, the action page verifies the
signature and the audit chain in the browser and follows a real runner to `succeeded`,
two people racing see one winner, and sign-in through Supabase Auth works and forgets."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.console import Console, Team
from tests.support.dev_server import run_runner_once, wait_until

pytestmark = pytest.mark.e2e

RLO, ZWSP = "\u202e", "\u200b"
# The inbox polls every 3 s: what is proposed shows up within that, with room to spare.
WITHIN_A_REFRESH_MS = 3 * 3000


def test_a_person_decides_in_the_inbox(browser: Any, team: Team, tmp_path: Path) -> None:
    # Given a person's console open on an empty inbox
    page = browser.new_page()
    page.goto(team.link())
    page.locator("#empty").wait_for()
    # The token moved from the address bar into this tab's sessionStorage
    assert "#token=" not in page.url
    assert page.evaluate("sessionStorage.getItem('agentplane.token')") == team.owner_token
    assert page.evaluate("localStorage.length") == 0

    # When actions are proposed through the API, they appear within a refresh
    plain = team.propose({"tool": "read_file", "args": {"path": "notes.txt"}})
    tricky = team.propose(
        {"tool": "write_file", "args": {"path": f"report{RLO}txt{ZWSP}.exe", "content": "ok"}}
    )
    card = page.locator(f'li[data-action-id="{tricky["id"]}"]')
    card.wait_for(timeout=WITHIN_A_REFRESH_MS)
    page.locator(f'li[data-action-id="{plain["id"]}"]').wait_for()

    # Then the riskier write comes before the read, though it is newer
    order = page.eval_on_selector_all(
        "#items li", "items => items.map(i => i.getAttribute('data-action-id'))"
    )
    assert order == [tricky["id"], plain["id"]]
    assert card.locator(".risk").inner_text().lower() == "high"
    # The payload is shown exactly, its hidden characters made visible, its hash checked
    shown = card.locator("pre.payload").inner_text()
    for hidden, code in ((RLO, "\\u{202E}"), (ZWSP, "\\u{200B}")):
        assert code in shown
        assert hidden not in shown
    assert card.locator(".hash").inner_text() == f"sha256 {tricky['payload_sha256']}"
    assert "left" in card.locator(".ttl").inner_text()
    page.screenshot(path=str(tmp_path / "inbox.png"), full_page=True)
    assert (tmp_path / "inbox.png").stat().st_size > 0
    # Reject has the focus: Enter would reject, never approve
    focused = page.evaluate(
        "[document.activeElement.className,"
        " document.activeElement.closest('li').getAttribute('data-action-id')]"
    )
    assert focused == ["reject", tricky["id"]]

    # When the person gives a reason and presses "a", it is approved with that reason
    card.locator("input.reason").fill("checked the path")
    card.locator("button.reject").focus()
    page.keyboard.press("a")
    card.locator(".outcome", has_text="approved (checked the path)").wait_for()
    decided = team.client().get(f"/actions/{tricky['id']}").json()
    assert (decided["status"], decided["decision_reason"]) == ("approved", "checked the path")
    # and "j" then "r" rejects the next one
    page.locator(f'li[data-action-id="{plain["id"]}"]').wait_for()
    page.keyboard.press("j")
    page.keyboard.press("r")
    page.locator(f'li[data-action-id="{plain["id"]}"] .outcome', has_text="rejected").wait_for()
    assert team.client().get(f"/actions/{plain['id']}").json()["status"] == "rejected"

    # When an action's TTL runs out, its card says it expired and offers no buttons
    brief = team.propose({"tool": "read_file", "args": {"path": "soon.txt"}}, ttl_seconds=10)
    brief_card = page.locator(f'li[data-action-id="{brief["id"]}"]')
    brief_card.locator(".ttl", has_text="expired").wait_for(timeout=20000)
    assert brief_card.locator("button.approve").is_disabled()

    # And signing out forgets the token
    page.locator("#sign-out").click()
    assert page.evaluate("sessionStorage.getItem('agentplane.token')") is None
    assert page.locator("#signed-out").is_visible()
    page.close()


def _run_runner_once(console: Console, team: Team, workspace: Path) -> None:
    """A real `agentplane runner --once` for the team's agent."""
    token = team.client().post(f"/agents/{team.agent_id}/runner-tokens", json={"name": "e2e"})
    assert token.status_code == 201, token.text
    run_runner_once(console.base_url, token.json()["token"], console.data_dir, workspace)


def test_the_action_page_verifies_the_decision_and_follows_the_runner(
    browser: Any, console: Console, team: Team, tmp_path: Path
) -> None:
    # Given a file in a runner's workspace and a proposal to read it
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("hello <b>from</b> the runner\n")
    action = team.propose({"tool": "read_file", "args": {"path": "notes.txt"}})
    page = browser.new_page()
    page.goto(team.link())
    card = page.locator(f'li[data-action-id="{action["id"]}"]')
    card.wait_for(timeout=WITHIN_A_REFRESH_MS)

    # When the person approves it with a reason and opens its page
    card.locator("input.reason").fill("reading is fine")
    card.locator("button.approve").click()
    card.locator(".outcome", has_text="approved").wait_for()
    card.locator("h3 a").click()
    page.locator("#action-status", has_text="approved").wait_for()

    # Then the page shows the decision, its signature verified with the published key,
    # and the audit chain recomputed in the browser
    keys = console.client().get("/.well-known/agentplane/signing-key").json()["keys"]
    signature = team.client().get(f"/actions/{action['id']}").json()["approval_signature"]
    assert page.locator("#signature").inner_text() == signature
    check = page.locator("#signature-check")
    check.wait_for()
    assert check.inner_text().strip() == f"verified with key {keys[0]['kid']}"
    assert "reading is fine" in page.locator("dl").inner_text()
    assert page.locator("#chain").inner_text() == "chain verified: 2 events"
    assert page.locator("#events tbody tr.verified").count() == 2

    # When a real runner process runs it
    _run_runner_once(console, team, workspace)

    # Then the page follows it to succeeded, with the output as text and the session
    page.locator("#action-status", has_text="succeeded").wait_for(timeout=10000)
    assert page.locator("#output .output-content").inner_text() == "hello <b>from</b> the runner\n"
    assert page.locator("#output b").count() == 0
    assert page.locator("#chain").inner_text() == "chain verified: 4 events"
    transitions = page.eval_on_selector_all(
        "#events tbody tr td:nth-child(2)", "cells => cells.map(c => c.textContent)"
    )
    assert transitions == ["· → pending", "pending → approved", "approved → claimed",
                           "claimed → succeeded"]  # fmt: skip
    # The session that ran it names this machine (the runner's metadata)
    assert socket.gethostname() in page.locator("#session").inner_text()
    page.screenshot(path=str(tmp_path / "action.png"), full_page=True)
    assert (tmp_path / "action.png").stat().st_size > 0
    page.close()


def test_a_tampered_audit_event_is_shown_in_red(browser: Any, team: Team) -> None:
    # Given a decision whose reason needs every kind of escaping PostgreSQL's jsonb text
    # does (quotes, backslash, control characters, non-ASCII, a character beyond the BMP)
    nasty = 'say "no"\\ \n\t\x01 é \u202e 🙂'
    honest = team.propose({"tool": "read_file", "args": {"path": "y.txt"}})
    decided = team.client().post(f"/actions/{honest['id']}/reject", json={"reason": nasty})
    assert decided.status_code == 200, decided.text
    page = browser.new_page()
    page.goto(team.link(f"actions/{honest['id']}"))
    # Then the browser's hash of each event is the database's
    page.locator("#chain", has_text="chain verified: 2 events").wait_for()

    # Given an approved action whose audit log is altered on its way to the browser
    action = team.propose({"tool": "read_file", "args": {"path": "x.txt"}})
    assert team.client().post(f"/actions/{action['id']}/approve", json={}).status_code == 200

    def tamper(route: Any) -> None:
        response = route.fetch()
        events = response.json()
        events["items"][1]["detail"]["reason"] = "nobody approved this"
        route.fulfill(response=response, body=json.dumps(events))

    page.route(f"**/actions/{action['id']}/events", tamper)

    # When the action page loads
    page.goto(team.link(f"actions/{action['id']}"))
    page.locator(f'section[data-action-id="{action["id"]}"]').wait_for()

    # Then the browser's own check finds the broken link and shows it in red
    assert page.locator("#chain").inner_text().startswith("chain broken at event")
    assert "the hash does not match the event" in page.locator("#chain").inner_text()
    assert page.locator("#chain.broken").count() == 1
    rows = page.locator("#events tbody tr")
    assert rows.nth(0).get_attribute("class") == "verified"
    assert rows.nth(1).get_attribute("class") == "broken"
    color = rows.nth(1).locator("td").first.evaluate("td => getComputedStyle(td).color")
    assert color == "rgb(207, 34, 46)"
    page.unroute_all(behavior="ignoreErrors")
    page.close()


def test_two_people_approve_the_same_action_and_one_wins(browser: Any, team: Team) -> None:
    # Given two people of the team, each with the action's page open in their own browser
    member_id, member_token = team.add("member")
    action = team.propose({"tool": "read_file", "args": {"path": "race.txt"}})
    contexts = [browser.new_context(), browser.new_context()]
    pages = [contexts[0].new_page(), contexts[1].new_page()]
    pages[0].goto(team.link(f"actions/{action['id']}"))
    pages[1].goto(team.link(f"actions/{action['id']}", token=member_token))
    for page in pages:
        page.locator("button.approve").wait_for()

    # When both press Approve
    for page in pages:
        page.locator("button.approve").click()
    outcomes = []
    for page in pages:
        outcome = page.locator(".outcome")
        page.wait_for_function("el => el.textContent.length > 0", arg=outcome.element_handle())
        outcomes.append(outcome.inner_text())

    # Then one won, and the other's page names the winner and the action's state
    decided = team.client().get(f"/actions/{action['id']}").json()
    assert decided["status"] == "approved"
    winner = 0 if decided["decided_by"] == str(team.owner_id) else 1
    assert decided["decided_by"] == str([team.owner_id, member_id][winner])
    assert outcomes[winner] == "approved"
    loser = outcomes[1 - winner]
    assert loser.startswith(f"too late: {decided['decided_by']} approved it at ")
    assert loser.endswith("; it is approved")
    events = team.client().get(f"/actions/{action['id']}/events").json()["items"]
    assert [e["to_status"] for e in events] == ["pending", "approved"]
    for context in contexts:
        context.close()


def test_the_console_refuses_to_be_framed(browser: Any, console: Console) -> None:
    page = browser.new_page()
    response = page.goto(f"{console.base_url}/console")
    assert response is not None
    assert response.headers["x-frame-options"] == "DENY"
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self';" in csp
    assert "unsafe" not in csp
    # Without a token the page asks for one and shows no inbox.
    assert page.locator("#signed-out").is_visible()
    assert page.locator("#inbox").count() == 0
    page.close()


def test_markup_is_text_a_viewer_cannot_decide_and_a_stranger_sees_nothing(
    browser: Any, console: Console, team: Team
) -> None:
    markup = "<script>window.pwned = 1</script>"
    action = team.propose({"tool": "write_file", "args": {"path": "x.html", "content": markup}})
    _, viewer_token = team.add("viewer")

    # A viewer's console shows the action as text, with its buttons off
    page = browser.new_page()
    page.goto(team.link(token=viewer_token))
    card = page.locator(f'li[data-action-id="{action["id"]}"]')
    card.wait_for()
    assert markup in card.locator("pre.payload").inner_text()
    assert page.evaluate("window.pwned") is None
    assert card.locator("button.approve").is_disabled()
    assert card.locator("button.reject").is_disabled()
    # and the API refuses the viewer anyway
    assert (
        console.client(viewer_token).post(f"/actions/{action['id']}/approve", json={}).status_code
        == 403
    )
    page.close()

    # A stranger's console shows none of it, and its page is a 404 to them
    stranger_token = console.token_for(uuid.uuid4())
    stranger = browser.new_page()
    stranger.goto(console.link_for(stranger_token))
    stranger.locator("#empty").wait_for()
    assert stranger.locator("#items li").count() == 0
    stranger.goto(console.link_for(stranger_token, f"actions/{action['id']}"))
    stranger.locator(".problem", has_text="No action").wait_for()
    stranger.close()


def test_sign_in_through_supabase_auth_and_out(browser: Any, console: Console) -> None:
    # Given a person of the configured Supabase project
    user_id = console.auth.add_user("ada@example.com", "correct horse")
    page = browser.new_page()
    page.goto(f"{console.base_url}/console")
    form = page.locator("#sign-in")
    form.wait_for()

    # When they give a wrong password, the provider's reason is shown
    form.locator("[name=email]").fill("ada@example.com")
    form.locator("[name=password]").fill("wrong")
    form.locator("button[type=submit]").click()
    page.locator("#sign-in-problem", has_text="Invalid login credentials").wait_for()
    assert page.evaluate("sessionStorage.getItem('agentplane.token')") is None

    # When they sign in, the session's JWT is what the console calls the API with
    form.locator("[name=password]").fill("correct horse")
    form.locator("button[type=submit]").click()
    page.locator("#who", has_text="ada@example.com").wait_for()
    page.locator("#empty").wait_for()
    access = page.evaluate("sessionStorage.getItem('agentplane.token')")
    assert console.client(access).get("/me").json()["user_id"] == str(user_id)
    assert ("/auth/v1/token", "password", "anon-key-of-the-test-project") in console.auth.calls
    assert page.evaluate("localStorage.length") == 0

    # And signing out ends the provider's session and forgets every token in the tab
    page.locator("#sign-out").click()
    page.locator("#sign-in").wait_for()
    page.wait_for_function("() => sessionStorage.length === 0")
    # (the page forgets at once and tells the provider without waiting for its answer)
    wait_until(
        "a logout call to the stand-in Supabase Auth",
        lambda: any(path == "/auth/v1/logout" for path, _, _ in console.auth.calls),
        deadline_s=10,
    )
    page.close()


def test_the_inbox_shows_what_a_two_person_policy_asks_for(browser: Any, team: Team) -> None:
    # Given a policy of the team that needs two people for writes
    policy = team.client().post(
        "/approval-policies",
        json={
            "organization_id": team.organization_id,
            "tool_pattern": "write_file",
            "risk": "critical",
            "required_approvals": 2,
            "proposer_may_approve": True,
        },
    )
    assert policy.status_code == 201, policy.text
    action = team.propose({"tool": "write_file", "args": {"path": "two.txt", "content": "2"}})
    _, member_token = team.add("member")
    page = browser.new_page()
    page.goto(team.link())
    card = page.locator(f'li[data-action-id="{action["id"]}"]')
    card.wait_for(timeout=WITHIN_A_REFRESH_MS)
    assert card.locator(".risk").inner_text().lower() == "critical"
    assert "approvals 0 of 2" in card.locator(".meta").inner_text()

    # When the first person approves, the card says one more is needed
    card.locator("button.approve").click()
    card.locator(".outcome", has_text="your approval is recorded: 1 of 2, 1 more needed").wait_for()
    # and the action page lists that approval under the policy
    page.goto(team.link(f"actions/{action['id']}"))
    page.locator("#approvals li").first.wait_for()
    assert "you (owner)" in page.locator("#approvals").inner_text()
    assert f"policy {policy.json()['id']} version 1" in page.locator("dl").inner_text()

    # When a second person approves it, it is approved and the page shows it signed
    done = team.client(member_token).post(f"/actions/{action['id']}/approve", json={})
    assert done.json()["status"] == "approved"
    page.locator("#action-status", has_text="approved").wait_for(timeout=10000)
    page.locator("#signature-check", has_text="verified with key").wait_for()
    assert page.locator("#approvals li").count() == 2
    page.close()
