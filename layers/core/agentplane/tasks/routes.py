"""/tasks: the caller's tasks; completed_at follows the done status in the same write."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from agentplane.db.pagination import Page
from agentplane.http.deps import UserTx
from agentplane.http.pagination import PageDep
from agentplane.tasks import service
from agentplane.tasks.models import Task, TaskCreate, TaskStatus, TaskUpdate

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.post("", status_code=201, response_model=Task)
async def create_task(body: TaskCreate, tx: UserTx) -> Task:
    """Create a task; one created done is completed now."""
    return await service.create(tx, body)


@router.get("", response_model=Page[Task])
async def list_tasks(
    tx: UserTx,
    page: PageDep,
    status: TaskStatus | None = None,
    connection_id: UUID | None = None,
    conversation_id: UUID | None = None,
) -> Page[Task]:
    """The caller's tasks, optionally by status, connection or conversation."""
    filters = {"status": status, "connection_id": connection_id}
    return await service.page(tx, page, {**filters, "conversation_id": conversation_id})


@router.get("/{task_id}", response_model=Task)
async def get_task(task_id: UUID, tx: UserTx) -> Task:
    """One task."""
    return await service.get(tx, task_id)


@router.patch("/{task_id}", response_model=Task)
async def update_task(task_id: UUID, body: TaskUpdate, tx: UserTx) -> Task:
    """Change a task; a status change sets or clears completed_at in the same UPDATE."""
    return await service.update(tx, task_id, body.model_dump(exclude_unset=True))


@router.delete("/{task_id}", status_code=204, response_class=Response)
async def delete_task(task_id: UUID, tx: UserTx) -> Response:
    """Delete a task."""
    await service.delete(tx, task_id)
    return Response(status_code=204)
