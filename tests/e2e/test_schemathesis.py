"""Schemathesis against the app's own OpenAPI document, over real HTTP.

Every operation gets a bounded number of generated requests with a valid token; no
response may be a 5xx, and every response must match the status codes, media types and
schemas the document declares.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from agentplane.apps import build_local_app
from tests.support.database import TEST_JWT_SECRET, ProvisionedDatabase
from tests.support.dev_server import free_port

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live_server(
    make_database: Callable[[], ProvisionedDatabase], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`agentplane dev --no-seed` on a fresh database, as a real process."""
    db = make_database()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db.app_url,
        "AGENTPLANE_MIGRATE_DATABASE_URL": db.admin_url,
        "AGENTPLANE_JWT_SECRET": TEST_JWT_SECRET,
        "AGENTPLANE_STAGE": "test",
        "AGENTPLANE_DATA_DIR": str(tmp_path_factory.mktemp("state")),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentplane.cli", "dev", "--no-seed", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the dev server did not become healthy")
    yield base
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def token_headers() -> dict[str, str]:
    import jwt

    now = int(time.time())
    token = jwt.encode(
        {
            "sub": str(uuid.uuid4()),
            "aud": "authenticated",
            "role": "authenticated",
            "iat": now,
            "exp": now + 3600,
        },
        TEST_JWT_SECRET,
        algorithm="HS256",
    )
    return {"Authorization": f"Bearer {token}"}


# Loaded from the app itself (no server needed); the calls go to the live server. Every
# operation is fuzzed: a turn's agent has no connection, so no request leaves the machine.
schema = schemathesis.openapi.from_dict(build_local_app().openapi())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_operation(
    case: schemathesis.Case, live_server: str, token_headers: dict[str, str]
) -> None:
    case.call_and_validate(base_url=live_server, headers=token_headers, checks=CHECKS)
