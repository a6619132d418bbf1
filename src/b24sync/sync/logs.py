"""Log streams (stage history): rows are only ever added on the portal, so they are read by ID
from the highest one stored (``>ID`` keyset pages, 2,500 rows a call) and appended; a row
already stored is never rewritten. A full run reads from the first ID and adds what is missing.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from b24sync.bitrix.client import BitrixClient
from b24sync.bitrix.export import export_records, prefetched
from b24sync.store import declared
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
        rows: list[Row] = []
        for record in page.records:
            row, failed = declared.typed_row(stream, {**stream.params, **record}, record)
            rows.append(row)
            counts.failed_conversions += failed
        counts.upserted += await declared.append(conn, stream, rows)
        counts.fetched += len(page.records)
