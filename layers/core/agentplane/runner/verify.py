"""The checks a claimed action passes before anything runs; pure functions, no I/O.

Order matters only for which reason is reported: the payload must hash to the claimed
`payload_sha256`, the server's Ed25519 signature must cover (id, agent, hash, approval
times), the approval must not have expired, and the action must belong to this runner's
agent. The tool and its arguments are checked afterwards by `tools`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agentplane.actions.canonical import approval_message, payload_sha256
from agentplane.actions.signing import public_key_from_jwk, verify_signature
from agentplane.runner.models import ActionRefusedError, ClaimedAction


@dataclass(frozen=True)
class VerificationKey:
    """One public key of the server's JWK Set."""

    kid: str | None
    public_key: Ed25519PublicKey


def load_signing_keys(jwk_set: Any) -> list[VerificationKey]:
    """The Ed25519 keys of a JWK Set (`{"keys": [...]}`); keys of other types are skipped."""
    if not isinstance(jwk_set, Mapping) or not isinstance(jwk_set.get("keys"), list):
        raise ValueError('the signing-key document is not a JWK Set ({"keys": [...]})')
    keys: list[VerificationKey] = []
    for jwk in jwk_set["keys"]:
        if not isinstance(jwk, Mapping):
            continue
        try:
            public_key = public_key_from_jwk(dict(jwk))
        except ValueError:
            continue
        kid = jwk.get("kid")
        keys.append(VerificationKey(kid if isinstance(kid, str) else None, public_key))
    return keys


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp (a trailing Z accepted); ValueError unless it has an offset."""
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return moment


def check_payload_hash(claim: ClaimedAction) -> None:
    """The payload as received hashes to the claimed `payload_sha256`."""
    if not claim.payload_sha256:
        raise ActionRefusedError("payload_hash_mismatch", "the claim carries no payload_sha256")
    try:
        actual = payload_sha256(claim.payload)
    except (TypeError, ValueError) as exc:
        raise ActionRefusedError(
            "payload_hash_mismatch", f"the payload is not canonical JSON: {exc}"
        ) from exc
    if actual != claim.payload_sha256:
        raise ActionRefusedError(
            "payload_hash_mismatch",
            f"payload hashes to {actual}, the claim says {claim.payload_sha256}",
        )


@dataclass(frozen=True)
class _Approval:
    agent_id: UUID
    approved_at: datetime
    expires_at: datetime
    signature: str


def _approval_of(claim: ClaimedAction) -> _Approval:
    if not claim.signature:
        raise ActionRefusedError("bad_signature", "the claim carries no approval signature")
    if not claim.approved_at or not claim.approval_expires_at:
        raise ActionRefusedError("bad_signature", "the claim carries no approval timestamps")
    try:
        agent_id = UUID(str(claim.agent_id))
    except ValueError as exc:
        raise ActionRefusedError("bad_signature", "the claim's agent_id is not a UUID") from exc
    try:
        approved_at = parse_timestamp(claim.approved_at)
        expires_at = parse_timestamp(claim.approval_expires_at)
    except ValueError as exc:
        raise ActionRefusedError("bad_signature", f"unreadable approval timestamp: {exc}") from exc
    return _Approval(agent_id, approved_at, expires_at, claim.signature)


def check_signature(claim: ClaimedAction, keys: Sequence[VerificationKey]) -> None:
    """One of the server's keys signed this claim's approval message."""
    approval = _approval_of(claim)
    candidates = [k for k in keys if k.kid == claim.kid] if claim.kid else list(keys)
    if not candidates:
        raise ActionRefusedError(
            "bad_signature",
            f"no signing key with kid {claim.kid!r}" if claim.kid else "no signing key known",
        )
    policy_id = claim.policy_id
    try:
        policy = UUID(str(policy_id)) if policy_id is not None else None
    except ValueError as exc:
        raise ActionRefusedError("bad_signature", "the claim's policy_id is not a UUID") from exc
    # The risk and policy are signed: a claim whose risk or policy was changed on the way
    # does not verify.
    message = approval_message(
        claim.id,
        approval.agent_id,
        str(claim.payload_sha256),
        approval.approved_at,
        approval.expires_at,
        risk=str(claim.risk),
        policy_id=policy,
        policy_version=claim.policy_version,
    )
    if not any(verify_signature(k.public_key, message, approval.signature) for k in candidates):
        raise ActionRefusedError(
            "bad_signature", "the approval signature does not verify with the server's keys"
        )


def check_approval_current(claim: ClaimedAction, *, agent_id: UUID, now: datetime) -> None:
    """The approval has not expired and the action belongs to this runner's agent."""
    approval = _approval_of(claim)
    if approval.expires_at <= now:
        raise ActionRefusedError(
            "approval_expired", f"the approval expired at {claim.approval_expires_at}"
        )
    if approval.agent_id != agent_id:
        raise ActionRefusedError(
            "wrong_agent", f"action is for agent {approval.agent_id}, this runner is {agent_id}"
        )


def verify_claim(
    claim: ClaimedAction, keys: Sequence[VerificationKey], *, agent_id: UUID, now: datetime
) -> None:
    """Raise ActionRefusedError unless the claim may run: hash, signature, expiry, agent."""
    check_payload_hash(claim)
    check_signature(claim, keys)
    check_approval_current(claim, agent_id=agent_id, now=now)
