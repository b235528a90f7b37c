"""The caller's tasks: SQL and rules; completed_at follows `done` in the same write."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any
from uuid import UUID

from psycopg import sql

from agentplane.db.crud import Table, require_references
from agentplane.db.pagination import Page, PageRequest
from agentplane.db.rows import Tx, fetch_one
from agentplane.errors import ForbiddenError
from agentplane.tasks.models import Task, TaskCreate

tasks = Table("tasks", Task, "task")


def _references(
    tx: Tx, connection_id: UUID | None, conversation_id: UUID | None
) -> Awaitable[None]:
    """404 naming a connection or conversation the caller cannot see."""
    return require_references(
        tx,
        ("agent_connections", connection_id, "connection"),
        ("conversations", conversation_id, "conversation"),
    )


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


async def create(tx: Tx, body: TaskCreate) -> Task:
    """A new task of the caller's; one created done is completed now."""
    await _references(tx, body.connection_id, body.conversation_id)
    values = body.model_dump()
    query = sql.SQL(INSERT).format(
        sql.SQL(", ").join(sql.Identifier(column) for column in values),
        sql.SQL(", ").join(sql.Placeholder(column) for column in values),
        COMPLETED_ON_INSERT,
    )
    row = await fetch_one(tx, Task, query, values)
    assert row is not None
    return row


async def page(tx: Tx, request: PageRequest, filters: dict[str, Any]) -> Page[Task]:
    """The caller's tasks with equality filters on the given columns."""
    return await tasks.page(tx, request, filters)


async def get(tx: Tx, task_id: UUID) -> Task:
    """One of the caller's tasks, or 404."""
    return await tasks.require(tx, task_id)


async def update(tx: Tx, task_id: UUID, values: dict[str, Any]) -> Task:
    """Change a task; a status change sets or clears completed_at in the same UPDATE."""
    await _references(tx, values.get("connection_id"), values.get("conversation_id"))
    if not values:
        return await tasks.require(tx, task_id)
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column))
        for column in values
    ]
    if "status" in values:
        assignments.append(sql.SQL("completed_at = {}").format(COMPLETED_ON_UPDATE))
    query = sql.SQL(UPDATE).format(sql.SQL(", ").join(assignments))
    row = await fetch_one(tx, Task, query, {**values, "task_id": task_id})
    if row is None:
        await tasks.require(tx, task_id)  # 404 unless the caller can see it
        raise ForbiddenError(f"you may not change task {task_id}")
    return row


async def delete(tx: Tx, task_id: UUID) -> None:
    """Delete one of the caller's tasks."""
    await tasks.delete(tx, task_id)
