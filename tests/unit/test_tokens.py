"""JWT verification through the HTTP app: every bad token is a 401 problem, nothing else."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from agentplane.apps import build_local_app
from agentplane.auth.tokens import mint_token
from agentplane.db.database import Database
from agentplane.runtime import Runtime
from agentplane.settings import Settings

SECRET = "unit-test-secret-" + "y" * 60
USER = uuid.UUID("0b9e5f3c-2a4d-4c1e-9f7a-6d8b1c2e3f4a")


@pytest.fixture
def unit_settings(tmp_path: Any) -> Settings:
    return Settings(stage="test", jwt_secret=SECRET, data_dir=tmp_path)


@pytest.fixture
async def unit_client(unit_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # The pool is never opened: a rejected token never reaches the database.
    db = Database("postgresql://authenticator@db.invalid/none")
    app = build_local_app(Runtime(unit_settings, db))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(uuid.uuid4()),
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _alg_none_token() -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}."


BAD_TOKENS = {
    "alg-none": lambda: _alg_none_token(),
    "wrong-audience": lambda: jwt.encode(_claims(aud="someone-else"), SECRET, "HS256"),
    "expired": lambda: jwt.encode(_claims(exp=int(time.time()) - 3600), SECRET, "HS256"),
    "wrong-signature": lambda: jwt.encode(_claims(), "another-secret-" + "z" * 40, "HS256"),
    "missing-sub": lambda: jwt.encode(_claims(sub=None), SECRET, "HS256"),
    "missing-exp": lambda: jwt.encode(_claims(exp=None), SECRET, "HS256"),
    "missing-aud": lambda: jwt.encode(_claims(aud=None), SECRET, "HS256"),
    "sub-not-a-uuid": lambda: jwt.encode(_claims(sub="alice"), SECRET, "HS256"),
    # Forms Python's UUID() accepts but that are not the canonical 8-4-4-4-12 text.
    "sub-urn-uuid": lambda: jwt.encode(_claims(sub=f"urn:uuid:{USER}"), SECRET, "HS256"),
    "sub-in-braces": lambda: jwt.encode(_claims(sub=f"{{{USER}}}"), SECRET, "HS256"),
    "sub-hyphenless": lambda: jwt.encode(_claims(sub=USER.hex), SECRET, "HS256"),
    "sub-uppercase-hyphenless": lambda: jwt.encode(_claims(sub=USER.hex.upper()), SECRET, "HS256"),
    "sub-uppercase": lambda: jwt.encode(_claims(sub=str(USER).upper()), SECRET, "HS256"),
    "sub-padded": lambda: jwt.encode(_claims(sub=f" {USER}"), SECRET, "HS256"),
    "sub-a-number": lambda: jwt.encode(_claims(sub=USER.int), SECRET, "HS256"),
    "service-role-claim": lambda: jwt.encode(_claims(role="service_role"), SECRET, "HS256"),
    "hs512-not-accepted": lambda: jwt.encode(_claims(), SECRET, "HS512"),
    "garbage": lambda: "not.a.jwt",
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_bad_token_is_401_problem(unit_client: httpx.AsyncClient, case: str) -> None:
    token = BAD_TOKENS[case]()
    resp = await unit_client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["www-authenticate"] == "Bearer"
    body = resp.json()
    assert body["type"].endswith("/unauthorized")
    assert body["status"] == 401


@pytest.mark.parametrize(
    "header",
    [None, "Basic dXNlcjpwYXNz", "Bearer", "bearer "],
    ids=["none", "basic", "empty", "blank"],
)
async def test_missing_or_malformed_header_is_401(
    unit_client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    resp = await unit_client.get("/me", headers=headers)
    assert resp.status_code == 401
    assert resp.json()["type"].endswith("/unauthorized")


def test_minted_token_verifies_with_its_claims(unit_settings: Settings) -> None:
    user = uuid.uuid4()
    token = mint_token(unit_settings, user, email="a@example.com", ttl_seconds=60)
    claims = Runtime(unit_settings).verifier.verify(token)
    assert claims["sub"] == str(user)
    assert claims["email"] == "a@example.com"
    assert claims["aud"] == "authenticated"
    assert 55 <= claims["exp"] - int(time.time()) <= 60


def test_issuer_is_required_when_configured(tmp_path: Any) -> None:
    settings = Settings(
        stage="test", jwt_secret=SECRET, jwt_issuer="https://issuer.example", data_dir=tmp_path
    )
    verifier = Runtime(settings).verifier
    good = jwt.encode(_claims(iss="https://issuer.example"), SECRET, "HS256")
    assert verifier.verify(good)["iss"] == "https://issuer.example"
    from agentplane.errors import UnauthorizedError

    with pytest.raises(UnauthorizedError):
        verifier.verify(jwt.encode(_claims(iss="https://evil.example"), SECRET, "HS256"))
    with pytest.raises(UnauthorizedError):
        verifier.verify(jwt.encode(_claims(), SECRET, "HS256"))


def test_local_secret_is_created_once_and_private(tmp_path: Any) -> None:
    settings = Settings(stage="local", data_dir=tmp_path / "data")
    user = uuid.uuid4()
    first = mint_token(settings, user)
    secret_file = tmp_path / "data" / "jwt-secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    # A second process reads the same secret, so its tokens verify the first's.
    assert Runtime(Settings(stage="local", data_dir=tmp_path / "data")).verifier.verify(first)


def test_outside_local_mode_a_secret_or_jwks_is_required(tmp_path: Any) -> None:
    from agentplane.auth.tokens import TokenConfigurationError, hs256_secret

    with pytest.raises(TokenConfigurationError):
        hs256_secret(Settings(stage="prod", data_dir=tmp_path))
