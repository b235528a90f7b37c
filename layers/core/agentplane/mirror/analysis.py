"""What a mirror analyzer reads and what it returns: the interface both analyzers share.

A `Corpus` is one connection's messages in a period and, where its conversations are
linked to an agent, that agent's actions in the same period (human decisions, runner
results). An `Analysis` is the report's content: findings that each carry evidence ids
from the corpus, a frequency and a severity; a suggested prompt with its diff against
the agent's current system prompt and a rationale per change; suggested skills.

The report runner (mirror/service.py) builds the corpus through RLS as the report's
owner, calls an analyzer, drops evidence ids that are not in the corpus (counting them)
and writes the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["low", "medium", "high"]


@dataclass(frozen=True)
class CorpusMessage:
    """One message of the connection's conversations."""

    id: UUID
    conversation_id: UUID
    role: Literal["system", "user", "assistant"]
    content: str
    created_at: datetime


@dataclass(frozen=True)
class CorpusAction:
    """One action of the linked agent: what was proposed and what became of it."""

    id: UUID
    status: str  # pending|approved|rejected|expired|cancelled|claimed|succeeded|failed
    tool: str
    args: dict[str, Any]
    decision_reason: str | None
    output: Any
    attempt: int
    created_at: datetime
    # The assistant message whose tool call proposed it (brain turns), if any.
    message_id: UUID | None = None


@dataclass(frozen=True)
class Corpus:
    """What one report analyzes, oldest first."""

    connection_id: UUID
    connection_name: str
    agent_id: UUID | None
    # The agent's current system prompt ('' when there is no agent or none is set).
    system_prompt: str
    since: datetime | None
    until: datetime
    messages: list[CorpusMessage] = field(default_factory=list)
    actions: list[CorpusAction] = field(default_factory=list)

    def evidence_ids(self) -> set[UUID]:
        """Every id a finding may cite."""
        return {m.id for m in self.messages} | {a.id for a in self.actions}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Finding(_Model):
    """A strength, weakness or recommendation, with the ids that show it."""

    title: Annotated[str, Field(min_length=1, max_length=200)]
    detail: Annotated[str, Field(max_length=4000)] = ""
    evidence: list[UUID] = Field(default_factory=list)
    frequency: Annotated[int, Field(ge=0)] = 0
    severity: Severity = "medium"


class PromptChange(_Model):
    """One change of the suggested prompt and why."""

    change: Annotated[str, Field(min_length=1, max_length=2000)]
    rationale: Annotated[str, Field(min_length=1, max_length=2000)]
    evidence: list[UUID] = Field(default_factory=list)


class SuggestedPrompt(_Model):
    """A full system prompt, its unified diff against the current one, and why."""

    prompt: Annotated[str, Field(min_length=1, max_length=100_000)]
    diff: str = ""
    changes: list[PromptChange] = Field(default_factory=list)


class SuggestedSkill(_Model):
    """A skill the report suggests (`status = 'suggested'` when it is saved)."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    category: Annotated[str, Field(max_length=100)] = "general"
    description: Annotated[str, Field(max_length=4000)] = ""
    template_prompt: Annotated[str, Field(min_length=1, max_length=20_000)]
    score: Annotated[float, Field(ge=0, le=1)] = 0.5
    evidence: list[UUID] = Field(default_factory=list)


class Analysis(_Model):
    """A report's content."""

    strengths: list[Finding] = Field(default_factory=list)
    weaknesses: list[Finding] = Field(default_factory=list)
    recommendations: list[Finding] = Field(default_factory=list)
    suggested_prompt: SuggestedPrompt | None = None
    skills: list[SuggestedSkill] = Field(default_factory=list)
    # What the analyzer wants the reader to know (e.g. "fell back to heuristic: ...").
    notes: list[str] = Field(default_factory=list)
    # Evidence ids dropped because they are not in the corpus.
    dropped_evidence: int = 0
    # The analyzer that produced this ("heuristic", or "llm"; "heuristic" after a
    # fallback, with the reason in `notes`).
    analyzer: Literal["heuristic", "llm"] = "heuristic"


class Analyzer(Protocol):
    """One way to analyze a corpus."""

    name: str

    async def analyze(self, corpus: Corpus) -> Analysis:
        """The analysis of `corpus` (never raises for bad model output: falls back)."""
        ...


def keep_known_evidence(analysis: Analysis, corpus: Corpus) -> Analysis:
    """The analysis with every evidence id that is not in the corpus dropped, and
    `dropped_evidence` counting them."""
    known = corpus.evidence_ids()
    dropped = 0

    def keep(ids: list[UUID]) -> list[UUID]:
        nonlocal dropped
        kept = [i for i in ids if i in known]
        dropped += len(ids) - len(kept)
        return kept

    def findings(items: list[Finding]) -> list[Finding]:
        return [f.model_copy(update={"evidence": keep(f.evidence)}) for f in items]

    prompt = analysis.suggested_prompt
    if prompt is not None:
        prompt = prompt.model_copy(
            update={
                "changes": [
                    c.model_copy(update={"evidence": keep(c.evidence)}) for c in prompt.changes
                ]
            }
        )
    skills = [s.model_copy(update={"evidence": keep(s.evidence)}) for s in analysis.skills]
    return analysis.model_copy(
        update={
            "strengths": findings(analysis.strengths),
            "weaknesses": findings(analysis.weaknesses),
            "recommendations": findings(analysis.recommendations),
            "suggested_prompt": prompt,
            "skills": skills,
            "dropped_evidence": analysis.dropped_evidence + dropped,
        }
    )
