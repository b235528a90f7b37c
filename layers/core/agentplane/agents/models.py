"""Agent, agent config and runner token input and output models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, StringConstraints

from agentplane.models import Description, InputModel, LongText, Name, OutputModel
from agentplane.tools.service import known_tool

AgentStatus = Literal["active", "paused", "archived"]
# Why a prompt version was made: a config write, an adopted mirror report, a restore.
PromptSource = Literal["edit", "adopt", "restore"]

# What a model provider calls the model; empty means "the connection's default".
ModelName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
# Stored as numeric(3, 2): a finer value is rounded to two decimals.
Temperature = Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)]
ToolName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
MAX_ALLOWED_TOOLS = 64
TokenName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
MIN_TOKEN_LIFETIME_SECONDS = 60
MAX_TOKEN_LIFETIME_SECONDS = 366 * 24 * 3600


def _unique_tools(tools: list[str]) -> list[str]:
    repeated = sorted({tool for tool in tools if tools.count(tool) > 1})
    if repeated:
        raise ValueError(f"tool names must be unique; repeated: {', '.join(repeated)}")
    return tools


# Only tools of the catalog: a name no runner has is refused (rule `known_tool`).
AllowedTools = Annotated[
    list[Annotated[ToolName, AfterValidator(known_tool)]],
    Field(max_length=MAX_ALLOWED_TOOLS),
    AfterValidator(_unique_tools),
]


class AgentCreate(InputModel):
    """A new agent in a project the caller can see (members and up)."""

    project_id: UUID
    name: Name
    description: Description = ""
    status: AgentStatus = "active"


class AgentUpdate(InputModel):
    """Fields of an agent that can change."""

    name: Name | None = None
    description: Description | None = None
    status: AgentStatus | None = None


class Agent(OutputModel):
    """An agent."""

    id: UUID
    organization_id: UUID
    project_id: UUID
    name: str
    description: str
    status: AgentStatus
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class AgentConfigUpdate(InputModel):
    """The whole config of an agent: every field is required, so a PUT never half-resets."""

    model: ModelName
    system_prompt: LongText
    temperature: Temperature
    # One of the caller's own connections, or null for none.
    connection_id: UUID | None
    allowed_tools: AllowedTools


class AgentConfig(OutputModel):
    """An agent's model settings and the tools its model may propose."""

    agent_id: UUID
    model: str
    system_prompt: str
    temperature: float
    connection_id: UUID | None
    allowed_tools: list[str]
    created_at: datetime
    updated_at: datetime


class PromptVersion(OutputModel):
    """One version of an agent's system prompt: what it said, who made it and why."""

    id: UUID
    organization_id: UUID
    agent_id: UUID
    version: int
    system_prompt: str
    source: PromptSource
    # The mirror report id of an adopt, the restored version's number of a restore.
    source_id: str | None
    created_by: UUID | None
    created_at: datetime


class RunnerTokenCreate(InputModel):
    """A new runner credential for an agent; without a lifetime it gets the default one
    (`runner_token_lifetime_days`, 90 days unless configured)."""

    name: TokenName = ""
    expires_in_seconds: (
        Annotated[int, Field(ge=MIN_TOKEN_LIFETIME_SECONDS, le=MAX_TOKEN_LIFETIME_SECONDS)] | None
    ) = None


class RunnerToken(OutputModel):
    """A runner credential as listed: never the token, never its hash."""

    id: UUID
    agent_id: UUID
    name: str
    token_prefix: str
    created_by: UUID | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class RunnerTokenCreated(OutputModel):
    """A runner credential just issued: the only response that carries the token."""

    id: UUID
    agent_id: UUID
    token: str
    name: str
    token_prefix: str
    created_at: datetime
    expires_at: datetime | None
