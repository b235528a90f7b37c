"""Runner protocol models: sessions, claims under lease, results and releases."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, field_validator

from agentplane.actions.models import Action, Refused
from agentplane.models import InputModel, JsonObject, JsonObjectIn, OutputModel, distinct

SessionStatus = Literal["online", "offline", "busy"]
ResultStatus = Literal["succeeded", "failed"]
# A fencing token is a bigint column; anything outside it can never be current.
FencingToken = Annotated[int, Field(ge=0, le=2**63 - 1)]

MAX_CLAIM = 50
MIN_LEASE_SECONDS = 10
MAX_LEASE_SECONDS = 3600


class SessionCreate(InputModel):
    """A runner registering itself: where it listens, and anything it wants to say."""

    socket_id: Annotated[str, Field(max_length=200)] = ""
    metadata: JsonObjectIn = Field(default_factory=dict)


class Session(OutputModel):
    """A runner session and its presence."""

    id: UUID
    agent_id: UUID
    organization_id: UUID
    runner_token_id: UUID | None
    socket_id: str
    # When its doorbell socket opened (null: none open); `socket_id` is then its id.
    socket_connected_at: datetime | None = None
    status: SessionStatus
    last_heartbeat: datetime
    metadata: JsonObject
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None


class RegisteredSession(Session):
    """A new session, and where its runner opens the doorbell socket (null: the server
    has none; poll)."""

    websocket_url: str | None


class ClaimRequest(InputModel):
    """Up to `max` approved actions for this session, each leased for `lease_seconds`."""

    session_id: UUID
    max: Annotated[int, Field(ge=1, le=MAX_CLAIM)] = 1
    lease_seconds: Annotated[int, Field(ge=MIN_LEASE_SECONDS, le=MAX_LEASE_SECONDS)] = 60


class ClaimedAction(OutputModel):
    """An action handed to a runner: exactly what the approval signature covers, plus
    the lease. The runner verifies hash and signature before it runs anything."""

    id: UUID
    agent_id: UUID
    payload: JsonObject
    payload_sha256: str
    approved_at: datetime
    approval_expires_at: datetime
    signature: str
    # The approval policy it was decided under and the risk: signed too.
    risk: str
    policy_id: UUID | None
    policy_version: int | None
    fencing_token: int
    lease_expires_at: datetime
    attempt: int


class ClaimedActions(OutputModel):
    """What one claim handed out, oldest first (empty when the queue is)."""

    items: list[ClaimedAction]


class ActionResult(InputModel):
    """How a claimed action ended, reported with the claim's fencing token."""

    fencing_token: FencingToken
    status: ResultStatus
    output: JsonObjectIn


class ActionResultItem(ActionResult):
    """One result of a batch, naming its action."""

    action_id: UUID


class ActionResults(InputModel):
    """Several results at once (up to one claim's worth), in one transaction."""

    results: Annotated[list[ActionResultItem], Field(min_length=1, max_length=MAX_CLAIM)]

    @field_validator("results")
    @classmethod
    def _one_result_per_action(cls, value: list[ActionResultItem]) -> list[ActionResultItem]:
        distinct([item.action_id for item in value])
        return value


class ActionResultsOutcome(OutputModel):
    """What a batch of results did: the finished actions and the refused results (a
    stale fencing token: 409 with `current_status`), each in the order given."""

    finished: list[Action]
    refused: list[Refused]


class ActionRelease(InputModel):
    """Hand a claimed action back to the queue without counting the attempt."""

    fencing_token: FencingToken
