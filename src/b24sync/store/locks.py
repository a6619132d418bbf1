"""PostgreSQL advisory locks: one operation at a time across every process sharing the database.

Keys are text (``b24sync.sync.deal``, ``b24sync.service.testdata``), hashed with ``hashtext``; a session
lock lives as long as its connection, so a crashed process never leaves one behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from typing import Any

import psycopg
from psycopg import AsyncConnection


@asynccontextmanager
async def session_lock(
    dsn: str, key: str, *, busy: Exception, wait_seconds: int = 0
) -> AsyncIterator[None]:
    """Hold ``key`` for the block; raise ``busy`` when another session holds it (at once, or
    after ``wait_seconds`` of waiting for it to let go)."""
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        if not await _acquire(conn, key, wait_seconds):
            raise busy
        try:
            yield
        finally:
            await _unlock(conn, key)


async def _acquire(conn: AsyncConnection[Any], key: str, wait_seconds: int) -> bool:
    if wait_seconds <= 0:
        row = await (
            await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))
        ).fetchone()
        return bool(row and row[0])
    await conn.execute(f"SET lock_timeout = '{int(wait_seconds)}s'")
    try:
        await conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
    except psycopg.errors.LockNotAvailable:
        return False
    return True


async def _unlock(conn: AsyncConnection[Any], key: str) -> None:
    """Let go of ``key``; a lost connection has let go already (the lock was its session's)."""
    with suppress(psycopg.OperationalError):
        await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


async def held_locks(conn: AsyncConnection[Any], keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` some session of this database holds right now."""
    wanted = list(keys)
    rows = await (
        await conn.execute(
            "SELECT k FROM unnest(%s::text[]) AS k WHERE EXISTS ("
            " SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
            " AND l.objsubid = 1 AND l.objid = hashtext(k)::oid"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            (wanted,),
        )
    ).fetchall()
    return {r[0] for r in rows}
