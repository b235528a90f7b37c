"""Every function's handler, on every sample event in events/, as Lambda would run it.

Each event runs in a fresh process (a cold start) through `python -m agentplane.invoke`,
configured only by environment variables, against this test's database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.database import TEST_JWT_SECRET, ProvisionedDatabase

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"

# event file -> (function, what the result must show)
EXPECTED: dict[str, tuple[str, dict[str, Any]]] = {
    "api_get_health.json": ("api", {"statusCode": 200}),
    "api_get_me.json": ("api", {"statusCode": 200}),
    "api_post_organizations.json": ("api", {"statusCode": 201}),
    "api_get_projects.json": ("api", {"statusCode": 200}),
    "heartbeat_schedule.json": ("heartbeat", {"sessions_offline": 0}),
    "mirror_nightly.json": ("mirror", {"queued": []}),
    # An action that does not exist for the demo user.
    "actions_post_approve.json": ("actions", {"statusCode": 404}),
    # The sample carries a placeholder, not a live runner token.
    "actions_post_runner_claim.json": ("actions", {"statusCode": 401}),
    "actions_get_signing_key.json": ("actions", {"statusCode": 200}),
    "mirror_async.json": ("mirror", {"status": "not_found"}),
}


def _env(db: ProvisionedDatabase, data_dir: Path) -> dict[str, str]:
    """What SAM would set: where the database is, the token secret; nothing else."""
    return {
        **os.environ,
        "DATABASE_URL": db.app_url,
        "AGENTPLANE_MIGRATE_DATABASE_URL": db.admin_url,
        "AGENTPLANE_JWT_SECRET": TEST_JWT_SECRET,
        "AGENTPLANE_STAGE": "test",
        "AGENTPLANE_DATA_DIR": str(data_dir),
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


def test_every_event_file_has_an_expectation() -> None:
    assert {p.name for p in EVENTS.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("event_file", sorted(EXPECTED))
def test_handler_on_event(event_file: str, fresh_db: ProvisionedDatabase, tmp_path: Path) -> None:
    function, expected = EXPECTED[event_file]
    env = _env(fresh_db, tmp_path)
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentplane.invoke",
            function,
            str(EVENTS / event_file),
            "--output",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for key, value in expected.items():
        assert result[key] == value, result
    if "statusCode" in result:
        # Every HTTP response carries the API Gateway request id as its correlation id.
        event = json.loads((EVENTS / event_file).read_text())
        headers = {k.lower(): v for k, v in result["headers"].items()}
        assert headers["x-request-id"] == event["requestContext"]["requestId"]
        if result["statusCode"] >= 400:
            assert headers["content-type"] == "application/problem+json"


def test_a_warm_handler_reuses_its_pool_across_invocations(
    fresh_db: ProvisionedDatabase, tmp_path: Path
) -> None:
    # Lambda keeps the process (and Mangum's event loop) between invocations; the pool
    # opened on the first must serve the next ones.
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentplane.invoke",
            "api",
            str(EVENTS / "api_get_me.json"),
            "--repeat",
            "3",
            "--output",
            str(out),
        ],
        cwd=ROOT,
        env=_env(fresh_db, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["statusCode"] for r in json.loads(out.read_text())] == [200, 200, 200]
