"""docs/runbook.md walks a first deploy through every parameter a deploy cannot do
without, and links the sections it points to."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import sam_template

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"


def _first_deploy_section() -> str:
    text = RUNBOOK.read_text()
    start = text.index("## First deploy to a fresh account")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_the_first_deploy_names_every_parameter_without_a_default() -> None:
    parameters = sam_template.template()["Parameters"]
    required = sorted(name for name, p in parameters.items() if "Default" not in p)
    assert required, "every parameter has a default: nothing for this test to check"
    section = _first_deploy_section()
    assert [name for name in required if f"`{name}`" not in section] == []


def test_the_first_deploy_creates_the_secrets_the_samconfig_names() -> None:
    section = _first_deploy_section()
    for env in ("dev", "prod"):
        overrides = sam_template.samconfig_parameters(env)
        for parameter in ("DatabaseSecretName", "SigningKeySecretName"):
            generic = overrides[parameter].replace(f"/{env}/", "/<stage>/")
            assert f"`{generic}`" in section, (env, parameter)
    assert section.count("aws secretsmanager create-secret") >= 2


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_inside_the_runbook_has_its_heading() -> None:
    text = RUNBOOK.read_text()
    anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    missing = sorted(links - anchors)
    assert missing == []
