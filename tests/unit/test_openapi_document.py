"""docs/openapi.json is the app's OpenAPI document, regenerated with `make openapi`."""

from __future__ import annotations

import json
from pathlib import Path

from agentplane.cli import openapi_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_docs_openapi_json_is_in_sync_with_the_app() -> None:
    assert DOC.read_text() == openapi_document(), "run `make openapi` and commit the result"


def test_every_operation_documents_problem_responses() -> None:
    schema = json.loads(DOC.read_text())
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status in ("401", "404", "422"):
                content = responses[status]["content"]
                assert "application/problem+json" in content, (method, path, status)
