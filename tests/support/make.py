"""GNU make, which `make test` itself runs under: a test that needs it fails without it."""

from __future__ import annotations

import shutil

import pytest


def make_command() -> str:
    """The path of `make`, or a failure that says why the test cannot run."""
    found = shutil.which("make")
    if found is None:
        pytest.fail("these tests run the Makefile: install GNU make (apt-get install make)")
    return found
