"""Per-entity schedule (b24sync.sync_config): enabled, interval, events on or off."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from b24sync.store.runs import RunMode


@dataclass(frozen=True)
class EntitySchedule:
    enabled: bool
    interval_minutes: int
    webhook_enabled: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def read_schedules(
    conn: AsyncConnection[Any], entities: list[str], default_interval: int
) -> dict[str, EntitySchedule]:
    """Every entity's schedule; an entity without a row gets the defaults."""
    rows = await (
        await conn.execute(
            "SELECT entity, enabled, interval_minutes, webhook_enabled FROM b24sync.sync_config"
        )
    ).fetchall()
    stored = {r[0]: EntitySchedule(r[1], r[2], r[3]) for r in rows}
    default = EntitySchedule(True, default_interval, True)
    return {name: stored.get(name, default) for name in entities}


async def write_schedule(conn: AsyncConnection[Any], entity: str, schedule: EntitySchedule) -> None:
    await conn.execute(
        "INSERT INTO b24sync.sync_config (entity, enabled, interval_minutes, webhook_enabled) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (entity) DO UPDATE SET enabled = EXCLUDED.enabled, "
        "interval_minutes = EXCLUDED.interval_minutes, "
        "webhook_enabled = EXCLUDED.webhook_enabled, updated_at = now()",
        (entity, schedule.enabled, schedule.interval_minutes, schedule.webhook_enabled),
    )


async def last_starts(
    conn: AsyncConnection[Any], sync_types: tuple[str, ...], *, successful: bool = False
) -> dict[str, datetime]:
    """When each entity's last run of these types started (queued ones included, unless only
    ``successful`` ones count)."""
    rows = await (
        await conn.execute(
            "SELECT entity, max(started_at) FROM b24sync.sync_runs "
            "WHERE sync_type = ANY(%s) AND (NOT %s OR status = 'success') GROUP BY entity",
            (list(sync_types), successful),
        )
    ).fetchall()
    return {r[0]: r[1] for r in rows}


async def last_scheduled_starts(conn: AsyncConnection[Any]) -> dict[str, datetime]:
    """When each entity's last full or incremental run started (queued ones included)."""
    return await last_starts(conn, (RunMode.FULL, RunMode.INCREMENTAL))


async def last_deletion_checks(conn: AsyncConnection[Any]) -> dict[str, datetime]:
    """When each entity's portal IDs were last compared with the mirror: a successful full or
    reconcile run (incremental runs cannot see deletions)."""
    return await last_starts(conn, (RunMode.FULL, RunMode.RECONCILE), successful=True)


def reconcile_due(last_check: datetime | None, now: datetime, every_hours: int) -> bool:
    """A never-synced entity gets a full sync anyway; 0 hours switches the check off."""
    return (
        every_hours > 0
        and last_check is not None
        and now - last_check >= timedelta(hours=every_hours)
    )


def next_run_at(
    schedule: EntitySchedule, last_start: datetime | None, now: datetime
) -> datetime | None:
    """When the scheduler will queue this entity next; None when the schedule is off."""
    if not schedule.enabled:
        return None
    if last_start is None:
        return now
    return max(now, last_start + timedelta(minutes=schedule.interval_minutes))
