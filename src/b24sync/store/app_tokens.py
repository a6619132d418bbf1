"""The local application's token pair in b24sync.app_tokens: one row per portal and client."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from b24sync.bitrix.auth import AppTokens
from b24sync.store.database import libpq_url
from b24sync.store.locks import waiting_lock

REFRESH_WAIT_SECONDS = 30


@dataclass(frozen=True)
class PgTokenStore:
    """A :class:`b24sync.bitrix.auth.TokenStore` in PostgreSQL, shared by every worker."""

    database_url: str
    portal: str
    client_id: str

    async def _connect(self) -> AsyncConnection[Any]:
        return await AsyncConnection.connect(libpq_url(self.database_url), autocommit=True)

    async def load(self) -> AppTokens | None:
        async with await self._connect() as conn:
            row = await (
                await conn.execute(
                    "SELECT access_token, refresh_token, expires_at, member_id "
                    "FROM b24sync.app_tokens WHERE portal = %s AND client_id = %s",
                    (self.portal, self.client_id),
                )
            ).fetchone()
        if row is None:
            return None
        return AppTokens(
            access_token=row[0], refresh_token=row[1], expires_at=row[2], member_id=row[3]
        )

    async def save(self, tokens: AppTokens) -> None:
        async with await self._connect() as conn:
            await conn.execute(
                "INSERT INTO b24sync.app_tokens "
                "(portal, client_id, access_token, refresh_token, expires_at, member_id) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (portal) DO UPDATE SET "
                "client_id = excluded.client_id, access_token = excluded.access_token, "
                "refresh_token = excluded.refresh_token, expires_at = excluded.expires_at, "
                "member_id = excluded.member_id, updated_at = now()",
                (
                    self.portal,
                    self.client_id,
                    tokens.access_token,
                    tokens.refresh_token,
                    tokens.expires_at,
                    tokens.member_id,
                ),
            )

    def exclusive(self) -> AbstractAsyncContextManager[None]:
        return waiting_lock(
            libpq_url(self.database_url),
            f"b24sync.oauth.{self.portal}",
            timeout_seconds=REFRESH_WAIT_SECONDS,
        )
