"""Conditional GETs: a JSON body with a strong ETag, and 304 Not Modified when the client
already has it (`If-None-Match`). A console polling its inbox every few seconds then
costs the query and a hash, not the transfer and the re-render."""

from __future__ import annotations

import hashlib

from fastapi import Request, Response
from pydantic import BaseModel

# Every variant a list's ETag must vary with: the caller (lists are per caller).
VARY = "Authorization"


def etag_of(body: bytes) -> str:
    """A strong ETag of the exact bytes."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return etag in (t.strip().removeprefix("W/") for t in header.split(","))


def conditional_json(request: Request, model: BaseModel) -> Response:
    """`model` as JSON with its ETag, or an empty 304 when `If-None-Match` names it."""
    body = model.model_dump_json().encode()
    etag = etag_of(body)
    headers = {"ETag": etag, "Vary": VARY, "Cache-Control": "private, no-cache"}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(content=body, media_type="application/json", headers=headers)
