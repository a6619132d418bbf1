"""The smart processes the portal has or had (b24sync.smart_processes): the registry's item
streams come from here, so a worker and the API agree."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from b24sync.streams import SmartProcess, smart_process_streams


async def record_discovered(
    conn: AsyncConnection[Any], types: Sequence[dict[str, Any]]
) -> list[int]:
    """Store what ``crm.type.list`` answered; a type missing from it is marked gone (once).
    Returns the entity types that went missing just now."""
    async with conn.transaction():
        for definition in types:
            await conn.execute(
                "INSERT INTO b24sync.smart_processes (entity_type_id, title, definition) "
                "VALUES (%s, %s, %s) ON CONFLICT (entity_type_id) DO UPDATE SET "
                "title = EXCLUDED.title, definition = EXCLUDED.definition, seen_at = now(), "
                "gone_at = NULL",
                (int(definition["entityTypeId"]), str(definition["title"]), Jsonb(definition)),
            )
        cur = await conn.execute(
            "UPDATE b24sync.smart_processes SET gone_at = now() "
            "WHERE gone_at IS NULL AND NOT (entity_type_id = ANY(%s)) RETURNING entity_type_id",
            ([int(d["entityTypeId"]) for d in types],),
        )
        return [int(row[0]) for row in await cur.fetchall()]


_PROCESS = (
    "SELECT entity_type_id, title, gone_at, definition->>'isStagesEnabled', "
    "definition->>'isLinkWithProductsEnabled' FROM b24sync.smart_processes"
)


def _process(row: tuple[Any, ...]) -> SmartProcess:
    # crm.type.list answers its settings as "Y" / "N" (crm-type-list.md)
    return SmartProcess(int(row[0]), str(row[1]), row[2] is not None, row[3] == "Y", row[4] == "Y")


async def read_all(conn: AsyncConnection[Any]) -> list[SmartProcess]:
    rows = await (await conn.execute(_PROCESS + " ORDER BY entity_type_id")).fetchall()
    return [_process(row) for row in rows]


async def gone_since(conn: AsyncConnection[Any]) -> dict[str, datetime]:
    """When each smart process the portal no longer has went missing, by the name of each of
    its streams."""
    rows = await (await conn.execute(_PROCESS + " WHERE gone_at IS NOT NULL")).fetchall()
    return {stream.name: row[2] for row in rows for stream in smart_process_streams(_process(row))}
