"""/workflows and /workflow-runs: DAG definitions, and their runs on Step Functions."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from agentplane.db.pagination import Page
from agentplane.http.deps import RuntimeDep, UserDep, UserTx
from agentplane.http.pagination import PageDep
from agentplane.workflows import service
from agentplane.workflows.models import (
    Run,
    RunCreate,
    RunSummary,
    Workflow,
    WorkflowCreate,
    WorkflowUpdate,
)

router = APIRouter(tags=["workflows"])


@router.post("/workflows", status_code=201, response_model=Workflow)
async def create_workflow(body: WorkflowCreate, tx: UserTx) -> Workflow:
    """Save a workflow (members and up); its DAG is checked whole (422 naming each bad
    node or edge)."""
    return await service.create_workflow(tx, body)


@router.get("/workflows", response_model=Page[Workflow])
async def list_workflows(
    tx: UserTx,
    page: PageDep,
    project_id: UUID | None = None,
    organization_id: UUID | None = None,
) -> Page[Workflow]:
    """Workflows the caller can see (`?project_id=&organization_id=`)."""
    return await service.list_workflows(tx, page, project_id, organization_id)


@router.get("/workflows/{workflow_id}", response_model=Workflow)
async def get_workflow(workflow_id: UUID, tx: UserTx) -> Workflow:
    """One workflow."""
    return await service.get_workflow(tx, workflow_id)


@router.patch("/workflows/{workflow_id}", response_model=Workflow)
async def update_workflow(workflow_id: UUID, body: WorkflowUpdate, tx: UserTx) -> Workflow:
    """Change a workflow (members and up): a new version; runs in flight keep theirs."""
    return await service.update_workflow(tx, workflow_id, body)


@router.delete("/workflows/{workflow_id}", status_code=204, response_class=Response)
async def delete_workflow(workflow_id: UUID, tx: UserTx) -> Response:
    """Delete a workflow and its runs (admins and owners); 409 while a run has not
    ended."""
    await service.delete_workflow(tx, workflow_id)
    return Response(status_code=204)


@router.post("/workflows/{workflow_id}/runs", status_code=201, response_model=Run)
async def start_run(
    workflow_id: UUID, body: RunCreate, runtime: RuntimeDep, caller: UserDep
) -> Run:
    """Start a run of the workflow's current version (members and up)."""
    return await service.start_run(runtime, caller, workflow_id, body)


@router.get("/workflows/{workflow_id}/runs", response_model=Page[RunSummary])
async def list_runs(workflow_id: UUID, tx: UserTx, page: PageDep) -> Page[RunSummary]:
    """A workflow's runs, oldest first."""
    return await service.list_runs(tx, workflow_id, page)


@router.get("/workflow-runs/{run_id}", response_model=Run)
async def get_run(run_id: UUID, tx: UserTx) -> Run:
    """A run: each node's status, output, attempts, timings and the action it waits on,
    and what became of its callbacks to Step Functions."""
    return await service.get_run(tx, run_id)


@router.post("/workflow-runs/{run_id}/cancel", response_model=Run)
async def cancel_run(run_id: UUID, runtime: RuntimeDep, caller: UserDep) -> Run:
    """Cancel a run: its execution is stopped and its pending actions are cancelled."""
    return await service.cancel_run(runtime, caller, run_id)


@router.post("/workflow-runs/{run_id}/resume", response_model=Run)
async def resume_run(run_id: UUID, runtime: RuntimeDep, caller: UserDep) -> Run:
    """Resume a failed run in a new execution that skips what succeeded."""
    return await service.resume_run(runtime, caller, run_id)
