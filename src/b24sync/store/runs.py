"""The run log (b24sync.sync_runs, shown as view sync_logs) and per-entity sync state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb


class RunMode(StrEnum):
    """What a run does (the run log's ``sync_type``)."""

    FULL = "full"
    INCREMENTAL = "incremental"
    RECONCILE = "reconcile"
    BY_IDS = "by_ids"  # the records (or parents) named by events


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # its process died; the next run of the entity says so
    SKIPPED = "skipped"  # queued while the same entity was syncing


@dataclass
class RunCounts:
    fetched: int = 0
    upserted: int = 0
    deleted: int = 0
    failed_conversions: int = 0
    api_calls: int = 0
    commands: int = 0
    estimated_total: int = 0


async def close_interrupted_runs(conn: AsyncConnection[Any], entity: str) -> None:
    """Runs left 'running' by a process that died; call only while holding the entity's lock."""
    await conn.execute(
        "UPDATE b24sync.sync_runs SET status = 'interrupted', finished_at = now(), "
        "error = 'the process stopped before the run finished; the next full run resumes' "
        "WHERE entity = %s AND status = 'running'",
        (entity,),
    )


async def queue_run(conn: AsyncConnection[Any], entity: str, sync_type: str) -> int:
    """A run requested but not started yet: its id is what the API answers with."""
    row = await (
        await conn.execute(
            "INSERT INTO b24sync.sync_runs (entity, sync_type, status) VALUES (%s, %s, 'queued') RETURNING id",
            (entity, sync_type),
        )
    ).fetchone()
    assert row is not None
    return int(row[0])


async def drop_queued_run(conn: AsyncConnection[Any], run_id: int) -> None:
    await conn.execute(
        "DELETE FROM b24sync.sync_runs WHERE id = %s AND status = 'queued'", (run_id,)
    )


async def queued_entities(conn: AsyncConnection[Any]) -> set[str]:
    rows = await (
        await conn.execute("SELECT DISTINCT entity FROM b24sync.sync_runs WHERE status = 'queued'")
    ).fetchall()
    return {r[0] for r in rows}


async def running_sync_entities(conn: AsyncConnection[Any]) -> set[str]:
    """Entities with a full, incremental or reconcile run marked running (event batches,
    ``by_ids``, are short and do not count); a dead process's row may be among them."""
    rows = await (
        await conn.execute(
            "SELECT DISTINCT entity FROM b24sync.sync_runs "
            "WHERE status = 'running' AND sync_type <> 'by_ids'"
        )
    ).fetchall()
    return {r[0] for r in rows}


async def start_run(
    conn: AsyncConnection[Any], entity: str, sync_type: str, queued_id: int | None = None
) -> int:
    """Mark a queued run as running (or open a new one); returns its id."""
    if queued_id is not None:
        updated = await conn.execute(
            "UPDATE b24sync.sync_runs SET status = 'running', started_at = now() "
            "WHERE id = %s AND entity = %s AND status = 'queued'",
            (queued_id, entity),
        )
        if updated.rowcount == 1:
            return queued_id
    row = await (
        await conn.execute(
            "INSERT INTO b24sync.sync_runs (entity, sync_type, status) VALUES (%s, %s, 'running') RETURNING id",
            (entity, sync_type),
        )
    ).fetchone()
    assert row is not None
    return int(row[0])


async def relabel_run(conn: AsyncConnection[Any], run_id: int, sync_type: str) -> None:
    """The run turned out to be another kind (an incremental with no cursor runs a full)."""
    await conn.execute(
        "UPDATE b24sync.sync_runs SET sync_type = %s WHERE id = %s", (sync_type, run_id)
    )


@dataclass(frozen=True)
class LastStart:
    seconds_ago: float  # by the database's clock, which every process shares
    api_calls: int  # what it spent (0 while it runs)


async def last_start(conn: AsyncConnection[Any], sync_type: str) -> LastStart | None:
    """When the last run of this type started and what it spent; None before the first."""
    row = await (
        await conn.execute(
            "SELECT extract(epoch FROM clock_timestamp() - started_at)::float8, "
            "coalesce(api_calls, 0) FROM b24sync.sync_runs WHERE sync_type = %s "
            "ORDER BY started_at DESC LIMIT 1",
            (sync_type,),
        )
    ).fetchone()
    return None if row is None else LastStart(float(row[0]), int(row[1]))


async def record_progress(conn: AsyncConnection[Any], run_id: int, counts: RunCounts) -> None:
    await conn.execute(
        "UPDATE b24sync.sync_runs SET fetched = %s, upserted = %s, deleted = %s, failed_conversions = %s, "
        "api_calls = %s, commands = %s, estimated_total = %s WHERE id = %s",
        (
            counts.fetched,
            counts.upserted,
            counts.deleted,
            counts.failed_conversions,
            counts.api_calls,
            counts.commands,
            counts.estimated_total or None,
            run_id,
        ),
    )


async def finish_run(
    conn: AsyncConnection[Any],
    run_id: int,
    counts: RunCounts,
    status: str,
    error: str | None = None,
    log_lines: Sequence[str] = (),
) -> None:
    await record_progress(conn, run_id, counts)
    await conn.execute(
        "UPDATE b24sync.sync_runs SET status = %s, error = %s, log = %s, finished_at = now() "
        "WHERE id = %s",
        (status, error, "\n".join(log_lines) or None, run_id),
    )


RUN_COLUMNS = (
    "id",
    "entity",
    "sync_type",
    "status",
    "started_at",
    "finished_at",
    "fetched",
    "upserted",
    "deleted",
    "failed_conversions",
    "api_calls",
    "commands",
    "error",
    "estimated_total",
)


async def list_runs(
    conn: AsyncConnection[Any],
    *,
    limit: int,
    offset: int = 0,
    entity: str | None = None,
    status: str | None = None,
    sync_types: Sequence[str] | None = None,
    in_flight: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the run log, newest first, and how many runs match in all; ``sync_types``
    keeps those types only; ``in_flight`` adds every queued or running run, however many
    finished after it."""
    where = (
        "WHERE (%(entity)s::text IS NULL OR entity = %(entity)s) "
        "AND (%(status)s::text IS NULL OR status = %(status)s) "
        "AND (%(sync_types)s::text[] IS NULL OR sync_type = ANY(%(sync_types)s::text[]))"
    )
    if in_flight:
        where += (
            " AND (status IN ('queued', 'running') OR id IN "
            "(SELECT id FROM b24sync.sync_runs ORDER BY id DESC LIMIT %(recent)s))"
        )
    params = {
        "entity": entity,
        "status": status,
        "sync_types": list(sync_types) if sync_types else None,
        "recent": limit,
        "limit": None if in_flight else limit,  # LIMIT NULL: no limit
        "offset": offset,
    }
    rows = await (
        await conn.execute(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM b24sync.sync_runs {where} "
            "ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s",
            params,
        )
    ).fetchall()
    total = await (
        await conn.execute(f"SELECT count(*) FROM b24sync.sync_runs {where}", params)
    ).fetchone()
    return [dict(zip(RUN_COLUMNS, r, strict=True)) for r in rows], int(total[0] if total else 0)


async def read_run(conn: AsyncConnection[Any], run_id: int) -> dict[str, Any] | None:
    """One run of the log with the lines it logged (``log``), or None."""
    columns = (*RUN_COLUMNS, "log")
    row = await (
        await conn.execute(
            f"SELECT {', '.join(columns)} FROM b24sync.sync_runs WHERE id = %s", (run_id,)
        )
    ).fetchone()
    return dict(zip(columns, row, strict=True)) if row else None


async def run_totals(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    """Counts per (entity, sync_type, status), for the metrics endpoint."""
    rows = await (
        await conn.execute(
            "SELECT entity, sync_type, status, count(*), sum(fetched), sum(upserted), "
            "sum(deleted), sum(api_calls), sum(EXTRACT(EPOCH FROM (finished_at - started_at))) "
            "FROM b24sync.sync_runs GROUP BY entity, sync_type, status"
        )
    ).fetchall()
    keys = (
        "entity",
        "sync_type",
        "status",
        "runs",
        "fetched",
        "upserted",
        "deleted",
        "api_calls",
        "seconds",
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]


async def read_state(conn: AsyncConnection[Any], entity: str) -> dict[str, Any]:
    row = await (
        await conn.execute(
            "SELECT cursor, full_checkpoint FROM b24sync.sync_state WHERE entity = %s", (entity,)
        )
    ).fetchone()
    return (
        {"cursor": row[0], "full_checkpoint": row[1]}
        if row
        else {"cursor": None, "full_checkpoint": None}
    )


async def write_state(conn: AsyncConnection[Any], entity: str, **values: Any) -> None:
    """Upsert some of: cursor, full_checkpoint, last_full_sync_at, last_incremental_sync_at."""
    allowed = {"cursor", "full_checkpoint", "last_full_sync_at", "last_incremental_sync_at"}
    assert set(values) <= allowed, values
    columns = list(values)
    params = [
        Jsonb(v) if k in ("cursor", "full_checkpoint") and v is not None else v
        for k, v in values.items()
    ]
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    await conn.execute(
        f"INSERT INTO b24sync.sync_state (entity, {', '.join(columns)}) "
        f"VALUES (%s, {', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT (entity) DO UPDATE SET {sets}, updated_at = now()",
        (entity, *params),
    )
