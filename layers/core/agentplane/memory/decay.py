"""The forgetting curve of memory nodes, and how a use reinforces it.

    decayed(at) = strength * exp(-max(0, at - last_used_at) / stability_seconds)
                  (0 once the exponent is below -700)

`strength` (0..1) is what the person or template set: how much the memory matters. The
exponential is how well it is still remembered; each use (a recall by a turn, or reading
the node) restarts the curve at `last_used_at = at` and makes it flatter:

    stability_seconds = min(STABILITY_CAP_SECONDS, stability_seconds * STABILITY_GROWTH)
    reinforcements += 1

A use does not raise `strength`: that stays the person's edit (and a recall is not an
edit, so `updated_at` does not move). A node fades when `decayed` falls below
FADE_THRESHOLD, at `fades_at = last_used_at + stability * ln(strength / threshold)`,
which the database keeps in a column so the nightly archive step reads only what crossed.

SQL twin: `private.decayed_strength(...)` (migration 20261204000300_memory_decay.sql);
tests/integration/test_memory_decay.py checks that both give the same numbers.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

INITIAL_STABILITY_SECONDS = 7 * 24 * 3600.0  # the column's default: 604800
STABILITY_GROWTH = 1.5
STABILITY_CAP_SECONDS = 365 * 24 * 3600.0
FADE_THRESHOLD = 0.05  # private.memory_fade_threshold()
UNDERFLOW_EXPONENT = -700.0


def decayed_strength(
    strength: float, last_used_at: datetime, stability_seconds: float, at: datetime
) -> float:
    """`strength` decayed from `last_used_at` to `at` (no decay before the last use)."""
    elapsed = max(0.0, (at - last_used_at) / timedelta(seconds=1))
    exponent = -elapsed / stability_seconds
    # As good as forgotten; PostgreSQL's exp() raises on underflow, so both twins stop here.
    if exponent < UNDERFLOW_EXPONENT:
        return 0.0
    return strength * math.exp(exponent)


def reinforced_stability(stability_seconds: float) -> float:
    """The stability after one more use."""
    return min(STABILITY_CAP_SECONDS, stability_seconds * STABILITY_GROWTH)


def fades_at(
    strength: float,
    last_used_at: datetime,
    stability_seconds: float,
    threshold: float = FADE_THRESHOLD,
) -> datetime:
    """When the decayed strength reaches `threshold` (at once for a node no stronger)."""
    ratio = max(strength, threshold) / threshold
    return last_used_at + timedelta(seconds=stability_seconds * math.log(ratio))
