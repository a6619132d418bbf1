"""Supabase Auth with asymmetric keys: RS256 tokens checked against the project's JWKS, and the
dashboard's email-and-password login.

Supabase itself is not reachable here; a stand-in serves the two GoTrue endpoints b24sync uses,
over real sockets: ``/auth/v1/.well-known/jwks.json`` and ``/auth/v1/token?grant_type=password``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from b24emu import Emulator
from b24emu.server import serving
from tests.portal import TOKEN, Stack, service_stack

ANON_KEY = "anon-key-for-tests"
USER = {"email": "analyst@example.com", "password": "correct horse battery"}
KID = "test-key-1"


def supabase_auth(private_key: rsa.RSAPrivateKey) -> FastAPI:
    app = FastAPI()
    public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))

    @app.get("/auth/v1/.well-known/jwks.json")
    async def jwks() -> dict[str, Any]:
        return {"keys": [public_jwk | {"kid": KID, "alg": "RS256", "use": "sig"}]}

    @app.post("/auth/v1/token")
    async def token(request: Request) -> JSONResponse:
        body = await request.json()
        if request.headers.get("apikey") != ANON_KEY:
            return JSONResponse({"message": "Invalid API key"}, status_code=401)
        if request.query_params.get("grant_type") != "password" or body != USER:
            return JSONResponse(
                {
                    "code": 400,
                    "error_code": "invalid_credentials",
                    "msg": "Invalid login credentials",
                },
                status_code=400,
            )
        return JSONResponse(
            {
                "access_token": signed(private_key, sub="user-42", email=USER["email"]),
                "token_type": "bearer",
                "expires_in": 3600,
                "refresh_token": "r",
            }
        )

    return app


def hs256_by_hand(secret: bytes) -> str:
    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode())
    claims = part(json.dumps({"aud": "authenticated", "exp": int(time.time()) + 60}).encode())
    signature = hmac.new(secret, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{part(signature)}"


def signed(key: rsa.RSAPrivateKey, **claims: Any) -> str:
    base = {"aud": "authenticated", "exp": int(time.time()) + 600, "role": "authenticated"}
    return jwt.encode(base | claims, key, algorithm="RS256", headers={"kid": KID})


@pytest.fixture(scope="module")
def project_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def supabase_url(project_key: rsa.RSAPrivateKey) -> Iterator[str]:
    with serving(supabase_auth(project_key)) as base:
        yield base


@pytest.fixture
async def stack(database_url: str, supabase_url: str) -> AsyncIterator[Stack]:
    async with service_stack(
        database_url,
        Emulator(webhook_token=TOKEN),
        worker=False,
        supabase_url=supabase_url,
        supabase_anon_key=ANON_KEY,
        api_keys=None,
        supabase_jwt_secret=None,
    ) as s:
        s.api.headers.pop("Authorization")
        yield s


async def test_rs256_tokens_from_the_projects_jwks_are_accepted(
    stack: Stack, project_key: rsa.RSAPrivateKey
) -> None:
    good = {"Authorization": f"Bearer {signed(project_key, sub='user-1')}"}
    assert (await stack.api.get("/api/v1/sync/config", headers=good)).status_code == 200
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = {"Authorization": f"Bearer {signed(stranger, sub='user-1')}"}
    refused = await stack.api.get("/api/v1/sync/config", headers=forged)
    assert refused.status_code == 401 and "does not verify" in refused.json()["detail"]
    # Algorithm confusion: HS256 keyed with the public key (PyJWT will not make one: by hand).
    public_pem = project_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused = {"Authorization": f"Bearer {hs256_by_hand(public_pem)}"}
    refused = await stack.api.get("/api/v1/sync/config", headers=confused)
    assert refused.status_code == 401 and "'HS256' is not accepted" in refused.json()["detail"]
    expired = {"Authorization": f"Bearer {signed(project_key, exp=int(time.time()) - 5)}"}
    assert (await stack.api.get("/api/v1/sync/config", headers=expired)).status_code == 401


async def test_dashboard_logs_a_supabase_user_in_with_email_and_password(stack: Stack) -> None:
    page = await stack.api.get("/login")
    assert 'id="supabase-login"' in page.text
    wrong = await stack.api.post("/login", data={"email": USER["email"], "password": "nope"})
    assert wrong.status_code == 401 and 'id="login-error"' in wrong.text
    assert "b24sync_token" not in wrong.headers.get("set-cookie", "")
    ok = await stack.api.post("/login", data=USER)
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    assert "b24sync_token=" in ok.headers["set-cookie"] and "HttpOnly" in ok.headers["set-cookie"]
    assert (await stack.api.get("/")).status_code == 200  # the cookie now opens the dashboard
