"""The approval console in a real headless Chromium (Debian's, driven by Playwright),
against `agentplane dev`: the link's token goes from the fragment to sessionStorage, the
inbox shows the exact payload with hidden characters made visible and its hash checked,
Reject has the focus, a key approves, a decision that lost a race says so, and sign-out
forgets the token."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.dev_server import STARTUP_DEADLINE_S, DevServer, dev_server, stop

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
# What the machine's closed network needs (docs of the browser setup on this machine).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RLO = "\u202e"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (fails, saying how to get it, when absent)."""
    from playwright.sync_api import sync_playwright

    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.fail(
            "the console's browser tests need Debian's chromium: apt-get install chromium"
            " (.ci/run installs it)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the dev server keeps its database and local secrets."""
    return tmp_path_factory.mktemp("console") / "state"


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[tuple[DevServer, str, str]]:
    """`agentplane dev`, its console link and the demo agent."""
    with dev_server(data_dir) as running:
        agent = running.wait_for(r"^agent\s+([0-9a-f-]{36})", STARTUP_DEADLINE_S).group(1)
        link = running.wait_for(r"^console: (\S+)", 10).group(1)
        running.wait_healthy(STARTUP_DEADLINE_S)
        yield running, link, agent
        assert stop(running) == 0


def _api(server: DevServer, link: str) -> httpx.Client:
    token = link.split("#token=", 1)[1]
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def test_a_person_decides_in_the_console(
    browser: Any, server: tuple[DevServer, str, str], tmp_path: Path
) -> None:
    running, link, agent = server
    api = _api(running, link)
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


def test_the_console_refuses_to_be_framed(browser: Any, server: tuple[DevServer, str, str]) -> None:
    running, _, _ = server
    page = browser.new_page()
    response = page.goto(f"{running.base_url}/console")
    assert response is not None
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    # Without a token the page asks for one and shows no inbox.
    assert page.locator("#signed-out").is_visible()
    assert not page.locator("#inbox").is_visible()
    page.close()


def _token_for(data_dir: Path, user_id: uuid.UUID) -> str:
    """A user token minted from the dev server's local secret (`agentplane token`)."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["AGENTPLANE_DATA_DIR"] = str(data_dir)
    minted = subprocess.run(
        [sys.executable, "-m", "agentplane.cli", "token", "--sub", str(user_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return minted.stdout.strip().splitlines()[-1]


def test_markup_is_text_a_viewer_cannot_decide_and_a_stranger_sees_nothing(
    browser: Any, server: tuple[DevServer, str, str], data_dir: Path
) -> None:
    running, link, agent = server
    owner = _api(running, link)
    payload = {
        "tool": "write_file",
        "args": {"path": "x.html", "content": "<script>window.pwned = 1</script>"},
    }
    proposed = owner.post(f"/agents/{agent}/actions", json={"payload": payload})
    assert proposed.status_code == 201, proposed.text
    action_id = proposed.json()["id"]
    organization = owner.get("/me").json()["organizations"][0]["organization_id"]
    viewer_id, stranger_id = uuid.uuid4(), uuid.uuid4()
    viewer_token = _token_for(data_dir, viewer_id)
    viewer = httpx.Client(
        base_url=running.base_url, headers={"Authorization": f"Bearer {viewer_token}"}
    )
    assert viewer.get("/me").status_code == 200  # their first request makes them known
    added = owner.post(
        f"/organizations/{organization}/members", json={"user_id": str(viewer_id), "role": "viewer"}
    )
    assert added.status_code == 201, added.text

    # A viewer's console shows the action as text, with its buttons off
    page = browser.new_page()
    page.goto(f"{running.base_url}/console#token={viewer_token}")
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
    stranger.goto(f"{running.base_url}/console#token={_token_for(data_dir, stranger_id)}")
    stranger.locator("#empty").wait_for()
    assert stranger.locator("#items li").count() == 0
    stranger.close()
