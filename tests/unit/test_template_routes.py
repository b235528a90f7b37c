"""template.yaml declares, for each function, exactly the routes its app serves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from agentplane import apps

ROOT = Path(__file__).resolve().parents[2]
HTTP_FUNCTIONS = {
    "api": apps.build_api_app,
    "actions": apps.build_actions_app,
    "mirror": apps.build_mirror_app,
    "workflows": apps.build_workflows_app,
}
# Served by FastAPI itself, not part of the API.
DOC_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _normalize(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _template() -> dict[str, Any]:
    template, matches = decode(str(ROOT / "template.yaml"))
    assert not matches, matches
    assert template is not None
    return dict(template)


def _declared() -> dict[str, set[tuple[str, str]]]:
    declared: dict[str, set[tuple[str, str]]] = {}
    for resource in _template()["Resources"].values():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        name = Path(resource["Properties"]["CodeUri"]).name
        routes = declared.setdefault(name, set())
        for event in (resource["Properties"].get("Events") or {}).values():
            if event["Type"] == "HttpApi":
                props = event["Properties"]
                routes.add((props["Method"].upper(), _normalize(props["Path"])))
    return declared


def _served(name: str) -> set[tuple[str, str]]:
    schema = HTTP_FUNCTIONS[name]().openapi()
    return {
        (method.upper(), _normalize(path))
        for path, operations in schema["paths"].items()
        if path not in DOC_PATHS
        for method in operations
    }


def test_every_function_directory_is_in_the_template() -> None:
    on_disk = {p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists()}
    assert set(_declared()) == on_disk


@pytest.mark.parametrize("name", sorted(HTTP_FUNCTIONS))
def test_template_routes_equal_served_routes(name: str) -> None:
    declared, served = _declared()[name], _served(name)
    assert declared - served == set(), f"{name}: declared in template.yaml but not served"
    assert served - declared == set(), f"{name}: served but missing from template.yaml"


def test_no_route_is_declared_on_two_functions() -> None:
    seen: dict[tuple[str, str], str] = {}
    for name, routes in _declared().items():
        for route in routes:
            assert route not in seen, f"{route} on both {seen[route]} and {name}"
            seen[route] = name


def test_heartbeat_declares_no_http_routes() -> None:
    assert _declared()["heartbeat"] == set()
