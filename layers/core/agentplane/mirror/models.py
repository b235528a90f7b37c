"""Mirror reports, in and out."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import model_validator

from agentplane.models import InputModel, OutputModel

ReportStatus = Literal["queued", "running", "succeeded", "failed"]
RequestedAnalyzer = Literal["auto", "heuristic", "llm"]


class ReportCreate(InputModel):
    """Analyze one of your connections' conversations in a period (default: since its
    last report, until now). `auto` uses the LLM analyzer when you have a key for the
    connection's provider, the heuristic one otherwise."""

    agent_connection_id: UUID
    since: datetime | None = None
    until: datetime | None = None
    analyzer: RequestedAnalyzer = "auto"

    @model_validator(mode="after")
    def _period(self) -> ReportCreate:
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class Report(OutputModel):
    """A mirror report: the seed's columns, and how it ran."""

    id: UUID
    user_id: UUID
    agent_connection_id: UUID | None
    agent_id: UUID | None
    title: str | None
    status: ReportStatus
    requested_analyzer: RequestedAnalyzer
    analyzer: str | None
    since: datetime | None
    until: datetime | None
    strengths: list[Any]
    weaknesses: list[Any]
    recommendations: list[Any]
    suggested_prompt: str | None
    suggested_prompt_diff: str | None
    prompt_changes: list[Any]
    notes: list[Any]
    message_count: int
    action_count: int
    dropped_evidence: int
    progress: dict[str, Any]
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    adopted_at: datetime | None
    adopted_prompt_version: int | None
    created_at: datetime
    updated_at: datetime
