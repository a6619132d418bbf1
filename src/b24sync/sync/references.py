"""Reference streams: the whole list in a few calls, replaced in one transaction."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from b24sync.bitrix.client import BitrixClient
from b24sync.bitrix.encoding import encode_params
from b24sync.bitrix.export import raise_first_error
from b24sync.store import declared
from b24sync.store.runs import RunCounts
from b24sync.streams import Stream

PAGE = 50


async def read_all(client: BitrixClient, stream: Stream) -> list[dict[str, Any]]:
    """Every record: the first page, then every other page in one batch call per 50 pages."""
    listing = stream.listing
    envelope = await client.call(stream.list_method, dict(stream.params))
    records = listing.records(envelope.get("result"))
    if "next" not in envelope:
        return records
    total = int(envelope.get("total") or 0)
    commands = {
        f"p{start}": f"{stream.list_method}?" + encode_params({**stream.params, "start": start})
        for start in range(int(envelope["next"]), total, PAGE)
    }
    batch = await client.batch(commands)
    raise_first_error(batch.errors)
    for name in commands:
        records.extend(listing.records(batch.result.get(name)))
    return records


async def refresh(
    client: BitrixClient, conn: AsyncConnection[Any], stream: Stream, counts: RunCounts
) -> None:
    """Read the list and make the table equal to it."""
    await declared.ensure_table(conn, stream)
    records = await read_all(client, stream)
    rows = []
    for record in records:
        row, failed = declared.typed_row(stream, record, record)
        rows.append(row)
        counts.failed_conversions += failed
    counts.fetched = len(records)
    counts.upserted = await declared.replace_all(conn, stream, rows)
