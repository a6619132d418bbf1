"""Child streams read one parent per command (product rows: ``crm.item.productrow.list`` takes
exactly one owner, crm-item-productrow-list.md): 50 parents per batch call, a parent with more
than 50 rows followed by ``>id`` pages. Which parents: all of them for a full refresh (their IDs
from the parent's keyset export, 2,500 a call), those changed since the cursor for an
incremental one, the named ones after events. A parent the portal no longer has answers
ACCESS_DENIED (the docs give the same error for a missing owner) and loses its rows.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from typing import Any

from psycopg import AsyncConnection

from b24sync.bitrix.client import BatchResult, BitrixClient
from b24sync.bitrix.export import (
    PAGE,
    Record,
    export_records,
    limited_commands,
    prefetched,
    raise_first_error,
)
from b24sync.store import declared, mirror
from b24sync.store.declared import Row
from b24sync.store.runs import RunCounts
from b24sync.streams import Stream, stream_named
from b24sync.sync.links import store_children

OWNER_GONE = "ACCESS_DENIED"
PARENTS_PER_COMMAND = 1  # crm.item.productrow.list takes exactly one owner
PARALLEL_CALLS = 2


def predicted_full_calls(parents: int, commands_per_call: int = 50) -> int:
    """HTTP calls a full refresh of a per-parent child stream takes for ``parents`` parents:
    one batch per ``commands_per_call`` parents, plus the parents' IDs (a probe and one batch
    per 2,500). Parents with more than 50 rows add a command each per further 50."""
    if parents <= 0:
        return 1
    listing = 1 + math.ceil(max(0, parents - PAGE) / (PAGE * commands_per_call))
    return math.ceil(parents / commands_per_call) + listing


def _command(stream: Stream, parent: int, after: int = 0) -> str:
    """One page of a parent's rows (after row ``after``)."""
    owner_key = stream.owner_key
    if owner_key is None:
        raise TypeError(f"stream {stream.name} is not read per parent")
    flt: dict[str, Any] = {**stream.owner_filter, owner_key: parent}
    if after:
        flt[f">{stream.id_field}"] = after
    return stream.listing.command(flt, [], "ASC")


def commands(stream: Stream, parent_ids: Sequence[int]) -> dict[str, str]:
    """The first page of each parent's rows: a command each."""
    return {f"p{parent}": _command(stream, parent) for parent in sorted(set(parent_ids))}


async def read_rows(
    client: BitrixClient,
    stream: Stream,
    parent_ids: Sequence[int],
    *,
    commands_per_call: int = 50,
    answered: BatchResult | None = None,
) -> dict[int, list[Record]]:
    """Every row of each parent (a parent the portal lacks: no rows). ``answered``: the
    answers to :func:`commands` for these parents, when they rode in another stream's call."""
    listing = stream.listing
    rows: dict[int, list[Record]] = {parent: [] for parent in parent_ids}
    after = dict.fromkeys(rows, 0)  # parent -> the last row ID read; gone when done
    refused_in_a_row = 0
    while after:
        waiting = list(after)
        if answered is not None:
            waves, batches, answered = [waiting], [answered], None
        else:
            waves = [
                waiting[i : i + commands_per_call]
                for i in range(0, len(waiting), commands_per_call)
            ][:PARALLEL_CALLS]
            batches = await asyncio.gather(
                *(
                    client.batch({f"p{p}": _command(stream, p, after[p]) for p in wave})
                    for wave in waves
                )
            )
        refused = False
        for wave, batch in zip(waves, batches, strict=True):
            names = {f"p{parent}" for parent in wave}
            errors = {k: e for k, e in batch.errors.items() if k in names}
            limited = limited_commands(errors)
            gone = {k for k, e in errors.items() if e.get("error") == OWNER_GONE}
            raise_first_error({k: e for k, e in errors.items() if k not in limited | gone})
            refused = refused or bool(limited)
            for parent in wave:
                name = f"p{parent}"
                if name in limited:
                    continue
                page = [] if name in gone else listing.records(batch.result.get(name))
                rows[parent].extend(page)
                if len(page) < PAGE:
                    del after[parent]
                else:
                    after[parent] = int(page[-1][stream.id_field])
        if refused:
            refused_in_a_row += 1
            if refused_in_a_row > client.retry.attempts:
                raise_first_error({k: e for b in batches for k, e in b.errors.items()})
            client.pacer.blocked(listing.name, 0.0)
        else:
            refused_in_a_row = 0
    return rows


def _typed(stream: Stream, rows: dict[int, list[Record]], counts: RunCounts) -> list[Row]:
    typed: list[Row] = []
    for records in rows.values():
        for record in records:
            row, failed = declared.typed_row(stream, record, record)
            typed.append(row)
            counts.failed_conversions += failed
    return typed


async def _refresh_some(
    client: BitrixClient,
    conn: AsyncConnection[Any],
    stream: Stream,
    parent_ids: Sequence[int],
    counts: RunCounts,
    *,
    note_seen: bool,
    commands_per_call: int,
    answered: BatchResult | None = None,
) -> None:
    rows = await read_rows(
        client, stream, parent_ids, commands_per_call=commands_per_call, answered=answered
    )
    typed = _typed(stream, rows, counts)
    await store_children(conn, stream, list(rows), typed, counts, note_seen=note_seen)
    counts.fetched += len(typed)


async def _parent_ids(
    client: BitrixClient,
    stream: Stream,
    filter: dict[str, str] | None,
    commands_per_call: int,
) -> AsyncIterator[list[int]]:
    """The IDs of the parents (all, or those ``filter`` matches), 2,500 a call."""
    parent = stream_named(stream.parent or "")
    async for page in prefetched(
        export_records(
            client,
            parent.listing,
            select=[parent.id_field],
            filter=filter,
            commands_per_call=commands_per_call,
        )
    ):
        yield [int(r[parent.id_field]) for r in page.records]


async def refresh(
    client: BitrixClient,
    conn: AsyncConnection[Any],
    stream: Stream,
    counts: RunCounts,
    *,
    filter: dict[str, str] | None = None,
    commands_per_call: int = 50,
) -> None:
    """The rows of every parent (``filter`` None: and drop rows of parents gone), or of the
    parents the filter matches on the parent's list."""
    await declared.ensure_table(conn, stream)
    everything = filter is None
    if everything:
        await mirror.forget_seen(conn, stream.name)
    async for ids in _parent_ids(client, stream, filter, commands_per_call):
        await _refresh_some(
            client,
            conn,
            stream,
            ids,
            counts,
            note_seen=everything,
            commands_per_call=commands_per_call,
        )
    if everything:
        counts.deleted += await declared.drop_unseen_parents(conn, stream)


async def drop_gone_parents(
    client: BitrixClient,
    conn: AsyncConnection[Any],
    stream: Stream,
    counts: RunCounts,
    *,
    commands_per_call: int = 50,
) -> None:
    """The reconcile: drop the rows of parents the portal no longer has, reading only the
    parents' IDs (40 calls for 100,000 deals, where re-reading every row takes 2,000). Rows
    that changed are read by the incremental runs, as a parent's change moves its cursor."""
    await declared.ensure_table(conn, stream)
    await mirror.forget_seen(conn, stream.name)
    async for ids in _parent_ids(client, stream, None, commands_per_call):
        await mirror.note_seen(conn, stream.name, ids)
        counts.fetched += len(ids)
    counts.deleted += await declared.drop_unseen_parents(conn, stream)


async def refresh_parents(
    client: BitrixClient,
    conn: AsyncConnection[Any],
    stream: Stream,
    parent_ids: Sequence[int],
    counts: RunCounts,
    answered: BatchResult | None = None,
) -> None:
    """The rows of these parents (after their events); a parent the portal lacks loses its.
    ``answered``: the answers to :func:`commands`, when they rode in another stream's call."""
    await declared.ensure_table(conn, stream)
    await _refresh_some(
        client,
        conn,
        stream,
        sorted(set(parent_ids)),
        counts,
        note_seen=False,
        commands_per_call=50,
        answered=answered,
    )
