"""What the runner protocol carries: sessions, claimed actions, refusals and tool results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

RefusalReason = Literal[
    "payload_hash_mismatch",
    "bad_signature",
    "approval_expired",
    "wrong_agent",
    "tool_not_allowed",
    "bad_args",
]
ResultStatus = Literal["succeeded", "failed"]


class _ServerModel(BaseModel):
    # The server may add fields; the runner reads what it needs and ignores the rest.
    model_config = ConfigDict(extra="ignore", frozen=True)


class RunnerSession(_ServerModel):
    """A registered runner session."""

    id: UUID
    agent_id: UUID
    status: str = "online"
    # Where to open the doorbell socket (registration only; None: poll).
    websocket_url: str | None = None


class ClaimedAction(_ServerModel):
    """One action handed to this runner under a lease.

    Only `id` and `fencing_token` are needed to answer the server; everything the
    approval covers is kept as received (strings, the payload untouched) so that
    `verify` checks exactly the bytes the server sent, and a malformed field becomes a
    refusal instead of an unreadable claim.
    """

    id: UUID
    fencing_token: int
    agent_id: str | None = None
    payload: Any = None
    payload_sha256: str | None = None
    approved_at: str | None = None
    approval_expires_at: str | None = None
    signature: str | None = None
    kid: str | None = None
    # The approval policy and risk the signature covers (as received).
    risk: Any = None
    policy_id: Any = None
    policy_version: Any = None
    lease_expires_at: str | None = None
    attempt: int = 0

    @property
    def tool(self) -> str:
        """The payload's tool name, for logs ("?" when there is none)."""
        tool = self.payload.get("tool") if isinstance(self.payload, dict) else None
        return tool if isinstance(tool, str) else "?"


class ActionRefusedError(Exception):
    """The runner will not run this action; nothing was executed."""

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RefusalReason = reason
        self.detail = detail


@dataclass(frozen=True)
class ToolResult:
    """What a run produced: the status and output reported to the server."""

    status: ResultStatus
    output: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def refused(cls, reason: RefusalReason, detail: str) -> ToolResult:
        """A refusal, reported as a failed result; nothing ran."""
        return cls("failed", {"refused": True, "reason": reason, "detail": detail})

    @property
    def refusal_reason(self) -> str | None:
        """The refusal reason, when this result is a refusal."""
        if self.output.get("refused") is True:
            return str(self.output.get("reason"))
        return None
