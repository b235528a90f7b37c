"""The heuristic analyzer: offline, deterministic, one pass over the corpus.

It reads what people did and said, not what the model meant: rejected, expired, failed
and retried actions; assistant refusals; user corrections and repeated asks; questions
left unanswered; long answers to yes/no questions; user turns until a task was resolved.
Each signal becomes a finding whose evidence ids are the messages or actions that show
it, in corpus order. Weaknesses become recommendations and one rule each in a section
appended to the current system prompt. Same corpus in, equal `Analysis` out: no clock,
no randomness, every ordering fixed (tests/unit/test_mirror_heuristic.py pins it).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

from agentplane.mirror.analysis import (
    Analysis,
    Corpus,
    CorpusAction,
    CorpusMessage,
    Finding,
    PromptChange,
    Severity,
    SuggestedPrompt,
    SuggestedSkill,
)

# A finding lists at most this many ids; `frequency` still counts every occurrence.
MAX_EVIDENCE = 50
# An answer to a yes/no question longer than this many words is a long answer.
LONG_ANSWER_WORDS = 80
# User turns until the resolving message: at most FEW is a strength, at least MANY a
# weakness.
FEW_TURNS = 2
MANY_TURNS = 5
# Two user messages in a row whose token sets overlap this much (Jaccard) are one ask.
REPEAT_OVERLAP = 0.8
REPEAT_MIN_TOKENS = 3
# A tool with this many first-attempt successes and no rejection is suggested as a skill.
SKILL_MIN_SUCCESSES = 3
# The suggested prompt takes the rules of the first weaknesses (most severe, most
# frequent) up to this many, so a large corpus cannot grow it without bound.
MAX_RULES = 20
PROMPT_SECTION = "## Rules learned from past conversations"

_TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_REASON_NOISE_RE = re.compile(r"[^a-z0-9]+")
_REFUSAL_RE = re.compile(
    r"\bi(?: can ?not| can't| cannot| won't| will not| am unable|'m unable| am not able"
    r"|'m not able| am not allowed|'m not allowed| am not permitted|'m not permitted)\b"
    r"|\bi'm sorry, but i\b|\bnot (?:allowed|permitted) to\b"
)
_CORRECTION_RE = re.compile(
    r"^\s*(?:no|nope|wrong)\b"
    r"|\bthat'?s (?:wrong|not right|incorrect|not it)\b"
    r"|\bnot what i (?:asked|wanted|meant|said)\b"
    r"|\bi (?:already )?said\b|\bagain\b|\bwrong\b"
)
_RESOLVED_RE = re.compile(
    r"\b(?:thanks|thank you|thx|that works|that worked|perfect|solved|works now)\b"
)
_YES_NO_RE = re.compile(
    r"^\s*(?:is|are|am|was|were|can|could|do|does|did|will|would|should|shall|has|have"
    r"|had|may|might|must|isn't|aren't|don't|doesn't|didn't|won't|can't)\b"
)
_APPROVED_STATUSES = frozenset({"approved", "claimed", "succeeded", "failed"})
_SEVERITY_ORDER: dict[str, int] = {"high": 0, "medium": 1, "low": 2}


def _severity(count: int) -> Severity:
    return "high" if count >= 3 else "medium" if count == 2 else "low"


def _normalize_reason(reason: str | None) -> str:
    text = _REASON_NOISE_RE.sub(" ", (reason or "").lower()).strip()
    return text or "no reason given"


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass
class _Conversation:
    """What the pass remembers of one conversation."""

    last_user_tokens: frozenset[str] = frozenset()
    last_user_norm: str = ""
    last_user_id: UUID | None = None
    questions_waiting: list[UUID] = field(default_factory=list)
    yes_no_waiting: UUID | None = None
    user_turns: int = 0
    resolved: bool = False


@dataclass
class _Signals:
    """Ids per signal, in corpus order, gathered in the single pass."""

    refusals: list[UUID] = field(default_factory=list)
    corrections: list[UUID] = field(default_factory=list)
    repeats: list[tuple[UUID, UUID]] = field(default_factory=list)
    long_yes_no: list[tuple[UUID, UUID]] = field(default_factory=list)
    unanswered: list[UUID] = field(default_factory=list)
    few_turns: list[UUID] = field(default_factory=list)
    many_turns: list[UUID] = field(default_factory=list)
    turns_to_resolve: list[int] = field(default_factory=list)
    conversations: int = 0


def _read_messages(messages: Iterable[CorpusMessage]) -> _Signals:
    signals = _Signals()
    conversations: dict[UUID, _Conversation] = {}
    for message in messages:
        state = conversations.get(message.conversation_id)
        if state is None:
            state = conversations[message.conversation_id] = _Conversation()
        if message.role == "user":
            _read_user(message, state, signals)
        elif message.role == "assistant":
            _read_assistant(message, state, signals)
    signals.conversations = len(conversations)
    for state in conversations.values():
        signals.unanswered.extend(state.questions_waiting)
    return signals


def _read_user(message: CorpusMessage, state: _Conversation, signals: _Signals) -> None:
    text = message.content.lower().replace("\u2019", "'")
    resolves = _RESOLVED_RE.search(text) is not None
    if resolves and not state.resolved and state.user_turns > 0:
        state.resolved = True
        signals.turns_to_resolve.append(state.user_turns)
        if state.user_turns <= FEW_TURNS:
            signals.few_turns.append(message.id)
        elif state.user_turns >= MANY_TURNS:
            signals.many_turns.append(message.id)
    if not resolves:
        if not state.resolved:
            state.user_turns += 1
        if _CORRECTION_RE.search(text):
            signals.corrections.append(message.id)
        tokens = _TOKEN_RE.findall(text)
        norm = " ".join(tokens)
        token_set = frozenset(tokens)
        if state.last_user_id is not None and len(tokens) >= REPEAT_MIN_TOKENS:
            previous = state.last_user_tokens
            union = len(token_set | previous)
            if norm == state.last_user_norm or (
                union and len(token_set & previous) / union >= REPEAT_OVERLAP
            ):
                signals.repeats.append((state.last_user_id, message.id))
        state.last_user_tokens, state.last_user_norm = token_set, norm
        state.last_user_id = message.id
    stripped = text.rstrip()
    if stripped.endswith("?"):
        state.questions_waiting.append(message.id)
        state.yes_no_waiting = message.id if _YES_NO_RE.match(text) else None
    else:
        state.yes_no_waiting = None


def _read_assistant(message: CorpusMessage, state: _Conversation, signals: _Signals) -> None:
    state.questions_waiting.clear()
    if state.yes_no_waiting is not None:
        if len(message.content.split()) > LONG_ANSWER_WORDS:
            signals.long_yes_no.append((state.yes_no_waiting, message.id))
        state.yes_no_waiting = None
    if _REFUSAL_RE.search(message.content.lower().replace("\u2019", "'")):
        signals.refusals.append(message.id)


@dataclass
class _ActionGroups:
    """Action ids grouped by what became of them, in corpus order."""

    rejected: dict[tuple[str, str], list[CorpusAction]] = field(default_factory=dict)
    expired: dict[str, list[UUID]] = field(default_factory=dict)
    failed: dict[str, list[UUID]] = field(default_factory=dict)
    retried: dict[str, list[UUID]] = field(default_factory=dict)
    first_try: dict[str, list[CorpusAction]] = field(default_factory=dict)
    approved: list[UUID] = field(default_factory=list)
    decided: int = 0


def _read_actions(actions: Iterable[CorpusAction]) -> _ActionGroups:
    groups = _ActionGroups()
    for action in actions:
        status = action.status
        if status == "rejected":
            key = (action.tool, _normalize_reason(action.decision_reason))
            groups.rejected.setdefault(key, []).append(action)
            groups.decided += 1
        elif status in _APPROVED_STATUSES:
            groups.approved.append(action.id)
            groups.decided += 1
        elif status == "expired":
            groups.expired.setdefault(action.tool, []).append(action.id)
        if status == "failed":
            groups.failed.setdefault(action.tool, []).append(action.id)
        if action.attempt > 1:
            groups.retried.setdefault(action.tool, []).append(action.id)
        elif status == "succeeded":
            groups.first_try.setdefault(action.tool, []).append(action)
    return groups


@dataclass(frozen=True)
class _Weakness:
    """A weakness with its recommendation and the rule it adds to the prompt."""

    finding: Finding
    recommendation: str
    rule: str


def _finding(title: str, detail: str, ids: list[UUID], frequency: int) -> Finding:
    if len(ids) > MAX_EVIDENCE:
        detail += f" Evidence lists the first {MAX_EVIDENCE} of {len(ids)} ids."
        ids = ids[:MAX_EVIDENCE]
    return Finding(
        title=_short(title, 200),
        detail=_short(detail, 4000),
        evidence=ids,
        frequency=frequency,
        severity=_severity(frequency),
    )


def _pairs(pairs: list[tuple[UUID, UUID]]) -> list[UUID]:
    seen: dict[UUID, None] = {}
    for first, second in pairs:
        seen[first] = None
        seen[second] = None
    return list(seen)


def _best_alternative(groups: _ActionGroups, tool: str) -> str | None:
    """The tool with the most first-attempt successes other than `tool` (name breaks ties)."""
    candidates = [(-len(v), name) for name, v in groups.first_try.items() if name != tool]
    return min(candidates)[1] if candidates else None


def _action_weaknesses(groups: _ActionGroups) -> list[_Weakness]:
    out: list[_Weakness] = []
    for (tool, reason), rejected in groups.rejected.items():
        shown = _short(rejected[0].decision_reason or "no reason given").rstrip(" .!;:")
        alternative = _best_alternative(groups, tool)
        instead = f"; propose `{alternative}` instead" if alternative else ""
        out.append(
            _Weakness(
                _finding(
                    f"`{tool}` actions rejected: {shown}",
                    f"People rejected {len(rejected)} `{tool}` action(s) for the same"
                    f" reason ({reason!r}).",
                    [a.id for a in rejected],
                    len(rejected),
                ),
                f"Ask before proposing `{tool}`{instead}: people rejected it"
                f' {len(rejected)} time(s) saying "{shown}".',
                f'Do not propose `{tool}` without asking first (rejected: "{shown}"){instead}.',
            )
        )
    for tool, ids in groups.expired.items():
        out.append(
            _Weakness(
                _finding(
                    f"`{tool}` actions expired undecided",
                    f"{len(ids)} `{tool}` proposal(s) expired before anyone decided.",
                    ids,
                    len(ids),
                ),
                f"Tell the user in the conversation when a `{tool}` action waits for"
                " their decision, and what it will do.",
                f"When you propose `{tool}`, say that it needs a decision and what it does.",
            )
        )
    for tool, ids in groups.failed.items():
        out.append(
            _Weakness(
                _finding(
                    f"`{tool}` actions failed",
                    f"{len(ids)} approved `{tool}` action(s) failed when run.",
                    ids,
                    len(ids),
                ),
                f"Check `{tool}`'s arguments against what it needs before proposing it.",
                f"Before proposing `{tool}`, check that its arguments are complete and valid.",
            )
        )
    for tool, ids in groups.retried.items():
        out.append(
            _Weakness(
                _finding(
                    f"`{tool}` actions needed retries",
                    f"{len(ids)} `{tool}` action(s) took more than one attempt.",
                    ids,
                    len(ids),
                ),
                f"Propose `{tool}` with arguments that work the first time; a retry repeats"
                " the same call.",
                f"Do not rely on retries of `{tool}`: fix the arguments instead.",
            )
        )
    return out


def _message_weaknesses(s: _Signals) -> list[_Weakness]:
    out: list[_Weakness] = []
    if s.refusals:
        out.append(
            _Weakness(
                _finding(
                    "The assistant refuses requests",
                    f"{len(s.refusals)} assistant message(s) say it cannot, will not or is"
                    " not allowed to do what was asked.",
                    s.refusals,
                    len(s.refusals),
                ),
                "When a request is out of bounds, say which part you can do and offer it.",
                "When you cannot do something, say why in one line and offer what you can do.",
            )
        )
    if s.corrections:
        out.append(
            _Weakness(
                _finding(
                    "Users correct the assistant",
                    f"{len(s.corrections)} user message(s) correct the previous answer"
                    " (no, wrong, not what I asked, I said, again).",
                    s.corrections,
                    len(s.corrections),
                ),
                "Restate the request in one line before acting, and follow a correction exactly.",
                "Restate the user's request before acting; when corrected, follow the"
                " correction exactly.",
            )
        )
    if s.repeats:
        out.append(
            _Weakness(
                _finding(
                    "Users repeat their request",
                    f"{len(s.repeats)} user message(s) are nearly the same as the user's"
                    " previous one: the answer between them missed.",
                    _pairs(s.repeats),
                    len(s.repeats),
                ),
                "When a user repeats a request, answer it as written instead of rephrasing"
                " the previous answer.",
                "If the user repeats a request, your last answer missed it: answer it as written.",
            )
        )
    if s.unanswered:
        out.append(
            _Weakness(
                _finding(
                    "Questions left unanswered",
                    f"{len(s.unanswered)} user question(s) got no assistant reply.",
                    s.unanswered,
                    len(s.unanswered),
                ),
                "Answer every user question, if only to say you do not know.",
                "Answer every question the user asks, even if only to say you do not know.",
            )
        )
    if s.long_yes_no:
        out.append(
            _Weakness(
                _finding(
                    "Long answers to yes/no questions",
                    f"{len(s.long_yes_no)} yes/no question(s) got an answer of more than"
                    f" {LONG_ANSWER_WORDS} words.",
                    _pairs(s.long_yes_no),
                    len(s.long_yes_no),
                ),
                "Answer a yes/no question with yes or no first, in one or two sentences;"
                " add detail when asked.",
                "Answer yes/no questions with yes or no first, in at most two sentences.",
            )
        )
    if s.many_turns:
        out.append(
            _Weakness(
                _finding(
                    "Tasks take many turns to resolve",
                    f"{len(s.many_turns)} conversation(s) needed at least {MANY_TURNS} user"
                    " turns before the user was satisfied.",
                    s.many_turns,
                    len(s.many_turns),
                ),
                "Ask one clarifying question up front when a task is ambiguous, then"
                " deliver the whole result.",
                "If a task is ambiguous, ask one clarifying question first, then deliver"
                " the whole result.",
            )
        )
    return out


def _strengths(s: _Signals, groups: _ActionGroups) -> list[Finding]:
    out: list[Finding] = []
    for tool, actions in groups.first_try.items():
        out.append(
            _finding(
                f"`{tool}` actions succeed on the first attempt",
                f"{len(actions)} `{tool}` action(s) succeeded without a retry.",
                [a.id for a in actions],
                len(actions),
            )
        )
    if groups.approved:
        out.append(
            _finding(
                "People approve the proposed actions",
                f"{len(groups.approved)} of {groups.decided} decided proposal(s) were approved.",
                groups.approved,
                len(groups.approved),
            )
        )
    if s.few_turns:
        out.append(
            _finding(
                "Tasks resolved in few turns",
                f"{len(s.few_turns)} conversation(s) were resolved within {FEW_TURNS} user"
                " turn(s).",
                s.few_turns,
                len(s.few_turns),
            )
        )
    return out


def _ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (_SEVERITY_ORDER[f.severity], -f.frequency, f.title))


def _suggested_prompt(current: str, weaknesses: list[_Weakness]) -> SuggestedPrompt | None:
    weaknesses = weaknesses[:MAX_RULES]
    if not weaknesses:
        return None
    rules = [f"- {w.rule}" for w in weaknesses]
    head = current.rstrip("\n").splitlines()
    suggested_lines = [*head, *([""] if head else []), PROMPT_SECTION, *rules]
    diff = difflib.unified_diff(
        current.splitlines(), suggested_lines, "current", "suggested", lineterm=""
    )
    changes = [
        PromptChange(
            change=f"- {w.rule}",
            rationale=f"{w.finding.title} ({w.finding.frequency}x).",
            evidence=w.finding.evidence,
        )
        for w in weaknesses
    ]
    return SuggestedPrompt(
        prompt="\n".join(suggested_lines) + "\n",
        diff="\n".join(diff) + "\n",
        changes=changes,
    )


def _skills(groups: _ActionGroups) -> list[SuggestedSkill]:
    rejected_tools = {tool for tool, _ in groups.rejected}
    skills = []
    for tool in sorted(groups.first_try):
        actions = groups.first_try[tool]
        if len(actions) < SKILL_MIN_SUCCESSES or tool in rejected_tools:
            continue
        keys = sorted({key for a in actions for key in a.args})
        total = len(actions) + len(groups.failed.get(tool, []))
        skills.append(
            SuggestedSkill(
                name=_short(f"Use {tool}", 200),
                category="tools",
                description=f"`{tool}` succeeded on the first attempt {len(actions)} times.",
                template_prompt=(
                    f"When the task needs what `{tool}` does, propose a `{tool}` action"
                    f" with the arguments {', '.join(keys) or '(none)'}."
                ),
                score=round(len(actions) / total, 3),
                evidence=[a.id for a in actions[:MAX_EVIDENCE]],
            )
        )
    return skills


class HeuristicAnalyzer:
    """The offline analyzer, and the fallback of the LLM one."""

    name = "heuristic"

    async def analyze(self, corpus: Corpus) -> Analysis:
        """The analysis of `corpus` (CPU only; see `analyze_sync`)."""
        return self.analyze_sync(corpus)

    def analyze_sync(self, corpus: Corpus) -> Analysis:
        """The analysis of `corpus`: one pass over messages and one over actions."""
        signals = _read_messages(corpus.messages)
        groups = _read_actions(corpus.actions)
        weaknesses = sorted(
            [*_action_weaknesses(groups), *_message_weaknesses(signals)],
            key=lambda w: (
                _SEVERITY_ORDER[w.finding.severity],
                -w.finding.frequency,
                w.finding.title,
            ),
        )
        recommendations = [
            Finding(
                title=_short(w.recommendation, 200),
                detail=f"Because: {w.finding.title}.",
                evidence=w.finding.evidence,
                frequency=w.finding.frequency,
                severity=w.finding.severity,
            )
            for w in weaknesses
        ]
        resolved = signals.turns_to_resolve
        average = f"{sum(resolved) / len(resolved):.1f}" if resolved else "n/a"
        notes = [
            f"heuristic analysis of {len(corpus.messages)} message(s) in"
            f" {signals.conversations} conversation(s) and {len(corpus.actions)} action(s)",
            f"{len(resolved)} conversation(s) resolved; user turns until resolved:"
            f" {average} on average",
        ]
        return Analysis(
            strengths=_ordered(_strengths(signals, groups)),
            weaknesses=[w.finding for w in weaknesses],
            recommendations=recommendations,
            suggested_prompt=_suggested_prompt(corpus.system_prompt, weaknesses),
            skills=_skills(groups),
            notes=notes,
            analyzer="heuristic",
        )
