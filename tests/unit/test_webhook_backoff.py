"""The wait before a webhook delivery's next try: doubling from the base with equal
jitter, capped; below the cap a wait is never shorter than the one before it."""

from __future__ import annotations

import pytest

from agentplane.events.dispatcher import backoff_seconds
from agentplane.settings import Settings

SETTINGS = Settings(stage="test", webhook_backoff_seconds=30.0, webhook_backoff_max_seconds=600.0)
SAMPLES = 500


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [(1, 15.0, 30.0), (2, 30.0, 60.0), (3, 60.0, 120.0), (5, 240.0, 480.0), (6, 300.0, 600.0),
     (20, 300.0, 600.0)],
)  # fmt: skip
def test_each_wait_is_within_half_and_all_of_its_doubled_base(
    attempts: int, low: float, high: float
) -> None:
    waits = [backoff_seconds(SETTINGS, attempts) for _ in range(SAMPLES)]
    assert all(low <= w <= high for w in waits), (min(waits), max(waits))
    # And it is jittered: not one fixed value
    assert max(waits) - min(waits) > (high - low) / 4


def test_below_the_cap_a_wait_is_never_shorter_than_the_one_before_it() -> None:
    # 30 s doubling reaches the 600 s cap at the sixth try: tries 1 to 5 do not overlap.
    for attempts in range(1, 5):
        shortest_next = min(backoff_seconds(SETTINGS, attempts + 1) for _ in range(SAMPLES))
        longest_now = max(backoff_seconds(SETTINGS, attempts) for _ in range(SAMPLES))
        assert shortest_next >= longest_now, attempts
    # Past the cap every wait is in the same range, never below half the cap.
    assert min(backoff_seconds(SETTINGS, 40) for _ in range(SAMPLES)) >= 300.0


def test_a_zero_base_retries_at_once() -> None:
    assert backoff_seconds(Settings(stage="test", webhook_backoff_seconds=0), 3) == 0.0
