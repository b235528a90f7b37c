"""Runner tokens: minted from the OS's randomness, shown once, stored as a SHA-256.

The token carries 256 random bits, so a plain SHA-256 (no salt, no slow hash) is enough
to make a leaked `token_hash` useless, and lets the runner's bearer token be looked up by
its hash in one indexed query.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

RUNNER_TOKEN_PREFIX = "aprt_"  # noqa: S105 (a public marker, not a secret)
# How much of the token is kept to tell tokens apart in lists (the marker plus 7 chars).
TOKEN_PREFIX_LENGTH = 12


def hash_runner_token(token: str) -> str:
    """The hex SHA-256 that `agent_runner_tokens.token_hash` stores for `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    """A fresh token, its hash and its display prefix."""

    token: str = field(repr=False)
    token_hash: str
    token_prefix: str


def issue_runner_token() -> IssuedToken:
    """A new random runner token (`aprt_` + 43 url-safe characters)."""
    token = RUNNER_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return IssuedToken(token, hash_runner_token(token), token[:TOKEN_PREFIX_LENGTH])
