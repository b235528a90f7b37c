"""The heuristic mirror analyzer on a hand-written corpus (tests/data/mirror/corpus.json):
the known problems are found with exactly their ids, healthy conversations give no
weakness, the same corpus gives an equal analysis, and the diff turns the current prompt
into the suggested one."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from agentplane.mirror.analysis import (
    Analysis,
    Corpus,
    CorpusAction,
    CorpusMessage,
    keep_known_evidence,
)
from agentplane.mirror.heuristic import MAX_RULES, PROMPT_SECTION, HeuristicAnalyzer

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "mirror" / "corpus.json"
_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _msg(conversation: int, index: int) -> UUID:
    return UUID(f"20000000-0000-4000-8000-{conversation:08d}{index:04d}")


def _act(index: int) -> UUID:
    return UUID(f"30000000-0000-4000-8000-{index:012d}")


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def load_corpus(*, healthy_only: bool = False, system_prompt: str | None = None) -> Corpus:
    """The fixture as a Corpus; `healthy_only` keeps the conversations marked healthy and
    the actions their messages proposed."""
    body: dict[str, Any] = json.loads(FIXTURE.read_text())
    messages: list[CorpusMessage] = []
    for conversation in body["conversations"]:
        if healthy_only and not conversation["healthy"]:
            continue
        messages.extend(
            CorpusMessage(
                id=UUID(m["id"]),
                conversation_id=UUID(conversation["id"]),
                role=m["role"],
                content=m["content"],
                created_at=datetime.fromisoformat(m["created_at"]),
            )
            for m in conversation["messages"]
        )
    kept = {m.id for m in messages}
    actions = [
        CorpusAction(
            id=UUID(a["id"]),
            status=a["status"],
            tool=a["tool"],
            args=a["args"],
            decision_reason=a["decision_reason"],
            output=a["output"],
            attempt=a["attempt"],
            created_at=datetime.fromisoformat(a["created_at"]),
            message_id=UUID(a["message_id"]),
        )
        for a in body["actions"]
        if UUID(a["message_id"]) in kept
    ]
    until = _when(body["until"])
    assert until is not None
    return Corpus(
        connection_id=UUID(body["connection_id"]),
        connection_name=body["connection_name"],
        agent_id=UUID(body["agent_id"]),
        system_prompt=body["system_prompt"] if system_prompt is None else system_prompt,
        since=_when(body["since"]),
        until=until,
        messages=messages,
        actions=actions,
    )


def _evidence(findings: list[Any]) -> dict[str, list[UUID]]:
    return {f.title: f.evidence for f in findings}


def _all_evidence(analysis: Analysis) -> list[UUID]:
    ids = [i for f in analysis.strengths for i in f.evidence]
    ids += [i for f in analysis.weaknesses for i in f.evidence]
    ids += [i for f in analysis.recommendations for i in f.evidence]
    ids += [i for s in analysis.skills for i in s.evidence]
    if analysis.suggested_prompt is not None:
        ids += [i for c in analysis.suggested_prompt.changes for i in c.evidence]
    return ids


def _apply_unified_diff(current: str, diff: str) -> str:
    """`current` patched with `diff` (strict: context and removed lines must match)."""
    source = current.splitlines()
    out: list[str] = []
    position = 0
    lines = diff.splitlines()
    assert lines[:2] == ["--- current", "+++ suggested"], lines[:2]
    for line in lines[2:]:
        hunk = _HUNK_RE.match(line)
        if hunk:
            start = int(hunk.group(1)) - (0 if hunk.group(2) == "0" else 1)
            out.extend(source[position:start])
            position = start
        elif line.startswith("+"):
            out.append(line[1:])
        elif line.startswith("-"):
            assert source[position] == line[1:]
            position += 1
        else:
            assert source[position] == line[1:]
            out.append(source[position])
            position += 1
    out.extend(source[position:])
    return "\n".join(out) + "\n"


def test_the_fixture_problems_are_found_with_exactly_their_ids() -> None:
    # Given the hand-written corpus
    corpus = load_corpus()

    # When the heuristic analyzer reads it
    analysis = HeuristicAnalyzer().analyze_sync(corpus)

    # Then each known problem is one weakness citing exactly the ids that show it
    assert _evidence(analysis.weaknesses) == {
        "`shell` actions rejected: Do not run shell commands": [_act(1), _act(2), _act(3)],
        "Users correct the assistant": [_msg(2, 3), _msg(2, 5)],
        "Long answers to yes/no questions": [_msg(3, 1), _msg(3, 2)],
        "Questions left unanswered": [_msg(7, 5)],
        "The assistant refuses requests": [_msg(7, 2)],
        "Users repeat their request": [_msg(2, 3), _msg(2, 5)],
        "`archive` actions failed": [_act(7)],
        "`archive` actions needed retries": [_act(7)],
        "`http_get` actions expired undecided": [_act(8)],
    }
    # And the three rejections for one reason come first, high, counted three times
    shell = analysis.weaknesses[0]
    assert (shell.title, shell.frequency, shell.severity) == (
        "`shell` actions rejected: Do not run shell commands",
        3,
        "high",
    )
    assert [(w.frequency, w.severity) for w in analysis.weaknesses[1:3]] == [
        (2, "medium"),
        (1, "low"),
    ]


def test_the_fixture_strengths_and_skills_cite_their_ids() -> None:
    analysis = HeuristicAnalyzer().analyze_sync(load_corpus())

    assert _evidence(analysis.strengths) == {
        "People approve the proposed actions": [_act(4), _act(5), _act(6), _act(7)],
        "Tasks resolved in few turns": [_msg(3, 3), _msg(4, 3), _msg(5, 3), _msg(6, 5)],
        "`read_file` actions succeed on the first attempt": [_act(4), _act(5), _act(6)],
    }
    assert [(s.name, s.evidence) for s in analysis.skills] == [
        ("Use read_file", [_act(4), _act(5), _act(6)])
    ]


def test_one_concrete_recommendation_per_weakness_with_its_evidence() -> None:
    analysis = HeuristicAnalyzer().analyze_sync(load_corpus())

    assert [(r.evidence, r.frequency) for r in analysis.recommendations] == [
        (w.evidence, w.frequency) for w in analysis.weaknesses
    ]
    # The rejected tool's recommendation names the tool that works instead
    assert analysis.recommendations[0].title.startswith(
        "Ask before proposing `shell`; propose `read_file` instead"
    )


def test_the_same_corpus_gives_an_equal_analysis() -> None:
    # Given two corpora loaded separately from the same file
    first, second = load_corpus(), load_corpus()

    # When each is analyzed, once through the async entry point
    a = HeuristicAnalyzer().analyze_sync(first)
    b = asyncio.run(HeuristicAnalyzer().analyze(second))

    # Then the analyses are equal, down to the serialized bytes
    assert a == b
    assert a.model_dump_json() == b.model_dump_json()


def test_healthy_conversations_give_no_weakness() -> None:
    corpus = load_corpus(healthy_only=True)
    assert len(corpus.messages) == 11
    assert len(corpus.actions) == 3

    analysis = HeuristicAnalyzer().analyze_sync(corpus)

    assert analysis.weaknesses == []
    assert analysis.recommendations == []
    assert analysis.suggested_prompt is None
    assert {f.title for f in analysis.strengths} == {
        "People approve the proposed actions",
        "Tasks resolved in few turns",
        "`read_file` actions succeed on the first attempt",
    }


def test_every_evidence_id_is_in_the_corpus() -> None:
    corpus = load_corpus()

    analysis = HeuristicAnalyzer().analyze_sync(corpus)

    ids = _all_evidence(analysis)
    assert ids
    assert set(ids) <= corpus.evidence_ids()
    assert keep_known_evidence(analysis, corpus).dropped_evidence == 0


def test_the_diff_turns_the_current_prompt_into_the_suggested_one() -> None:
    corpus = load_corpus()

    analysis = HeuristicAnalyzer().analyze_sync(corpus)

    suggested = analysis.suggested_prompt
    assert suggested is not None
    # The current prompt is kept, then one rule per weakness under one heading
    assert suggested.prompt.startswith(corpus.system_prompt + "\n\n" + PROMPT_SECTION + "\n")
    assert len(suggested.changes) == len(analysis.weaknesses)
    added = [line[1:] for line in suggested.diff.splitlines()[2:] if line.startswith("+")]
    assert added == ["", PROMPT_SECTION, *(c.change for c in suggested.changes)]
    assert [c.evidence for c in suggested.changes] == [w.evidence for w in analysis.weaknesses]
    # And patching the current prompt with the diff gives the suggested prompt
    assert _apply_unified_diff(corpus.system_prompt, suggested.diff) == suggested.prompt


def test_an_empty_current_prompt_gets_the_rules_alone() -> None:
    corpus = load_corpus(system_prompt="")

    suggested = HeuristicAnalyzer().analyze_sync(corpus).suggested_prompt

    assert suggested is not None
    assert suggested.prompt.startswith(PROMPT_SECTION + "\n- ")
    assert _apply_unified_diff("", suggested.diff) == suggested.prompt


def test_the_suggested_prompt_takes_at_most_max_rules_rules() -> None:
    # Given a corpus with more kinds of rejection than the prompt takes rules
    base = load_corpus()
    rejected = [
        CorpusAction(
            id=UUID(int=i + 1),
            status="rejected",
            tool=f"tool_{i:02d}",
            args={},
            decision_reason="not this one",
            output=None,
            attempt=1,
            created_at=base.until,
        )
        for i in range(MAX_RULES + 5)
    ]
    corpus = Corpus(
        connection_id=base.connection_id,
        connection_name=base.connection_name,
        agent_id=base.agent_id,
        system_prompt=base.system_prompt,
        since=base.since,
        until=base.until,
        actions=rejected,
    )

    analysis = HeuristicAnalyzer().analyze_sync(corpus)

    # Then every kind is a weakness, and the first MAX_RULES of them are the rules
    assert len(analysis.weaknesses) == MAX_RULES + 5
    suggested = analysis.suggested_prompt
    assert suggested is not None
    assert [c.evidence for c in suggested.changes] == [
        w.evidence for w in analysis.weaknesses[:MAX_RULES]
    ]


def test_a_near_repeat_is_a_repeat_and_thanks_again_is_no_correction() -> None:
    # Given one conversation: an ask, an answer, the ask again with a word dropped, an
    # answer, and "thanks again"
    base = load_corpus()
    conversation = UUID(int=99)
    texts: list[tuple[Literal["user", "assistant"], str]] = [
        ("user", "Please list the open tickets of the api team today"),
        ("assistant", "There are no tickets."),
        ("user", "please list the open tickets of the api team"),
        ("assistant", "Tickets 12 and 14 are open."),
        ("user", "Thanks again!"),
    ]
    messages = [
        CorpusMessage(UUID(int=100 + i), conversation, role, text, base.until)
        for i, (role, text) in enumerate(texts)
    ]
    corpus = Corpus(
        connection_id=base.connection_id,
        connection_name=base.connection_name,
        agent_id=None,
        system_prompt="",
        since=None,
        until=base.until,
        messages=messages,
    )

    analysis = HeuristicAnalyzer().analyze_sync(corpus)

    # Then the second ask repeats the first (token overlap 8/9), nothing is a correction,
    # and the conversation counts as resolved in two turns
    assert _evidence(analysis.weaknesses) == {
        "Users repeat their request": [UUID(int=100), UUID(int=102)]
    }
    assert _evidence(analysis.strengths) == {"Tasks resolved in few turns": [UUID(int=104)]}
