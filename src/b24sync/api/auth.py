"""Who may call the API: one of API_KEYS, or a Supabase-compatible JWT.

JWTs: HS256 signed with SUPABASE_JWT_SECRET, or RS256/ES256 with a key from SUPABASE_URL's JWKS
(``/auth/v1/.well-known/jwks.json``). ``exp`` is required and ``aud`` must be
``authenticated``. Each algorithm family is verified only with its own kind of key, so
``alg=none`` and HS256-signed-with-the-public-key tokens are refused.

The dashboard can also log a Supabase user in with email and password: Supabase Auth's
``/auth/v1/token?grant_type=password`` (with SUPABASE_ANON_KEY) returns an access token, which
is then verified like any other.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass
from functools import cached_property

import httpx
import jwt
import jwt.types

from b24sync.config import Settings
from b24sync.errors import B24SyncError

AUDIENCE = "authenticated"
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")
JWKS_PATH = "/auth/v1/.well-known/jwks.json"
PASSWORD_GRANT_PATH = "/auth/v1/token"
COOKIE_NAME = "b24sync_token"


class NotAuthenticated(B24SyncError):
    """No credentials, or credentials that do not verify."""


@dataclass(frozen=True)
class Principal:
    subject: str
    kind: str  # "api_key" or "jwt"


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def configured(self) -> bool:
        s = self.settings
        return bool(s.api_key_list or s.supabase_jwt_secret or s.supabase_url)

    @cached_property
    def _jwks(self) -> jwt.PyJWKClient | None:
        if not self.settings.supabase_url:
            return None
        return jwt.PyJWKClient(self.settings.supabase_url.rstrip("/") + JWKS_PATH, lifespan=3600)

    @property
    def password_login(self) -> bool:
        """Whether Supabase users can log in with email and password."""
        return bool(self.settings.supabase_url and self.settings.supabase_anon_key)

    async def log_in(self, email: str, password: str) -> str:
        """A Supabase access token for this user (verified here before it is returned)."""
        if not self.password_login:
            raise NotAuthenticated("email login needs SUPABASE_URL and SUPABASE_ANON_KEY")
        assert self.settings.supabase_url and self.settings.supabase_anon_key
        anon_key = self.settings.supabase_anon_key.get_secret_value()
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.post(
                    self.settings.supabase_url.rstrip("/") + PASSWORD_GRANT_PATH,
                    params={"grant_type": "password"},
                    headers={"apikey": anon_key, "Authorization": f"Bearer {anon_key}"},
                    json={"email": email, "password": password},
                )
            payload = response.json()
        except (httpx.HTTPError, ValueError):
            raise NotAuthenticated("Supabase Auth could not be reached") from None
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if response.status_code != 200 or not isinstance(token, str):
            raise NotAuthenticated("Supabase Auth refused the email and password")
        await self.authenticate(token)
        return token

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise NotAuthenticated(
                "send Authorization: Bearer <API key or Supabase JWT> (see README, HTTP API)"
            )
        for key in self.settings.api_key_list:
            if hmac.compare_digest(token.encode(), key.encode()):
                return Principal("api-key", "api_key")
        return await self._verify_jwt(token)

    async def _verify_jwt(self, token: str) -> Principal:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError:
            raise NotAuthenticated("the bearer token is neither an API key nor a JWT") from None
        options: jwt.types.Options = {"require": ["exp", "aud"]}
        try:
            if algorithm == "HS256" and self.settings.supabase_jwt_secret is not None:
                claims = jwt.decode(
                    token,
                    self.settings.supabase_jwt_secret.get_secret_value(),
                    algorithms=["HS256"],
                    audience=AUDIENCE,
                    options=options,
                )
            elif algorithm in ASYMMETRIC_ALGORITHMS and self._jwks is not None:
                signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
                claims = jwt.decode(
                    token,
                    signing_key.key,
                    algorithms=[algorithm],
                    audience=AUDIENCE,
                    options=options,
                )
            else:
                raise NotAuthenticated(f"JWT algorithm {algorithm!r} is not accepted here")
        except jwt.ExpiredSignatureError:
            raise NotAuthenticated("the JWT has expired") from None
        except jwt.InvalidAudienceError:
            raise NotAuthenticated(f"the JWT audience must be {AUDIENCE!r}") from None
        except (jwt.InvalidTokenError, jwt.PyJWKClientError) as exc:
            raise NotAuthenticated(f"the JWT does not verify: {type(exc).__name__}") from None
        return Principal(str(claims.get("sub") or claims.get("email") or "jwt"), "jwt")
