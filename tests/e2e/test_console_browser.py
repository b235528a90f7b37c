"""The approval console in a real headless Chromium (Debian's, driven by Playwright),
against `agentplane dev`: the link's token goes from the fragment to sessionStorage, the
inbox shows the exact payload with hidden characters made visible and its hash checked,
Reject has the focus, a key approves, a decision that lost a race says so, and sign-out
forgets the token."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Console

pytestmark = pytest.mark.e2e

RLO = "\u202e"


def test_a_person_decides_in_the_console(browser: Any, console: Console, tmp_path: Path) -> None:
    link, agent = console.link, console.agent
    api = console.client()
    tricky = {"tool": "write_file", "args": {"path": f"report{RLO}txt.exe", "content": "ok"}}
    first = api.post(f"/agents/{agent}/actions", json={"payload": tricky})
    assert first.status_code == 201, first.text
    plain = {"tool": "read_file", "args": {"path": "notes.txt"}}
    second = api.post(f"/agents/{agent}/actions", json={"payload": plain})
    assert second.status_code == 201, second.text

    page = browser.new_page()
    page.goto(link)
    page.wait_for_selector(f'li[data-action-id="{first.json()["id"]}"]')

    # The token moved from the address bar into this tab's sessionStorage
    assert "#token=" not in page.url
    assert page.evaluate("sessionStorage.getItem('agentplane.token')") == link.split("=", 1)[1]
    assert page.evaluate("localStorage.length") == 0
    # The payload is shown exactly, its hidden character made visible, its hash checked
    card = page.locator(f'li[data-action-id="{first.json()["id"]}"]')
    shown = card.locator("pre.payload").inner_text()
    assert "\\u{202E}" in shown
    assert RLO not in shown
    assert card.locator(".hash").inner_text() == f"sha256 {first.json()['payload_sha256']}"
    assert "left" in card.locator(".ttl").inner_text()
    # A picture of the inbox for a person to look at (under the test's tmp dir).
    page.screenshot(path=str(tmp_path / "inbox.png"), full_page=True)
    assert (tmp_path / "inbox.png").stat().st_size > 0
    # Reject has the focus: Enter would reject, never approve
    focused = page.evaluate(
        "[document.activeElement.className,"
        " document.activeElement.closest('li').getAttribute('data-action-id')]"
    )
    assert focused == ["reject", first.json()["id"]]

    # When the person presses "a" on the first, it is approved (signed by the server)
    page.keyboard.press("a")
    card.locator(".outcome", has_text="approved").wait_for()
    assert api.get(f"/actions/{first.json()['id']}").json()["status"] == "approved"

    # When someone else decides the second first, the console says who won the race
    other = page.locator(f'li[data-action-id="{second.json()["id"]}"]')
    assert api.post(f"/actions/{second.json()['id']}/approve", json={}).status_code == 200
    other.locator("button.reject").click()
    outcome = other.locator(".outcome")
    outcome.wait_for()
    page.wait_for_function("el => el.textContent.length > 0", arg=outcome.element_handle())
    assert "approved" in outcome.inner_text()
    assert api.get(f"/actions/{second.json()['id']}").json()["status"] == "approved"

    # And signing out forgets the token
    page.locator("#sign-out").click()
    assert page.evaluate("sessionStorage.getItem('agentplane.token')") is None
    assert page.locator("#signed-out").is_visible()
    page.close()


def test_the_console_refuses_to_be_framed(browser: Any, console: Console) -> None:
    page = browser.new_page()
    response = page.goto(f"{console.base_url}/console")
    assert response is not None
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    # Without a token the page asks for one and shows no inbox.
    assert page.locator("#signed-out").is_visible()
    assert not page.locator("#inbox").is_visible()
    page.close()


def test_markup_is_text_a_viewer_cannot_decide_and_a_stranger_sees_nothing(
    browser: Any, console: Console
) -> None:
    agent = console.agent
    owner = console.client()
    payload = {
        "tool": "write_file",
        "args": {"path": "x.html", "content": "<script>window.pwned = 1</script>"},
    }
    proposed = owner.post(f"/agents/{agent}/actions", json={"payload": payload})
    assert proposed.status_code == 201, proposed.text
    action_id = proposed.json()["id"]
    _, viewer_token = console.add_member("viewer")
    viewer = console.client(viewer_token)

    # A viewer's console shows the action as text, with its buttons off
    page = browser.new_page()
    page.goto(console.link_for(viewer_token))
    card = page.locator(f'li[data-action-id="{action_id}"]')
    card.wait_for()
    assert "<script>window.pwned = 1</script>" in card.locator("pre.payload").inner_text()
    assert page.evaluate("window.pwned") is None
    assert card.locator("button.approve").is_disabled()
    assert card.locator("button.reject").is_disabled()
    # and the API refuses the viewer anyway
    assert viewer.post(f"/actions/{action_id}/approve", json={}).status_code == 403
    page.close()

    # A stranger's console shows none of it
    stranger = browser.new_page()
    stranger.goto(console.link_for(console.token_for(uuid.uuid4())))
    stranger.locator("#empty").wait_for()
    assert stranger.locator("#items li").count() == 0
    stranger.close()
