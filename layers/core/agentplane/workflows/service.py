"""Workflow definitions and runs for people, through RLS (viewers read, members write
and run, admins delete).

Starting, resuming and cancelling a run each commit one transaction that writes the
run and its outbox row (start or stop an execution) together, then deliver that row at
once; if Step Functions cannot be reached, the row stays queued and the dispatcher's
schedule delivers it, so a run is never half-started.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from agentplane.auth.caller import Caller
from agentplane.db.crud import Table, jsonb_params
from agentplane.db.pagination import Page, PageRequest
from agentplane.db.rows import Tx, fetch_all, fetch_one
from agentplane.errors import ConflictError, ForbiddenError, NotFoundError, ValidationProblemError
from agentplane.models import OutputModel
from agentplane.observability import logger
from agentplane.runtime import Runtime
from agentplane.workflows import state as st
from agentplane.workflows.definition import (
    ActionConfig,
    ApprovalConfig,
    Definition,
    Graph,
    LlmConfig,
    check,
    graph_of,
)
from agentplane.workflows.dispatcher import dispatch
from agentplane.workflows.engine import start_execution
from agentplane.workflows.models import (
    Callback,
    NodeState,
    Run,
    RunCreate,
    RunSummary,
    Workflow,
    WorkflowCreate,
    WorkflowUpdate,
)

workflows = Table("workflows", Workflow, "workflow")
runs = Table("workflow_runs", RunSummary, "workflow run")

BUMP_VERSION = sql.SQL(
    "update public.workflows set {}version = version + 1 where id = %s returning *"
)
PROJECT_ORG = "select organization_id from public.projects where id = %s"
VISIBLE_AGENTS = """
select id from public.agents
 where id = any(%s) and organization_id = %s
"""


async def _check(tx: Tx, definition: Definition, organization_id: UUID) -> Graph:
    """The definition's Graph; 422 naming the node whose agent is not one of the
    organization's agents the caller can see."""
    graph = check(definition)
    agents: dict[str, UUID] = {
        node_id: config.agent_id
        for node_id, config in graph.configs.items()
        if isinstance(config, ActionConfig | ApprovalConfig | LlmConfig)
    }
    if agents:
        cur = await tx.execute(VISIBLE_AGENTS, (list(set(agents.values())), organization_id))
        known = {row[0] for row in await cur.fetchall()}
        index = {node.id: i for i, node in enumerate(definition.nodes)}
        errors = [
            {
                "field": f"definition.nodes.{index[node_id]}.config.agent_id",
                "in": "body",
                "rule": "known_agent",
                "message": f"node {node_id!r}: agent {agent_id} is not an agent of this"
                " workflow's organization that you can see",
                "node": node_id,
            }
            for node_id, agent_id in agents.items()
            if agent_id not in known
        ]
        if errors:
            raise ValidationProblemError(errors, detail="the workflow definition is not valid")
    return graph


async def create_workflow(tx: Tx, body: WorkflowCreate) -> Workflow:
    """A new workflow of a visible project (members and up), its DAG checked."""
    cur = await tx.execute(PROJECT_ORG, (body.project_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"project {body.project_id} not found")
    await _check(tx, body.definition, row[0])
    return await workflows.insert(
        tx,
        {
            "organization_id": row[0],
            "project_id": body.project_id,
            "name": body.name,
            "description": body.description,
            "definition": body.definition.as_json(),
        },
    )


async def list_workflows(
    tx: Tx, page: PageRequest, project_id: UUID | None, organization_id: UUID | None
) -> Page[Workflow]:
    """A page of the workflows the caller can see."""
    return await workflows.page(
        tx, page, {"project_id": project_id, "organization_id": organization_id}
    )


async def get_workflow(tx: Tx, workflow_id: UUID) -> Workflow:
    """One workflow, or 404."""
    return await workflows.require(tx, workflow_id)


async def update_workflow(tx: Tx, workflow_id: UUID, body: WorkflowUpdate) -> Workflow:
    """Change a workflow; every save is a new version (runs keep theirs)."""
    current = await workflows.require(tx, workflow_id)
    values: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"definition"})
    if body.definition is not None:
        await _check(tx, body.definition, current.organization_id)
        values["definition"] = body.definition.as_json()
    values = {k: v for k, v in values.items() if v is not None}
    # `version = version + 1` in the UPDATE, not the version read above: a concurrent
    # save waits on the row lock, then counts from the committed version
    # (test_definitions.py::test_concurrent_saves_get_a_version_each).
    query = BUMP_VERSION.format(
        sql.SQL("").join(
            sql.SQL("{} = {}, ").format(sql.Identifier(c), sql.Placeholder()) for c in values
        )
    )
    saved = await fetch_one(tx, Workflow, query, [*jsonb_params(values).values(), workflow_id])
    if saved is None:
        await workflows.require(tx, workflow_id)  # deleted meanwhile: 404
        raise ForbiddenError(f"your role does not allow changing workflow {workflow_id}")
    return saved


LIVE_RUNS = """
select id from public.workflow_runs
 where workflow_id = %s and status in ('pending', 'running', 'waiting')
 order by created_at, id limit 20
"""


async def delete_workflow(tx: Tx, workflow_id: UUID) -> None:
    """Delete a workflow and its ended runs (admins and owners); 409 while a run has not
    ended, since the cascade would drop its waits and outbox rows, leaving its execution
    unstopped and its gate pending in the inbox (cancel the run first)."""
    cur = await tx.execute(LIVE_RUNS, (workflow_id,))
    live = [str(row[0]) for row in await cur.fetchall()]
    await workflows.delete(tx, workflow_id)  # 403 or 404 first; a 409 below rolls back
    if live:
        raise ConflictError(
            f"workflow {workflow_id} has runs that have not ended; cancel them first",
            live_runs=live,
        )


async def list_runs(tx: Tx, workflow_id: UUID, page: PageRequest) -> Page[RunSummary]:
    """A page of a visible workflow's runs, oldest first."""
    await workflows.require(tx, workflow_id)
    return await runs.page(tx, page, {"workflow_id": workflow_id})


CALLBACKS = """
select id, kind, node_id, action_id, attempts, next_attempt_at, delivered_at, outcome,
       last_error, created_at
  from public.workflow_outbox where run_id = %s order by id desc limit 100
"""


async def get_run(tx: Tx, run_id: UUID) -> Run:
    """A run with each node's state and its callbacks' outcomes; 404 if not visible."""
    cur = await tx.execute("select * from public.workflow_runs where id = %s", (run_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"workflow run {run_id} not found")
    assert cur.description is not None
    run = dict(zip((c.name for c in cur.description), row, strict=True))
    graph = graph_of(run["definition"])
    nodes = run["state"].get("nodes", {})
    run["nodes"] = [
        NodeState(
            id=node_id,
            type=graph.nodes[node_id].type,
            **{
                k: v
                for k, v in nodes.get(node_id, {"status": "pending"}).items()
                if k in NodeState.model_fields
            },
        )
        for node_id in graph.order
    ]
    run["callbacks"] = await fetch_all(tx, Callback, CALLBACKS, (run_id,))
    return Run.model_validate(run)


INSERT_RUN = """
insert into public.workflow_runs
  (organization_id, workflow_id, workflow_version, status, input, state, definition)
values (%s, %s, %s, 'pending', %s, %s, %s)
returning *
"""


async def insert_run(
    tx: Tx, workflow: Workflow, run_input: dict[str, Any], graph: Graph | None = None
) -> dict[str, Any]:
    """A pending run of the workflow's current version, with its copy of the definition
    and every node pending (no execution yet: `start_execution` queues one)."""
    graph = graph or graph_of(workflow.definition)
    run = await _columns(
        tx,
        INSERT_RUN,
        (
            workflow.organization_id,
            workflow.id,
            workflow.version,
            Jsonb(run_input),
            Jsonb(st.initial_state(graph)),
            Jsonb(workflow.definition),
        ),
    )
    assert run is not None
    return run


async def _deliver(runtime: Runtime, outbox_id: int, what: str) -> None:
    try:
        await dispatch(runtime, ids=[outbox_id])
    except Exception as exc:
        logger.warning(f"workflow {what} left to the dispatcher", extra={"error": str(exc)})


async def _columns(tx: Tx, query: str, args: tuple[Any, ...]) -> dict[str, Any] | None:
    cur = await tx.execute(query, args)
    row = await cur.fetchone()
    if row is None:
        return None
    assert cur.description is not None
    return dict(zip((c.name for c in cur.description), row, strict=True))


async def start_run(runtime: Runtime, caller: Caller, workflow_id: UUID, body: RunCreate) -> Run:
    """Start a run of the workflow's current version (members and up): the run, its
    pinned definition and the StartExecution in one transaction, then delivered."""
    async with runtime.database.transaction(caller) as tx:
        workflow = await workflows.require(tx, workflow_id)
        graph = graph_of(workflow.definition)
        if not graph.nodes:
            raise ConflictError(f"workflow {workflow_id} has no nodes to run")
        role = await _role(tx, workflow.organization_id)
        if role == "viewer":
            raise ForbiddenError(
                f"your role does not allow starting runs of workflow {workflow_id}"
            )
        run = await insert_run(tx, workflow, body.input, graph)
        outbox_id = await start_execution(tx, run)
    logger.info(
        "workflow run started",
        extra={
            "run_id": str(run["id"]),
            "workflow_id": str(workflow_id),
            "version": workflow.version,
        },
    )
    await _deliver(runtime, outbox_id, "start")
    async with runtime.database.transaction(caller) as tx:
        return await get_run(tx, run["id"])


ROLE = """
select role from public.organization_members
 where organization_id = %s and user_id = (select auth.uid())
"""


async def _role(tx: Tx, organization_id: UUID) -> str | None:
    cur = await tx.execute(ROLE, (organization_id,))
    row = await cur.fetchone()
    return None if row is None else str(row[0])


LOCK_RUN = "select * from public.workflow_runs where id = %s for update"
VISIBLE_RUN = "select id from public.workflow_runs where id = %s"
CANCEL_ACTIONS = """
update public.agent_actions set status = 'cancelled', decision_reason = %s
 where workflow_run_id = %s and status in ('pending', 'approved')
returning id
"""
STOP = """
insert into public.workflow_outbox (organization_id, run_id, kind, body)
values (%s, %s, 'stop', %s) returning id
"""


async def _locked_run(tx: Tx, run_id: UUID) -> dict[str, Any]:
    run = await _columns(tx, LOCK_RUN, (run_id,))
    if run is None:
        # FOR UPDATE sees only the rows the update policy lets the caller change, so a
        # viewer's run is missing here but visible to a plain read: 403, not 404
        # (test_definitions.py::test_viewers_read_but_do_not_write).
        if await _columns(tx, VISIBLE_RUN, (run_id,)) is not None:
            raise ForbiddenError(f"your role does not allow changing workflow run {run_id}")
        raise NotFoundError(f"workflow run {run_id} not found")
    return run


async def cancel_run(runtime: Runtime, caller: Caller, run_id: UUID) -> Run:
    """Cancel a run that has not ended: the run, its undecided and unclaimed actions and
    the StopExecution in one transaction (a late decision on them is a 409)."""
    async with runtime.database.transaction(caller) as tx:
        run = await _locked_run(tx, run_id)
        if run["status"] in ("succeeded", "failed", "cancelled"):
            raise ConflictError(
                f"workflow run {run_id} is {run['status']}; only a run that has not ended"
                " can be cancelled",
                current_status=run["status"],
            )
        await tx.execute(
            "update public.workflow_runs set status = 'cancelled', finished_at = now(),"
            " error = %s where id = %s",
            ("cancelled by a person", run_id),
        )
        cancelled = await fetch_all(
            tx, _Id, CANCEL_ACTIONS, ("the workflow run was cancelled", run_id)
        )
        stop = await fetch_one(
            tx,
            _Id,
            STOP,
            (run["organization_id"], run_id, Jsonb({"cause": "cancelled by a person"})),
        )
        assert stop is not None
    logger.info(
        "workflow run cancelled", extra={"run_id": str(run_id), "actions_cancelled": len(cancelled)}
    )
    await _deliver(runtime, int(stop.id), "stop")
    async with runtime.database.transaction(caller) as tx:
        return await get_run(tx, run_id)


async def resume_run(runtime: Runtime, caller: Caller, run_id: UUID) -> Run:
    """Resume a failed run in a new execution: what succeeded is kept and not run again;
    every other node starts over."""
    async with runtime.database.transaction(caller) as tx:
        run = await _locked_run(tx, run_id)
        if run["status"] != "failed":
            raise ConflictError(
                f"workflow run {run_id} is {run['status']}; only a failed run can be resumed",
                current_status=run["status"],
            )
        state = run["state"]
        reset = st.reset_unfinished(state)
        await tx.execute(
            "update public.workflow_runs set status = 'running', state = %s, error = null,"
            " finished_at = null where id = %s",
            (Jsonb(state), run_id),
        )
        outbox_id = await start_execution(tx, run)
    logger.info("workflow run resumed", extra={"run_id": str(run_id), "nodes_reset": reset})
    await _deliver(runtime, outbox_id, "resume")
    async with runtime.database.transaction(caller) as tx:
        return await get_run(tx, run_id)


class _Id(OutputModel):
    """A returned id."""

    id: Any
