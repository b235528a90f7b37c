"""The approval message is the canonical JSON of its fields, byte for byte."""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agentplane.actions.canonical import approval_message, canonical_json, rfc3339


def _general(
    action_id: uuid.UUID,
    agent_id: uuid.UUID,
    digest: str,
    approved: datetime,
    expires: datetime,
    terms: dict[str, object],
) -> bytes:
    return canonical_json(
        {
            "action_id": str(action_id),
            "agent_id": str(agent_id),
            "payload_sha256": digest,
            "approved_at": rfc3339(approved),
            "expires_at": rfc3339(expires),
            "risk": terms["risk"],
            "policy_id": str(terms["policy_id"]) if terms["policy_id"] else None,
            "policy_version": terms["policy_version"],
        }
    )


DIGESTS = [
    "0" * 64,
    hashlib.sha256(b"a payload").hexdigest(),
    "",  # hex digits only, none of them
    "ABCDEF" + "0" * 58,  # uppercase is not what the server stores: the general path
    'ab"cd\\ef',  # what a tampered wire could carry
    "é🙂\n\x00",
]


@pytest.mark.parametrize("digest", DIGESTS)
def test_the_message_is_the_canonical_json_of_its_fields(digest: str) -> None:
    rng = random.Random(digest)  # noqa: S311 - reproducible test inputs, not secrets
    for _ in range(50):
        action_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        agent_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        offset = timezone(timedelta(minutes=rng.randrange(-720, 720)))
        approved = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.getrandbits(45))
        approved = approved.astimezone(offset)
        expires = approved + timedelta(seconds=rng.randrange(1, 10**6))
        policy = rng.random() < 0.5
        terms: dict[str, object] = {
            "risk": rng.choice(["low", "medium", "high", "critical", 'x"y']),
            "policy_id": uuid.UUID(int=rng.getrandbits(128), version=4) if policy else None,
            "policy_version": rng.randrange(1, 10**6) if policy else None,
        }
        assert approval_message(
            action_id,
            agent_id,
            digest,
            approved,
            expires,
            **terms,  # type: ignore[arg-type]
        ) == _general(action_id, agent_id, digest, approved, expires, terms)
