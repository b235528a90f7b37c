"""After a commit that may have written workflow callbacks or events, wake the
dispatchers.

A decision or a runner's result on an action a workflow node waits for writes its
callback in the same transaction (a trigger). The kick runs as a background task, which
Starlette starts after the response, so after the request's transaction committed; a
lost kick only delays delivery until the dispatcher's schedule.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import BackgroundTasks

from agentplane.actions.models import Action
from agentplane.runtime import Runtime


def kick_if_workflow(
    background: BackgroundTasks, runtime: Runtime, actions: Iterable[Action]
) -> None:
    """Schedule a workflow dispatcher kick if any of `actions` belongs to a workflow
    run, and an events dispatcher kick if there are any."""
    actions = list(actions)
    if any(a.workflow_run_id is not None for a in actions):
        background.add_task(runtime.kick_workflows)
    # Every transition is an event (the audit log's trigger wrote it).
    if actions:
        kick_events(background, runtime)


def kick_events(background: BackgroundTasks, runtime: Runtime) -> None:
    """Schedule an events dispatcher kick (after a commit that wrote events)."""
    background.add_task(runtime.kick_events)
