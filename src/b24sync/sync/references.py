"""Reference streams: the whole list in a few calls, replaced in one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import AsyncConnection

from b24sync.bitrix.client import BitrixClient
from b24sync.bitrix.encoding import encode_params
from b24sync.bitrix.export import ListMethod, raise_first_error
from b24sync.store import declared
from b24sync.store.runs import RunCounts
from b24sync.streams import STREAMS, Kind, Stream

PAGE = 50
COMMANDS_PER_CALL = 50


async def read_all(
    client: BitrixClient, listing: ListMethod, variants: Sequence[Mapping[str, Any]] = ({},)
) -> list[dict[str, Any]]:
    """Every record of the list, once per variant of its parameters (e.g. per entityTypeId).

    The first pages: one plain call for one variant, one batch call for several; every further
    page then in one batch call per 50 pages.
    """
    first = {f"v{n}": {**listing.params, **variant} for n, variant in enumerate(variants)}
    if len(first) == 1:
        envelope = await client.call(listing.name, first["v0"])
        results = {"v0": envelope.get("result")}
        nexts = {"v0": envelope["next"]} if "next" in envelope else {}
        totals = {"v0": envelope.get("total") or 0}
    else:
        batch = await client.batch(
            {key: f"{listing.name}?" + encode_params(params) for key, params in first.items()}
        )
        raise_first_error(batch.errors)
        results, nexts, totals = batch.result, batch.next, batch.total
    records: list[dict[str, Any]] = []
    more: dict[str, str] = {}
    for key, params in first.items():
        records.extend(listing.records(results.get(key)))
        if key in nexts:
            for start in range(int(nexts[key]), int(totals.get(key) or 0), PAGE):
                more[f"{key}p{start}"] = f"{listing.name}?" + encode_params(
                    {**params, "start": start}
                )
    names = list(more)
    for at in range(0, len(names), COMMANDS_PER_CALL):
        batch = await client.batch(
            {name: more[name] for name in names[at : at + COMMANDS_PER_CALL]}
        )
        raise_first_error(batch.errors)
        for name in names[at : at + COMMANDS_PER_CALL]:
            records.extend(listing.records(batch.result.get(name)))
    return records


def variants(stream: Stream) -> list[dict[str, Any]]:
    """The parameter variants a reference is read with: its own, and one per smart process in
    use when it is read per type (pipelines)."""
    if not stream.per_smart_process:
        return [{}]
    types = [s.entity_type_id for s in STREAMS.of_kind(Kind.ITEM) if not s.gone]
    return [{}, *({"entityTypeId": t} for t in types)]


async def refresh(
    client: BitrixClient, conn: AsyncConnection[Any], stream: Stream, counts: RunCounts
) -> None:
    """Read the list and make the table equal to it."""
    await declared.ensure_table(conn, stream)
    records = await read_all(client, stream.listing, variants(stream))
    rows = []
    for record in records:
        row, failed = declared.typed_row(stream, record, record)
        rows.append(row)
        counts.failed_conversions += failed
    counts.fetched = len(records)
    counts.upserted = await declared.replace_all(conn, stream, rows)
