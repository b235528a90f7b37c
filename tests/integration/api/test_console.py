"""The console is served by the app with a strict policy, and its inbox polls cheaply:
the pending list carries an ETag and answers 304 while nothing changed."""

from __future__ import annotations

import re

import httpx

from agentplane.http.console import CSP
from tests.support.api import MakeOrg
from tests.support.builders import new_agent, propose


async def test_the_console_page_is_served_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/console")

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
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources
    assert all(s.startswith("/console/static/") for s in sources)
    for source in sources:
        asset = await client.get(source)
        assert asset.status_code == 200, source
        assert asset.headers["content-security-policy"] == CSP
    script = (await client.get("/console/static/console.js")).text
    assert "innerHTML" not in script
    assert "sessionStorage" in script
    assert "localStorage" not in script
    assert (await client.get("/console/static/secrets.txt")).status_code == 404


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
