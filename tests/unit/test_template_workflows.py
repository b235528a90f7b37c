"""Workflow runs on Step Functions, as the SAM transform leaves template.yaml: who may talk
to Step Functions and to the workflows function, and the dispatcher's schedule.

Only the workflows function calls Step Functions: it starts and stops its own state
machine's executions, and its dispatcher delivers the PostgreSQL outbox's decisions and
results with SendTask*. The state machine invokes only the workflows function's `live`
alias; the actions function kicks the dispatcher with an async invoke.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import sam_template

REGION, ACCOUNT = sam_template.REGION, sam_template.ACCOUNT_ID
QUEUE = {"Fn::GetAtt": ["AsyncFailureQueue", "Arn"]}
CALLBACKS = {"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"}


@dataclass(frozen=True)
class Stack:
    """The transformed template of one stage, and the names it is deployed under."""

    name: str
    parameters: dict[str, str]
    transformed: dict[str, Any]


def _deploy(env: str, source: dict[str, Any] | None = None) -> Stack:
    parameters = sam_template.samconfig_parameters(env)
    # The stack name sam_template.transformed gives AWS::StackName.
    name = f"agentplane-{parameters['Stage']}"
    return Stack(name, parameters, sam_template.transformed(parameters, source))


@pytest.fixture(scope="module", params=["dev", "prod"])
def stack(request: pytest.FixtureRequest) -> Stack:
    return _deploy(request.param)


def _arns(stack: str) -> dict[str, str]:
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{stack}-workflows"
    states = f"arn:aws:states:{REGION}:{ACCOUNT}"
    return {
        "function": function,
        "alias": f"{function}:live",
        "state_machine": f"{states}:stateMachine:{stack}-workflow",
        "executions": f"{states}:execution:{stack}-workflow:*",
    }


def _names(stack: Stack) -> dict[str, str]:
    """What a Ref, a GetAtt or a ${...} in a policy resolves to in this stack."""
    resources = stack.transformed["Resources"]
    names = {
        **stack.parameters,
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::StackName": stack.name,
    }
    # The function's ARN from the name the template gives it, not from _arns: a name
    # that drifted from the one the Globals announce fails the assertions below.
    function_name = sam_template.resolve_sub(
        resources["WorkflowsFunction"]["Properties"]["FunctionName"], names
    )
    function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
    names["WorkflowsFunction"] = function_name
    names["WorkflowsFunction.Arn"] = function_arn
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::ApiGatewayV2::Api":
            names[logical_id] = f"api-{logical_id}"
        if resource["Type"] == "AWS::Lambda::Alias" and props["FunctionName"] == {
            "Ref": "WorkflowsFunction"
        }:
            names[logical_id] = f"{function_arn}:{props['Name']}"
    return names


def _resolve(value: Any, names: dict[str, str]) -> str:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target, attribute = value["Fn::GetAtt"]
        return names.get(f"{target}.{attribute}", f"<{target}.{attribute}>")
    if isinstance(value, dict) and "Ref" in value:
        return names.get(value["Ref"], f"<{value['Ref']}>")
    return sam_template.resolve_sub(value, names)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _grants(stack: Stack, role: str) -> dict[str, set[str]]:
    """Action -> the resources a role's inline policies allow it on (resolved)."""
    names = _names(stack)
    grants: dict[str, set[str]] = {}
    for policy in stack.transformed["Resources"][role]["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            # Only plain allows: a NotAction or NotResource would escape these checks.
            assert statement["Effect"] == "Allow", (role, statement)
            assert {"NotAction", "NotResource"}.isdisjoint(statement), (role, statement)
            for action in _listed(statement["Action"]):
                resources = {_resolve(r, names) for r in _listed(statement["Resource"])}
                grants.setdefault(action, set()).update(resources)
    return grants


def _roles(stack: Stack) -> list[str]:
    resources = stack.transformed["Resources"]
    return [k for k, r in resources.items() if r["Type"] == "AWS::IAM::Role"]


def _on_step_functions(action: str) -> bool:
    return action == "*" or action.lower().startswith("states:")


# ---------------------------------------------------------------- the state machine


def test_the_state_machine_may_invoke_only_the_workflows_function(
    stack: Stack,
) -> None:
    arns = _arns(stack.name)
    grants = _grants(stack, "WorkflowStateMachineRole")
    invoke = {a: r for a, r in grants.items() if not a.startswith("logs:")}
    # The function and its qualified ARNs (the `live` alias, versions), no name prefix.
    assert invoke == {"lambda:InvokeFunction": {arns["function"], f"{arns['function']}:*"}}
    role = stack.transformed["Resources"]["WorkflowStateMachineRole"]["Properties"]
    assert role["ManagedPolicyArns"] == ["arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"]


def test_the_state_machine_keeps_only_log_delivery_besides(stack: Stack) -> None:
    grants = _grants(stack, "WorkflowStateMachineRole")
    logs = {a: r for a, r in grants.items() if a.startswith("logs:")}
    # Vended log delivery supports no resource-level permissions.
    assert set(logs) == {
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }
    assert all(resources == {"*"} for resources in logs.values())


def test_the_state_machine_calls_the_workflows_functions_live_alias(
    stack: Stack,
) -> None:
    resources = stack.transformed["Resources"]
    machine = resources["WorkflowStateMachine"]["Properties"]
    substitutions = machine["DefinitionSubstitutions"]
    assert set(substitutions) == {"WorkflowsFunctionArn"}
    alias = resources[substitutions["WorkflowsFunctionArn"]["Ref"]]
    assert alias["Type"] == "AWS::Lambda::Alias"
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionName"] == {"Ref": "WorkflowsFunction"}
    # A qualified ARN, which the role's <function>:* covers.
    assert _names(stack)[substitutions["WorkflowsFunctionArn"]["Ref"]] == _arns(stack.name)["alias"]
    definition = (sam_template.ROOT / "statemachines" / "workflow.asl.json").read_text()
    invoked = {
        (state.get("Parameters") or state.get("Arguments") or {}).get("FunctionName")
        for state in _task_states(json.loads(definition))
        if state["Resource"].startswith("arn:aws:states:::lambda:invoke")
    }
    assert invoked == {"${WorkflowsFunctionArn}"}


def _task_states(node: Any) -> list[dict[str, Any]]:
    """Every Task state of an ASL definition, Map iterators included."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("Type") == "Task":
            found.append(node)
        for value in node.values():
            found.extend(_task_states(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_task_states(value))
    return found


def test_the_state_machine_is_standard_traced_and_logs_no_execution_data(
    stack: Stack,
) -> None:
    resources = stack.transformed["Resources"]
    machine = resources["WorkflowStateMachine"]["Properties"]
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is False
    name = sam_template.resolve_sub(machine["StateMachineName"], _names(stack))
    assert _arns(stack.name)["state_machine"].endswith(f":stateMachine:{name}")
    watched = {
        r["Properties"]["MetricName"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("Dimensions")
        == [{"Name": "StateMachineArn", "Value": {"Ref": "WorkflowStateMachine"}}]
    }
    assert watched == {"ExecutionsFailed", "ExecutionsTimedOut"}


# ---------------------------------------------------------------- who talks to Step Functions


def _step_functions_grants(stack: Stack) -> dict[str, set[str]]:
    grants = _grants(stack, "WorkflowsFunctionRole")
    return {a: r for a, r in grants.items() if _on_step_functions(a)}


def test_the_workflows_function_may_run_only_its_own_executions(
    stack: Stack,
) -> None:
    arns = _arns(stack.name)
    assert _step_functions_grants(stack) == {
        "states:StartExecution": {arns["state_machine"]},
        "states:StopExecution": {arns["executions"]},
        "states:DescribeExecution": {arns["executions"]},
        "states:GetExecutionHistory": {arns["executions"]},
        # SendTask* support no resource-level permissions: the task token is the key.
        **{action: {"*"} for action in CALLBACKS},
    }


def _others_on_step_functions(stack: Stack) -> dict[str, set[str]]:
    """Role -> its Step Functions actions, for every role but the workflows function's."""
    found: dict[str, set[str]] = {}
    for role in _roles(stack):
        if role == "WorkflowsFunctionRole":
            continue
        actions = {a for a in _grants(stack, role) if _on_step_functions(a)}
        if actions:
            found[role] = actions
        managed = stack.transformed["Resources"][role]["Properties"].get("ManagedPolicyArns", [])
        assert not [arn for arn in managed if "StepFunctions" in str(arn)], role
    return found


def test_no_other_role_may_call_step_functions(stack: Stack) -> None:
    # The actions and heartbeat functions write outbox rows instead of calling SendTask*.
    assert _others_on_step_functions(stack) == {}


def test_the_actions_function_may_kick_the_dispatcher(stack: Stack) -> None:
    arns = _arns(stack.name)
    grants = _grants(stack, "ActionsFunctionRole")
    invoke = grants.get("lambda:InvokeFunction", set())
    assert invoke == {arns["function"], f"{arns['function']}:*"}


def test_every_function_knows_the_state_machine_and_the_workflows_function(
    stack: Stack,
) -> None:
    arns, names = _arns(stack.name), _names(stack)
    functions = [
        r for r in stack.transformed["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    ]
    assert functions
    for function in functions:
        variables = function["Properties"]["Environment"]["Variables"]
        machine = _resolve(variables["AGENTPLANE_WORKFLOW_STATE_MACHINE_ARN"], names)
        assert machine == arns["state_machine"]
        name = _resolve(variables["AGENTPLANE_WORKFLOWS_FUNCTION_NAME"], names)
        assert f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}" == arns["function"]


# ---------------------------------------------------------------- the dispatcher


def test_the_dispatcher_runs_every_minute_on_the_live_alias_with_a_dlq(
    stack: Stack,
) -> None:
    resources = stack.transformed["Resources"]
    alias = resources["WorkflowStateMachine"]["Properties"]["DefinitionSubstitutions"][
        "WorkflowsFunctionArn"
    ]
    targets = [
        (rule["Properties"], target)
        for rule in resources.values()
        if rule["Type"] == "AWS::Events::Rule"
        for target in rule["Properties"]["Targets"]
        if target["Arn"] in (alias, {"Fn::GetAtt": ["WorkflowsFunction", "Arn"]})
    ]
    # The callback dispatcher's schedule, and the events dispatcher's beside it.
    assert sorted(json.loads(t["Input"])["op"] for _, t in targets) == ["dispatch", "events"]
    for rule, target in targets:
        assert target["Arn"] == alias
        assert rule["ScheduleExpression"] == "rate(1 minute)"
        assert rule["State"] == "ENABLED"
        assert target["DeadLetterConfig"] == {"Arn": QUEUE}


def test_a_failed_dispatch_is_not_retried_and_goes_to_the_dlq(stack: Stack) -> None:
    configs = [
        r["Properties"]
        for r in stack.transformed["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventInvokeConfig"
        and r["Properties"]["FunctionName"] == {"Ref": "WorkflowsFunction"}
    ]
    assert len(configs) == 1
    (config,) = configs
    assert config["Qualifier"] == "live"
    assert config["MaximumRetryAttempts"] == 0
    assert config["MaximumEventAgeInSeconds"] == 60
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == QUEUE
    assert _grants(stack, "WorkflowsFunctionRole")["sqs:SendMessage"] == {"<AsyncFailureQueue.Arn>"}


# ---------------------------------------------------------------- the checks can fail


def _with_statement(resource: str, statement: dict[str, Any]) -> dict[str, Any]:
    source = sam_template.template()
    source["Resources"][resource]["Properties"]["Policies"].append({"Statement": [statement]})
    return source


def test_a_broad_step_functions_grant_on_the_workflows_function_is_caught() -> None:
    broad = {"Effect": "Allow", "Action": "states:*", "Resource": "*"}
    result = _deploy("dev", _with_statement("WorkflowsFunction", broad))
    assert "states:*" in _step_functions_grants(result)


def test_send_task_on_another_function_is_caught() -> None:
    callback = {"Effect": "Allow", "Action": ["states:SendTaskSuccess"], "Resource": "*"}
    result = _deploy("dev", _with_statement("HeartbeatFunction", callback))
    assert _others_on_step_functions(result) == {
        "HeartbeatFunctionRole": {"states:SendTaskSuccess"}
    }


def test_invoking_by_name_prefix_is_caught() -> None:
    # SAM's LambdaInvokePolicy allows function:<name>*, which longer names also match.
    source = sam_template.template()
    machine = source["Resources"]["WorkflowStateMachine"]["Properties"]
    machine["Policies"][0] = {"LambdaInvokePolicy": {"FunctionName": {"Ref": "WorkflowsFunction"}}}
    grants = _grants(_deploy("dev", source), "WorkflowStateMachineRole")
    assert grants["lambda:InvokeFunction"] == {
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:agentplane-dev-workflows*"
    }
