"""Mirror heuristic: `HeuristicAnalyzer.analyze_sync` over a generated corpus of N
messages (100,000 by default), beside a bare pass over the same messages.

The corpus is generated from a fixed seed, so every run analyzes the same text:
conversations of 2 to 12 alternating messages (user first) whose user turns ask,
correct, repeat and thank, and whose assistant turns answer briefly or at length and
sometimes refuse; about one assistant message in three proposes an action whose status,
reason and attempt are drawn like a busy agent's. Generation is untimed.

Timed, median of 3 each: the baseline, one pass that only lowercases and tokenizes every
message (what any reader of the text pays), and the analyzer. The ratio says what the
analysis costs beyond reading.
"""

from __future__ import annotations

import random
import re
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentplane.mirror.analysis import Analysis, Corpus, CorpusAction, CorpusMessage
from agentplane.mirror.heuristic import HeuristicAnalyzer
from bench.results_io import print_table, write_results

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MESSAGES = 100_000
SEED = 14
REPEAT = 3
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# The analyzer's token pattern (mirror/heuristic.py), so the baseline tokenizes alike.
TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
COLUMNS = ["contestant", "messages", "actions", "median_s", "messages_per_s", "ratio"]

TOPICS = [
    "the March invoices",
    "the staging database",
    "the deploy pipeline",
    "config/prod.toml",
    "the api service logs",
    "the worker queue",
    "the billing export",
    "the on-call rota",
]
ASKS = [
    "Summarize {t}.",
    "Can you check {t}?",
    "Is {t} up to date?",
    "What changed in {t} last week?",
    "Find the errors in {t}.",
    "Does {t} need a restart?",
    "Compare {t} with last month.",
]
CORRECTIONS = [
    "No, I said {t}.",
    "That's wrong, look at {t} again.",
    "Not what I asked: {t}.",
]
THANKS = ["Thanks, that works.", "Perfect.", "Great, thank you.", "ok"]
SHORT_ANSWERS = [
    "Yes, {t} is fine.",
    "No, {t} has not changed since Monday.",
    "Done: {t} has 3 warnings and no errors.",
]
REFUSALS = ["I can't change {t}; I am not allowed to write there."]
FILLER_TEXT = (
    "The figures come from the latest export and were checked against the previous"
    " report, which means the totals should match what finance sees in the ledger"
    " unless a late correction arrived after the cut-off at midnight."
)
FILLER = FILLER_TEXT.split()
TOOLS = ["read_file", "http_get", "shell", "archive", "search"]
STATUSES = ["succeeded"] * 12 + ["rejected"] * 3 + ["failed", "expired", "pending", "approved"]
REASONS: dict[str, list[str | None]] = {
    "shell": ["Do not run shell commands.", "do not run shell commands", None],
    "read_file": ["wrong file", "not that one"],
    "http_get": ["not an allowed host", None],
    "archive": ["not now", "too broad"],
    "search": ["too broad"],
}


def _long_answer(rng: random.Random, topic: str) -> str:
    words = [f"About {topic}:"]
    words += [rng.choice(FILLER) for _ in range(rng.randint(40, 160))]
    return " ".join(words) + "."


def generate_corpus(messages: int, seed: int = SEED) -> Corpus:
    """A corpus of exactly `messages` messages, the same for the same seed."""
    rng = random.Random(seed)
    ids = random.Random(seed + 1)

    def new_id() -> uuid.UUID:
        return uuid.UUID(int=ids.getrandbits(128), version=4)

    out: list[CorpusMessage] = []
    actions: list[CorpusAction] = []
    while len(out) < messages:
        conversation = new_id()
        topic = rng.choice(TOPICS)
        length = min(rng.randint(2, 12), messages - len(out))
        last_ask = rng.choice(ASKS).format(t=topic)
        for turn in range(length):
            when = EPOCH + timedelta(seconds=len(out))
            if turn % 2 == 0:
                roll = rng.random()
                if turn == 0:
                    text = last_ask
                elif roll < 0.15:
                    text = rng.choice(CORRECTIONS).format(t=topic)
                elif roll < 0.25:
                    text = last_ask
                elif roll < 0.5:
                    text = rng.choice(THANKS)
                else:
                    last_ask = text = rng.choice(ASKS).format(t=rng.choice(TOPICS))
                out.append(CorpusMessage(new_id(), conversation, "user", text, when))
                continue
            roll = rng.random()
            if roll < 0.05:
                text = rng.choice(REFUSALS).format(t=topic)
            elif roll < 0.45:
                text = _long_answer(rng, topic)
            else:
                text = rng.choice(SHORT_ANSWERS).format(t=topic)
            message = CorpusMessage(new_id(), conversation, "assistant", text, when)
            out.append(message)
            if rng.random() < 0.33:
                status, tool = rng.choice(STATUSES), rng.choice(TOOLS)
                actions.append(
                    CorpusAction(
                        id=new_id(),
                        status=status,
                        tool=tool,
                        args={"target": topic},
                        decision_reason=(
                            rng.choice(REASONS[tool]) if status == "rejected" else None
                        ),
                        output=None,
                        attempt=1 if rng.random() < 0.9 else 2,
                        created_at=when,
                        message_id=message.id,
                    )
                )
    return Corpus(
        connection_id=uuid.UUID(int=seed),
        connection_name="bench",
        agent_id=uuid.UUID(int=seed + 1),
        system_prompt="You are the operations assistant.\nBe brief.",
        since=EPOCH,
        until=EPOCH + timedelta(seconds=len(out)),
        messages=out,
        actions=actions,
    )


def bare_pass(corpus: Corpus) -> int:
    """The baseline: lowercase and tokenize every message; the token count."""
    tokenize = TOKEN_RE.findall
    return sum(len(tokenize(m.content.lower())) for m in corpus.messages)


def _median_seconds(run: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(messages: int, repeat: int = REPEAT) -> tuple[list[dict[str, Any]], Analysis]:
    """The table's rows (baseline first) and the analysis of the generated corpus."""
    corpus = generate_corpus(messages)
    analyzer = HeuristicAnalyzer()
    analysis = analyzer.analyze_sync(corpus)
    base = _median_seconds(lambda: bare_pass(corpus), repeat)
    heuristic = _median_seconds(lambda: analyzer.analyze_sync(corpus), repeat)
    rows = []
    for name, seconds in (("bare lowercase+tokenize", base), ("heuristic", heuristic)):
        rows.append(
            {
                "contestant": name,
                "messages": len(corpus.messages),
                "actions": len(corpus.actions),
                "median_s": round(seconds, 4),
                "messages_per_s": round(len(corpus.messages) / seconds) if seconds else 0,
                "ratio": round(seconds / base, 2) if base else 0.0,
            }
        )
    return rows, analysis


def main(messages: int = DEFAULT_MESSAGES) -> Path:
    """Generate, run, print the table, write the JSON."""
    print(
        f"mirror heuristic: analyze_sync over {messages:,} generated messages (seed {SEED}),"
        f" median of {REPEAT}; baseline: a bare pass that lowercases and tokenizes them"
    )
    rows, analysis = measure(messages)
    print_table(rows, COLUMNS)
    path = write_results(
        "mirror_heuristic",
        rows,
        {
            "messages": messages,
            "seed": SEED,
            "repeat": REPEAT,
            "weaknesses": len(analysis.weaknesses),
            "strengths": len(analysis.strengths),
        },
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return path
