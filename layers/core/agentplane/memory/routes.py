"""/memory-nodes routes."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/memory-nodes", tags=["memory"])
