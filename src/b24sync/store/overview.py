"""Read-only overviews of the mirror for status pages: rows per table, last runs, columns."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

from b24sync.schema.identifiers import ident
from b24sync.store import declared
from b24sync.store.database import libpq_url
from b24sync.store.mirror import DATA_SCHEMA
from b24sync.streams import STREAMS, Stream


async def entity_status(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    """Per entity: rows in PostgreSQL, the last run, the cursor."""
    return [await _one_status(conn, entity) for entity in STREAMS.values()]


async def _one_status(conn: AsyncConnection[Any], entity: Stream) -> dict[str, Any]:
    exists = await (
        await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{DATA_SCHEMA}.{entity.table}",))
    ).fetchone()
    live = deleted = 0
    if exists and exists[0] and not entity.synced_like_objects:  # no soft deletes
        counted = await (
            await conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                    ident(DATA_SCHEMA, entity.table), declared.scope_condition(entity)
                )
            )
        ).fetchone()
        live = counted[0] if counted else 0
    elif exists and exists[0]:
        counts = await (
            await conn.execute(
                sql.SQL(
                    "SELECT count(*) FILTER (WHERE _deleted_at IS NULL), count(*) FILTER (WHERE _deleted_at IS NOT NULL) "
                    "FROM {}"
                ).format(ident(DATA_SCHEMA, entity.table))
            )
        ).fetchone()
        live, deleted = counts if counts else (0, 0)
    run = await (
        await conn.execute(
            "SELECT id, sync_type, status, started_at, finished_at, fetched, upserted, deleted, api_calls, error "
            "FROM b24sync.sync_runs WHERE entity = %s ORDER BY id DESC LIMIT 1",
            (entity.name,),
        )
    ).fetchone()
    state = await (
        await conn.execute(
            "SELECT cursor FROM b24sync.sync_state WHERE entity = %s", (entity.name,)
        )
    ).fetchone()
    last_run = None
    if run:
        keys = (
            "id",
            "sync_type",
            "status",
            "started_at",
            "finished_at",
            "fetched",
            "upserted",
            "deleted",
            "api_calls",
            "error",
        )
        last_run = {
            k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in zip(keys, run, strict=True)
        }
        started_at, finished_at = run[3], run[4]
        last_run["seconds"] = (
            (finished_at - started_at).total_seconds() if started_at and finished_at else None
        )
    return {
        "entity": entity.name,
        "kind": str(entity.kind),
        "table": f"{DATA_SCHEMA}.{entity.table}",
        "rows": live,
        "deleted_rows": deleted,
        "last_run": last_run,
        "cursor": state[0] if state else None,
    }


async def column_map(database_url: str, entity: Stream) -> list[dict[str, Any]]:
    async with await AsyncConnection.connect(libpq_url(database_url)) as conn:
        rows = await (
            await conn.execute(
                "SELECT field_name, column_name, bitrix_type, pg_type, title, removed_at IS NOT NULL "
                "FROM b24sync.field_snapshots WHERE entity = %s ORDER BY column_name",
                (entity.name,),
            )
        ).fetchall()
    return [
        {
            "field": r[0],
            "column": r[1],
            "bitrix_type": r[2],
            "pg_type": r[3],
            "title": r[4],
            "removed": r[5],
        }
        for r in rows
    ]
