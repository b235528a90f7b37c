"""GET /health: liveness and database reachability, no authentication."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from agentplane import __version__
from agentplane.errors import ServiceUnavailableError
from agentplane.http.deps import RuntimeDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The service is up and its database answers."""

    status: Literal["ok"]
    database: Literal["ok"]
    version: str


@router.get("/health", response_model=Health)
async def health(runtime: RuntimeDep) -> Health:
    """200 when the database answers `select 1`, 503 problem+json otherwise."""
    if not await runtime.database.ping():
        raise ServiceUnavailableError("the database did not answer")
    return Health(status="ok", database="ok", version=__version__)
