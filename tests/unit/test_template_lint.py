"""`make cfn-lint` (part of `make lint`) runs `sam validate --lint` only where the SAM CLI is.

Run against stand-in `cfn-lint` and `sam` scripts, so the test needs neither installed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.make import make_command

ROOT = Path(__file__).resolve().parents[2]


def _script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _lint(tmp_path: Path, sam: str | None) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "venv" / "bin"
    _script(bin_dir / "cfn-lint", 'echo "cfn-lint $*"')
    sam_venv = tmp_path / "venv-sam"
    if sam is not None:
        _script(sam_venv / "bin" / "sam", sam)
    return subprocess.run(
        [
            make_command(),
            "-s",
            "-o",
            "install",
            "cfn-lint",
            f"BIN={bin_dir}",
            f"SAM_VENV={sam_venv}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_without_the_sam_cli_lint_says_it_skipped_and_passes(tmp_path: Path) -> None:
    result = _lint(tmp_path, sam=None)
    assert result.returncode == 0, result.stderr
    assert "cfn-lint template.yaml" in result.stdout
    skipped = [line for line in result.stdout.splitlines() if "sam validate skipped" in line]
    assert len(skipped) == 1
    assert f"make {tmp_path / 'venv-sam'}/bin/sam" in skipped[0]


def test_with_the_sam_cli_lint_runs_sam_validate_with_a_region(tmp_path: Path) -> None:
    result = _lint(tmp_path, sam='echo "sam $*"')
    assert result.returncode == 0, result.stderr
    assert "sam validate --lint --region us-east-1 --template template.yaml" in result.stdout
    assert "skipped" not in result.stdout


def test_a_failing_sam_validate_fails_lint(tmp_path: Path) -> None:
    result = _lint(tmp_path, sam="exit 1")
    assert result.returncode != 0
