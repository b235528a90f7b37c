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
    "mirror_nightly.json": ("mirror", {"queued": [], "archived": 0}),
    # invoke proposes a pending action of the demo agent for the sample to approve,
    "actions_post_approve.json": ("actions", {"statusCode": 200}),
    # and mints a runner token and registers a session for the claim (an empty queue).
    "actions_post_runner_claim.json": ("actions", {"statusCode": 200}),
    "actions_get_signing_key.json": ("actions", {"statusCode": 200}),
    # The runner doorbell's WebSocket API: a $connect with a token that is not live.
    "actions_runner_socket_connect.json": ("actions", {"statusCode": 401}),
    "mirror_async.json": ("mirror", {"status": "not_found"}),
    # invoke writes a run of a demo workflow (approval gate -> llm node) for these:
    "workflows_get_workflows.json": ("workflows", {"statusCode": 200}),
    "workflows_step.json": ("workflows", {"status": "running"}),
    "workflows_wait_node.json": ("workflows", {"node_id": "gate"}),
    # the demo agent has no model connection: the node fails, saying so
    "workflows_run_node.json": ("workflows", {}),
    "workflows_fail.json": ("workflows", {"status": "failed"}),
    "workflows_dispatch.json": ("workflows", {"delivered": 0}),
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
        # and its body is printed as text, not base64
        assert result["isBase64Encoded"] is False
        json.loads(result["body"])
    if event_file == "actions_post_approve.json":
        assert json.loads(result["body"])["status"] == "approved"
    if event_file == "workflows_step.json":
        assert result["single"]["id"] == "gate"
        assert result["single"]["type"] == "approval"
    if event_file == "workflows_run_node.json":
        [failed] = result["results"]
        assert failed["status"] == "failed"
        assert failed["error"]["Error"] == "Llm.NotConnected"


def test_a_heartbeat_that_reaps_nothing_emits_its_metrics_and_no_log_line(
    fresh_db: ProvisionedDatabase, tmp_path: Path
) -> None:
    # Given nothing stale, when the schedule fires
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentplane.invoke",
            "heartbeat",
            str(EVENTS / "heartbeat_schedule.json"),
            "--output",
            str(tmp_path / "result.json"),
        ],
        cwd=ROOT,
        env=_env(fresh_db, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    # Then stdout (CloudWatch's) holds the metrics, each zero, and no log line
    (emitted,) = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert "message" not in emitted, emitted
    assert emitted["SessionsReaped"] == [0.0]
    assert emitted["ApprovalsExpired"] == [0.0]


@pytest.mark.parametrize(
    "event_file", ["api_get_me.json", "heartbeat_schedule.json", "mirror_nightly.json"]
)
def test_a_warm_handler_reuses_its_pool_across_invocations(
    event_file: str, fresh_db: ProvisionedDatabase, tmp_path: Path
) -> None:
    # Lambda keeps the process (and its one event loop) between invocations; the pool
    # opened on the first must serve the next ones, for HTTP and jobs alike.
    function, expected = EXPECTED[event_file]
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentplane.invoke",
            function,
            str(EVENTS / event_file),
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
    results = json.loads(out.read_text())
    assert [{k: r[k] for k in expected} for r in results] == [expected] * 3


WEB_STACK = ("fastapi", "starlette", "mangum")

# Runs in a fresh interpreter: imports the job functions as Lambda would, handles their
# events, and reports which heavy modules were imported at each point: the web stack, and
# the X-Ray SDK, which only a process that traces may load (tracing is off outside Lambda).
JOBS_WITHOUT_WEB_STACK = """
import json, sys
from pathlib import Path

def web_stack():
    heavy = {"fastapi", "starlette", "mangum", "aws_xray_sdk"}
    return sorted({m.split(".")[0] for m in sys.modules} & heavy)

import functions.heartbeat.app as heartbeat
import functions.mirror.app as mirror
import functions.workflows.app as workflows
report = {"imported": web_stack()}

from agentplane.invoke import LocalContext
events = Path("events")
def handle(function, module, name):
    event = json.loads((events / name).read_text())
    return module.handler(event, LocalContext(function_name="agentplane-" + function))

report["heartbeat"] = handle("heartbeat", heartbeat, "heartbeat_schedule.json")
report["nightly"] = handle("mirror", mirror, "mirror_nightly.json")
report["report"] = handle("mirror", mirror, "mirror_async.json")
report["dispatch"] = handle("workflows", workflows, "workflows_dispatch.json")
report["after_jobs"] = web_stack()
# The mirror function's routes: its app is built on the first HTTP event.
report["http_status"] = handle("mirror", mirror, "api_get_health.json")["statusCode"]
report["after_http"] = web_stack()
print(json.dumps(report))
"""


def test_job_functions_run_without_the_web_stack(
    fresh_db: ProvisionedDatabase, tmp_path: Path
) -> None:
    # Given a fresh process, configured as SAM would (DATABASE_URL of this test's database)
    env = _env(fresh_db, tmp_path)

    # When it imports the heartbeat, mirror and workflows functions and handles their job
    # events
    proc = subprocess.run(
        [sys.executable, "-c", JOBS_WITHOUT_WEB_STACK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])

    # Then neither the imports nor the jobs loaded FastAPI, Starlette, Mangum or X-Ray
    assert report["imported"] == []
    assert report["heartbeat"]["sessions_offline"] == 0
    assert report["nightly"] == {"queued": [], "archived": 0}
    assert report["report"]["status"] == "not_found"
    assert report["dispatch"]["delivered"] == 0
    assert report["after_jobs"] == []
    # and the mirror function's first HTTP event builds its app (no routes yet: 404)
    assert report["http_status"] == 404
    assert report["after_http"] == sorted(WEB_STACK)  # and still no X-Ray SDK


# Runs in a fresh interpreter: heartbeat twice, an HTTP request that reads the database,
# heartbeat again; after each, which pool, which loop and which server connection.
ONE_POOL_PER_PROCESS = """
import asyncio, json
from pathlib import Path

import functions.api.app as api
import functions.heartbeat.app as heartbeat
from agentplane.handlers.loop import process_loop, run
from agentplane.invoke import LocalContext
from agentplane.runtime import get_runtime

async def backend_pid(db):
    async with db.service("test: which connection the jobs used") as tx:
        return (await (await tx.execute("select pg_backend_pid()")).fetchone())[0]

def handle(function, module, name):
    event = json.loads((Path("events") / name).read_text())
    return module.handler(event, LocalContext(function_name="agentplane-" + function))

seen = []
for function, module, name in [
    ("heartbeat", heartbeat, "heartbeat_schedule.json"),
    ("heartbeat", heartbeat, "heartbeat_schedule.json"),
    ("api", api, "api_get_health.json"),
    ("heartbeat", heartbeat, "heartbeat_schedule.json"),
]:
    result = handle(function, module, name)
    db = get_runtime().database
    seen.append({
        "ok": result.get("statusCode", 200) == 200,
        "database": id(db),
        "loop": id(process_loop()),
        "backend": run(backend_pid(db)),
    })
loop = process_loop()
print(json.dumps({
    "seen": seen,
    "loop_closed": loop.is_closed(),
    "tasks_waiting_on_loop": sorted(t.get_name() for t in asyncio.all_tasks(loop)),
}))
"""


def test_warm_invocations_share_one_pool_on_one_loop(
    fresh_db: ProvisionedDatabase, tmp_path: Path
) -> None:
    # Given one process (a warm Lambda container), when jobs and an HTTP request that
    # reads the database are handled one after the other
    proc = subprocess.run(
        [sys.executable, "-c", ONE_POOL_PER_PROCESS],
        cwd=ROOT,
        env=_env(fresh_db, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])

    # Then every invocation succeeded on the same Database, loop and server connection:
    # the pool was opened once and kept its connection between invocations
    seen = report["seen"]
    assert all(s["ok"] for s in seen), seen
    assert len({s["database"] for s in seen}) == 1
    assert len({s["loop"] for s in seen}) == 1
    assert len({s["backend"] for s in seen}) == 1
    # and the loop the pool was opened on is still open, its workers waiting on it
    assert report["loop_closed"] is False
    assert any(name.endswith("-scheduler") for name in report["tasks_waiting_on_loop"])
