"""After a commit that changed actions, wake what delivers its consequences.

The request's transaction wrote them with the change (triggers): a workflow callback when
a node waits on the action, an event for every transition, a runner doorbell when an
action became claimable. The kicks run as background tasks, which Starlette starts after
the response, so after the transaction committed; a lost kick only delays delivery until
the dispatcher's schedule (or the runner's slow poll).
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import BackgroundTasks

from agentplane.actions.models import Action
from agentplane.runtime import Runtime


def after_transitions(
    background: BackgroundTasks, runtime: Runtime, actions: Iterable[Action]
) -> None:
    """Schedule the kicks that `actions`, just changed, call for: the workflow
    dispatcher if any belongs to a run, the events dispatcher if there are any, and the
    runners' doorbells if any is now claimable."""
    actions = list(actions)
    if not actions:
        return
    if any(a.workflow_run_id is not None for a in actions):
        background.add_task(runtime.kick_workflows)
    kick_events(background, runtime)
    if any(a.status == "approved" and a.kind == "tool" for a in actions):
        ring_after_commit(background, runtime)


def kick_events(background: BackgroundTasks, runtime: Runtime) -> None:
    """Schedule an events dispatcher kick (after a commit that wrote events)."""
    background.add_task(runtime.kick_events)


def ring_after_commit(background: BackgroundTasks, runtime: Runtime) -> None:
    """Schedule a doorbell run (after a commit that may have made actions claimable;
    locally a no-op: the dev server's listener heard the NOTIFY at commit)."""
    background.add_task(runtime.ring_doorbells)
