"""The runner protocol: sessions, heartbeats, claims under lease, results."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["runner"])
