"""Mirror tests: the test app's runtime runs a started report as a task (as `make dev`
does), so a test can wait for it through the API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from agentplane.apps import build_local_app
from agentplane.db.database import Database
from agentplane.mirror.service import local_runner
from agentplane.runtime import Runtime
from agentplane.settings import Settings


@pytest.fixture
def runtime(settings: Settings, database: Database) -> Runtime:
    """The test app's runtime, running reports in-process."""
    runtime = Runtime(settings, database)
    runtime.mirror_runner = local_runner(runtime)
    return runtime


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the local app on that runtime."""
    transport = httpx.ASGITransport(app=build_local_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
