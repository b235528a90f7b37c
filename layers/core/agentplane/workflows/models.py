"""Workflow definitions and runs, in and out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field, JsonValue

from agentplane.models import Description, InputModel, JsonObject, Name, OutputModel
from agentplane.workflows.definition import Definition

RunStatus = Literal["pending", "running", "waiting", "succeeded", "failed", "cancelled"]
NodeStatus = Literal["pending", "running", "waiting", "succeeded", "failed", "skipped"]


class WorkflowCreate(InputModel):
    """A new workflow of a project: its DAG is checked before it is saved."""

    project_id: UUID
    name: Name
    description: Description = ""
    definition: Definition = Field(default_factory=Definition)


class WorkflowUpdate(InputModel):
    """Fields to change; every save makes a new version."""

    name: Name | None = None
    description: Description | None = None
    definition: Definition | None = None


class Workflow(OutputModel):
    """A workflow definition."""

    id: UUID
    organization_id: UUID
    project_id: UUID
    name: str
    description: str
    definition: JsonObject
    version: int
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class RunCreate(InputModel):
    """A run's input: what `input.*` means in the workflow's expressions."""

    input: dict[str, JsonValue] = Field(default_factory=dict)


class NodeState(OutputModel):
    """Where one node of a run is."""

    id: str
    type: str
    status: NodeStatus
    attempts: int = 0
    output: Any | None = None
    error: JsonObject | None = None
    # The action an `action` or `approval` node proposed, and the state it reached.
    action_id: UUID | None = None
    action_status: str | None = None
    # A failure that an edge's `when` handled (the run went on).
    handled: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # A failed attempt's retry is not started before this.
    not_before: datetime | None = None


class Callback(OutputModel):
    """One message of the run to Step Functions (start, stop, a node's task token) and
    what became of it."""

    id: int
    kind: Literal["start", "stop", "success", "failure"]
    node_id: str | None
    action_id: UUID | None
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    outcome: str | None
    last_error: str | None
    created_at: datetime


class Run(OutputModel):
    """A run of a workflow: its pinned version and definition, and each node's state."""

    id: UUID
    organization_id: UUID
    workflow_id: UUID
    workflow_version: int
    status: RunStatus
    input: JsonObject
    output: Any | None
    definition: JsonObject
    nodes: list[NodeState]
    execution_arn: str | None
    executions: int
    error: str | None
    started_by: UUID | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime
    callbacks: list[Callback] = Field(default_factory=list)


class RunSummary(OutputModel):
    """A run in a list."""

    id: UUID
    workflow_id: UUID
    workflow_version: int
    status: RunStatus
    error: str | None
    started_by: UUID | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime
