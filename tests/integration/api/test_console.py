"""The console is served by the app with a strict policy, and its inbox polls cheaply:
the pending list carries an ETag and answers 304 while nothing changed."""

from __future__ import annotations

import re

import httpx
import pytest

from agentplane.http.console import ASSETS, content_security_policy
from agentplane.settings import get_settings
from tests.support.api import MakeOrg
from tests.support.builders import new_agent, propose


async def test_the_console_page_is_served_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/console")
    CSP = content_security_policy(None)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP
    assert "'unsafe-eval'" not in CSP
    assert "frame-ancestors 'none'" in CSP
    assert page.headers["x-frame-options"] == "DENY"
    # No inline script and no script from elsewhere: every asset is the app's own.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    assert scripts
    assert all(body.strip() == "" for _, body in scripts)
    sources = re.findall(r'(?:src|href)="([^"#][^"]*)"', page.text)
    assert sources
    assert all(s.startswith("/console/static/") for s in sources)
    for source in sources:
        asset = await client.get(source)
        assert asset.status_code == 200, source
        assert asset.headers["content-security-policy"] == CSP
    # Every module the page loads is served, none writes HTML from data, and the token
    # is kept in sessionStorage only.
    modules = [name for name in ASSETS if name.endswith(".js")]
    assert {"app.js", "lib.js", "inbox.js", "action.js", "signin.js"} <= set(modules)
    scripts_text = ""
    for name in modules:
        asset = await client.get(f"/console/static/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"].startswith("text/javascript")
        scripts_text += asset.text
        for imported in re.findall(r'from "\./([^"]+)"', asset.text):
            assert imported in ASSETS, f"{name} imports {imported}, which is not served"
    for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert unsafe not in scripts_text, unsafe
    assert "sessionStorage" in scripts_text
    assert "localStorage" not in scripts_text
    assert (await client.get("/console/static/secrets.txt")).status_code == 404
    assert (await client.get("/console/static/..%2Fconsole.py")).status_code == 404


async def test_without_a_sign_in_provider_the_config_is_empty(client: httpx.AsyncClient) -> None:
    config = await client.get("/console/config.json")
    assert config.status_code == 200
    assert config.json() == {"supabase_url": None, "supabase_anon_key": None}
    assert "connect-src 'self';" in config.headers["content-security-policy"]


async def test_a_supabase_project_is_named_to_the_page_and_allowed_by_its_policy(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTPLANE_SUPABASE_URL", "https://abcd.supabase.co")
    monkeypatch.setenv("AGENTPLANE_SUPABASE_ANON_KEY", "anon-public-key")
    get_settings.cache_clear()
    try:
        config = await client.get("/console/config.json")
        page = await client.get("/console")
    finally:
        get_settings.cache_clear()
    assert config.json() == {
        "supabase_url": "https://abcd.supabase.co",
        "supabase_anon_key": "anon-public-key",
    }
    # The page may call this API and the project's auth endpoints, nothing else.
    assert "connect-src 'self' https://abcd.supabase.co;" in page.headers["content-security-policy"]


def test_a_supabase_url_must_be_an_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from agentplane.settings import Settings

    with pytest.raises(ValidationError, match="supabase_url"):
        Settings(supabase_url="https://abcd.supabase.co/auth/v1; script-src *")


async def test_the_pending_list_answers_304_while_nothing_changed(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    org = await make_org()
    agent = await new_agent(client, org)
    await propose(client, agent, org.member)
    first = await client.get("/actions?status=pending", headers=org.admin.headers)
    assert first.status_code == 200
    etag = first.headers["etag"]

    again = await client.get(
        "/actions?status=pending", headers={**org.admin.headers, "If-None-Match": etag}
    )
    assert again.status_code == 304
    assert again.content == b""

    # Another caller's view of the same list is another representation.
    assert first.headers["vary"] == "Authorization"
    await propose(client, agent, org.member)
    changed = await client.get(
        "/actions?status=pending", headers={**org.admin.headers, "If-None-Match": etag}
    )
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert len(changed.json()["items"]) == 2


async def test_the_queue_reads_newest_first_page_by_page(
    client: httpx.AsyncClient, make_org: MakeOrg
) -> None:
    # Given five actions proposed one after another
    org = await make_org()
    agent = await new_agent(client, org)
    ids = [(await propose(client, agent, org.member))["id"] for _ in range(5)]

    # When the inbox reads them newest first, two at a time
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = "/actions?order=newest&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(query, headers=org.admin.headers)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    # Then it gets each once, newest first; oldest first stays the default
    assert seen == ids[::-1]
    default = (await client.get("/actions", headers=org.admin.headers)).json()
    assert [item["id"] for item in default["items"]] == ids
    bad = await client.get("/actions?order=sideways", headers=org.admin.headers)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "order"
