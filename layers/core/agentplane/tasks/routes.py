"""/tasks: the caller's tasks; completed_at follows the done status in the same write."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from psycopg import sql
from psycopg.rows import class_row

from agentplane.db.crud import Table, require_visible
from agentplane.db.pagination import Page
from agentplane.errors import ForbiddenError
from agentplane.http.deps import UserTx
from agentplane.http.pagination import PageDep
from agentplane.tasks.models import Task, TaskCreate, TaskStatus, TaskUpdate

router = APIRouter(prefix="/tasks", tags=["tasks"])
tasks = Table("tasks", Task, "task")

# completed_at on insert: now() for a task created done.
COMPLETED_ON_INSERT = sql.SQL("case when %(status)s::text = 'done' then now() end")
# completed_at on a status change: kept when done stays done (SET sees the old row),
# stamped when the task becomes done, cleared when it is anything else.
COMPLETED_ON_UPDATE = sql.SQL(
    "case when %(status)s::text <> 'done' then null"
    " when status = 'done' then completed_at else now() end"
)
INSERT = "insert into public.tasks ({}, completed_at) values ({}, {}) returning *"
UPDATE = "update public.tasks set {} where id = %(task_id)s returning *"


async def _one(tx: UserTx, query: sql.Composed, params: dict[str, Any]) -> Task | None:
    async with tx.cursor(row_factory=class_row(Task)) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def _require_references(
    tx: UserTx, connection_id: UUID | None, conversation_id: UUID | None
) -> None:
    """404 naming a connection or conversation the caller cannot see."""
    if connection_id is not None:
        await require_visible(tx, "agent_connections", connection_id, "connection")
    if conversation_id is not None:
        await require_visible(tx, "conversations", conversation_id, "conversation")


@router.post("", status_code=201, response_model=Task)
async def create_task(body: TaskCreate, tx: UserTx) -> Task:
    """Create a task; one created done is completed now."""
    await _require_references(tx, body.connection_id, body.conversation_id)
    values = body.model_dump()
    query = sql.SQL(INSERT).format(
        sql.SQL(", ").join(sql.Identifier(column) for column in values),
        sql.SQL(", ").join(sql.Placeholder(column) for column in values),
        COMPLETED_ON_INSERT,
    )
    row = await _one(tx, query, values)
    assert row is not None
    return row


@router.get("", response_model=Page[Task])
async def list_tasks(
    tx: UserTx,
    page: PageDep,
    status: TaskStatus | None = None,
    connection_id: UUID | None = None,
    conversation_id: UUID | None = None,
) -> Page[Task]:
    """The caller's tasks, optionally by status, connection or conversation."""
    return await tasks.page(
        tx,
        page,
        {"status": status, "connection_id": connection_id, "conversation_id": conversation_id},
    )


@router.get("/{task_id}", response_model=Task)
async def get_task(task_id: UUID, tx: UserTx) -> Task:
    """One task."""
    return await tasks.require(tx, task_id)


@router.patch("/{task_id}", response_model=Task)
async def update_task(task_id: UUID, body: TaskUpdate, tx: UserTx) -> Task:
    """Change a task; a status change sets or clears completed_at in the same UPDATE."""
    await _require_references(tx, body.connection_id, body.conversation_id)
    values = body.model_dump(exclude_unset=True)
    if not values:
        return await tasks.require(tx, task_id)
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column))
        for column in values
    ]
    if "status" in values:
        assignments.append(sql.SQL("completed_at = {}").format(COMPLETED_ON_UPDATE))
    query = sql.SQL(UPDATE).format(sql.SQL(", ").join(assignments))
    row = await _one(tx, query, {**values, "task_id": task_id})
    if row is None:
        await tasks.require(tx, task_id)  # 404 unless the caller can see it
        raise ForbiddenError(f"you may not change task {task_id}")
    return row


@router.delete("/{task_id}", status_code=204, response_class=Response)
async def delete_task(task_id: UUID, tx: UserTx) -> Response:
    """Delete a task."""
    await tasks.delete(tx, task_id)
    return Response(status_code=204)
