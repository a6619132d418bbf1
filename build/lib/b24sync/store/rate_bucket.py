"""One leaky bucket per portal for every process sharing the database (b24sync.rate_buckets).

The portal counts requests per portal, not per process: `serve` and any number of `b24sync
worker` processes, each with its own in-process bucket, would together exceed it and be answered
QUERY_LIMIT_EXCEEDED. Here the bucket's level lives in a row; each request takes it under a row
lock, drains it by the database's clock (one clock for every machine) with
:class:`~b24sync.bitrix.limiter.BucketRule` and writes it back: one short transaction per API
call, against calls that take tens of milliseconds or more.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from b24sync.bitrix.limiter import BucketRule
from b24sync.store.database import libpq_url


@dataclass
class SharedBucket:
    """A :class:`~b24sync.bitrix.limiter.RequestLimiter` kept in PostgreSQL."""

    database_url: str
    portal: str
    rule: BucketRule = field(default_factory=BucketRule)
    waited_seconds: float = 0.0
    _penalised: bool = False
    _conn: AsyncConnection[Any] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def acquire(self) -> None:
        async with self._lock:
            conn = await self._connection()
            while True:
                pause = await self._take(conn)
                if pause == 0:
                    return
                self.waited_seconds += pause
                await asyncio.sleep(pause)

    def penalise(self) -> None:
        self._penalised = True  # written with the next take: the level goes to the burst

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _connection(self) -> AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await AsyncConnection.connect(
                libpq_url(self.database_url), autocommit=True
            )
            await self._conn.execute(
                "INSERT INTO b24sync.rate_buckets (portal) VALUES (%s) ON CONFLICT DO NOTHING",
                (self.portal,),
            )
        return self._conn

    async def _take(self, conn: AsyncConnection[Any]) -> float:
        async with conn.transaction():
            row = await (
                await conn.execute(
                    "SELECT level, extract(epoch FROM clock_timestamp() - stamp)::float8 "
                    "FROM b24sync.rate_buckets WHERE portal = %s FOR UPDATE",
                    (self.portal,),
                )
            ).fetchone()
            assert row is not None
            level, elapsed = float(row[0]), float(row[1])
            if self._penalised:
                level, elapsed, self._penalised = float(self.rule.burst), 0.0, False
            level, pause = self.rule.admit(level, max(0.0, elapsed))
            await conn.execute(
                "UPDATE b24sync.rate_buckets SET level = %s, stamp = clock_timestamp() "
                "WHERE portal = %s",
                (level, self.portal),
            )
        return pause
