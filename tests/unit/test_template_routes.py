"""template.yaml declares, for each function, exactly the routes its app serves.

The routes are the operations of the HttpApi's DefinitionBody; each points at the
component integration named after the function that serves it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from agentplane import apps
from tests.support import sam_template

ROOT = sam_template.ROOT
INTEGRATIONS = "#/components/x-amazon-apigateway-integrations/"
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
    return sam_template.template()


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) for every route of the HttpApi's definition."""
    paths = _template()["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]["paths"]
    return [
        (method.upper(), path, operation)
        for path, operations in paths.items()
        for method, operation in operations.items()
    ]


def _integration(operation: dict[str, Any]) -> str:
    """The name of the component integration a route points at (its function's logical id)."""
    ref = operation["x-amazon-apigateway-integration"]["$ref"]
    assert ref.startswith(INTEGRATIONS), ref
    return str(ref.removeprefix(INTEGRATIONS))


def _declared() -> dict[str, set[tuple[str, str]]]:
    resources = _template()["Resources"]
    declared: dict[str, set[tuple[str, str]]] = {}
    directory: dict[str, str] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::Serverless::Function":
            directory[logical_id] = Path(resource["Properties"]["CodeUri"]).name
            declared[directory[logical_id]] = set()
    for method, path, operation in _operations():
        declared[directory[_integration(operation)]].add((method, _normalize(path)))
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


def test_routes_are_not_function_events() -> None:
    # An HttpApi event makes SAM write one Lambda permission per route.
    for logical_id, resource in _template()["Resources"].items():
        for name, event in (resource.get("Properties", {}).get("Events") or {}).items():
            assert event["Type"] != "HttpApi", (
                f"{logical_id}.Events.{name}: declare the route under HttpApi's "
                "DefinitionBody paths instead (see the comment there)"
            )


def test_every_integration_invokes_the_function_it_is_named_after() -> None:
    resources = _template()["Resources"]
    body = resources["HttpApi"]["Properties"]["DefinitionBody"]
    integrations = body["components"]["x-amazon-apigateway-integrations"]
    assert {_integration(op) for _, _, op in _operations()} == set(integrations)
    for name, integration in integrations.items():
        assert resources[name]["Type"] == "AWS::Serverless::Function"
        assert integration["type"] == "aws_proxy"
        assert integration["payloadFormatVersion"] == "2.0"
        # The alias, so that CodeDeploy's traffic shifting applies to API traffic.
        assert resources[name]["Properties"]["AutoPublishAlias"] == "live"
        text, variables = integration["uri"]["Fn::Sub"]
        assert text.endswith(":lambda:path/2015-03-31/functions/${Alias}/invocations")
        assert variables == {"Alias": {"Ref": f"{name}.Alias"}}


def test_every_route_declares_its_path_parameters() -> None:
    for method, path, operation in _operations():
        expected = [
            {"name": name, "in": "path", "required": True}
            for name in re.findall(r"\{([^}]+)\}", path)
        ]
        assert operation.get("parameters", []) == expected, f"{method} {path}"


PUBLIC_ROUTES = {
    ("GET", "/health"),
    ("GET", "/.well-known/agentplane/signing-key"),
    # The console's page and assets; the page calls the API with the user's token.
    ("GET", "/console"),
    ("GET", "/console/config.json"),
    ("GET", "/console/static/{name}"),
}


def test_only_public_and_runner_routes_skip_the_jwt_authorizer() -> None:
    unchecked = {
        (method, path)
        for method, path, operation in _operations()
        if operation.get("security") == [{"NONE": []}]
    }
    runner = {(m, p) for m, p, _ in _operations() if p.startswith("/runner/")}
    assert unchecked == PUBLIC_ROUTES | runner
    for method, path, operation in _operations():
        assert operation.get("security") in (None, [{"NONE": []}]), f"{method} {path}"
