"""The events dispatcher: publishes the event outbox, then delivers webhooks.

Events are written in the transaction that made them true (the trigger on the audit log,
or private.emit_event). A dispatch takes due events `FOR UPDATE SKIP LOCKED` (two
dispatchers never take the same one), publishes them (EventBridge, or the local bus) and
stamps `published_at`, which fans each out into the deliveries of its organization's
matching webhooks (a trigger). Then it takes due deliveries the same way and leases them
(an attempt counted, the row not due again for the lease) before any request is sent, so
no transaction stays open across a slow receiver; each POST is signed per Standard
Webhooks. A 2xx is delivered; anything else is retried with exponential backoff and
jitter until `webhook_max_attempts`, then failed.

Runs when kicked after a commit (in-process locally, an async invoke in AWS) and every
minute on the schedule, which also picks up what a lost kick or a crash left.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx

from agentplane.events.models import Event
from agentplane.events.publisher import event_body
from agentplane.events.service import open_secret
from agentplane.events.urls import allows_private, public_address
from agentplane.observability import logger
from agentplane.runtime import Runtime
from agentplane.settings import Settings
from agentplane.vault.crypto import VaultDecryptError, VaultUnavailableError
from agentplane.vault.service import SealedSecret

BATCH = 100
# Deliveries sent at once by one dispatch.
CONCURRENCY = 10
USER_AGENT = "agentplane-webhooks/1"

DUE_EVENTS = """
select id, organization_id, type, data, created_at, attempts
  from public.agent_events
 where published_at is null and next_attempt_at <= now()
 order by next_attempt_at, id
 limit %s
   for update skip locked
"""
# Stamping published_at fans the event out (trigger agent_events_fan_out).
PUBLISHED = """
update public.agent_events
   set published_at = now(), attempts = attempts + 1, last_error = %s
 where id = any(%s)
"""
EVENT_RETRY = """
update public.agent_events
   set attempts = attempts + 1, last_error = %s,
       next_attempt_at = now() + make_interval(secs => %s)
 where id = %s
"""
# Lease the due deliveries: count the attempt and push next_attempt_at past the request's
# timeout, so a dispatcher that dies mid-request leaves the row due again, not stuck.
LEASE_DELIVERIES = """
with due as (
  select id from public.webhook_deliveries
   where status = 'pending' and next_attempt_at <= now()
   order by next_attempt_at, id
   limit %s
     for update skip locked
)
update public.webhook_deliveries d
   set attempts = d.attempts + 1, last_attempt_at = now(),
       next_attempt_at = now() + make_interval(secs => %s)
  from due, public.webhooks w, public.agent_events e
 where d.id = due.id and w.id = d.webhook_id and e.id = d.event_id
returning d.id, d.attempts, d.organization_id, w.id, w.url, w.created_by,
          w.secret_ciphertext, w.secret_nonce, w.wrapped_data_key, w.kek_id,
          e.id, e.type, e.data, e.created_at
"""
# Conditional on the attempt: a dispatcher whose lease ran out cannot overwrite a newer one.
DELIVERED = """
update public.webhook_deliveries
   set status = 'delivered', delivered_at = now(), last_status_code = %s, last_error = null
 where id = %s and status = 'pending' and attempts = %s
"""
DELIVERY_RETRY = """
update public.webhook_deliveries
   set last_status_code = %s, last_error = %s,
       next_attempt_at = now() + make_interval(secs => %s)
 where id = %s and status = 'pending' and attempts = %s
"""
DELIVERY_FAILED = """
update public.webhook_deliveries
   set status = 'failed', last_status_code = %s, last_error = %s
 where id = %s and status = 'pending' and attempts = %s
"""


@dataclass
class DispatchResult:
    """What one dispatch did."""

    published: int = 0
    publish_retried: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts, as the handler returns them."""
        return dict(vars(self))


@dataclass(frozen=True)
class _Delivery:
    id: UUID
    attempts: int
    webhook_id: UUID
    url: str
    secret: str | None
    event: Event


@dataclass(frozen=True)
class _Outcome:
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def backoff_seconds(s: Settings, attempts: int) -> float:
    """The wait before the next try after `attempts` tries: doubling from the base, capped,
    with equal jitter (half fixed, half random) so a burst of failures spreads out. The
    wait after try n is in [f / 2, f] for f = min(cap, base * 2^(n-1)): below the cap,
    never shorter than the wait before it."""
    full = min(s.webhook_backoff_max_seconds, s.webhook_backoff_seconds * 2 ** (attempts - 1))
    # Jitter, not a secret: the standard generator will do.
    return float(full / 2 + random.uniform(0, full / 2))  # noqa: S311


def _columns(cur: Any) -> list[str]:
    assert cur.description is not None
    return [c.name for c in cur.description]


async def publish_events(runtime: Runtime, *, limit: int = BATCH) -> tuple[int, int]:
    """Publish what is due; (published, to be retried)."""
    max_attempts = runtime.settings.webhook_max_attempts
    async with runtime.database.service("events: publish the outbox", routine=True) as tx:
        cur = await tx.execute(DUE_EVENTS, (limit,))
        rows = [dict(zip(_columns(cur), r, strict=True)) for r in await cur.fetchall()]
        if not rows:
            return 0, 0
        events = [Event.model_validate(r) for r in rows]
        failed = await runtime.event_publisher.publish(events)
        attempts = {r["id"]: int(r["attempts"]) + 1 for r in rows}
        published = [e.id for e in events if e.id not in failed]
        retried = 0
        given_up: list[UUID] = []
        for event_id, error in failed.items():
            if attempts[event_id] >= max_attempts:
                # The bus is not the webhooks' gatekeeper: after the last try they still go.
                given_up.append(event_id)
                logger.error(
                    "event not published to the bus; given up",
                    extra={"event_id": str(event_id), "error": error},
                )
                continue
            retried += 1
            await tx.execute(
                EVENT_RETRY,
                (error, backoff_seconds(runtime.settings, attempts[event_id]), event_id),
            )
            logger.warning(
                "event not published; will retry", extra={"event_id": str(event_id), "error": error}
            )
        if published:
            await tx.execute(PUBLISHED, (None, published))
        for event_id in given_up:
            await tx.execute(PUBLISHED, (failed[event_id], [event_id]))
    return len(published) + len(given_up), retried


async def _lease(runtime: Runtime, limit: int) -> list[_Delivery]:
    lease = runtime.settings.webhook_timeout_seconds + 30
    async with runtime.database.service("events: lease webhook deliveries", routine=True) as tx:
        cur = await tx.execute(LEASE_DELIVERIES, (limit, lease))
        rows = await cur.fetchall()
    secrets: dict[UUID, str | None] = {}
    leased: list[_Delivery] = []
    for row in rows:
        (delivery_id, attempts, org_id, webhook_id, url, created_by, ciphertext, nonce,
         wrapped, kek_id, event_id, event_type, data, created_at) = row  # fmt: skip
        if webhook_id not in secrets:
            sealed = SealedSecret(bytes(ciphertext), bytes(nonce), bytes(wrapped), kek_id)
            try:
                secrets[webhook_id] = await open_secret(
                    runtime.vault, webhook_id, org_id, created_by, sealed
                )
            except (VaultDecryptError, VaultUnavailableError) as exc:
                logger.error(
                    "webhook secret does not decrypt",
                    extra={"webhook_id": str(webhook_id), "error": str(exc)},
                )
                secrets[webhook_id] = None
        event = Event(
            id=event_id, organization_id=org_id, type=event_type, data=data, created_at=created_at
        )
        leased.append(
            _Delivery(delivery_id, int(attempts), webhook_id, url, secrets[webhook_id], event)
        )
    return leased


async def _refused_address(runtime: Runtime, url: str) -> str | None:
    """Why the URL's host may not be called now (it resolves to a non-public address)."""
    if allows_private(runtime.settings):
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port)
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or not all(public_address(a) for a in addresses):
        return f"{host} resolves to a loopback, private or link-local address"
    return None


async def _send(runtime: Runtime, http: httpx.AsyncClient, delivery: _Delivery) -> _Outcome:
    from standardwebhooks import Webhook

    if delivery.secret is None:
        return _Outcome(None, "the webhook's signing secret cannot be read")
    refused = await _refused_address(runtime, delivery.url)
    if refused:
        return _Outcome(None, refused)
    body = json.dumps(event_body(delivery.event), default=str, separators=(",", ":"))
    msg_id = str(delivery.event.id)
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(delivery.secret).sign(msg_id, now, body),
    }
    try:
        resp = await http.post(delivery.url, content=body.encode(), headers=headers)
    except httpx.HTTPError as exc:
        return _Outcome(None, f"{type(exc).__name__}: {exc}"[:2000] or type(exc).__name__)
    if 200 <= resp.status_code < 300:
        return _Outcome(resp.status_code, None)
    return _Outcome(resp.status_code, f"the receiver answered {resp.status_code}")


async def deliver_webhooks(runtime: Runtime, *, limit: int = BATCH) -> tuple[int, int, int]:
    """POST what is due; (delivered, to be retried, failed for good)."""
    leased = await _lease(runtime, limit)
    if not leased:
        return 0, 0, 0
    # Webhooks are sent to side by side; one webhook's deliveries one after another, in
    # the order their events happened (a retry may still arrive after a later event).
    by_webhook: dict[UUID, list[_Delivery]] = {}
    for d in sorted(leased, key=lambda d: (d.event.created_at, str(d.event.id))):
        by_webhook.setdefault(d.webhook_id, []).append(d)
    gate = asyncio.Semaphore(CONCURRENCY)
    timeout = httpx.Timeout(runtime.settings.webhook_timeout_seconds)
    sent: dict[UUID, _Outcome] = {}
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:

        async def in_order(deliveries: list[_Delivery]) -> None:
            async with gate:
                for d in deliveries:
                    sent[d.id] = await _send(runtime, http, d)

        await asyncio.gather(*(in_order(ds) for ds in by_webhook.values()))
    outcomes = [sent[d.id] for d in leased]
    max_attempts = runtime.settings.webhook_max_attempts
    counts = [0, 0, 0]
    async with runtime.database.service("events: record webhook deliveries", routine=True) as tx:
        for d, outcome in zip(leased, outcomes, strict=True):
            log = {
                "delivery_id": str(d.id),
                "webhook_id": str(d.webhook_id),
                "event_id": str(d.event.id),
                "event_type": d.event.type,
                "attempts": d.attempts,
                "status_code": outcome.status_code,
            }
            if outcome.ok:
                await tx.execute(DELIVERED, (outcome.status_code, d.id, d.attempts))
                counts[0] += 1
                logger.info("webhook delivered", extra=log)
            elif d.attempts >= max_attempts:
                await tx.execute(
                    DELIVERY_FAILED, (outcome.status_code, outcome.error, d.id, d.attempts)
                )
                counts[2] += 1
                logger.warning(
                    "webhook delivery failed for good", extra={**log, "error": outcome.error}
                )
            else:
                wait = backoff_seconds(runtime.settings, d.attempts)
                await tx.execute(
                    DELIVERY_RETRY, (outcome.status_code, outcome.error, wait, d.id, d.attempts)
                )
                counts[1] += 1
                logger.info(
                    "webhook delivery will be retried", extra={**log, "error": outcome.error}
                )
    return counts[0], counts[1], counts[2]


async def dispatch(runtime: Runtime, *, limit: int = BATCH) -> DispatchResult:
    """Publish due events, then deliver due webhooks."""
    result = DispatchResult()
    result.published, result.publish_retried = await publish_events(runtime, limit=limit)
    result.delivered, result.retried, result.failed = await deliver_webhooks(runtime, limit=limit)
    return result
