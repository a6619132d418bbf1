"""Log streams (stage history): rows are only ever added on the portal, so they are read by ID
from the highest one stored (``>ID`` keyset pages, 2,500 rows a call) and appended; a row
already stored is never rewritten. A full run reads from the first ID and adds what is missing.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from b24sync.bitrix.client import BatchResult, BitrixClient
from b24sync.bitrix.export import PAGE, Record, export_records, prefetched, raise_first_error
from b24sync.store import declared, mirror
from b24sync.store.declared import Row
from b24sync.store.runs import RunCounts
from b24sync.streams import Stream


async def append_new(
    client: BitrixClient,
    conn: AsyncConnection[Any],
    stream: Stream,
    counts: RunCounts,
    *,
    from_start: bool,
    commands_per_call: int = 50,
) -> None:
    """Read the rows above the highest stored ID (``from_start``: every row) and add the new."""
    await declared.ensure_table(conn, stream)
    after = 0 if from_start else await declared.last_id(conn, stream)
    async for page in prefetched(
        export_records(
            client,
            stream.listing,
            select=list(stream.select),
            start_after=after,
            commands_per_call=commands_per_call,
        )
    ):
        await _append(conn, stream, page.records, counts)


async def _append(
    conn: AsyncConnection[Any], stream: Stream, records: list[Record], counts: RunCounts
) -> None:
    rows: list[Row] = []
    for record in records:
        row, failed = declared.typed_row(stream, {**stream.params, **record}, record)
        rows.append(row)
        counts.failed_conversions += failed
    counts.upserted += await declared.append(conn, stream, rows)
    counts.fetched += len(records)


async def commands(conn: AsyncConnection[Any], stream: Stream) -> dict[str, str]:
    """The first page of the rows above the highest stored ID: one command, to ride in another
    stream's call (a deal event's call reads the deals' new stage moves too); none before the
    log's first run has stored a row."""
    if not await mirror.relation_exists(conn, stream.table):
        return {}
    after = await declared.last_id(conn, stream)
    if not after:
        return {}
    return {"h": stream.listing.command({f">{stream.id_field}": after}, list(stream.select), "ASC")}


async def append_answered(
    client: BitrixClient,
    conn: AsyncConnection[Any],
    stream: Stream,
    counts: RunCounts,
    answered: BatchResult,
) -> None:
    """Append the page :func:`commands` asked for; a full page means more: read on."""
    raise_first_error(answered.errors)
    records = stream.listing.records(answered.result.get("h"))
    await _append(conn, stream, records, counts)
    if len(records) >= PAGE:
        await append_new(client, conn, stream, counts, from_start=False)
