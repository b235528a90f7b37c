"""Canonical JSON and the hashes and approval messages built on it.

Canonical form: keys sorted, no insignificant whitespace, UTF-8, non-ASCII kept as is
(`json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`). The server
and the runner compute it the same way, so a payload's SHA-256 is reproducible on both
sides. Payloads are JSON objects of strings, numbers, booleans, nulls, arrays and
objects; floats must be finite.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID


def canonical_json(value: Any) -> bytes:
    """The canonical UTF-8 encoding of a JSON value."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def payload_sha256(payload: dict[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of an action payload `{tool, args}`."""
    return hashlib.sha256(canonical_json(payload)).hexdigest()


@lru_cache(maxsize=16)
def rfc3339(moment: datetime) -> str:
    """UTC, microseconds, `Z`: the one timestamp spelling inside signed messages.
    Cached: a batch of approvals signs the same two moments for every action."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def approval_message(
    action_id: UUID,
    agent_id: UUID,
    payload_hash: str,
    approved_at: datetime,
    expires_at: datetime,
    *,
    risk: str,
    policy_id: UUID | None,
    policy_version: int | None,
) -> bytes:
    """The bytes an approval signature covers: the canonical JSON of {action_id,
    agent_id, payload_sha256, approved_at, expires_at, risk, policy_id, policy_version}
    (the approval policy it was decided under; null ids for the default policy)."""
    approved, expires = rfc3339(approved_at), rfc3339(expires_at)
    if (
        not _is_hex(payload_hash)
        or risk not in _RISKS
        or type(policy_version)
        not in (
            int,
            type(None),
        )
    ):
        # Only values taken off the wire can be anything else (the runner checks what it
        # was handed): then the general encoder spells them.
        return canonical_json(
            {
                "action_id": str(action_id),
                "agent_id": str(agent_id),
                "payload_sha256": payload_hash,
                "approved_at": approved,
                "expires_at": expires,
                "risk": risk,
                "policy_id": str(policy_id) if policy_id is not None else None,
                "policy_version": policy_version,
            }
        )
    # UUIDs, hex digits, these timestamps, a risk word and an integer need no escaping,
    # so the canonical JSON is this string with its keys in sorted order (a fifth of the
    # encoder's time; a batch of approvals builds one message per action).
    policy = f'"{policy_id}"' if policy_id is not None else "null"
    version = str(policy_version) if policy_version is not None else "null"
    return (
        f'{{"action_id":"{action_id}","agent_id":"{agent_id}","approved_at":"{approved}",'
        f'"expires_at":"{expires}","payload_sha256":"{payload_hash}",'
        f'"policy_id":{policy},"policy_version":{version},"risk":"{risk}"}}'
    ).encode()


_RISKS = frozenset(("low", "medium", "high", "critical"))
_HEX = frozenset("0123456789abcdef")


def _is_hex(text: str) -> bool:
    """Only lowercase hex digits (possibly none)."""
    return _HEX.issuperset(text)
