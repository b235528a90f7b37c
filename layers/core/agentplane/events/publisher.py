"""Where events are published: EventBridge in AWS, a log line and an in-process bus
locally. Each says, per event, whether it went out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Protocol
from uuid import UUID

from agentplane.events.models import Event
from agentplane.observability import logger

SOURCE = "agentplane"
# PutEvents takes at most 10 entries per call.
PUT_EVENTS_BATCH = 10


def event_body(event: Event) -> dict[str, Any]:
    """The event as JSON: the EventBridge detail, and what the local bus logs."""
    return {
        "id": str(event.id),
        "organization_id": str(event.organization_id),
        "type": event.type,
        "timestamp": event.created_at.isoformat(),
        "data": event.data,
    }


class EventPublisher(Protocol):
    """Publishes a batch of events; returns the error of each event that did not go out."""

    async def publish(self, events: list[Event]) -> dict[UUID, str]:
        """The events that failed, each with why (empty: all published)."""
        ...


class EventBridgePublisher:
    """PutEvents on one bus: Source `agentplane`, DetailType the event type."""

    def __init__(self, client: Any, bus_name: str) -> None:
        self.client = client
        self.bus_name = bus_name

    async def publish(self, events: list[Event]) -> dict[UUID, str]:
        """PutEvents, ten at a time; an entry EventBridge refuses is reported as failed."""
        failed: dict[UUID, str] = {}
        for start in range(0, len(events), PUT_EVENTS_BATCH):
            batch = events[start : start + PUT_EVENTS_BATCH]
            entries = [
                {
                    "Source": SOURCE,
                    "DetailType": e.type,
                    "Detail": json.dumps(event_body(e), default=str),
                    "EventBusName": self.bus_name,
                    "Time": e.created_at,
                    "Resources": [],
                }
                for e in batch
            ]
            try:
                answer = await asyncio.to_thread(self.client.put_events, Entries=entries)
            except Exception as exc:  # the network, throttling, credentials: retried
                for e in batch:
                    failed[e.id] = f"PutEvents failed: {type(exc).__name__}: {exc}"[:2000]
                continue
            for e, entry in zip(batch, answer.get("Entries", []), strict=False):
                if entry.get("ErrorCode"):
                    failed[e.id] = f"{entry['ErrorCode']}: {entry.get('ErrorMessage', '')}"[:2000]
        return failed


Subscriber = Callable[[Event], None]


class LocalBus:
    """Local mode's bus: each event is a log line (Powertools) and goes to every
    subscriber (tests subscribe with `subscribe`)."""

    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` with every event published from now on; returns how to stop."""
        self.subscribers.append(subscriber)
        return lambda: self.subscribers.remove(subscriber)

    def queue(self) -> tuple[asyncio.Queue[Event], Callable[[], None]]:
        """A queue every event published from now on is put on, and how to stop."""
        events: asyncio.Queue[Event] = asyncio.Queue()
        return events, self.subscribe(events.put_nowait)

    async def publish(self, events: list[Event]) -> dict[UUID, str]:
        """Log each event and hand it to the subscribers; never fails."""
        for event in events:
            logger.info(
                "event published",
                extra={
                    "event_id": str(event.id),
                    "event_type": event.type,
                    "organization_id": str(event.organization_id),
                },
            )
            for subscriber in list(self.subscribers):
                try:
                    subscriber(event)
                except Exception:
                    logger.exception("local event subscriber failed")
        return {}
