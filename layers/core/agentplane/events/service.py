"""Webhooks of an organization, in the caller's transaction: register (admins), list
(members), delete (admins), and their deliveries.

RLS decides who sees and changes what; column grants keep the signing secret's columns
from people, so every query here names its columns. The secret is generated here,
returned once, and stored envelope-encrypted by the vault (agentplane/vault/crypto.py).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import replace
from uuid import UUID, uuid4

from agentplane.db.crud import require_visible
from agentplane.db.pagination import Page, PageRequest, fetch_page
from agentplane.db.rows import Tx, fetch_one, fetch_value
from agentplane.errors import ForbiddenError, NotFoundError, ValidationProblemError
from agentplane.events.models import Webhook, WebhookCreate, WebhookCreated, WebhookDelivery
from agentplane.events.urls import WebhookUrlError, check_url
from agentplane.observability import logger
from agentplane.settings import Settings
from agentplane.vault.crypto import KeyContext
from agentplane.vault.service import SealedSecret, Vault

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
SECRET_BYTES = 32

WEBHOOK_COLUMNS = (
    "id, organization_id, url, events, description, created_by, created_at, updated_at"
)
INSERT_WEBHOOK = f"""
insert into public.webhooks
  (id, organization_id, url, events, description,
   secret_ciphertext, secret_nonce, wrapped_data_key, kek_id)
values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
returning {WEBHOOK_COLUMNS}
"""
IS_ADMIN = "select %s = any (private.org_ids('admin'))"
DELETE_WEBHOOK = "delete from public.webhooks where id = %s"
VISIBLE_WEBHOOK = "select exists (select 1 from public.webhooks where id = %s)"
DELIVERY_COLUMNS = """
select id, webhook_id, event_id, event_type, status, attempts, next_attempt_at,
       last_attempt_at, last_status_code, last_error, delivered_at, created_at
  from public.webhook_deliveries
"""


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form (`whsec_` + base64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_aad(webhook_id: UUID, organization_id: UUID) -> bytes:
    """Associated data of a secret's ciphertext: a ciphertext copied to another row fails."""
    return f"agentplane/webhook-secret/v1|{webhook_id}|{organization_id}".encode()


def secret_context(organization_id: UUID, created_by: UUID) -> KeyContext:
    """The wrapping context: the vault's {organization_id, user_id}, the user its creator."""
    return KeyContext(organization_id, created_by)


async def create_webhook(
    tx: Tx, body: WebhookCreate, *, user_id: UUID, vault: Vault, settings: Settings
) -> WebhookCreated:
    """Register a webhook (admins and owners; 404 for an organization the caller is not
    in, 403 below admin, 422 for a URL agentplane will not deliver to)."""
    await require_visible(tx, "organizations", body.organization_id, "organization")
    # Before any key is made: a member's attempt costs no KMS call.
    if not await fetch_value(tx, IS_ADMIN, (body.organization_id,)):
        raise ForbiddenError(
            f"only admins and owners may add webhooks to organization {body.organization_id}"
        )
    try:
        check_url(body.url, settings)
    except WebhookUrlError as exc:
        raise ValidationProblemError(
            [{"field": "url", "in": "body", "rule": exc.rule, "message": str(exc)}]
        ) from exc
    webhook_id = uuid4()
    secret = new_secret()
    sealed = await vault.seal(
        secret_context(body.organization_id, user_id),
        secret,
        secret_aad(webhook_id, body.organization_id),
    )
    row = await fetch_one(
        tx,
        Webhook,
        INSERT_WEBHOOK,
        (
            webhook_id,
            body.organization_id,
            body.url,
            body.events,
            body.description,
            sealed.ciphertext,
            sealed.nonce,
            sealed.wrapped_data_key,
            sealed.kek_id,
        ),
    )
    assert row is not None  # an RLS refusal raises
    logger.info(
        "webhook created",
        extra={
            "webhook_id": str(webhook_id),
            "organization_id": str(body.organization_id),
            "events": body.events,
            "kek_id": sealed.kek_id,
        },
    )
    return WebhookCreated(**row.model_dump(), secret=secret)


async def list_webhooks(
    tx: Tx, page: PageRequest, organization_id: UUID | None = None
) -> Page[Webhook]:
    """The webhooks the caller may see (members and up), optionally of one organization."""
    filters, args = (
        ([], []) if organization_id is None else (["organization_id = %s"], [organization_id])
    )
    return await fetch_page(
        tx, Webhook, f"select {WEBHOOK_COLUMNS} from public.webhooks", page, filters, args
    )


async def delete_webhook(tx: Tx, webhook_id: UUID) -> None:
    """Delete a webhook and its deliveries (admins; 403 for a member, 404 otherwise)."""
    cur = await tx.execute(DELETE_WEBHOOK, (webhook_id,))
    if cur.rowcount == 0:
        if await fetch_value(tx, VISIBLE_WEBHOOK, (webhook_id,)):
            raise ForbiddenError(f"your role does not allow deleting webhook {webhook_id}")
        raise NotFoundError(f"webhook {webhook_id} not found")
    logger.info("webhook deleted", extra={"webhook_id": str(webhook_id)})


async def list_deliveries(tx: Tx, webhook_id: UUID, page: PageRequest) -> Page[WebhookDelivery]:
    """A webhook's deliveries, newest first (404 unless the caller may see the webhook)."""
    if not await fetch_value(tx, VISIBLE_WEBHOOK, (webhook_id,)):
        raise NotFoundError(f"webhook {webhook_id} not found")
    return await fetch_page(
        tx,
        WebhookDelivery,
        DELIVERY_COLUMNS,
        replace(page, newest_first=True),
        ["webhook_id = %s"],
        [webhook_id],
    )


async def open_secret(
    vault: Vault, webhook_id: UUID, organization_id: UUID, created_by: UUID, sealed: SealedSecret
) -> str:
    """A webhook's signing secret, for the dispatcher (service role) to sign with."""
    return await vault.open(
        secret_context(organization_id, created_by), sealed, secret_aad(webhook_id, organization_id)
    )
