"""Every function runs on arm64 and the layer is built for it: a layer whose compiled
wheels (psycopg, cryptography, pydantic-core) are x86_64 fails to import on Graviton.
`make check-build` checks the built .so files themselves."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import sam_template

ARCHITECTURE = "arm64"


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


@pytest.fixture(scope="module", params=["dev", "prod"])
def transformed(request: pytest.FixtureRequest) -> dict[str, Any]:
    return sam_template.transformed(sam_template.samconfig_parameters(request.param))


def test_every_function_runs_on_arm64(transformed: dict[str, Any]) -> None:
    functions = _of_type(transformed["Resources"], "AWS::Lambda::Function")
    assert len(functions) == 5, sorted(functions)
    architectures = {name: f["Properties"].get("Architectures") for name, f in functions.items()}
    assert architectures == {name: [ARCHITECTURE] for name in functions}


def test_no_function_overrides_the_global_architecture() -> None:
    source = sam_template.template()
    assert source["Globals"]["Function"]["Architectures"] == [ARCHITECTURE]
    functions = _of_type(source["Resources"], "AWS::Serverless::Function")
    overriding = {
        n: f["Properties"]["Architectures"]
        for n, f in functions.items()
        if "Architectures" in f["Properties"]
    }
    assert overriding == {}


def test_the_layer_is_built_for_and_compatible_with_arm64() -> None:
    layers = _of_type(sam_template.template()["Resources"], "AWS::Serverless::LayerVersion")
    assert layers, "no layer in the template"
    for name, layer in layers.items():
        assert layer["Metadata"]["BuildMethod"] == "python3.12", name
        assert layer["Metadata"]["BuildArchitecture"] == ARCHITECTURE, name
        assert layer["Properties"]["CompatibleArchitectures"] == [ARCHITECTURE], name
