"""Child streams of links (deal -> contacts, contact -> companies), read from the universal
list: one ``crm.item.list`` command carries 50 parents with every linked ID, so 100k deals take
40 calls, where ``crm.deal.contact.items.get`` (one deal per command) would take 2,000.

A full refresh reads every parent by ID ranges and drops the rows of parents it did not see; an
incremental one reads the parents changed since the cursor; events refresh the named parents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from b24sync.bitrix.client import BatchResult, BitrixClient
from b24sync.bitrix.export import (
    PAGE,
    by_ids_commands,
    by_ids_records,
    export_records,
    prefetched,
)
from b24sync.store import declared, mirror
from b24sync.store.declared import Row
from b24sync.store.runs import RunCounts
from b24sync.streams import Stream

PARENTS_PER_COMMAND = PAGE  # crm.item.list with @id: 50 parents with all their links


def link_rows(stream: Stream, record: dict[str, Any]) -> tuple[list[Row], int]:
    """The rows of one parent: one per linked ID, in the portal's order (the first is primary,
    as the portal keeps the primary link first)."""
    parent, linked = stream.columns[0].field, stream.columns[1].field
    rows, failed = [], 0
    for n, linked_id in enumerate(record.get(linked) or []):
        values = {parent: record[parent], linked: linked_id, "sort": (n + 1) * 10}
        row, bad = declared.typed_row(stream, values | {"isPrimary": n == 0}, record)
        rows.append(row)
        failed += bad
    return rows, failed


async def store_children(
    conn: AsyncConnection[Any],
    stream: Stream,
    parent_ids: Sequence[int],
    rows: Sequence[Row],
    counts: RunCounts,
    *,
    note_seen: bool,
) -> None:
    """The rows of these parents become ``rows``; a full refresh notes the parents it saw."""
    async with conn.transaction():
        counts.upserted += await declared.replace_children(conn, stream, parent_ids, rows)
        if note_seen:
            await mirror.note_seen(conn, stream.name, parent_ids)


async def _store_page(
    conn: AsyncConnection[Any],
    stream: Stream,
    parent_ids: Sequence[int],
    records: Sequence[dict[str, Any]],
    counts: RunCounts,
    *,
    note_seen: bool,
) -> None:
    rows: list[Row] = []
    for record in records:
        more, failed = link_rows(stream, record)
        rows.extend(more)
        counts.failed_conversions += failed
    await store_children(conn, stream, parent_ids, rows, counts, note_seen=note_seen)
    counts.fetched += len(records)


async def refresh(
    client: BitrixClient,
    conn: AsyncConnection[Any],
    stream: Stream,
    counts: RunCounts,
    *,
    filter: dict[str, str] | None = None,
    commands_per_call: int = 50,
) -> None:
    """Every parent (``filter`` None: and drop rows of parents gone), or those it matches."""
    await declared.ensure_table(conn, stream)
    everything = filter is None
    if everything:
        await mirror.forget_seen(conn, stream.name)
    async for page in prefetched(
        export_records(
            client,
            stream.listing,
            select=list(stream.select),
            filter=filter,
            commands_per_call=commands_per_call,
        )
    ):
        ids = [int(r[stream.id_field]) for r in page.records]
        await _store_page(conn, stream, ids, page.records, counts, note_seen=everything)
    if everything:
        counts.deleted += await declared.drop_unseen_parents(conn, stream)


def commands(stream: Stream, parent_ids: Sequence[int]) -> dict[str, str]:
    """The commands that read these parents' links: 50 parents to a command."""
    return by_ids_commands(stream.listing, parent_ids, list(stream.select))


async def refresh_parents(
    client: BitrixClient,
    conn: AsyncConnection[Any],
    stream: Stream,
    parent_ids: Sequence[int],
    counts: RunCounts,
    answered: BatchResult | None = None,
) -> None:
    """The links of these parents (after their events); a parent the portal lacks loses its.
    ``answered``: the answers to :func:`commands`, when they rode in another stream's call."""
    await declared.ensure_table(conn, stream)
    wanted = sorted(set(parent_ids))
    sent = commands(stream, wanted)
    batch = answered if answered is not None else await client.batch(sent)
    records = by_ids_records(stream.listing, batch, sent)
    await _store_page(conn, stream, wanted, records, counts, note_seen=False)
