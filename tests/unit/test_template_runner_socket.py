"""The runner doorbell's WebSocket API as template.yaml declares it and the SAM transform
leaves it: its three routes on the actions function's `live` alias, the stage runners
are told about, and who may post to its connections (DESIGN.md §4.2)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import sam_template

WSS = "wss://${RunnerSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/live"
API_ID = "sock123"


@pytest.fixture(scope="module", params=["dev", "prod"])
def transformed(request: pytest.FixtureRequest) -> dict[str, Any]:
    return sam_template.transformed(sam_template.samconfig_parameters(request.param))


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _grants(transformed: dict[str, Any], role: str) -> dict[str, set[str]]:
    """Action -> the resources a role's inline policies allow it on (resolved)."""
    names = {
        "AWS::Partition": "aws",
        "AWS::Region": sam_template.REGION,
        "AWS::AccountId": sam_template.ACCOUNT_ID,
        "AWS::StackName": "stack",
        "RunnerSocketApi": API_ID,
    }
    grants: dict[str, set[str]] = {}
    for policy in transformed["Resources"][role]["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow", (role, statement)
            assert {"NotAction", "NotResource"}.isdisjoint(statement), (role, statement)
            for action in _listed(statement["Action"]):
                resources = set()
                for resource in _listed(statement["Resource"]):
                    try:
                        resources.add(sam_template.resolve_sub(resource, names))
                    except AssertionError:
                        resources.add(repr(resource))  # names something else
                grants.setdefault(action, set()).update(resources)
    return grants


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in resources.items() if r["Type"] == kind}


def test_one_websocket_api_routes_connect_disconnect_and_default_to_the_actions_alias() -> None:
    resources = sam_template.template()["Resources"]
    apis = {
        k: p
        for k, p in _of_type(resources, "AWS::ApiGatewayV2::Api").items()
        if p.get("ProtocolType") == "WEBSOCKET"
    }
    assert list(apis) == ["RunnerSocketApi"]
    routes = _of_type(resources, "AWS::ApiGatewayV2::Route")
    assert sorted(r["RouteKey"] for r in routes.values()) == ["$connect", "$default", "$disconnect"]
    [(integration_id, integration)] = _of_type(resources, "AWS::ApiGatewayV2::Integration").items()
    for route in routes.values():
        assert route["ApiId"] == {"Ref": "RunnerSocketApi"}
        assert route["Target"] == {"Fn::Sub": f"integrations/${{{integration_id}}}"}
        # The token is checked by the handler of $connect itself (a 401/403 refuses it).
        assert route["AuthorizationType"] == "NONE"
    assert integration["IntegrationType"] == "AWS_PROXY"
    text, variables = integration["IntegrationUri"]["Fn::Sub"]
    assert text.endswith(":lambda:path/2015-03-31/functions/${Alias}/invocations")
    assert variables == {"Alias": {"Ref": "ActionsFunction.Alias"}}
    [stage] = _of_type(resources, "AWS::ApiGatewayV2::Stage").values()
    assert (stage["ApiId"], stage["StageName"], stage["AutoDeploy"]) == (
        {"Ref": "RunnerSocketApi"},
        "live",
        True,
    )


def test_api_gateway_may_invoke_the_actions_alias_from_the_socket_api() -> None:
    resources = sam_template.template()["Resources"]
    grants = [
        p
        for p in _of_type(resources, "AWS::Lambda::Permission").values()
        if "RunnerSocketApi" in str(p["SourceArn"])
    ]
    assert grants == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Ref": "ActionsFunction.Alias"},
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": {
                "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}"
                ":${RunnerSocketApi}/*"
            },
        }
    ]


def test_the_functions_that_ring_know_the_stage_url() -> None:
    resources = sam_template.template()["Resources"]
    told = {
        name: f["Environment"]["Variables"].get("AGENTPLANE_RUNNER_WEBSOCKET_URL")
        for name, f in _of_type(resources, "AWS::Serverless::Function").items()
    }
    assert {k for k, v in told.items() if v} == {"ActionsFunction", "HeartbeatFunction"}
    assert {v["Fn::Sub"] for v in told.values() if v} == {WSS}


def test_only_the_ringing_functions_may_post_to_connections_and_only_of_that_api(
    transformed: dict[str, Any],
) -> None:
    api = API_ID
    allowed = {}
    roles = [k for k, r in transformed["Resources"].items() if r["Type"] == "AWS::IAM::Role"]
    for role in roles:
        grants = _grants(transformed, role)
        wildcards = [a for a in grants if a in ("*", "execute-api:*")]
        assert wildcards == [], role
        if "execute-api:ManageConnections" in grants:
            allowed[role] = grants["execute-api:ManageConnections"]
    region, account = sam_template.REGION, sam_template.ACCOUNT_ID
    connections = f"arn:aws:execute-api:{region}:{account}:{api}/live/POST/@connections/*"
    assert allowed == {
        "ActionsFunctionRole": {connections},
        "HeartbeatFunctionRole": {connections},
    }
