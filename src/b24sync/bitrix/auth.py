"""How a REST call is authorised: an inbound webhook, or a local application's OAuth tokens.

A webhook carries its token in the URL path and never expires. An application sends
``auth=<access_token>`` to ``https://portal/rest/<method>``; the access token lives an hour,
and when the portal answers ``expired_token`` the stored refresh token buys a new pair from the
OAuth server (settings/oauth/auto-renewal.md: refresh only then, never "just in case").

Refresh tokens rotate: a pair may be spent once. Several processes share one pair through a
:class:`TokenStore`, and :meth:`AppAuth.renew` refreshes under the store's exclusive lock after
re-reading the pair, so a process that lost the race adopts the winner's pair instead of
spending the old refresh token a second time.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from b24sync.config import WebhookUrl
from b24sync.errors import MalformedInstall, OAuthRefused, PortalAuthError
from b24sync.redaction import MASK, redact, register_secret

TOKEN_PATH = "/oauth/token/"
RENEWABLE_CODES = frozenset({"expired_token", "invalid_token"})


@dataclass(frozen=True)
class AppTokens:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime | None = None
    member_id: str = ""
    application_token: str = field(default="", repr=False)  # signs the portal's events


class TokenStore(Protocol):
    """Where an application's token pair outlives the process (PostgreSQL in the service)."""

    async def load(self) -> AppTokens | None: ...

    async def save(self, tokens: AppTokens) -> None: ...

    def exclusive(self) -> AbstractAsyncContextManager[None]:
        """Held while a refresh token is being spent, across every process."""
        ...


class PortalAuth(Protocol):
    @property
    def kind(self) -> str:
        """ "inbound_webhook" or "application": what the portal lets this caller do."""
        ...

    @property
    def portal(self) -> str:
        """``scheme://host`` of the portal, no secret in it."""
        ...

    @property
    def masked(self) -> str:
        """What may be shown to a person."""
        ...

    async def target(self, http: httpx.AsyncClient, method: str) -> tuple[str, dict[str, str]]:
        """The URL for ``method`` and the auth parameters to add to its body."""
        ...

    async def renew(self, http: httpx.AsyncClient, refused: dict[str, str]) -> bool:
        """After the portal refused ``refused`` auth parameters: True when a retry may pass."""
        ...


@dataclass(frozen=True)
class WebhookAuth:
    webhook: WebhookUrl
    kind: str = field(default="inbound_webhook", init=False)

    @property
    def portal(self) -> str:
        return self.webhook.portal

    @property
    def masked(self) -> str:
        return self.webhook.masked

    async def target(self, http: httpx.AsyncClient, method: str) -> tuple[str, dict[str, str]]:
        return self.webhook.secret_base + method, {}

    async def renew(self, http: httpx.AsyncClient, refused: dict[str, str]) -> bool:
        return False  # a webhook token does not expire; a refused one stays refused


@dataclass
class AppAuth:
    """A local application: client id and secret, and a token pair kept in ``store``.

    ``bootstrap_refresh_token`` (BITRIX_REFRESH_TOKEN) is spent only while the store is empty.
    """

    portal_url: str
    client_id: str
    client_secret: str = field(repr=False)
    store: TokenStore
    oauth_url: str = "https://oauth.bitrix.info"
    bootstrap_refresh_token: str | None = field(default=None, repr=False)
    kind: str = field(default="application", init=False)
    _tokens: AppTokens | None = field(default=None, repr=False)

    @property
    def portal(self) -> str:
        return self.portal_url.rstrip("/")

    @property
    def masked(self) -> str:
        return f"{self.portal}/rest/ (application {self.client_id}, token {MASK})"

    async def target(self, http: httpx.AsyncClient, method: str) -> tuple[str, dict[str, str]]:
        if self._tokens is None:
            stored = await self.store.load()
            if stored is None:
                await self.renew(http, {})  # first start: spend BITRIX_REFRESH_TOKEN
            else:
                self._adopt(stored)
        assert self._tokens is not None
        return f"{self.portal}/rest/{method}", {"auth": self._tokens.access_token}

    async def renew(self, http: httpx.AsyncClient, refused: dict[str, str]) -> bool:
        async with self.store.exclusive():
            current = await self.store.load()
            if current is not None and current.access_token != refused.get("auth"):
                self._adopt(current)  # another process refreshed while we waited
                return True
            refresh = current.refresh_token if current else self.bootstrap_refresh_token
            if not refresh:
                raise _not_installed()
            tokens = await self._grant(http, "refresh_token", refresh_token=refresh)
            await self.store.save(tokens)
            self._adopt(tokens)
        return True

    def forget(self) -> None:
        """Drop the cached pair: the store holds a newer one (a fresh installation)."""
        self._tokens = None

    def _adopt(self, tokens: AppTokens) -> None:
        register_secret(tokens.access_token)
        register_secret(tokens.refresh_token)
        self._tokens = tokens

    async def exchange_code(self, http: httpx.AsyncClient, code: str) -> AppTokens:
        """The authorization-code grant: the first pair, from the code the portal gave the
        browser (valid 30 s)."""
        return await self._grant(http, "authorization_code", code=code)

    async def _grant(self, http: httpx.AsyncClient, grant_type: str, **secret: str) -> AppTokens:
        try:
            response = await http.get(
                self.oauth_url.rstrip("/") + TOKEN_PATH,
                params={
                    "grant_type": grant_type,
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    **secret,
                },
            )
            payload: Any = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OAuthRefused(
                f"the OAuth server could not be asked for tokens ({type(exc).__name__})",
                code="oauth_unreachable",
            ) from None
        if not isinstance(payload, dict) or "access_token" not in payload:
            code = str(payload.get("error", "")) if isinstance(payload, dict) else ""
            raise OAuthRefused(
                redact(
                    f"the OAuth server refused the {grant_type.replace('_', ' ')} "
                    f"({code or response.status_code}): reinstall or reconnect the local "
                    "application, or set a fresh BITRIX_REFRESH_TOKEN"
                ),
                code=code,
                status=response.status_code,
            )
        expires_in = int(payload.get("expires_in") or 3600)
        return AppTokens(
            access_token=str(payload["access_token"]),
            refresh_token=str(payload["refresh_token"]),
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
            member_id=str(payload.get("member_id") or ""),
        )


def installed_tokens(form: Mapping[str, str]) -> AppTokens:
    """The tokens a portal hands an application on installation.

    Either the ONAPPINSTALL event posted to the installation path (``auth[access_token]``,
    ``auth[refresh_token]``, ``auth[application_token]``...) or the installation page's own POST
    (``AUTH_ID``, ``REFRESH_ID``, ``AUTH_EXPIRES``, ``member_id``).
    """
    if form.get("event", "").upper() == "ONAPPINSTALL":
        access, refresh = form.get("auth[access_token]"), form.get("auth[refresh_token]")
        expires, member = form.get("auth[expires_in]"), form.get("auth[member_id]", "")
        application_token = form.get("auth[application_token]", "")
    else:
        access, refresh = form.get("AUTH_ID"), form.get("REFRESH_ID")
        expires, member = form.get("AUTH_EXPIRES"), form.get("member_id", "")
        application_token = ""
    if not access or not refresh:
        raise MalformedInstall(
            "not an installation: expected ONAPPINSTALL with auth[access_token] and "
            "auth[refresh_token], or AUTH_ID and REFRESH_ID"
        )
    seconds = int(expires) if expires and expires.isdigit() else 3600
    return AppTokens(
        access_token=access,
        refresh_token=refresh,
        expires_at=datetime.now(UTC) + timedelta(seconds=seconds),
        member_id=member[:64],
        application_token=application_token,
    )


async def portal_accepts(http: httpx.AsyncClient, portal_url: str, access_token: str) -> bool:
    """Whether the portal takes ``access_token``: proof that installation tokens are genuine."""
    try:
        response = await http.post(
            portal_url.rstrip("/") + "/rest/profile", json={"auth": access_token}
        )
        payload: Any = response.json()
    except (httpx.HTTPError, ValueError):
        return False
    return response.status_code == 200 and isinstance(payload, dict) and "result" in payload


def _not_installed() -> PortalAuthError:
    return PortalAuthError(
        "the local application has no tokens yet: give it /api/v1/app/install as its "
        "installation path (the portal posts the tokens there) or set BITRIX_REFRESH_TOKEN",
        code="NO_AUTH_FOUND",
    )
