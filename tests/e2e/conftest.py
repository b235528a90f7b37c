"""Shared fixtures of the console's browser tests: a headless Chromium (Debian's, driven
by Playwright) per module and one `agentplane dev` for the whole session, signed in to
through a token link or through a stand-in for Supabase Auth on 127.0.0.1
(tests/support/console.py)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.console import (
    ANON_KEY,
    CHROMIUM,
    CHROMIUM_ARGS,
    Console,
    FakeSupabaseAuth,
    Team,
    auth_handler,
    new_team,
)
from tests.support.dev_server import STARTUP_DEADLINE_S, dev_server, stop


# One browser per module, not per session: Playwright's sync API keeps its event loop
# marked running while it is open, and the async tests of later modules need theirs.
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


@pytest.fixture
def team(console: Console, request: pytest.FixtureRequest) -> Team:
    """A new team for this test alone."""
    return new_team(console, request.node.name[:40].replace("_", "-"))


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """`agentplane dev` for the session, with a stand-in Supabase Auth it signs in through."""
    data_dir = tmp_path_factory.mktemp("console") / "state"
    auth = FakeSupabaseAuth(data_dir)
    http = ThreadingHTTPServer(("127.0.0.1", 0), auth_handler(auth))
    auth.url = f"http://127.0.0.1:{http.server_address[1]}"
    threading.Thread(target=http.serve_forever, daemon=True).start()
    env = {"AGENTPLANE_SUPABASE_URL": auth.url, "AGENTPLANE_SUPABASE_ANON_KEY": ANON_KEY}
    try:
        with dev_server(data_dir, env) as running:
            agent = running.wait_for(r"^agent\s+([0-9a-f-]{36})", STARTUP_DEADLINE_S).group(1)
            link = running.wait_for(r"^console: (\S+)", 10).group(1)
            running.wait_healthy(STARTUP_DEADLINE_S)
            yield Console(running, link, agent, data_dir, auth)
            assert stop(running) == 0
    finally:
        http.shutdown()
