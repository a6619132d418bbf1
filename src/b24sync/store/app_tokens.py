"""The local application's state in b24sync.app_tokens, one row per portal: its tokens,
whether it has offline events bound (so the drain knows when polling is worth a call), and the
``process_id`` of offline events stored in the inbox but not yet cleared on the portal."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from b24sync.bitrix.auth import AppTokens
from b24sync.errors import TokenRefreshBusy
from b24sync.store.database import libpq_url
from b24sync.store.locks import session_lock

REFRESH_WAIT_SECONDS = 30


@dataclass(frozen=True)
class PgTokenStore:
    """A :class:`b24sync.bitrix.auth.TokenStore` in PostgreSQL, shared by every worker."""

    database_url: str
    portal: str

    async def _connect(self) -> AsyncConnection[Any]:
        return await AsyncConnection.connect(libpq_url(self.database_url), autocommit=True)

    async def load(self) -> AppTokens | None:
        async with await self._connect() as conn:
            row = await (
                await conn.execute(
                    "SELECT access_token, refresh_token, expires_at, member_id, application_token "
                    "FROM b24sync.app_tokens WHERE portal = %s",
                    (self.portal,),
                )
            ).fetchone()
        if row is None:
            return None
        return AppTokens(
            access_token=row[0],
            refresh_token=row[1],
            expires_at=row[2],
            member_id=row[3],
            application_token=row[4],
        )

    async def save(self, tokens: AppTokens) -> None:
        """Store the pair; an empty application token (a refresh has none) keeps the stored one."""
        async with await self._connect() as conn:
            await conn.execute(
                "INSERT INTO b24sync.app_tokens (portal, access_token, refresh_token, expires_at, "
                "member_id, application_token) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (portal) DO UPDATE SET access_token = excluded.access_token, "
                "refresh_token = excluded.refresh_token, expires_at = excluded.expires_at, "
                "member_id = excluded.member_id, application_token = coalesce("
                "nullif(excluded.application_token, ''), b24sync.app_tokens.application_token), "
                "updated_at = now()",
                (
                    self.portal,
                    tokens.access_token,
                    tokens.refresh_token,
                    tokens.expires_at,
                    tokens.member_id,
                    tokens.application_token,
                ),
            )

    def exclusive(self) -> AbstractAsyncContextManager[None]:
        return session_lock(
            libpq_url(self.database_url),
            f"b24sync.oauth.{self.portal}",
            busy=TokenRefreshBusy(
                f"another process has been renewing the tokens for over {REFRESH_WAIT_SECONDS} s"
            ),
            wait_seconds=REFRESH_WAIT_SECONDS,
        )


@dataclass(frozen=True)
class OfflineState:
    bound: bool
    uncleared_process_id: str | None


async def offline_state(conn: AsyncConnection[Any], portal: str) -> OfflineState:
    row = await (
        await conn.execute(
            "SELECT offline_bound, offline_process_id FROM b24sync.app_tokens WHERE portal = %s",
            (portal,),
        )
    ).fetchone()
    return OfflineState(bool(row[0]), row[1]) if row else OfflineState(False, None)


async def note_offline_bound(conn: AsyncConnection[Any], portal: str, bound: bool) -> None:
    await conn.execute(
        "UPDATE b24sync.app_tokens SET offline_bound = %s WHERE portal = %s", (bound, portal)
    )


async def note_offline_process(
    conn: AsyncConnection[Any], portal: str, process_id: str | None
) -> None:
    """Set in the transaction that stores the events; unset once the portal has cleared them."""
    await conn.execute(
        "UPDATE b24sync.app_tokens SET offline_process_id = %s WHERE portal = %s",
        (process_id, portal),
    )
