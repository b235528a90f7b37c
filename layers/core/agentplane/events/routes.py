"""/webhooks: an organization's signed event deliveries. The secret is shown once."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from agentplane.db.pagination import Page
from agentplane.events import service
from agentplane.events.models import Webhook, WebhookCreate, WebhookCreated, WebhookDelivery
from agentplane.http.deps import RuntimeDep, UserDep, UserTx
from agentplane.http.pagination import PageDep

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post("", status_code=201, response_model=WebhookCreated)
async def create_webhook(
    body: WebhookCreate, caller: UserDep, tx: UserTx, runtime: RuntimeDep
) -> WebhookCreated:
    """Register a webhook (admins and owners); the answer carries its `whsec_...` signing
    secret, this once."""
    assert caller.user_id is not None  # UserDep builds only user callers
    return await service.create_webhook(
        tx, body, user_id=caller.user_id, vault=runtime.vault, settings=runtime.settings
    )


@router.get("", response_model=Page[Webhook])
async def list_webhooks(
    tx: UserTx, page: PageDep, organization_id: UUID | None = None
) -> Page[Webhook]:
    """Webhooks of the organizations you are a member of (`?organization_id=`), oldest
    first, without their secrets."""
    return await service.list_webhooks(tx, page, organization_id)


@router.delete("/{webhook_id}", status_code=204, response_class=Response)
async def delete_webhook(webhook_id: UUID, tx: UserTx) -> Response:
    """Delete a webhook and its deliveries (admins and owners)."""
    await service.delete_webhook(tx, webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=Page[WebhookDelivery])
async def list_deliveries(webhook_id: UUID, tx: UserTx, page: PageDep) -> Page[WebhookDelivery]:
    """The webhook's deliveries, newest first: status, attempts, the next try, the last
    answer."""
    return await service.list_deliveries(tx, webhook_id, page)
