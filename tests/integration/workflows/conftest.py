"""Workflow tests: the test app's runtime runs workflows on the local Step Functions
interpreter (the real ASL file) with the in-process dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from agentplane.apps import build_local_app
from agentplane.db.database import Database
from agentplane.runtime import Runtime
from agentplane.settings import Settings
from agentplane.workflows.local import LocalWorkflows
from tests.support.workflows import local_workflows


@pytest.fixture
def runtime(settings: Settings, database: Database) -> Runtime:
    """The test app's runtime."""
    return Runtime(settings, database)


@pytest.fixture
async def workflows(runtime: Runtime) -> AsyncIterator[LocalWorkflows]:
    """The interpreter and the dispatcher of this test."""
    async with local_workflows(runtime) as local:
        yield local


@pytest.fixture
async def client(runtime: Runtime, workflows: LocalWorkflows) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the local app on the workflows runtime."""
    transport = httpx.ASGITransport(app=build_local_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
