"""Approval policies as the API takes and shows them, and what `evaluate` explains."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, field_validator

from agentplane.models import InputModel, JsonObject, OutputModel, distinct

Risk = Literal["low", "medium", "high", "critical"]
ApproverRole = Literal["owner", "admin", "member"]
ToolPattern = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.*-]{1,100}$")]
ApproverRoles = Annotated[list[ApproverRole], Field(min_length=1, max_length=3)]
# The rules an auto-approval's constraints may use, per argument (see the migration's
# private.args_fit, which decides).
CONSTRAINT_RULES = ("path_within", "one_of", "max_length")
DEFAULT_ROLES: list[ApproverRole] = ["owner", "admin", "member"]


def _check_constraints(value: dict[str, Any]) -> dict[str, Any]:
    for argument, rules in value.items():
        if not isinstance(rules, dict) or not rules:
            raise ValueError(f"{argument}: rules must be a non-empty object")
        for rule, setting in rules.items():
            if rule not in CONSTRAINT_RULES:
                raise ValueError(
                    f"{argument}: unknown rule {rule!r} (known: {', '.join(CONSTRAINT_RULES)})"
                )
            if rule == "path_within" and not isinstance(setting, str):
                raise ValueError(f"{argument}: path_within takes a directory")
            if rule == "one_of" and not isinstance(setting, list):
                raise ValueError(f"{argument}: one_of takes a list of values")
            if rule == "max_length" and (
                not isinstance(setting, int) or isinstance(setting, bool) or setting < 0
            ):
                raise ValueError(f"{argument}: max_length takes a whole number")
    return value


class PolicyTerms(InputModel):
    """What a policy asks of the actions it matches."""

    name: Annotated[str, Field(max_length=200)] = ""
    tool_pattern: ToolPattern = "*"
    risk: Risk = "medium"
    required_approvals: Annotated[int, Field(ge=1, le=5)] = 1
    # Default: false for high and critical, true otherwise.
    proposer_may_approve: bool | None = None
    approver_roles: ApproverRoles = Field(default_factory=lambda: list(DEFAULT_ROLES))
    auto_approve: bool = False
    auto_approve_constraints: dict[str, Any] = Field(default_factory=dict)
    ttl_seconds: Annotated[int, Field(ge=10, le=604800)] | None = None
    escalate_after_seconds: Annotated[int, Field(ge=1, le=604800)] | None = None
    escalate_to_role: ApproverRole | None = None

    _roles_distinct = field_validator("approver_roles")(distinct)
    _constraints_known = field_validator("auto_approve_constraints")(_check_constraints)


class PolicyCreate(PolicyTerms):
    """A new policy of an organization, for one agent, one project or all of it."""

    organization_id: UUID
    project_id: UUID | None = None
    agent_id: UUID | None = None


class PolicyUpdate(InputModel):
    """Change some terms; the scope stays. Every change bumps the version."""

    name: Annotated[str, Field(max_length=200)] | None = None
    tool_pattern: ToolPattern | None = None
    risk: Risk | None = None
    required_approvals: Annotated[int, Field(ge=1, le=5)] | None = None
    proposer_may_approve: bool | None = None
    approver_roles: ApproverRoles | None = None
    auto_approve: bool | None = None
    auto_approve_constraints: dict[str, Any] | None = None
    ttl_seconds: Annotated[int, Field(ge=10, le=604800)] | None = None
    escalate_after_seconds: Annotated[int, Field(ge=1, le=604800)] | None = None
    escalate_to_role: ApproverRole | None = None

    _roles_distinct = field_validator("approver_roles")(
        lambda v: distinct(v) if v is not None else v
    )
    _constraints_known = field_validator("auto_approve_constraints")(
        lambda v: _check_constraints(v) if v is not None else v
    )


class Policy(OutputModel):
    """An approval policy."""

    id: UUID
    organization_id: UUID
    project_id: UUID | None
    agent_id: UUID | None
    name: str
    tool_pattern: str
    risk: Risk
    required_approvals: int
    proposer_may_approve: bool
    approver_roles: list[str]
    auto_approve: bool
    auto_approve_constraints: JsonObject
    ttl_seconds: int | None
    escalate_after_seconds: int | None
    escalate_to_role: str | None
    version: int
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class Candidate(OutputModel):
    """A policy that matches, in the order they are weighed (the first applies)."""

    policy: Policy
    scope: Literal["agent", "project", "organization"]
    exact_tool: bool


class Evaluation(OutputModel):
    """Which terms an action of this agent and tool would be proposed under, and why."""

    agent_id: UUID
    tool: str
    policy: Policy | None
    risk: Risk
    required_approvals: int
    proposer_may_approve: bool
    approver_roles: list[str]
    auto_approve: bool
    ttl_seconds: int | None
    escalate_after_seconds: int | None
    escalate_to_role: str | None
    why: str
    candidates: list[Candidate]
