"""docs/api.md's route table lists exactly the routes each function's app serves."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from agentplane import apps

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
FUNCTIONS: dict[str, Callable[[], FastAPI]] = {
    "api": apps.build_api_app,
    "actions": apps.build_actions_app,
    "mirror": apps.build_mirror_app,
    "workflows": apps.build_workflows_app,
}
SEGMENT = re.compile(r"^((?:[A-Z]+, )*[A-Z]+) (/\S*)$")


def _normalize(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _documented() -> set[tuple[str, str, str]]:
    """(function, METHOD, path) for each route of the table under "## Routes"."""
    table = DOC.read_text().split("## Routes", 1)[1].split("\n## ", 1)[0]
    routes: set[tuple[str, str, str]] = set()
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] not in FUNCTIONS:
            continue
        for segment in cells[1].split(" · "):
            match = SEGMENT.match(segment)
            assert match, f"docs/api.md: cannot read {segment!r}"
            for method in match.group(1).split(", "):
                routes.add((cells[0], method, _normalize(match.group(2))))
    return routes


def _served() -> set[tuple[str, str, str]]:
    return {
        (name, method.upper(), _normalize(path))
        for name, build in FUNCTIONS.items()
        for path, operations in build().openapi()["paths"].items()
        for method in operations
    }


def test_docs_api_md_lists_every_served_route_and_no_other() -> None:
    documented, served = _documented(), _served()
    assert sorted(served - documented) == [], "served but missing from docs/api.md"
    assert sorted(documented - served) == [], "in docs/api.md but not served"
