"""Approval policies in the caller's transaction: admins write, members read (RLS), and
`evaluate` explains which policy a proposal would take. The proposal itself takes its
terms in the database (the migration's private.apply_approval_policy)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from agentplane.db.crud import Table, require_references, require_visible
from agentplane.db.pagination import Page, PageRequest
from agentplane.db.rows import Tx, fetch_all
from agentplane.errors import ValidationProblemError
from agentplane.policies.models import (
    DEFAULT_ROLES,
    Candidate,
    Evaluation,
    Policy,
    PolicyCreate,
    PolicyUpdate,
)
from agentplane.tools.catalog import default_risk

policies = Table("approval_policies", Policy, "approval policy")


def _check_terms(terms: dict[str, Any]) -> dict[str, Any]:
    """The rules between fields (each refused with its field and rule), and the default
    of proposer_may_approve: false for high and critical risk."""
    errors = []
    if terms.get("auto_approve"):
        if terms.get("risk") != "low":
            errors.append(
                {
                    "field": "auto_approve",
                    "in": "body",
                    "rule": "low_risk_only",
                    "message": "only a low-risk policy may approve by itself",
                }
            )
        if terms.get("required_approvals", 1) != 1:
            errors.append(
                {
                    "field": "required_approvals",
                    "in": "body",
                    "rule": "auto_approve_needs_one",
                    "message": "an auto-approving policy is its own single approval",
                }
            )
    elif terms.get("auto_approve_constraints"):
        errors.append(
            {
                "field": "auto_approve_constraints",
                "in": "body",
                "rule": "needs_auto_approve",
                "message": "constraints apply only to an auto-approving policy",
            }
        )
    if (terms.get("escalate_after_seconds") is None) != (terms.get("escalate_to_role") is None):
        errors.append(
            {
                "field": "escalate_to_role"
                if terms.get("escalate_to_role") is None
                else "escalate_after_seconds",
                "in": "body",
                "rule": "escalation_pair",
                "message": "an escalation needs both escalate_after_seconds and escalate_to_role",
            }
        )
    if errors:
        raise ValidationProblemError(errors)
    if terms.get("proposer_may_approve") is None:
        terms["proposer_may_approve"] = terms.get("risk") not in ("high", "critical")
    return terms


async def create_policy(tx: Tx, body: PolicyCreate) -> Policy:
    """A new policy of a visible organization (admins; 403 otherwise, 404 if unseen)."""
    await require_visible(tx, "organizations", body.organization_id, "organization")
    await require_references(
        tx, ("projects", body.project_id, "project"), ("agents", body.agent_id, "agent")
    )
    return await policies.insert(tx, _check_terms(body.model_dump()))


async def list_policies(
    tx: Tx, page: PageRequest, organization_id: UUID | None = None
) -> Page[Policy]:
    """A page of the policies the caller can see, optionally of one organization."""
    return await policies.page(tx, page, {"organization_id": organization_id})


async def get_policy(tx: Tx, policy_id: UUID) -> Policy:
    """One policy, or 404."""
    return await policies.require(tx, policy_id)


async def update_policy(tx: Tx, policy_id: UUID, body: PolicyUpdate) -> Policy:
    """Change the terms the body names (admins); the version goes up by one."""
    current = await policies.require(tx, policy_id)
    changes = body.model_dump(exclude_unset=True)
    merged = {**current.model_dump(), **changes}
    if "risk" in changes and "proposer_may_approve" not in changes:
        merged["proposer_may_approve"] = None  # the new risk's default
    terms = _check_terms(merged)
    names = set(changes) | {"proposer_may_approve"}
    return await policies.update(tx, policy_id, {k: terms[k] for k in names})


async def delete_policy(tx: Tx, policy_id: UUID) -> None:
    """Delete a policy (admins); actions decided under it keep its terms."""
    await policies.delete(tx, policy_id)


def _scope(policy: Policy) -> str:
    if policy.agent_id is not None:
        return "agent"
    return "project" if policy.project_id is not None else "organization"


async def evaluate(tx: Tx, agent_id: UUID, tool: str) -> Evaluation:
    """The terms a proposal of `tool` for the agent would take, and why (404 if the agent
    is not visible). Only policies the caller can read are weighed, as the proposal's
    trigger weighs every policy of the organization: members read them all."""
    await require_visible(tx, "agents", agent_id, "agent")
    matching = await fetch_all(
        tx, Policy, "select * from private.matching_policies(%s, %s)", (agent_id, tool)
    )
    candidates = [
        Candidate(policy=p, scope=_scope(p), exact_tool="*" not in p.tool_pattern) for p in matching
    ]
    if not candidates:
        return Evaluation(
            agent_id=agent_id,
            tool=tool,
            policy=None,
            risk=default_risk(tool),
            required_approvals=1,
            proposer_may_approve=True,
            approver_roles=list(DEFAULT_ROLES),
            auto_approve=False,
            ttl_seconds=None,
            escalate_after_seconds=None,
            escalate_to_role=None,
            why=(
                f"no policy matches {tool} for this agent: the default applies (one approval"
                " by an owner, admin or member, the proposer too; the tool catalog's risk)"
            ),
            candidates=[],
        )
    chosen = candidates[0]
    p = chosen.policy
    label = f"policy {p.name!r} ({p.id}, version {p.version})" if p.name else f"policy {p.id}"
    reasons = [
        f"it is scoped to this {chosen.scope}",
        "it names the tool exactly"
        if chosen.exact_tool
        else f"its pattern {p.tool_pattern!r} matches {tool}",
    ]
    others = len(candidates) - 1
    why = f"{label} applies: " + " and ".join(reasons)
    if others:
        why += f"; {others} other matching {'policy is' if others == 1 else 'policies are'}"
        why += " less specific"
    return Evaluation(
        agent_id=agent_id,
        tool=tool,
        policy=p,
        risk=p.risk,
        required_approvals=p.required_approvals,
        proposer_may_approve=p.proposer_may_approve,
        approver_roles=p.approver_roles,
        auto_approve=p.auto_approve,
        ttl_seconds=p.ttl_seconds,
        escalate_after_seconds=p.escalate_after_seconds,
        escalate_to_role=p.escalate_to_role,
        why=why,
        candidates=candidates,
    )
