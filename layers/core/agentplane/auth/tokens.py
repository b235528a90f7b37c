"""User tokens: JWT verification (HS256 secret or JWKS) and minting for development."""

from __future__ import annotations

import secrets
import time
from functools import cached_property
from pathlib import Path
from typing import Any
from uuid import UUID

import jwt

from agentplane.auth.caller import canonical_uuid
from agentplane.errors import UnauthorizedError
from agentplane.settings import Settings

# Fixed algorithm lists: a token's own `alg` header never chooses how it is verified.
HMAC_ALGORITHMS = ["HS256"]
JWKS_ALGORITHMS = ["RS256", "ES256"]
REQUIRED_CLAIMS = ["exp", "aud", "sub"]
LOCAL_SECRET_FILE = "jwt-secret"  # noqa: S105 (a file name, not a secret)


class TokenConfigurationError(RuntimeError):
    """Neither a JWT secret nor a JWKS URL is configured outside local mode."""


def local_jwt_secret(settings: Settings) -> str:
    """The development signing secret under data_dir, created (mode 0600) on first use."""
    path = Path(settings.data_dir) / LOCAL_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret


def hs256_secret(settings: Settings) -> str:
    """The HS256 secret: configured, or the local one in local mode."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    if settings.is_local:
        return local_jwt_secret(settings)
    raise TokenConfigurationError(
        "set AGENTPLANE_JWT_SECRET or AGENTPLANE_JWKS_URL to verify user tokens"
    )


class TokenVerifier:
    """Verifies user bearer tokens and returns their claims; every failure is a 401."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @cached_property
    def _jwks_client(self) -> jwt.PyJWKClient:
        assert self._settings.jwks_url is not None
        return jwt.PyJWKClient(self._settings.jwks_url, cache_keys=True, lifespan=600)

    def verify(self, token: str) -> dict[str, Any]:
        """Check signature, algorithm, `exp`, `aud` (and `iss` if configured) and `sub`."""
        s = self._settings
        try:
            if s.jwks_url:
                key: Any = self._jwks_client.get_signing_key_from_jwt(token).key
                algorithms = JWKS_ALGORITHMS
            else:
                key = hs256_secret(s)
                algorithms = HMAC_ALGORITHMS
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                leeway=s.jwt_leeway_seconds,
                options={"require": [*REQUIRED_CLAIMS, *(["iss"] if s.jwt_issuer else [])]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise UnauthorizedError("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise UnauthorizedError("the token's audience is not accepted here") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise UnauthorizedError(f"the token has no '{exc.claim}' claim") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise UnauthorizedError("the token's algorithm is not accepted") from exc
        except jwt.PyJWKClientError as exc:
            raise UnauthorizedError("the token's signing key is unknown") from exc
        except jwt.InvalidTokenError as exc:
            raise UnauthorizedError(f"the token is invalid: {exc}") from exc
        if canonical_uuid(claims["sub"]) is None:
            raise UnauthorizedError(
                "the token's 'sub' claim is not a user id (a lowercase 8-4-4-4-12 UUID)"
            )
        role = claims.get("role", "authenticated")
        if role != "authenticated":
            raise UnauthorizedError(f"tokens with role '{role}' are not accepted by the API")
        return claims


def mint_token(
    settings: Settings,
    sub: UUID,
    *,
    email: str | None = None,
    ttl_seconds: int = 3600,
) -> str:
    """A user token signed with the HS256 secret (development and tests)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(sub),
        "aud": settings.jwt_audience,
        "role": "authenticated",
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if email:
        claims["email"] = email
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    return jwt.encode(claims, hs256_secret(settings), algorithm="HS256")
