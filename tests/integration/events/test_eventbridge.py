"""In AWS every event goes to the EventBridge bus (PutEvents, Source `agentplane`,
DetailType the event type): checked under moto through a rule with an SQS target."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from agentplane.apps import build_local_app
from agentplane.db.database import Database
from agentplane.events.dispatcher import dispatch
from agentplane.events.publisher import EventBridgePublisher
from agentplane.runtime import Runtime
from agentplane.settings import Settings
from tests.support.api import NewUser
from tests.support.builders import create_org, new_agent, propose

BUS = "agentplane-test-events"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's AWS, with a bus whose rule on `agentplane` events feeds an SQS queue."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name=BUS)
        queue = sqs.create_queue(QueueName="agentplane-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        events.put_rule(
            Name="all-agentplane", EventBusName=BUS, EventPattern='{"source": ["agentplane"]}'
        )
        events.put_targets(
            Rule="all-agentplane",
            EventBusName=BUS,
            Targets=[{"Id": "queue", "Arn": arn["Attributes"]["QueueArn"]}],
        )
        yield queue


def received(queue: str) -> list[dict[str, Any]]:
    """Every EventBridge event the queue holds."""
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
        for m in messages:
            found.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return found


async def test_put_events_carries_each_event_to_the_bus(
    aws: str, settings: Settings, database: Database, new_user: NewUser
) -> None:
    # Given the runtime configured with a bus, as template.yaml configures it
    runtime = Runtime(replace_settings(settings, event_bus_name=BUS), database)
    assert isinstance(runtime.event_publisher, EventBridgePublisher)
    transport = httpx.ASGITransport(app=build_local_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        org = await create_org(client, new_user)
        agent_id = await new_agent(client, org)
        action = await propose(client, agent_id, org.member)
        # When the dispatcher runs
        result = await dispatch(runtime)
    # Then the proposal went to the bus as an `agentplane` event of its type
    assert result.published == 1
    (event,) = received(aws)
    assert (event["source"], event["detail-type"]) == ("agentplane", "action.proposed")
    assert event["detail"]["type"] == "action.proposed"
    assert event["detail"]["organization_id"] == str(org.id)
    assert event["detail"]["data"]["action_id"] == action["id"]
    # And it is not published twice
    assert (await dispatch(runtime)).published == 0
    assert received(aws) == []


def replace_settings(settings: Settings, **changes: Any) -> Settings:
    """The settings with some fields changed (they are frozen)."""
    return settings.model_copy(update=changes)
