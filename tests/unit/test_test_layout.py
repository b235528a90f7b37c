"""No test module imports another: what tests share lives in tests/support.

A helper imported from a test module (or a conftest) drags that module's tests and
fixtures along and breaks when it is edited for its own tests; builders and fakes that
several suites use are plain modules under tests/support. Read with `ast`, so an import
names its file and line here whatever runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
SUPPORT = "tests.support"


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imported(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, module) for every module the source imports; `from a import b` names a.b
    when b is a module of its own."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((node.lineno, candidate if _is_module(candidate) else base))
    return found


def _is_test_module(name: str) -> bool:
    inside = name == "tests" or name.startswith("tests.")
    support = name == SUPPORT or name.startswith(SUPPORT + ".")
    return inside and not support


def _test_imports(path: Path) -> list[str]:
    module = _module_of(path)
    imports = _imported(path.read_text(), module, path.name == "__init__.py")
    return [
        f"line {line}: {name}" for line, name in imports if _is_test_module(name) and name != module
    ]


MODULES = sorted(TESTS.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(TESTS)))
def test_imports_nothing_from_another_test_module(path: Path) -> None:
    assert _test_imports(path) == [], f"move what {path.name} needs into tests/support"


def test_every_test_module_is_read() -> None:
    names = {_module_of(p) for p in MODULES}
    assert {"tests.conftest", "tests.unit.test_test_layout", "tests.support.builders"} <= names


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from tests.conftest import X", "tests.integration.test_x", ["tests.conftest"]),
        ("from tests import conftest as fixtures", "tests.unit.test_x", ["tests.conftest"]),
        (
            "import tests.integration.api.test_agents",
            "tests.integration.test_x",
            ["tests.integration.api.test_agents"],
        ),
        (
            "from .conftest import X",
            "tests.integration.api.test_x",
            ["tests.integration.api.conftest"],
        ),
        (
            "from . import test_agents",
            "tests.integration.api.test_x",
            ["tests.integration.api.test_agents"],
        ),
        (
            "from ..support.api import User",
            "tests.integration.test_x",
            ["tests.support.api"],
        ),
        ("from tests.support.api import User", "tests.integration.test_x", ["tests.support.api"]),
        ("from tests.support import builders", "tests.unit.test_x", ["tests.support.builders"]),
    ],
)
def test_imports_are_resolved_to_the_module_they_load(
    source: str, module: str, expected: list[str]
) -> None:
    assert [name for _, name in _imported(source, module)] == expected


def test_only_tests_outside_support_count_as_test_modules() -> None:
    assert _is_test_module("tests.conftest")
    assert _is_test_module("tests.integration.api.test_runner_protocol")
    assert _is_test_module("tests")
    assert not _is_test_module("tests.support")
    assert not _is_test_module("tests.support.builders")
    assert not _is_test_module("tests_extra")
    assert not _is_test_module("agentplane.db")
