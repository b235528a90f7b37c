"""`make help` lists every target a person can run, each with its one-line help."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.make import make_command

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()


def _phony() -> list[str]:
    (line,) = re.findall(r"^\.PHONY:(.*)$", MAKEFILE, flags=re.MULTILINE)
    return line.split()


def test_every_phony_target_has_a_help_line() -> None:
    helped = set(re.findall(r"^([^\s:#]+):[^\n]*## ", MAKEFILE, flags=re.MULTILINE))
    assert [t for t in _phony() if t not in helped] == []


def test_make_help_lists_every_phony_target() -> None:
    out = subprocess.run(
        [make_command(), "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    listed = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert sorted(listed) == sorted(_phony())


def _prerequisites(target: str) -> list[str]:
    (line,) = re.findall(rf"^{re.escape(target)}:([^#\n]*)", MAKEFILE, flags=re.MULTILINE)
    return line.split()


def test_make_dev_installs_only_what_the_server_needs() -> None:
    # The dev tools take longer to install than everything else together: `make dev`
    # goes without them; the targets that run them install them.
    assert _prerequisites("dev") == ["install-local"]
    for target in ("test", "unit", "integration", "e2e", "lint", "typecheck", "cfn-lint"):
        assert "install" in _prerequisites(target), target
    assert "'.[local]'" in MAKEFILE
    assert "'.[dev]'" in MAKEFILE


def _dry_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [make_command(), "--no-print-directory", "-n", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_make_deploy_builds_then_migrates_then_deploys(env: str) -> None:
    lines = _dry_run("deploy", f"ENV={env}").stdout.splitlines()

    def first(needle: str) -> int:
        return next(i for i, line in enumerate(lines) if needle in line)

    build = first("sam build")
    dry_run = first("agentplane db migrate --dry-run")
    apply = next(
        i for i, line in enumerate(lines) if line.rstrip().endswith("agentplane db migrate")
    )
    deploy = first("sam deploy")
    assert build < dry_run < apply < deploy
    assert lines[deploy].rstrip().endswith(f"sam deploy --config-env {env}")
    # The migrator's own secret, for this stage; the app's secret is not passed.
    secret = f'AGENTPLANE_MIGRATE_DATABASE_SECRET_NAME="agentplane/{env}/migrate-database-url"'
    for i in (dry_run, apply):
        assert secret in lines[i]
        assert "AGENTPLANE_DATABASE_SECRET_NAME" not in lines[i].replace("MIGRATE_DATABASE", "")


def test_make_deploy_refuses_another_env() -> None:
    result = _dry_run("deploy", "ENV=staging")
    assert result.returncode != 0
    assert "ENV must be dev or prod" in result.stderr
    assert "sam" not in result.stdout
