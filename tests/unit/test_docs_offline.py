"""`/docs` and `/redoc` work without internet: every asset they load is served by the app."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest

from agentplane.apps import build_local_app


class _Assets(HTMLParser):
    """The URLs a page loads: script sources, stylesheets and icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        url = found.get("src") if tag == "script" else found.get("href") if tag == "link" else None
        if url:
            self.urls.append(url)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_doc_page_loads_only_assets_the_app_serves(page: str) -> None:
    app = build_local_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        # Given the page
        resp = await client.get(page)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/html")

        # Then it names no URL of another host, and each asset it loads is local and served
        assert re.findall(r"https?://[^\s\"'<>]+", resp.text) == []
        parser = _Assets()
        parser.feed(resp.text)
        assert parser.urls, resp.text
        for url in parser.urls:
            assert url.startswith("/"), url
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert asset.content, url
        # and the document it renders is there too
        assert (await client.get("/openapi.json")).status_code == 200
