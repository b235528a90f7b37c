"""Events tests: a runtime with few, fast webhook retries, and the local app on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agentplane.apps import build_local_app
from agentplane.db.database import Database
from agentplane.runtime import Runtime
from agentplane.settings import Settings
from tests.support.database import TEST_JWT_SECRET
from tests.support.webhooks import MAX_ATTEMPTS


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Test settings with three tries per delivery, a quarter second apart at first: longer
    than a try itself, so a retry that did not wait shows."""
    return Settings(
        stage="test",
        jwt_secret=TEST_JWT_SECRET,
        data_dir=tmp_path / ".agentplane",
        webhook_max_attempts=MAX_ATTEMPTS,
        webhook_backoff_seconds=0.25,
        webhook_timeout_seconds=5,
    )


@pytest.fixture
def runtime(settings: Settings, database: Database) -> Runtime:
    """The test app's runtime."""
    return Runtime(settings, database)


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the local app on this runtime."""
    transport = httpx.ASGITransport(app=build_local_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
