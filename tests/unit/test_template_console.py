"""The console's sign-in provider is a pair of template parameters that reach the api
function, and only a project origin passes the parameter's pattern."""

from __future__ import annotations

import re

import pytest

from tests.support import sam_template


def test_the_supabase_project_reaches_only_the_api_function_and_only_when_given() -> None:
    source = sam_template.template()
    parameters = sam_template.samconfig_parameters("dev")
    assert source["Parameters"]["SupabaseUrl"]["Default"] == ""
    assert not sam_template.condition(source, "HasSupabaseUrl", parameters)
    given = {**parameters, "SupabaseUrl": "https://abcd.supabase.co"}
    assert sam_template.condition(source, "HasSupabaseUrl", given)

    functions = {
        name: resource["Properties"].get("Environment", {}).get("Variables", {})
        for name, resource in source["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    having = {name for name, env in functions.items() if "AGENTPLANE_SUPABASE_URL" in env}
    assert having == {"ApiFunction"}
    env = functions["ApiFunction"]
    assert env["AGENTPLANE_SUPABASE_URL"] == {
        "Fn::If": ["HasSupabaseUrl", {"Ref": "SupabaseUrl"}, {"Ref": "AWS::NoValue"}]
    }
    assert env["AGENTPLANE_SUPABASE_ANON_KEY"] == {
        "Fn::If": ["HasSupabaseUrl", {"Ref": "SupabaseAnonKey"}, {"Ref": "AWS::NoValue"}]
    }


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("", True),
        ("https://abcd.supabase.co", True),
        ("https://abcd.supabase.co/", True),
        ("http://abcd.supabase.co", False),
        ("https://abcd.supabase.co/auth/v1", False),
        ("https://abcd.supabase.co; script-src *", False),
    ],
)
def test_the_supabase_url_must_be_an_https_origin(value: str, allowed: bool) -> None:
    # It goes into the page's Content-Security-Policy, so nothing but an origin passes.
    pattern = sam_template.template()["Parameters"]["SupabaseUrl"]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is allowed
