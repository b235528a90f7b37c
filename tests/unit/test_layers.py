"""Layers point one way (DESIGN.md §1): routes parse and shape, services hold the SQL.

Read from the source with `ast`, so a route that runs SQL, or a domain module that
reaches up into `http/`, fails here by name, whatever the tests of its behaviour say.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "core" / "agentplane"

# What running SQL looks like from Python here: psycopg itself, the shared row helpers,
# or a cursor or connection method.
SQL_MODULES = ("psycopg", "agentplane.db.crud", "agentplane.db.rows")
SQL_NAMES = {"fetch_page", "fetch_one", "fetch_all", "fetch_value", "Table", "require_visible"}
SQL_METHODS = {"execute", "executemany", "cursor", "fetchone", "fetchall", "copy"}


def _modules(pattern: str) -> list[Path]:
    return sorted(PACKAGE.rglob(pattern))


def _imports(tree: ast.AST) -> list[tuple[str, str | None]]:
    """(module, name) for every import; name is None for `import module`."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.extend((node.module, alias.name) for alias in node.names)
    return found


def _sql_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    uses = []
    for module, name in _imports(tree):
        if module.startswith(SQL_MODULES) or name in SQL_NAMES:
            uses.append(f"imports {module}{'.' + name if name else ''}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SQL_METHODS
        ):
            uses.append(f"line {node.lineno}: calls .{node.func.attr}()")
    return uses


ROUTES = _modules("routes.py")


@pytest.mark.parametrize("path", ROUTES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_routes_run_no_sql(path: Path) -> None:
    assert _sql_uses(path) == [], f"{path.name} must call its domain's service instead"


def test_every_domain_with_routes_has_a_service() -> None:
    missing = [
        str(p.parent.relative_to(PACKAGE))
        for p in ROUTES
        if p.parent.name != "http" and not (p.parent / "service.py").exists()
    ]
    assert missing == []


# The edge: only these may import agentplane.http (FastAPI wiring and the app builders),
# by file name or by path in the package.
HTTP_EDGE = {"apps.py", "devserver.py", "handlers/http.py", "cli.py", "routes.py"}


def _at_the_edge(relative: Path) -> bool:
    return relative.parts[0] == "http" or bool({relative.name, relative.as_posix()} & HTTP_EDGE)


def _below_http_importing(prefixes: tuple[str, ...]) -> list[str]:
    """Modules below the HTTP edge that import a module starting with one of `prefixes`."""
    offenders = []
    for path in _modules("*.py"):
        relative = path.relative_to(PACKAGE)
        if _at_the_edge(relative):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for module, _ in _imports(tree):
            if module in prefixes or module.startswith(tuple(f"{p}." for p in prefixes)):
                offenders.append(f"{relative} imports {module}")
    return offenders


def test_below_http_nothing_imports_http() -> None:
    assert _below_http_importing(("agentplane.http",)) == []


def test_db_runner_and_domains_import_no_web_framework() -> None:
    assert _below_http_importing(("fastapi", "starlette", "mangum")) == []
