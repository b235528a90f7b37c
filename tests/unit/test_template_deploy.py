"""template.yaml as the SAM transform leaves it, checked for what CloudFormation and Lambda
would refuse at deploy time.

Lambda keeps a function's resource-based policy (one statement per
AWS::Lambda::Permission on the function or its alias) under 20 KB; SAM writes one
permission per HttpApi event, so routes declared as events outgrow it. The estimate here
is each statement as Lambda stores it, with names as long as CloudFormation makes them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support import sam_template

POLICY_LIMIT = 20 * 1024
# Leave room for routes, schedules and stages to come.
POLICY_BUDGET = POLICY_LIMIT // 2
STACK = "agentplane-prod"
API_ID = "a1b2c3d4e5"
# CloudFormation names a resource <stack>-<logical id>-<12 or 13 random characters>.
SUFFIX = "ABCDEFGHIJKLM"


def _transform(parameters: dict[str, str], source: dict[str, Any] | None = None) -> dict[str, Any]:
    return sam_template.transformed(parameters, source)


@pytest.fixture(scope="module", params=["dev", "prod"])
def transformed(request: pytest.FixtureRequest) -> dict[str, Any]:
    env: str = request.param
    return _transform(sam_template.samconfig_parameters(env))


def _physical(logical_id: str) -> str:
    return f"{STACK}-{logical_id}-{SUFFIX}"[:140]


def _names(resources: dict[str, Any]) -> dict[str, str]:
    names = {
        "AWS::Partition": "aws",
        "AWS::Region": sam_template.REGION,
        "AWS::AccountId": sam_template.ACCOUNT_ID,
        "AWS::StackName": STACK,
    }
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::ApiGatewayV2::Api":
            names[logical_id] = API_ID
    return names


def _granted_function(resources: dict[str, Any], name: Any) -> tuple[str, str]:
    """(function logical id, qualifier) a permission's FunctionName points at."""
    assert isinstance(name, dict), f"FunctionName {name!r}"
    target = name["Ref"] if "Ref" in name else name["Fn::GetAtt"][0]
    resource = resources[target]
    if resource["Type"] == "AWS::Lambda::Alias":
        return resource["Properties"]["FunctionName"]["Ref"], resource["Properties"]["Name"]
    assert resource["Type"] == "AWS::Lambda::Function", target
    return target, ""


def _source_arn(resources: dict[str, Any], value: Any) -> str:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"][0]
        kind = resources[target]["Type"]
        assert kind == "AWS::Events::Rule", f"SourceArn from a {kind}"
        region, account = sam_template.REGION, sam_template.ACCOUNT_ID
        return f"arn:aws:events:{region}:{account}:rule/{_physical(target)}"
    return sam_template.resolve_sub(value, _names(resources))


def resource_policies(transformed: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Function logical id -> the statements of its resource-based policy."""
    resources = transformed["Resources"]
    policies: dict[str, list[dict[str, Any]]] = {
        logical_id: []
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Function"
    }
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Permission":
            continue
        props = resource["Properties"]
        function, qualifier = _granted_function(resources, props["FunctionName"])
        arn = (
            f"arn:aws:lambda:{sam_template.REGION}:{sam_template.ACCOUNT_ID}:function:"
            f"{_physical(function)}"
        ) + (f":{qualifier}" if qualifier else "")
        statement: dict[str, Any] = {
            "Sid": _physical(logical_id),
            "Effect": "Allow",
            "Principal": {"Service": props["Principal"]},
            "Action": props["Action"],
            "Resource": arn,
        }
        if "SourceArn" in props:
            source = _source_arn(resources, props["SourceArn"])
            statement["Condition"] = {"ArnLike": {"AWS:SourceArn": source}}
        policies[function].append(statement)
    return policies


def policy_size(statements: list[dict[str, Any]]) -> int:
    document = {"Version": "2012-10-17", "Id": "default", "Statement": statements}
    return len(json.dumps(document, separators=(",", ":")))


def test_the_transform_accepts_the_template(transformed: dict[str, Any]) -> None:
    assert "Transform" not in transformed
    assert {r["Type"] for r in transformed["Resources"].values()} >= {
        "AWS::ApiGatewayV2::Api",
        "AWS::Lambda::Function",
        "AWS::StepFunctions::StateMachine",
    }


def test_each_function_grants_api_gateway_once(transformed: dict[str, Any]) -> None:
    routed = {
        name
        for name in sam_template.template()["Resources"]["HttpApi"]["Properties"]["DefinitionBody"][
            "components"
        ]["x-amazon-apigateway-integrations"]
    }
    # The runner doorbell's WebSocket API calls the function of its integration.
    sockets = {
        r["Properties"]["IntegrationUri"]["Fn::Sub"][1]["Alias"]["Ref"].split(".")[0]
        for r in sam_template.template()["Resources"].values()
        if r["Type"] == "AWS::ApiGatewayV2::Integration"
    }
    assert sockets == {"ActionsFunction"}
    grants = {
        function: sum(s["Principal"]["Service"] == "apigateway.amazonaws.com" for s in statements)
        for function, statements in resource_policies(transformed).items()
    }
    assert grants == {
        function: int(function in routed) + int(function in sockets) for function in grants
    }


def test_api_gateway_may_invoke_every_route_of_the_api(transformed: dict[str, Any]) -> None:
    for statements in resource_policies(transformed).values():
        for statement in statements:
            if statement["Principal"]["Service"] == "apigateway.amazonaws.com":
                source = statement["Condition"]["ArnLike"]["AWS:SourceArn"]
                assert source.endswith(f":{API_ID}/*"), source


def test_every_resource_policy_stays_well_under_the_lambda_limit(
    transformed: dict[str, Any],
) -> None:
    sizes = {f: policy_size(s) for f, s in resource_policies(transformed).items()}
    too_big = {f: size for f, size in sizes.items() if size > POLICY_BUDGET}
    assert too_big == {}, f"resource policies over {POLICY_BUDGET} bytes: {sizes}"


def test_the_estimate_counts_one_statement_per_permission() -> None:
    # Routes as HttpApi events: SAM writes one permission (one statement) per event.
    source = sam_template.template()
    api = source["Resources"]["HttpApi"]["Properties"]
    paths = api.pop("DefinitionBody")["paths"]
    function = source["Resources"]["ApiFunction"]["Properties"]
    events = function.setdefault("Events", {})
    for n, (path, operations) in enumerate(paths.items()):
        for method in operations:
            events[f"Route{n}{method.title()}"] = {
                "Type": "HttpApi",
                "Properties": {"ApiId": {"Ref": "HttpApi"}, "Method": method, "Path": path},
            }
    source["Resources"].pop("ApiFunctionApiPermission")
    source["Resources"].pop("ActionsFunctionApiPermission", None)
    source["Resources"].pop("WorkflowsFunctionApiPermission", None)
    parameters = sam_template.samconfig_parameters("prod")
    statements = resource_policies(_transform(parameters, source))["ApiFunction"]
    routes = sum(len(operations) for operations in paths.values())
    assert len(statements) == routes
    assert policy_size(statements) > POLICY_LIMIT, "every route as an event no longer overflows"


# ---------------------------------------------------------------- releases


def _resolve_if(transformed: dict[str, Any], value: Any, parameters: dict[str, str]) -> Any:
    if isinstance(value, dict) and "Fn::If" in value:
        name, when_true, when_false = value["Fn::If"]
        chosen = when_true if sam_template.condition(transformed, name, parameters) else when_false
        return _resolve_if(transformed, chosen, parameters)
    return value


@pytest.mark.parametrize(
    ("env", "config"),
    [("dev", "AllAtOnce"), ("prod", "Canary10Percent5Minutes")],
)
def test_api_gateway_calls_the_live_alias_and_codedeploy_shifts_it(env: str, config: str) -> None:
    parameters = sam_template.samconfig_parameters(env)
    result = _transform(parameters)
    resources = result["Resources"]
    body = resources["HttpApi"]["Properties"]["Body"]
    for name, integration in body["components"]["x-amazon-apigateway-integrations"].items():
        alias = integration["uri"]["Fn::Sub"][1]["Alias"]["Ref"]
        assert resources[alias]["Type"] == "AWS::Lambda::Alias"
        assert resources[alias]["Properties"]["Name"] == "live"
        assert resources[alias]["Properties"]["FunctionName"] == {"Ref": name}
        group = resources[alias]["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
        deployment = resources[group["DeploymentGroupName"]["Ref"]]["Properties"]
        name_of_config = _resolve_if(result, deployment["DeploymentConfigName"], parameters)
        assert sam_template.resolve_sub(name_of_config, {}) == f"CodeDeployDefault.Lambda{config}"
        assert deployment["AutoRollbackConfiguration"]["Enabled"] is True
        # A canary that errs is rolled back without anyone watching.
        watched = {a["Name"]["Ref"] for a in deployment["AlarmConfiguration"]["Alarms"]}
        # Not the API's 5xx alarm: it names the HttpApi, whose integrations name the alias,
        # whose update policy would name the alarm (a loop CloudFormation refuses).
        assert watched == {f"{name}LiveErrorsAlarm"}
        assert "DEPLOYMENT_STOP_ON_ALARM" in deployment["AutoRollbackConfiguration"]["Events"]
    for function, statements in resource_policies(result).items():
        for statement in statements:
            if statement["Principal"]["Service"] == "apigateway.amazonaws.com":
                assert statement["Resource"].endswith(":live"), function


@pytest.mark.parametrize(("env", "policy"), [("dev", "Delete"), ("prod", "Retain")])
def test_every_function_logs_to_its_own_group_kept_in_prod(env: str, policy: str) -> None:
    resources = _transform(sam_template.samconfig_parameters(env))["Resources"]
    groups = {
        resource["Properties"]["LogGroupName"]["Fn::Sub"]: resource
        for resource in resources.values()
        if resource["Type"] == "AWS::Logs::LogGroup"
    }
    functions = [k for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function"]
    for function in functions:
        assert f"/aws/lambda/${{{function}}}" in groups, function
    for name, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}, name
        assert (group["DeletionPolicy"], group["UpdateReplacePolicy"]) == (policy, policy), name


# ---------------------------------------------------------------- parameter rules


def _refused(parameters: dict[str, str]) -> list[str]:
    """The AssertDescription of every Rules assertion these parameter values fail."""
    source = sam_template.template()
    failed = []
    for rule in source["Rules"].values():
        when = rule.get("RuleCondition")
        if when is not None and not sam_template.condition(source, when, parameters):
            continue
        for assertion in rule["Assertions"]:
            if not sam_template.condition(source, assertion["Assert"], parameters):
                failed.append(assertion["AssertDescription"])
    return failed


PROD = {
    **sam_template.samconfig_parameters("prod"),
    "JwtIssuer": "https://abcdefghijklmnop.supabase.co/auth/v1",
    "CorsAllowOrigins": "https://app.example.com,https://admin.example.com",
}


def test_dev_as_configured_passes_the_rules() -> None:
    assert _refused(sam_template.samconfig_parameters("dev")) == []


def test_prod_with_its_issuer_and_origins_passes_the_rules() -> None:
    assert _refused(PROD) == []


def test_prod_as_shipped_is_refused_until_its_placeholders_are_replaced() -> None:
    refused = _refused(sam_template.samconfig_parameters("prod"))
    assert any("JwtIssuer is still the placeholder" in r for r in refused), refused
    assert any("CorsAllowOrigins is still the placeholder" in r for r in refused), refused


def test_prod_refuses_the_placeholder_issuer() -> None:
    placeholder = sam_template.samconfig_parameters("dev")["JwtIssuer"]
    assert [r for r in _refused({**PROD, "JwtIssuer": placeholder}) if "JwtIssuer" in r]


@pytest.mark.parametrize("origins", ["*", "https://app.example.com,*"])
def test_prod_refuses_any_origin(origins: str) -> None:
    refused = _refused({**PROD, "CorsAllowOrigins": origins})
    assert refused == ['CorsAllowOrigins may not be "*" in prod; list the web client\'s origins.']


def test_prod_takes_the_default_origins_as_any_origin() -> None:
    parameters = {k: v for k, v in PROD.items() if k != "CorsAllowOrigins"}
    assert len(_refused(parameters)) == 1


# ---------------------------------------------------------------- failure handling


@pytest.fixture(scope="module")
def prod() -> dict[str, Any]:
    return _transform(sam_template.samconfig_parameters("prod"))


def _alarm_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """Each metric an alarm reads: {Namespace, MetricName, Dimensions}."""
    props = alarm["Properties"]
    if "MetricName" in props:
        return [{k: props[k] for k in ("Namespace", "MetricName", "Dimensions")}]
    return [m["MetricStat"]["Metric"] for m in props["Metrics"] if "MetricStat" in m]


def test_asynchronously_invoked_functions_send_failed_events_to_the_dlq(
    prod: dict[str, Any],
) -> None:
    resources = prod["Resources"]
    queue = {"Fn::GetAtt": ["AsyncFailureQueue", "Arn"]}
    # A schedule targets the function ($LATEST), or its alias where it has one.
    targets = [
        target["Arn"]
        for resource in resources.values()
        if resource["Type"] == "AWS::Events::Rule"
        for target in resource["Properties"]["Targets"]
    ]
    scheduled = {_granted_function(resources, arn) for arn in targets}
    # The mirror function also invokes itself asynchronously, one event per report, and
    # the actions function kicks the workflows function's dispatcher.
    assert {function for function, _ in scheduled} == {
        "HeartbeatFunction",
        "MirrorFunction",
        "WorkflowsFunction",
    }
    configs = {
        r["Properties"]["FunctionName"]["Ref"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventInvokeConfig"
    }
    # Each config applies to the qualifier the schedule invokes.
    assert {(f, c["Qualifier"]) for f, c in configs.items()} == {
        (function, qualifier or "$LATEST") for function, qualifier in scheduled
    }
    for function, config in configs.items():
        assert config["DestinationConfig"]["OnFailure"]["Destination"] == queue, function
        role = resources[f"{function}Role"]["Properties"]["Policies"]
        granted = [
            s
            for p in role
            for s in p["PolicyDocument"]["Statement"]
            if s["Action"] == "sqs:SendMessage"
        ]
        assert [s["Resource"] for s in granted] == [queue], function
    for resource in resources.values():
        if resource["Type"] == "AWS::Events::Rule":
            for target in resource["Properties"]["Targets"]:
                assert target["DeadLetterConfig"] == {"Arn": queue}
    statements = resources["AsyncFailureQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Principal"] for s in statements] == [{"Service": "events.amazonaws.com"}]


def test_every_alarm_notifies_the_topic_about_something_that_exists(
    prod: dict[str, Any],
) -> None:
    resources = prod["Resources"]
    alarms = {k: r for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert props["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert props["TreatMissingData"] == "notBreaching", name
        for metric in _alarm_metrics(alarm):
            for dimension in metric["Dimensions"]:
                value = dimension["Value"]
                if "Fn::Sub" in value:
                    targets = re.findall(r"\$\{([^}.]+)[^}]*\}", value["Fn::Sub"])
                else:
                    targets = [value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0]]
                for target in targets:
                    assert target in resources, f"{name}: {target}"


def test_the_alarms_cover_api_errors_throttles_jobs_and_workflows(prod: dict[str, Any]) -> None:
    resources = prod["Resources"]
    watched = {
        (m["Namespace"], m["MetricName"], json.dumps(m["Dimensions"][0]["Value"]))
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        for m in _alarm_metrics(r)
    }
    functions = [k for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function"]
    expected = {
        ("AWS/ApiGateway", "5xx", '{"Ref": "HttpApi"}'),
        ("AWS/ApiGateway", "Count", '{"Ref": "HttpApi"}'),
        ("AWS/Lambda", "Errors", '{"Ref": "ApiFunction"}'),
        ("AWS/Lambda", "Errors", '{"Ref": "ActionsFunction"}'),
        ("AWS/Lambda", "Errors", '{"Ref": "HeartbeatFunction"}'),
        ("AWS/Lambda", "Errors", '{"Ref": "MirrorFunction"}'),
        ("AWS/States", "ExecutionsFailed", '{"Ref": "WorkflowStateMachine"}'),
        ("AWS/States", "ExecutionsTimedOut", '{"Ref": "WorkflowStateMachine"}'),
        *(("AWS/Lambda", "Throttles", json.dumps({"Ref": f})) for f in functions),
    }
    assert expected <= watched, expected - watched


@pytest.mark.parametrize(("email", "subscribed"), [("", False), ("ops@example.com", True)])
def test_the_alarm_email_is_subscribed_only_when_given(email: str, subscribed: bool) -> None:
    source = sam_template.template()
    subscription = source["Resources"]["AlarmEmailSubscription"]
    parameters = {**sam_template.samconfig_parameters("prod"), "AlarmEmail": email}
    assert sam_template.condition(source, subscription["Condition"], parameters) is subscribed


def test_the_runbook_explains_every_alarm() -> None:
    runbook = (sam_template.ROOT / "docs" / "runbook.md").read_text()
    alarms = [
        name
        for name, resource in sam_template.template()["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert [name for name in alarms if f"`{name}`" not in runbook] == []


# ---------------------------------------------------------------- connections


def _functions(transformed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in transformed["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def _number(value: Any, parameters: dict[str, str]) -> int:
    return int(sam_template.parameter_value(sam_template.template(), value, parameters))


def _connection_budget(
    transformed: dict[str, Any], parameters: dict[str, str]
) -> dict[str, tuple[int, int]]:
    """Function (as the README names it) -> (reserved concurrency, pool size)."""
    budget = {}
    for logical_id, props in _functions(transformed).items():
        reserved = _number(props["ReservedConcurrentExecutions"], parameters)
        pool = _number(props["Environment"]["Variables"]["AGENTPLANE_DB_POOL_MAX_SIZE"], parameters)
        budget[logical_id.removesuffix("Function").lower()] = (reserved, pool)
    return budget


def _readme_connections() -> list[list[str]]:
    """The rows of the README's "Connections" table, cells stripped."""
    readme = (sam_template.ROOT / "README.md").read_text()
    section = readme.split("### Connections", 1)[1]
    table = [line for line in section.split("\n\n") if line.startswith("| function |")]
    assert len(table) == 1, "no connection table under ### Connections"
    rows = table[0].splitlines()[2:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_function_has_reserved_concurrency_and_a_small_pool(env: str) -> None:
    parameters = sam_template.samconfig_parameters(env)
    budget = _connection_budget(_transform(parameters), parameters)
    assert set(budget) == {"api", "actions", "heartbeat", "mirror", "workflows"}
    for function, (reserved, pool) in budget.items():
        assert reserved >= 1, function
        # One request at a time per instance: more than two connections is waste.
        assert 1 <= pool <= 2, function


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_readme_says_how_many_connections_each_function_can_open(env: str) -> None:
    parameters = sam_template.samconfig_parameters(env)
    budget = _connection_budget(_transform(parameters), parameters)
    *rows, total = _readme_connections()
    table = {name: (int(r), int(p), int(m)) for name, r, p, m in rows}
    assert table == {f: (r, p, r * p) for f, (r, p) in budget.items()}
    assert total[0] == "total"
    assert int(total[1]) == sum(r for r, _ in budget.values())
    assert int(total[3]) == sum(r * p for r, p in budget.values())


@pytest.mark.parametrize(
    ("subnets", "groups"), [("", ""), ("subnet-0a1b2c3d,subnet-4e5f6a7b", "sg-0123abcd")]
)
def test_functions_join_the_vpc_only_when_subnets_are_given(subnets: str, groups: str) -> None:
    parameters = {
        **sam_template.samconfig_parameters("prod"),
        "VpcSubnetIds": subnets,
        "VpcSecurityGroupIds": groups,
    }
    result = _transform(parameters)
    for function, props in _functions(result).items():
        vpc = _resolve_if(result, props.get("VpcConfig"), parameters)
        if not subnets:
            assert vpc == {"Ref": "AWS::NoValue"}, function
            continue
        source = sam_template.template()
        assert sam_template.parameter_value(source, vpc["SubnetIds"], parameters) == [
            "subnet-0a1b2c3d",
            "subnet-4e5f6a7b",
        ], function
        assert sam_template.parameter_value(source, vpc["SecurityGroupIds"], parameters) == [
            "sg-0123abcd"
        ], function


@pytest.mark.parametrize("endpoint", ["", "agentplane.proxy-abc123.us-east-1.rds.amazonaws.com"])
def test_the_functions_use_the_proxy_only_when_one_is_given(endpoint: str) -> None:
    parameters = {**sam_template.samconfig_parameters("dev"), "DatabaseProxyEndpoint": endpoint}
    result = _transform(parameters)
    for function, props in _functions(result).items():
        variables = props["Environment"]["Variables"]
        host = _resolve_if(result, variables["AGENTPLANE_DATABASE_PROXY_HOST"], parameters)
        expected = {"Ref": "DatabaseProxyEndpoint"} if endpoint else {"Ref": "AWS::NoValue"}
        assert host == expected, function
        # The direct secret stays: the proxy takes the same user, password and database.
        assert variables["AGENTPLANE_DATABASE_SECRET_NAME"] == {"Ref": "DatabaseSecretName"}
