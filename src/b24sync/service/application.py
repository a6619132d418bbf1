"""A local application's first tokens, and the application token that signs its events.

Two ways the portal hands over a first pair (settings/oauth/index.md,
serverside-local-app-with-no-ui.md):

- the installation path: on saving the local-application form the portal POSTs ONAPPINSTALL
  with the tokens to ``/api/v1/app/install`` (needs an address the portal can reach);
- the authorization-code flow: ``/api/v1/app/connect`` sends the person's browser to the
  portal's ``/oauth/authorize/``, the portal sends it back to the application's address
  (``/api/v1/app/oauth``, which may be ``http://localhost``, because the browser makes that
  request) with a code that the OAuth server exchanges for the pair within 30 s.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from b24sync.bitrix.auth import AppAuth, installed_tokens, portal_accepts
from b24sync.bitrix.client import BitrixClient
from b24sync.config import Settings
from b24sync.errors import ConfigurationError, InstallRefused, TooManyInstallAttempts
from b24sync.store.app_tokens import PgTokenStore
from b24sync.store.database import PooledDatabase

INSTALL_ATTEMPTS_PER_MINUTE = 10
STATE_LIFETIME_SECONDS = 600


@dataclass
class LocalApplication:
    settings: Settings
    db: PooledDatabase
    client: BitrixClient
    _install_attempts: deque[float] = field(default_factory=deque)

    def token_store(self) -> PgTokenStore | None:
        portal = self.settings.bitrix_portal_url
        return PgTokenStore(self.db.url, portal) if portal else None

    async def application_token(self) -> str | None:
        """BITRIX_APPLICATION_TOKEN, else the one the portal gave at installation."""
        if self.settings.bitrix_application_token is not None:
            return self.settings.bitrix_application_token.get_secret_value()
        store = self.token_store()
        stored = await store.load() if store is not None else None
        return stored.application_token if stored and stored.application_token else None

    # --- the installation path -----------------------------------------------------------------

    async def install(self, form: Mapping[str, str]) -> dict[str, Any]:
        """Keep the tokens a portal posts to the installation path.

        The route is public (the portal calls it), so the tokens are kept only after the
        configured portal accepts the access token.
        """
        store = self.token_store()
        if store is None:
            raise InstallRefused(
                "set BITRIX_PORTAL_URL to your portal's address before installing the local "
                "application, so its tokens can be checked against it"
            )
        tokens = installed_tokens(form)
        self._count_attempt()
        if not await portal_accepts(self.client.http, store.portal, tokens.access_token):
            raise InstallRefused(f"{store.portal} did not accept the installation's access token")
        await store.save(tokens)
        self._forget_cached_pair()
        return {
            "installed": True,
            "portal": store.portal,
            "member_id": tokens.member_id,
            "application_token_stored": bool(tokens.application_token),
        }

    def _count_attempt(self) -> None:
        """The routes are public and each attempt costs a portal call: a few a minute at most."""
        now = time.monotonic()
        while self._install_attempts and now - self._install_attempts[0] > 60:
            self._install_attempts.popleft()
        if len(self._install_attempts) >= INSTALL_ATTEMPTS_PER_MINUTE:
            raise TooManyInstallAttempts("too many installation attempts; try again in a minute")
        self._install_attempts.append(now)

    # --- the authorization-code flow -----------------------------------------------------------

    def authorize_url(self) -> str:
        """Where to send the person's browser: the portal's consent page, with a signed state."""
        auth = self._app_auth()
        nonce = f"{int(time.time())}.{secrets.token_urlsafe(12)}"
        state = f"{nonce}.{self._sign(nonce)}"
        query = urlencode({"client_id": auth.client_id, "state": state})
        return f"{auth.portal}/oauth/authorize/?{query}"

    async def complete_authorization(self, code: str, state: str) -> dict[str, Any]:
        """The portal sent the browser back with ``code``: exchange it and keep the pair."""
        auth = self._app_auth()
        self._check_state(state)
        self._count_attempt()
        tokens = await auth.exchange_code(self.client.http, code)
        await auth.store.save(tokens)
        auth.forget()
        return {"installed": True, "portal": auth.portal, "member_id": tokens.member_id}

    def _app_auth(self) -> AppAuth:
        auth = self.client.auth
        if not isinstance(auth, AppAuth):
            raise ConfigurationError(
                "connecting needs a local application: set BITRIX_PORTAL_URL, BITRIX_CLIENT_ID "
                "and BITRIX_CLIENT_SECRET"
            )
        return auth

    def _sign(self, nonce: str) -> str:
        key = self._app_auth().client_secret.encode()
        return hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    def _check_state(self, state: str) -> None:
        """The state came back as we signed it, recently: not a code pushed by someone else."""
        issued, _, rest = state.partition(".")
        nonce_tail, _, signature = rest.rpartition(".")
        nonce = f"{issued}.{nonce_tail}"
        fresh = issued.isdigit() and time.time() - int(issued) < STATE_LIFETIME_SECONDS
        if not (fresh and signature and hmac.compare_digest(signature, self._sign(nonce))):
            raise InstallRefused(
                "the authorization state does not match or has expired: start again from "
                "/api/v1/app/connect"
            )

    def _forget_cached_pair(self) -> None:
        if isinstance(self.client.auth, AppAuth):
            self.client.auth.forget()
