"""/console: the approval console's page and assets, served by the app itself (no CDN,
no build step), with a strict Content-Security-Policy. The page needs no token to load;
it calls the same API with the user's bearer token and enforces nothing itself."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, Response

from agentplane.errors import NotFoundError

router = APIRouter(tags=["console"])

ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
# No inline script or style, no eval, nothing framed, nothing fetched but this origin.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
    " img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=8)
def _asset(name: str) -> bytes:
    return resources.files("agentplane.console").joinpath("static", name).read_bytes()


@router.get("/console", response_class=Response)
async def console_page() -> Response:
    """The console's page."""
    return Response(
        _asset("index.html"), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS
    )


@router.get("/console/static/{name}", response_class=Response)
async def console_asset(name: str) -> Response:
    """One of the console's assets (404 for anything else)."""
    if name not in ASSETS:
        raise NotFoundError(f"no console asset {name}")
    return Response(_asset(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)
