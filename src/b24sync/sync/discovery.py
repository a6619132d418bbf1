"""Smart processes, discovered at each run: ``crm.type.list`` -> b24sync.smart_processes -> the
registry's streams of each type (items; stage history and product rows when it has them).

The service discovers at its start and at every scheduler tick (one call); every other process
loads what was stored (:func:`load`, one query) before it lists or runs streams, so a type
created on the portal appears at the next run everywhere. A type deleted on the portal keeps
its streams, marked gone, and its tables, whose comments then say so.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection

from b24sync.bitrix.client import BitrixClient
from b24sync.bitrix.export import ListMethod
from b24sync.schema.planner import table_comment
from b24sync.store import mirror, smart_processes
from b24sync.streams import STREAMS, Kind, Stream, smart_process_streams
from b24sync.sync.references import read_all

log = logging.getLogger(__name__)

TYPES = ListMethod("crm.type.list", id_field="id", records_at="types")  # crm-type-list.md


async def load(conn: AsyncConnection[Any]) -> None:
    """Make the registry's item streams those last discovered (by any process)."""
    STREAMS.use_smart_processes(await smart_processes.read_all(conn))


async def discover(client: BitrixClient, conn: AsyncConnection[Any]) -> list[Stream]:
    """Read the portal's smart processes, store them and use them; returns the item streams."""
    types = [t for t in await read_all(client, TYPES) if "entityTypeId" in t and "title" in t]
    gone = await smart_processes.record_discovered(conn, types)
    await load(conn)
    for process in await smart_processes.read_all(conn):
        if process.entity_type_id in gone:
            log.warning(
                "smart process %s («%s») is gone from the portal; its tables are kept",
                process.entity_type_id,
                process.title,
            )
            for stream in smart_process_streams(process):
                await _mark_gone(conn, stream)
    return STREAMS.of_kind(Kind.ITEM)


async def _mark_gone(conn: AsyncConnection[Any], stream: Stream) -> None:
    """Say so in the comment of the stream's own table (the shared stage history keeps its
    rows of the type, under their ``entity_type_id``, and its comment)."""
    if stream.scope or not await mirror.relation_exists(conn, stream.table):
        return
    text = (
        f"Bitrix24 {stream.table_title or stream.described}, mirrored by b24sync: deleted on "
        f"the portal {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; the rows are kept as they were, "
        "nothing syncs it"
    )
    await mirror.run_ddl(conn, [table_comment(mirror.DATA_SCHEMA, stream.table, text)])
