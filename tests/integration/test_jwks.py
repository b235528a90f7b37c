"""Tokens verified against a JWKS URL (as Supabase's asymmetric keys are), served locally."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from agentplane.errors import UnauthorizedError
from agentplane.runtime import Runtime
from agentplane.settings import Settings

KID = "test-key-1"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(rsa_key: rsa.RSAPrivateKey) -> Iterator[str]:
    jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    server.shutdown()


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": str(uuid.uuid4()), "aud": "authenticated", "exp": now + 300, **extra}


def test_rs256_token_from_jwks_verifies(
    rsa_key: rsa.RSAPrivateKey, jwks_url: str, tmp_path: Path
) -> None:
    verifier = Runtime(Settings(stage="prod", jwks_url=jwks_url, data_dir=tmp_path)).verifier
    claims = _claims()
    token = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": KID})
    assert verifier.verify(token)["sub"] == claims["sub"]


def test_jwks_mode_refuses_hs256_and_unknown_keys(
    rsa_key: rsa.RSAPrivateKey, jwks_url: str, tmp_path: Path
) -> None:
    verifier = Runtime(Settings(stage="prod", jwks_url=jwks_url, data_dir=tmp_path)).verifier
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(_claims(), other, algorithm="RS256", headers={"kid": KID})
    unknown_kid = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "nope"})
    hs = jwt.encode(_claims(), "s" * 64, algorithm="HS256", headers={"kid": KID})
    for token in (forged, unknown_kid, hs):
        with pytest.raises(UnauthorizedError):
            verifier.verify(token)
