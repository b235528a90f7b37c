"""/mirror-reports: start a report (202, run off the request), read it, adopt its prompt."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, BackgroundTasks

from agentplane.db.pagination import Page
from agentplane.http.deps import RuntimeDep, UserTx
from agentplane.http.pagination import PageDep
from agentplane.mirror import service
from agentplane.mirror.models import Report, ReportCreate

router = APIRouter(prefix="/mirror-reports", tags=["mirror"])


@router.post("", status_code=202, response_model=Report)
async def start_report(
    body: ReportCreate, tx: UserTx, runtime: RuntimeDep, background: BackgroundTasks
) -> Report:
    """Queue a report of one of your connections (202 with its id); it runs off the
    request. 409 naming the report in progress when there is one."""
    report = await service.queue_report(tx, body)
    # After the response (so after the commit): an async invoke in AWS, a task locally.
    background.add_task(runtime.start_mirror_report, report.id)
    return report


@router.get("", response_model=Page[Report])
async def list_reports(
    tx: UserTx, page: PageDep, agent_connection_id: UUID | None = None
) -> Page[Report]:
    """Your reports, oldest first (`?agent_connection_id=`)."""
    return await service.list_reports(tx, page, agent_connection_id)


@router.get("/{report_id}", response_model=Report)
async def get_report(report_id: UUID, tx: UserTx) -> Report:
    """One report: status, progress, timings, the analyzer used, what it found."""
    return await service.get_report(tx, report_id)


@router.post("/{report_id}/adopt", response_model=Report)
async def adopt_report(report_id: UUID, tx: UserTx) -> Report:
    """Make the report's suggested prompt the next version of its agent's system prompt
    (members of the agent's organization; recorded with you and this report)."""
    return await service.adopt(tx, report_id)
