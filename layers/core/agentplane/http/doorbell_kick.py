"""After a commit that may have made actions claimable, ring their runners' doorbells.

The trigger on agent_actions wrote the outbox in the request's transaction; the kick
runs as a background task, which Starlette starts after the response, so after commit.
Locally it is a no-op (the dev server's listener heard the NOTIFY at commit).
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import BackgroundTasks

from agentplane.actions.models import Action
from agentplane.runtime import Runtime


def ring_after_commit(background: BackgroundTasks, runtime: Runtime) -> None:
    """Schedule a doorbell run once the response is out."""
    background.add_task(runtime.ring_doorbells)


def ring_if_claimable(
    background: BackgroundTasks, runtime: Runtime, actions: Iterable[Action]
) -> None:
    """Schedule a doorbell run if any of `actions` is now approved."""
    if any(a.status == "approved" and a.kind == "tool" for a in actions):
        ring_after_commit(background, runtime)
