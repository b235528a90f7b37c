"""Action input and output models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, StringConstraints, computed_field

from agentplane.models import InputModel, JsonObject, JsonObjectIn, OutputModel, distinct

ActionStatus = Literal[
    "pending", "approved", "rejected", "expired", "cancelled", "claimed", "succeeded", "failed"
]
ToolName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200)]

DEFAULT_TTL_SECONDS = 3600
MAX_DECISION_BATCH = 100
MAX_TTL_SECONDS = 7 * 24 * 3600


class ActionPayload(InputModel):
    """What the agent wants done: a tool and its arguments. Immutable once proposed."""

    tool: ToolName
    args: JsonObjectIn = Field(default_factory=dict)


class ActionProposal(InputModel):
    """A proposal; a retried proposal with the same `idempotency` returns the first one."""

    payload: ActionPayload
    ttl_seconds: Annotated[int, Field(ge=10, le=MAX_TTL_SECONDS)] = DEFAULT_TTL_SECONDS
    idempotency: IdempotencyKey | None = None
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3


class UndoRequest(InputModel):
    """Why a person asks to undo an action, and how long the inverse may wait for approval."""

    reason: Annotated[str, Field(max_length=2000)] | None = None
    ttl_seconds: Annotated[int, Field(ge=10, le=MAX_TTL_SECONDS)] = DEFAULT_TTL_SECONDS


class Decision(InputModel):
    """Why a person approved, rejected or cancelled an action."""

    reason: Annotated[str, Field(max_length=2000)] | None = None


class BatchDecision(InputModel):
    """One decision on several actions at once (a reviewer's "approve these"): each
    action is decided on its own terms, as if alone, in one transaction."""

    decision: Literal["approve", "reject", "cancel"]
    action_ids: Annotated[
        list[UUID], Field(min_length=1, max_length=MAX_DECISION_BATCH), AfterValidator(distinct)
    ]
    reason: Annotated[str, Field(max_length=2000)] | None = None


class Refused(OutputModel):
    """An item of a batch that was not done: the problem its single call would answer."""

    action_id: UUID
    status: int
    title: str
    detail: str
    current_status: ActionStatus | None = None


class Approval(OutputModel):
    """One person's approval of an action."""

    approver_id: UUID | None
    approver_role: str
    reason: str | None
    created_at: datetime


class Action(OutputModel):
    """An action in the queue."""

    id: UUID
    organization_id: UUID
    agent_id: UUID
    status: ActionStatus
    payload: JsonObject
    payload_sha256: str
    idempotency_key: str | None
    source: Literal["user", "brain", "workflow"]
    proposed_by: UUID | None
    expires_at: datetime
    decided_by: UUID | None
    decided_at: datetime | None
    decision_reason: str | None
    approval_signature: str | None
    approval_expires_at: datetime | None
    session_id: UUID | None
    lease_expires_at: datetime | None
    fencing_token: int
    attempt: int
    max_attempts: int
    output: Any | None
    finished_at: datetime | None
    workflow_run_id: UUID | None
    # The workflow node that proposed it, and what it is: a tool call for a runner, or
    # an approval gate (a workflow's `approval` node: decided, never run).
    workflow_node_id: str | None = None
    kind: Literal["tool", "approval"] = "tool"
    # The assistant message whose tool call this is (actions the brain proposed).
    message_id: UUID | None = None
    # The approval policy it was proposed under (null: the default) and its terms then.
    policy_id: UUID | None = None
    policy_version: int | None = None
    risk: Literal["low", "medium", "high", "critical"] = "medium"
    required_approvals: int = 1
    approval_count: int = 0
    proposer_may_approve: bool = True
    approver_roles: list[str] = Field(default_factory=lambda: ["owner", "admin", "member"])
    auto_approve: bool = False
    # The policy that approved it by itself (an auto-approval), when one did.
    approved_by_policy: UUID | None = None
    escalate_at: datetime | None = None
    escalate_to_role: str | None = None
    escalated_at: datetime | None = None
    # Each approval so far (on GET /actions/{id}; lists leave it out).
    approvals: list[Approval] | None = None
    # The action this one was proposed to undo (POST /actions/{id}/undo), and why.
    undo_of: UUID | None = None
    undo_reason: str | None = None
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def approvals_needed(self) -> int:
        """How many more approvals it needs before it is approved (0 once decided)."""
        if self.status != "pending":
            return 0
        return max(self.required_approvals - self.approval_count, 0)


class ActionEvent(OutputModel):
    """One transition in an action's hash-chained audit log."""

    id: int
    action_id: UUID
    actor_id: UUID | None
    actor_role: str
    from_status: ActionStatus | None
    to_status: ActionStatus
    detail: JsonObject
    created_at: datetime
    prev_hash: str | None
    hash: str


class ActionEvents(OutputModel):
    """The whole log of one action, oldest first (a handful of rows, never paged)."""

    items: list[ActionEvent]
    next_cursor: None = None


class BatchDecisionResult(OutputModel):
    """What a batch decision did: the decided actions and the refused ones, each in the
    order asked."""

    decided: list[Action]
    refused: list[Refused]
