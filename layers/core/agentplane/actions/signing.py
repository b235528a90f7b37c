"""Ed25519 approval signatures: the server signs, runners verify against its JWK.

The private key is a PEM (PKCS#8): in AWS a Secrets Manager secret read through
Powertools Parameters; locally `.agentplane/approval-signing-key.pem`, created on first
use with mode 0600.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

LOCAL_KEY_FILE = "approval-signing-key.pem"


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JOSE writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Inverse of b64url; raises ValueError on malformed input."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """The public key as an OKP JWK (RFC 8037) with its RFC 7638 thumbprint as `kid`."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    members = {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    thumbprint = hashlib.sha256(
        json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    ).digest()
    return {**members, "alg": "EdDSA", "use": "sig", "kid": b64url(thumbprint)}


def public_key_from_jwk(jwk: dict[str, Any]) -> Ed25519PublicKey:
    """The Ed25519 public key of a JWK; ValueError if it is not one."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not jwk.get("x"):
        raise ValueError("not an Ed25519 OKP JWK")
    return Ed25519PublicKey.from_public_bytes(b64url_decode(str(jwk["x"])))


def verify_signature(public_key: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    """True when `signature` (base64url) is the key's signature of `message`."""
    try:
        public_key.verify(b64url_decode(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class ApprovalSigner:
    """The server's signing key."""

    private_key: Ed25519PrivateKey

    @classmethod
    def from_pem(cls, pem: bytes | str) -> ApprovalSigner:
        """Load a PKCS#8 PEM Ed25519 key."""
        data = pem.encode() if isinstance(pem, str) else pem
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the approval signing key must be an Ed25519 key")
        return cls(key)

    @classmethod
    def local(cls, data_dir: Path) -> ApprovalSigner:
        """The local key under data_dir, generated (mode 0600) on first use."""
        path = Path(data_dir) / LOCAL_KEY_FILE
        if path.exists():
            return cls.from_pem(path.read_bytes())
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
        return cls(key)

    def sign(self, message: bytes) -> str:
        """The base64url Ed25519 signature of `message`."""
        return b64url(self.private_key.sign(message))

    @property
    def jwk(self) -> dict[str, str]:
        """The public JWK runners verify with."""
        return public_jwk(self.private_key.public_key())
