"""The durable event inbox (b24sync.received_events): stored at once, applied by a job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class PendingEvent:
    id: int
    entity: str
    record_id: int


@dataclass(frozen=True)
class InboxStats:
    pending: int
    oldest_pending_at: datetime | None
    last_received_at: datetime | None
    last_event: str | None

    @property
    def lag_seconds(self) -> float:
        """How long the oldest pending event has waited (0 with none pending)."""
        if self.oldest_pending_at is None:
            return 0.0
        return (datetime.now(UTC) - self.oldest_pending_at).total_seconds()


async def store_event(
    conn: AsyncConnection[Any],
    *,
    event_name: str,
    entity: str,
    record_id: int,
    member_id: str,
    event_ts: int | None,
    payload: dict[str, Any],
) -> int:
    row = await (
        await conn.execute(
            "INSERT INTO b24sync.received_events "
            "(event_name, entity, record_id, member_id, event_ts, payload) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (event_name, entity, record_id, member_id, event_ts, Jsonb(payload)),
        )
    ).fetchone()
    assert row is not None
    return int(row[0])


async def claim_pending(conn: AsyncConnection[Any], entity: str, limit: int) -> list[PendingEvent]:
    """Lock up to ``limit`` unapplied events of one entity (call inside a transaction)."""
    rows = await (
        await conn.execute(
            "SELECT id, entity, record_id FROM b24sync.received_events "
            "WHERE processed_at IS NULL AND entity = %s ORDER BY id LIMIT %s "
            "FOR UPDATE SKIP LOCKED",
            (entity, limit),
        )
    ).fetchall()
    return [PendingEvent(int(r[0]), r[1], int(r[2])) for r in rows]


async def pending_entities(conn: AsyncConnection[Any]) -> list[str]:
    rows = await (
        await conn.execute(
            "SELECT DISTINCT entity FROM b24sync.received_events WHERE processed_at IS NULL"
        )
    ).fetchall()
    return [r[0] for r in rows]


async def mark_processed(
    conn: AsyncConnection[Any], ids: list[int], error: str | None = None
) -> None:
    await conn.execute(
        "UPDATE b24sync.received_events SET processed_at = now(), error = %s WHERE id = ANY(%s)",
        (error, ids),
    )


async def inbox_stats(conn: AsyncConnection[Any]) -> InboxStats:
    row = await (
        await conn.execute(
            "SELECT count(*) FILTER (WHERE processed_at IS NULL), "
            "min(received_at) FILTER (WHERE processed_at IS NULL), max(received_at), "
            "(SELECT event_name FROM b24sync.received_events ORDER BY id DESC LIMIT 1) "
            "FROM b24sync.received_events"
        )
    ).fetchone()
    assert row is not None
    return InboxStats(int(row[0]), row[1], row[2], row[3])
