"""`make help` lists every target a person can run, each with its one-line help."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()


def _phony() -> list[str]:
    (line,) = re.findall(r"^\.PHONY:(.*)$", MAKEFILE, flags=re.MULTILINE)
    return line.split()


def test_every_phony_target_has_a_help_line() -> None:
    helped = set(re.findall(r"^([^\s:#]+):[^\n]*## ", MAKEFILE, flags=re.MULTILINE))
    assert [t for t in _phony() if t not in helped] == []


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_every_phony_target() -> None:
    out = subprocess.run(
        ["make", "--no-print-directory", "help"],
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
