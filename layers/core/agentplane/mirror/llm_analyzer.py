"""The LLM mirror analyzer: map-reduce over the corpus with the report owner's own model.

The corpus is rendered as one compact line per message or action, each carrying its id
(`[m:<uuid>] user: ...`, `[a:<uuid>] shell rejected: <reason>`), and cut into chunks
whose request (instructions + chunk + room for one correction) fits `token_budget`
estimated tokens (ceil(chars / 4)). Map: one request per chunk for JSON findings. Reduce:
one request with the map findings (never the raw messages) and the current system prompt
for the final analysis. Replies are validated by pydantic; an unusable reply is retried
once with what was wrong, then the analyzer falls back (as it does at once on any error
from `complete`), saying why in `notes`. The diff is computed here, never taken from the
model. The provider wiring stays outside: the analyzer only sees `complete`.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from agentplane.mirror.analysis import (
    Analysis,
    Analyzer,
    Corpus,
    CorpusAction,
    CorpusMessage,
    Finding,
    PromptChange,
    SuggestedPrompt,
    SuggestedSkill,
    keep_known_evidence,
)
from agentplane.observability import logger

# One chat request: OpenAI-style messages in, the reply's text out.
Complete = Callable[[list[dict[str, Any]]], Awaitable[str]]
ReplyT = TypeVar("ReplyT", bound=BaseModel)

# Room kept in every request for the one correction a retry appends.
RETRY_NOTE_LIMIT = 400
# How much of a reason (validation error, provider error) makes it into a note.
REASON_LIMIT = 300
# In the reduce request: how much of a finding's detail, how many of its ids.
REDUCE_DETAIL_LIMIT = 400
REDUCE_EVIDENCE_LIMIT = 20
_TRUNCATED = " …[truncated]"

FINDING_SHAPE = (
    '{"title": str (<= 200 chars), "detail": str, "evidence": [id, ...], '
    '"frequency": int >= 0, "severity": "low" | "medium" | "high"}'
)

MAP_SYSTEM = f"""You review an AI agent's conversations and actions for its owner.
Each input line is one item: `[m:<id>] <role>: <text>` is a message, `[a:<id>] <tool> \
<status>[: <reason>]` is an action the agent proposed (a rejection's reason is the \
human's decision). Find what the agent does well (strengths), what goes wrong \
(weaknesses) and what should change (recommendations). Every finding cites the ids of \
the lines that show it (the id without the `m:`/`a:` prefix), counts how often it \
happens in these lines (frequency) and rates its severity.
Reply with only one JSON object, no prose:
{{"strengths": [finding, ...], "weaknesses": [finding, ...], "recommendations": [finding, ...]}}
where finding is {FINDING_SHAPE}. Cite only ids that appear in the input."""

REDUCE_SYSTEM = f"""You merge partial reviews of an AI agent into one report for its owner.
The input is the agent's current system prompt and findings from reviews of parts of its \
conversations (one JSON object per line). Merge findings that say the same thing (sum \
their frequency, keep all their evidence ids, take the highest severity), keep the \
important ones, and write an improved full system prompt that addresses the weaknesses, \
with one entry per change saying why and which evidence ids motivate it. Suggest reusable \
skills (a named prompt template) only where the findings show a repeated task.
Reply with only one JSON object, no prose:
{{"strengths": [finding, ...], "weaknesses": [finding, ...], "recommendations": [finding, ...],
 "suggested_prompt": {{"prompt": str, "changes": [{{"change": str, "rationale": str, \
"evidence": [id, ...]}}]}} or null,
 "skills": [{{"name": str, "category": str, "description": str, "template_prompt": str, \
"score": number 0..1, "evidence": [id, ...]}}]}}
where finding is {FINDING_SHAPE}. Cite only ids that appear in the findings."""


class LlmAnalyzerError(Exception):
    """A reply that cannot be used, or a failed request: the analyzer falls back."""

    kind = "error"


class _UnusableReplyError(LlmAnalyzerError):
    """The model's reply is not the JSON asked for (after the one retry)."""

    kind = "invalid_reply"


class _RequestFailedError(LlmAnalyzerError):
    """`complete` raised (provider down, refused, timed out, ...)."""

    kind = "request_failed"


# The reply shapes: lenient about extra keys and case, strict about what is kept.
class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _text_or_empty(value: Any) -> Any:
    return "" if value is None else value


class _FindingReply(_Reply):
    title: Annotated[str, Field(min_length=1)]
    detail: Annotated[str, BeforeValidator(_text_or_empty)] = ""
    evidence: list[str] = Field(default_factory=list)
    frequency: Annotated[int, Field(ge=0)] = 0
    severity: Annotated[Literal["low", "medium", "high"], BeforeValidator(_lower)] = "medium"


class _MapReply(_Reply):
    strengths: list[_FindingReply] = Field(default_factory=list)
    weaknesses: list[_FindingReply] = Field(default_factory=list)
    recommendations: list[_FindingReply] = Field(default_factory=list)


class _ChangeReply(_Reply):
    change: Annotated[str, Field(min_length=1)]
    rationale: Annotated[str, Field(min_length=1)]
    evidence: list[str] = Field(default_factory=list)


class _PromptReply(_Reply):
    prompt: Annotated[str, Field(min_length=1, max_length=100_000)]
    changes: list[_ChangeReply] = Field(default_factory=list)


class _SkillReply(_Reply):
    name: Annotated[str, Field(min_length=1)]
    category: Annotated[str, BeforeValidator(_text_or_empty)] = "general"
    description: Annotated[str, BeforeValidator(_text_or_empty)] = ""
    template_prompt: Annotated[str, Field(min_length=1, max_length=20_000)]
    score: Annotated[float, Field(ge=0, le=1)] = 0.5
    evidence: list[str] = Field(default_factory=list)


class _ReduceReply(_MapReply):
    suggested_prompt: _PromptReply | None = None
    skills: list[_SkillReply] = Field(default_factory=list)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _compact(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    text = _one_line(text)
    return text if len(text) <= limit else text[:limit] + "…"


def _message_line(message: CorpusMessage) -> str:
    return f"[m:{message.id}] {message.role}: {_one_line(message.content)}"


def _action_line(action: CorpusAction) -> str:
    line = f"[a:{action.id}] {action.tool} {action.status}"
    if action.decision_reason:
        line += f": {_one_line(action.decision_reason)}"
    if action.attempt > 1:
        line += f" (attempt {action.attempt})"
    if action.args:
        line += f" args={_compact(action.args, 200)}"
    if action.output is not None and action.status in ("failed", "succeeded"):
        line += f" output={_compact(action.output, 200)}"
    return line


def render_items(corpus: Corpus) -> list[tuple[UUID, str]]:
    """One compact line per message and action, oldest first, with the item's id."""
    timed: list[tuple[Any, int, UUID, str]] = [
        (m.created_at, 0, m.id, _message_line(m)) for m in corpus.messages
    ]
    timed += [(a.created_at, 1, a.id, _action_line(a)) for a in corpus.actions]
    timed.sort(key=lambda item: (item[0], item[1]))
    return [(item_id, line) for _, _, item_id, line in timed]


def _map_user_header(corpus: Corpus, index: int, total: int) -> str:
    return f"Connection: {corpus.connection_name[:100]}\nPart {index} of {total}, oldest first:\n"


@dataclass
class _Chunk:
    ids: list[UUID] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    chars: int = 0


def _load_json(reply: str) -> Any:
    """The reply as JSON: as it is, else the inside of its ``` block."""
    text = reply.strip()
    try:
        return json.loads(text)
    except ValueError:
        # Greedy: a suggested prompt inside the block may hold fences of its own.
        fenced = re.search(r"```(?:json|JSON)?[ \t]*\n?(.*)```", text, re.DOTALL)
        if fenced is None:
            raise
        return json.loads(fenced.group(1).strip())


def _validation_reason(exc: ValidationError) -> str:
    # Never the input values: they may quote the conversations.
    parts = [
        f"{'.'.join(str(p) for p in error['loc']) or 'reply'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)[:5]
    ]
    return "; ".join(parts)


def _parse_reply(reply: str, model: type[ReplyT]) -> ReplyT:
    """The reply as `model`, or `_UnusableReplyError` saying what is wrong."""
    try:
        data = _load_json(reply)
    except ValueError as exc:
        raise _UnusableReplyError(f"the reply is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _UnusableReplyError("the reply is not a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _UnusableReplyError(
            f"the reply does not match the schema ({_validation_reason(exc)})"
        ) from None


_ID = re.compile(r"^\[?(?:[ma]:)?([0-9a-fA-F-]{32,36})\]?$")


@dataclass
class _Run:
    """What one analysis did, for the log line and the notes."""

    chunks: int = 0
    requests: int = 0
    retries: int = 0
    truncated_items: int = 0
    skipped_items: int = 0
    omitted_findings: int = 0
    invented_ids: int = 0
    notes: list[str] = field(default_factory=list)

    def ids(self, raw: list[str], known: set[UUID] | None = None) -> list[UUID]:
        """The ids that read as UUIDs (and are `known`, if given); the rest counted."""
        kept: list[UUID] = []
        for value in raw:
            match = _ID.match(value.strip())
            try:
                parsed = UUID(match.group(1)) if match else UUID(value)
            except ValueError:
                self.invented_ids += 1
                continue
            if known is not None and parsed not in known:
                self.invented_ids += 1
                continue
            kept.append(parsed)
        return kept


class LlmAnalyzer:
    """Analyzes a corpus with the owner's model (map-reduce); falls back when it cannot."""

    name = "llm"

    def __init__(
        self,
        complete: Complete,
        *,
        fallback: Analyzer,
        token_budget: int = 6000,
        max_chunks: int = 50,
    ) -> None:
        fixed = len(MAP_SYSTEM) + len(_map_user_header_worst()) + RETRY_NOTE_LIMIT
        if token_budget * 4 < fixed + 200:
            raise ValueError(
                f"token_budget {token_budget} leaves no room for a chunk "
                f"(at least {math.ceil((fixed + 200) / 4)} needed)"
            )
        if max_chunks < 1:
            raise ValueError("max_chunks must be at least 1")
        self._complete = complete
        self._fallback = fallback
        self._token_budget = token_budget
        self._max_chunks = max_chunks

    def __repr__(self) -> str:
        return f"LlmAnalyzer(token_budget={self._token_budget}, max_chunks={self._max_chunks})"

    async def analyze(self, corpus: Corpus) -> Analysis:
        """The analysis of `corpus`; the fallback's, with the reason in notes, on failure."""
        run = _Run()
        try:
            analysis = await self._analyze(corpus, run)
        except LlmAnalyzerError as exc:
            reason = str(exc)[:REASON_LIMIT]
            analysis = await self._fallback.analyze(corpus)
            analysis = analysis.model_copy(
                update={"notes": [*analysis.notes, f"fell back to heuristic: {reason}"]}
            )
            self._log(corpus, run, analysis, fallback=exc.kind)
            return analysis
        self._log(corpus, run, analysis, fallback=None)
        return analysis

    async def _analyze(self, corpus: Corpus, run: _Run) -> Analysis:
        chunks = self._chunks(corpus, run)
        run.chunks = len(chunks)
        if not chunks:
            return Analysis(analyzer="llm", notes=["nothing to analyze in this period"])
        findings: list[tuple[str, _FindingReply]] = []
        for index, chunk in enumerate(chunks, start=1):
            header = _map_user_header(corpus, index, len(chunks))
            messages = [
                {"role": "system", "content": MAP_SYSTEM},
                {"role": "user", "content": header + "\n".join(chunk.lines)},
            ]
            mapped = await self._ask(messages, _MapReply, run, f"map {index}/{len(chunks)}")
            for kind in ("strengths", "weaknesses", "recommendations"):
                findings += [(kind, f) for f in getattr(mapped, kind)]
        reduced = await self._ask(
            self._reduce_request(corpus, findings, run), _ReduceReply, run, "reduce"
        )
        analysis = keep_known_evidence(self._to_analysis(corpus, reduced, run), corpus)
        dropped = analysis.dropped_evidence + run.invented_ids
        notes = list(run.notes)
        if dropped:
            notes.append(
                f"dropped {dropped} evidence id(s) the model cited that are not in the corpus"
            )
        return analysis.model_copy(update={"dropped_evidence": dropped, "notes": notes})

    def _chunks(self, corpus: Corpus, run: _Run) -> list[_Chunk]:
        """The rendered items cut into chunks that fit the budget; the newest kept."""
        room = (
            self._token_budget * 4
            - len(MAP_SYSTEM)
            - len(_map_user_header_worst())
            - RETRY_NOTE_LIMIT
        )
        chunks: list[_Chunk] = []
        current = _Chunk()
        for item_id, line in render_items(corpus):
            if len(line) > room:
                line = line[: room - len(_TRUNCATED)] + _TRUNCATED
                run.truncated_items += 1
            # +1: the newline that joins it to the previous line.
            cost = len(line) + (1 if current.lines else 0)
            if current.lines and current.chars + cost > room:
                chunks.append(current)
                current = _Chunk()
                cost = len(line)
            current.ids.append(item_id)
            current.lines.append(line)
            current.chars += cost
        if current.lines:
            chunks.append(current)
        if run.truncated_items:
            run.notes.append(f"truncated {run.truncated_items} item(s) longer than a chunk")
        if len(chunks) > self._max_chunks:
            skipped = chunks[: len(chunks) - self._max_chunks]
            run.skipped_items = sum(len(c.ids) for c in skipped)
            run.notes.append(
                f"analyzed the newest {self._max_chunks} of {len(chunks)} chunks; "
                f"{run.skipped_items} older item(s) were not read"
            )
            chunks = chunks[-self._max_chunks :]
        return chunks

    def _reduce_request(
        self, corpus: Corpus, findings: list[tuple[str, _FindingReply]], run: _Run
    ) -> list[dict[str, Any]]:
        """The reduce messages: the current prompt and as many findings as fit, worst first."""
        rank = {"high": 0, "medium": 1, "low": 2}
        # Ids a map reply invented are dropped (and counted) before the merge sees them.
        known = corpus.evidence_ids()
        ordered = sorted(findings, key=lambda kf: (rank[kf[1].severity], -kf[1].frequency))
        head = (
            "Current system prompt (between the markers; empty means none is set):\n"
            f"<<<PROMPT\n{corpus.system_prompt}\nPROMPT>>>\n"
            f"Findings from {run.chunks} part(s) of the conversations:\n"
        )
        room = self._token_budget * 4 - len(REDUCE_SYSTEM) - len(head) - RETRY_NOTE_LIMIT
        lines: list[str] = []
        used = 0
        for kind, finding in ordered:
            line = json.dumps(
                {
                    "kind": kind,
                    "title": finding.title[:200],
                    "detail": finding.detail[:REDUCE_DETAIL_LIMIT],
                    "evidence": [str(i) for i in run.ids(finding.evidence, known)][
                        :REDUCE_EVIDENCE_LIMIT
                    ],
                    "frequency": finding.frequency,
                    "severity": finding.severity,
                },
                ensure_ascii=False,
            )
            if used + len(line) + 1 > room:
                run.omitted_findings += 1
                continue
            lines.append(line)
            used += len(line) + 1
        if run.omitted_findings:
            run.notes.append(
                f"left {run.omitted_findings} lower-ranked finding(s) out of the merge "
                "to fit the token budget"
            )
        return [
            {"role": "system", "content": REDUCE_SYSTEM},
            {"role": "user", "content": head + ("\n".join(lines) or "(no findings)")},
        ]

    async def _ask(
        self, messages: list[dict[str, Any]], model: type[ReplyT], run: _Run, step: str
    ) -> ReplyT:
        """One request, validated; retried once with what was wrong; else it raises."""
        reply = await self._request(messages, run, step)
        try:
            return _parse_reply(reply, model)
        except _UnusableReplyError as first:
            problem = str(first)
        run.retries += 1
        correction = (
            f"Your previous reply could not be used: {problem}"[: RETRY_NOTE_LIMIT - 80]
            + "\nAnswer again with only the JSON object described above."
        )
        reply = await self._request([*messages, {"role": "user", "content": correction}], run, step)
        try:
            return _parse_reply(reply, model)
        except _UnusableReplyError as second:
            raise _UnusableReplyError(f"{step}: {second} (after one retry)") from None

    async def _request(self, messages: list[dict[str, Any]], run: _Run, step: str) -> str:
        run.requests += 1
        try:
            return await self._complete(messages)
        except Exception as exc:
            raise _RequestFailedError(f"{step}: {type(exc).__name__}: {exc}") from exc

    def _to_analysis(self, corpus: Corpus, reply: _ReduceReply, run: _Run) -> Analysis:
        def finding(f: _FindingReply) -> Finding:
            return Finding(
                title=f.title[:200],
                detail=f.detail[:4000],
                evidence=run.ids(f.evidence),
                frequency=f.frequency,
                severity=f.severity,
            )

        prompt = None
        if reply.suggested_prompt is not None:
            suggested = reply.suggested_prompt.prompt
            diff = "".join(
                difflib.unified_diff(
                    corpus.system_prompt.splitlines(keepends=True),
                    suggested.splitlines(keepends=True),
                    fromfile="current",
                    tofile="suggested",
                )
            )
            prompt = SuggestedPrompt(
                prompt=suggested,
                diff=diff,
                changes=[
                    PromptChange(
                        change=c.change[:2000],
                        rationale=c.rationale[:2000],
                        evidence=run.ids(c.evidence),
                    )
                    for c in reply.suggested_prompt.changes
                ],
            )
        skills = [
            SuggestedSkill(
                name=s.name[:200],
                category=(s.category or "general")[:100],
                description=s.description[:4000],
                template_prompt=s.template_prompt,
                score=s.score,
                evidence=run.ids(s.evidence),
            )
            for s in reply.skills
        ]
        return Analysis(
            strengths=[finding(f) for f in reply.strengths],
            weaknesses=[finding(f) for f in reply.weaknesses],
            recommendations=[finding(f) for f in reply.recommendations],
            suggested_prompt=prompt,
            skills=skills,
            analyzer="llm",
        )

    @staticmethod
    def _log(corpus: Corpus, run: _Run, analysis: Analysis, *, fallback: str | None) -> None:
        # Counts only: never message content, prompts or the model's words.
        logger.info(
            "mirror llm analysis",
            extra={
                "connection_id": str(corpus.connection_id),
                "items": len(corpus.messages) + len(corpus.actions),
                "chunks": run.chunks,
                "requests": run.requests,
                "retries": run.retries,
                "truncated_items": run.truncated_items,
                "skipped_items": run.skipped_items,
                "omitted_findings": run.omitted_findings,
                "dropped_evidence": analysis.dropped_evidence,
                "fell_back": fallback is not None,
                # Powertools leaves out None values: "none" keeps the key in every line.
                "fallback_kind": fallback or "none",
                "analyzer": analysis.analyzer,
            },
        )


def _map_user_header_worst() -> str:
    """The longest map header (100-char name, 3-digit part numbers... with margin)."""
    return f"Connection: {'x' * 100}\nPart 999999 of 999999, oldest first:\n"
