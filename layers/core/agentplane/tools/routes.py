"""The tool catalog for people: `GET /tools`."""

from __future__ import annotations

from fastapi import APIRouter

from agentplane.http.deps import UserDep
from agentplane.tools import service
from agentplane.tools.models import ToolCatalog

router = APIRouter(tags=["tools"])


@router.get("/tools", response_model=ToolCatalog)
async def list_tools(_caller: UserDep) -> ToolCatalog:
    """Every tool a runner may be asked to run: its arguments' JSON Schema, reversible or
    not (any signed-in user)."""
    return ToolCatalog(items=service.list_tools())
