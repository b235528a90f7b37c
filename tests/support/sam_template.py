"""template.yaml read as SAM and as CloudFormation would take it.

`template()` is the template as written (cfn-lint's decoder: YAML tags become intrinsic
functions). `transformed()` is what the SAM transform makes of it, with the local code
paths replaced by S3 URIs the way `sam package` does, through the `samtranslator` package
(aws-sam-translator, a dev dependency).
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


def condition(source: dict[str, Any], value: Any, parameters: dict[str, str]) -> bool:
    """A condition (by name, or an Fn::Equals/Fn::Not/Fn::And/Fn::Or/Fn::Contains) with
    these parameter values: what the Conditions and Rules sections here use."""
    if isinstance(value, str):
        return condition(source, source["Conditions"][value], parameters)
    (function, arguments), *rest = value.items()
    assert not rest, value
    if function in ("Fn::Not", "Fn::And", "Fn::Or"):
        results = [condition(source, argument, parameters) for argument in arguments]
        return {"Fn::Not": not results[0], "Fn::And": all(results), "Fn::Or": any(results)}[
            function
        ]
    if function == "Condition":
        return condition(source, arguments, parameters)
    if function in ("Fn::Equals", "Fn::Contains"):
        left, right = (parameter_value(source, a, parameters) for a in arguments)
        return left == right if function == "Fn::Equals" else right in left
    raise AssertionError(f"unsupported condition {value!r}")


def parameter_value(source: dict[str, Any], value: Any, parameters: dict[str, str]) -> Any:
    """A literal, a Ref to a parameter (its override or default; a list for a
    CommaDelimitedList), or an Fn::Join of those."""
    if isinstance(value, dict) and "Fn::Join" in value:
        delimiter, items = value["Fn::Join"]
        joined = parameter_value(source, items, parameters)
        if joined is items:
            joined = [parameter_value(source, item, parameters) for item in items]
        return delimiter.join(joined)
    if not (isinstance(value, dict) and "Ref" in value):
        return value
    declared = source["Parameters"][value["Ref"]]
    raw = parameters.get(value["Ref"], declared.get("Default"))
    assert raw is not None, f"no value for parameter {value['Ref']}"
    if declared["Type"] == "CommaDelimitedList":
        return [item.strip() for item in str(raw).split(",")]
    return str(raw)


def language_extensions(source: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """What the AWS::LanguageExtensions transform does to this template before SAM's: it
    resolves the Fn::If of a DeletionPolicy or UpdateReplacePolicy."""
    result = copy.deepcopy(source)
    transforms = result.get("Transform", [])
    result["Transform"] = [t for t in transforms if t != "AWS::LanguageExtensions"]
    for resource in result["Resources"].values():
        for attribute in ("DeletionPolicy", "UpdateReplacePolicy"):
            policy = resource.get(attribute)
            if isinstance(policy, dict):
                name, when_true, when_false = policy["Fn::If"]
                resource[attribute] = (
                    when_true if condition(result, name, parameters) else when_false
                )
    return result


def transformed(parameters: dict[str, str], source: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the transforms (AWS::LanguageExtensions, then SAM's) make of the template (or
    of `source`) with these parameters."""
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
        packaged(language_extensions(template() if source is None else source, parameters)),
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
