"""template.yaml read as SAM and as CloudFormation would take it.

`template()` is the template as written (cfn-lint's decoder: YAML tags become intrinsic
functions). `transformed()` is what the SAM transform makes of it, with the local code
paths replaced by S3 URIs the way `sam package` does; it needs the `samtranslator`
package (aws-sam-translator), so its callers skip when it is missing.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
# Where a path in the template becomes an S3 URI once packaged.
_CODE_PROPERTIES = ("CodeUri", "ContentUri", "DefinitionUri")


@cache
def _decoded() -> dict[str, Any]:
    from cfnlint.decode import decode

    decoded, matches = decode(str(TEMPLATE))
    assert not matches, matches
    assert decoded is not None
    # Plain dicts and lists: the decoder's nodes carry positions nobody here needs.
    plain: dict[str, Any] = json.loads(json.dumps(decoded))
    return plain


def template() -> dict[str, Any]:
    """template.yaml as written (a fresh copy)."""
    return copy.deepcopy(_decoded())


def samconfig_parameters(env: str) -> dict[str, str]:
    """The parameter overrides `sam deploy --config-env <env>` passes."""
    config = tomllib.loads(SAMCONFIG.read_text())
    overrides = config[env]["deploy"]["parameters"]["parameter_overrides"]
    pairs = (item.split("=", 1) for item in shlex.split(overrides))
    return {name: value for name, value in pairs}


def packaged(source: dict[str, Any]) -> dict[str, Any]:
    """The template with local code paths replaced by S3 URIs, as `sam package` leaves it."""
    result = copy.deepcopy(source)
    for logical_id, resource in result["Resources"].items():
        properties = resource.get("Properties") or {}
        for name in _CODE_PROPERTIES:
            if isinstance(properties.get(name), str):
                properties[name] = f"s3://agentplane-artifacts/{logical_id}.zip"
    return result


def transformed(parameters: dict[str, str], source: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the SAM transform makes of the template (or of `source`) with these parameters."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    values: dict[str, Any] = {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": "aws",
        "AWS::StackName": f"agentplane-{parameters.get('Stage', 'dev')}",
        **parameters,
    }
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    result: dict[str, Any] = translator.translate(
        packaged(template() if source is None else source),
        parameter_values=values,
        # Only managed policies named without an ARN are looked up; the template has none.
        get_managed_policy_map=dict,
    )
    return result


def resolve_sub(value: Any, names: dict[str, str]) -> str:
    """A string, or an Fn::Sub of one, with every ${Name} replaced from `names`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        text, local = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1])
        scope = {**names, **{k: resolve_sub(v, names) for k, v in local.items()}}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            assert name in scope, f"no value for ${{{name}}} in {text}"
            return scope[name]

        return re.sub(r"\$\{([^}!]+)\}", replace, text)
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in names:
        return names[value["Ref"]]
    raise AssertionError(f"cannot resolve {value!r}")
