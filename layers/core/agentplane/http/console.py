"""/console: the approval console's page and assets, served by the app itself (no CDN,
no build step), with a strict Content-Security-Policy. The page needs no token to load;
it calls the same API with the user's bearer token and enforces nothing itself."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, Response

from agentplane.errors import NotFoundError
from agentplane.models import OutputModel
from agentplane.settings import get_settings

router = APIRouter(tags=["console"])

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
# The page's modules and styles, by name: what ships in the package, nothing else.
ASSETS = {
    entry.name: MEDIA_TYPES[suffix]
    for entry in resources.files("agentplane.console").joinpath("static").iterdir()
    if (suffix := entry.name[entry.name.rfind(".") :]) in MEDIA_TYPES
}


class ConsoleConfig(OutputModel):
    """What the page needs before anyone signs in: the Supabase project it signs people in
    through (the anon key is public by design), or nulls for token links only."""

    supabase_url: str | None
    supabase_anon_key: str | None


@lru_cache(maxsize=4)
def content_security_policy(supabase_url: str | None) -> str:
    """No inline script or style, no eval, nothing framed; requests go to this origin and
    to the sign-in provider's, when there is one."""
    connect = "'self'" + (f" {supabase_url.rstrip('/')}" if supabase_url else "")
    return (
        f"default-src 'none'; script-src 'self'; style-src 'self'; connect-src {connect};"
        " img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def security_headers() -> dict[str, str]:
    """The headers of the page and of every asset."""
    return {
        "Content-Security-Policy": content_security_policy(get_settings().supabase_url),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


@lru_cache(maxsize=32)
def _asset(name: str) -> bytes:
    return resources.files("agentplane.console").joinpath("static", name).read_bytes()


@router.get("/console", response_class=Response)
async def console_page() -> Response:
    """The console's page."""
    return Response(
        _asset("index.html"), media_type="text/html; charset=utf-8", headers=security_headers()
    )


@router.get("/console/config.json", response_model=ConsoleConfig)
async def console_config() -> Response:
    """The sign-in provider the page uses, if any."""
    settings = get_settings()
    body = ConsoleConfig(
        supabase_url=settings.supabase_url, supabase_anon_key=settings.supabase_anon_key
    )
    return Response(
        body.model_dump_json(), media_type="application/json", headers=security_headers()
    )


@router.get("/console/static/{name}", response_class=Response)
async def console_asset(name: str) -> Response:
    """One of the console's assets (404 for anything else)."""
    if name not in ASSETS:
        raise NotFoundError(f"no console asset {name}")
    return Response(_asset(name), media_type=ASSETS[name], headers=security_headers())
