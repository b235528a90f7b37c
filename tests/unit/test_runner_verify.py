"""The runner's checks before anything runs: hash, signature, expiry, agent."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentplane.actions.canonical import approval_message, payload_sha256, rfc3339
from agentplane.actions.signing import ApprovalSigner
from agentplane.runner.models import ActionRefusedError, ClaimedAction
from agentplane.runner.verify import load_signing_keys, parse_timestamp, verify_claim

NOW = datetime(2030, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
AGENT = uuid.UUID("7b0c9e8e-4a34-4f5b-9d55-2d6f0f5a1c01")
POLICY = uuid.UUID("0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f")
SIGNER = ApprovalSigner(Ed25519PrivateKey.generate())
KEYS = load_signing_keys({"keys": [SIGNER.jwk]})


def signed_claim(
    signer: ApprovalSigner = SIGNER,
    *,
    agent_id: uuid.UUID = AGENT,
    payload: dict[str, Any] | None = None,
    approved_at: datetime = NOW - timedelta(minutes=1),
    expires_at: datetime = NOW + timedelta(hours=1),
    policy_id: uuid.UUID | None = POLICY,
) -> dict[str, Any]:
    """A claimed action as the server sends it, signed the way `actions.service` signs."""
    action_id = uuid.uuid4()
    payload = payload or {"tool": "write_file", "args": {"path": "a.txt", "content": "hi"}}
    digest = payload_sha256(payload)
    return {
        "id": str(action_id),
        "agent_id": str(agent_id),
        "payload": payload,
        "payload_sha256": digest,
        "approved_at": rfc3339(approved_at),
        "approval_expires_at": rfc3339(expires_at),
        "signature": signer.sign(
            approval_message(
                action_id,
                agent_id,
                digest,
                approved_at,
                expires_at,
                risk="high",
                policy_id=policy_id,
                policy_version=3 if policy_id else None,
            )
        ),
        "risk": "high",
        "policy_id": str(policy_id) if policy_id else None,
        "policy_version": 3 if policy_id else None,
        "fencing_token": 7,
        "lease_expires_at": rfc3339(NOW + timedelta(minutes=1)),
        "attempt": 1,
    }


def refusal_of(claim: dict[str, Any], *, agent_id: uuid.UUID = AGENT) -> str | None:
    try:
        verify_claim(ClaimedAction.model_validate(claim), KEYS, agent_id=agent_id, now=NOW)
    except ActionRefusedError as exc:
        return exc.reason
    return None


def test_a_correctly_signed_claim_passes() -> None:
    assert refusal_of(signed_claim()) is None


def test_offsets_other_than_z_verify_too() -> None:
    claim = signed_claim()
    claim["approved_at"] = claim["approved_at"].replace("Z", "+00:00")
    claim["approval_expires_at"] = (
        parse_timestamp(claim["approval_expires_at"]).astimezone().isoformat()
    )
    assert refusal_of(claim) is None


def _change_one_arg(claim: dict[str, Any]) -> None:
    claim["payload"]["args"]["content"] = "hi!"


def _change_payload_and_its_hash(claim: dict[str, Any]) -> None:
    # Whoever can edit the queue can recompute a hash, but not the signature.
    claim["payload"]["args"]["path"] = "../../.bashrc"
    claim["payload_sha256"] = payload_sha256(claim["payload"])


def _alter_signature(claim: dict[str, Any]) -> None:
    sig = claim["signature"]
    claim["signature"] = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]


def _sign_with_another_key(claim: dict[str, Any]) -> None:
    other = signed_claim(ApprovalSigner(Ed25519PrivateKey.generate()))
    claim.update({k: other[k] for k in ("id", "approved_at", "approval_expires_at", "signature")})


def _extend_expiry(claim: dict[str, Any]) -> None:
    claim["approval_expires_at"] = rfc3339(NOW + timedelta(days=30))


def _drop_signature(claim: dict[str, Any]) -> None:
    claim["signature"] = None


def _naive_timestamp(claim: dict[str, Any]) -> None:
    claim["approved_at"] = claim["approved_at"].rstrip("Z")


def _lower_the_risk(claim: dict[str, Any]) -> None:
    # A queue that says "low" where the approval was given for "high".
    claim["risk"] = "low"


def _swap_the_policy(claim: dict[str, Any]) -> None:
    claim["policy_id"] = str(uuid.uuid4())


def _claim_an_older_policy_version(claim: dict[str, Any]) -> None:
    claim["policy_version"] = 2


def _drop_the_policy(claim: dict[str, Any]) -> None:
    claim["policy_id"], claim["policy_version"] = None, None


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_change_one_arg, "payload_hash_mismatch"),
        (_change_payload_and_its_hash, "bad_signature"),
        (_alter_signature, "bad_signature"),
        (_sign_with_another_key, "bad_signature"),
        (_extend_expiry, "bad_signature"),
        (_drop_signature, "bad_signature"),
        (_naive_timestamp, "bad_signature"),
        (_lower_the_risk, "bad_signature"),
        (_swap_the_policy, "bad_signature"),
        (_claim_an_older_policy_version, "bad_signature"),
        (_drop_the_policy, "bad_signature"),
    ],
)
def test_a_tampered_claim_is_refused(tamper: Any, reason: str) -> None:
    claim = copy.deepcopy(signed_claim())
    tamper(claim)
    assert refusal_of(claim) == reason


def test_a_claim_under_the_default_policy_passes() -> None:
    assert refusal_of(signed_claim(policy_id=None)) is None


def test_an_expired_approval_is_refused() -> None:
    claim = signed_claim(approved_at=NOW - timedelta(hours=2), expires_at=NOW - timedelta(hours=1))
    assert refusal_of(claim) == "approval_expired"


def test_an_approval_expiring_this_instant_is_refused() -> None:
    assert refusal_of(signed_claim(expires_at=NOW)) == "approval_expired"


def test_an_action_of_another_agent_is_refused() -> None:
    claim = signed_claim(agent_id=uuid.uuid4())
    assert refusal_of(claim) == "wrong_agent"


def test_the_kid_of_a_claim_picks_its_key() -> None:
    other = ApprovalSigner(Ed25519PrivateKey.generate())
    keys = load_signing_keys({"keys": [SIGNER.jwk, other.jwk]})
    claim = ClaimedAction.model_validate({**signed_claim(other), "kid": other.jwk["kid"]})
    verify_claim(claim, keys, agent_id=AGENT, now=NOW)

    wrong_kid = ClaimedAction.model_validate({**signed_claim(other), "kid": SIGNER.jwk["kid"]})
    with pytest.raises(ActionRefusedError) as refused:
        verify_claim(wrong_kid, keys, agent_id=AGENT, now=NOW)
    assert refused.value.reason == "bad_signature"


def test_keys_of_other_types_are_skipped_and_a_non_set_is_an_error() -> None:
    rsa_like = {"kty": "RSA", "n": "abc", "e": "AQAB", "kid": "rsa"}
    assert [k.kid for k in load_signing_keys({"keys": [rsa_like, SIGNER.jwk]})] == [
        SIGNER.jwk["kid"]
    ]
    with pytest.raises(ValueError, match="JWK Set"):
        load_signing_keys([SIGNER.jwk])
