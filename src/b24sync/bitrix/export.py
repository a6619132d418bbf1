"""The fast export: `start=-1` keyset pages (huge-data.md), 50 list commands per batch call.

The ID space is cut into independent ranges ``(lo, hi]`` sized from the observed density so
that each holds about one page. A range that returns a full page and has not reached ``hi``
gets a follow-up command from its last ID; the open tail above the highest ID seen at the start
is read last, so records added during the export are not missed. Ranges never overlap, so no
record is read twice, and every ID between the first and the last belongs to exactly one range.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from b24sync.bitrix.client import BitrixClient
from b24sync.bitrix.encoding import encode_params
from b24sync.errors import BitrixError, MalformedAnswer

PAGE = 50
_RECORD_ID = re.compile(r"[0-9]{1,19}")
Record = dict[str, Any]


@dataclass(frozen=True)
class ListMethod:
    """A list method and the shape of its answer: classic ``crm.deal.list`` (``ID``, records in
    ``result``) or universal ``crm.item.list`` (``id``, records in ``result.items``)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)  # fixed, e.g. entityTypeId
    id_field: str = "ID"
    records_at: str | None = None

    def records(self, result: Any) -> list[Record]:
        """The records of one command's result; [] for an empty or odd one."""
        if self.records_at is not None:
            result = result.get(self.records_at) if isinstance(result, dict) else None
        return result if isinstance(result, list) else []

    def command(self, flt: Mapping[str, Any], select: list[str], order: str) -> str:
        """One keyset page; an empty ``select`` is left out (methods without one)."""
        params = {
            **self.params,
            "order": {self.id_field: order},
            "filter": dict(flt),
            **({"select": select} if select else {}),
            "start": -1,
        }
        return f"{self.name}?" + encode_params(params)


@dataclass
class IdRange:
    """IDs ``lo < id <= hi``; ``hi=None`` is the open tail."""

    lo: int
    hi: int | None


@dataclass
class ExportPage:
    records: list[Record]
    # every ID <= watermark has been exported (for a resumable checkpoint)
    watermark: int
    # how many records the whole export will have yielded, estimated from the ID density
    estimated_total: int


@dataclass
class RangePlanner:
    """Hands out ranges; tracks which are done to compute the contiguous watermark."""

    start_after: int
    top: int
    width: int
    pending: deque[IdRange] = field(default_factory=deque)
    done_until: int = 0
    _completed: dict[int, int] = field(default_factory=dict)  # lo -> hi of completed ranges

    def __post_init__(self) -> None:
        self.done_until = self.start_after
        lo = self.start_after
        while lo < self.top:
            hi = min(self.top, lo + self.width)
            self.pending.append(IdRange(lo, hi))
            lo = hi
        self.pending.append(IdRange(self.top, None))

    def complete(self, original_lo: int, hi: int) -> None:
        self._completed[original_lo] = hi
        while self.done_until in self._completed:
            self.done_until = self._completed.pop(self.done_until)


async def export_records(
    client: BitrixClient,
    method: ListMethod,
    *,
    select: list[str],
    filter: Mapping[str, Any] | None = None,
    start_after: int = 0,
    commands_per_call: int = 50,
    parallel_calls: int = 2,
) -> AsyncIterator[ExportPage]:
    """Yield every matching record once, as pages of up to ``commands_per_call * 50`` records.

    ``parallel_calls`` batch calls run side by side (disjoint ranges, so order does not matter);
    the leaky bucket still paces them.
    """
    base_filter = dict(filter or {})
    key = method.id_field
    select_with_id = list(dict.fromkeys([key, *select]))

    def command(rng: IdRange) -> str:
        flt: dict[str, Any] = {**base_filter, f">{key}": rng.lo}
        if rng.hi is not None:
            flt[f"<={key}"] = rng.hi
        return method.command(flt, select_with_id, "ASC")

    def pages(results: Mapping[str, Any]) -> dict[str, list[Record]]:
        return {name: method.records(result) for name, result in results.items()}

    # Probe: the first page and the highest matching ID, in one call.
    probe_filter = {**base_filter, f">{key}": start_after}
    for attempt in range(client.retry.attempts + 1):
        probe = await client.batch(
            {
                "first": command(IdRange(start_after, None)),
                "last": method.command(probe_filter, [key], "DESC"),
            }
        )
        raise_first_error(probe.errors)
        probed = pages(probe.result)
        damaged = _damaged_commands(probed, key)
        if not damaged:
            break
        if attempt == client.retry.attempts:
            raise _malformed(method.name, damaged)
    first = probed.get("first", [])
    last = probed.get("last", [])
    if not first:
        return
    top = int(last[0][key]) if last else int(first[-1][key])
    first_last_id = int(first[-1][key])
    if len(first) < PAGE:
        yield ExportPage(first, max(top, first_last_id), len(first))
        return
    span = max(1, first_last_id - start_after)
    width = max(PAGE, math.floor(PAGE * span / len(first)))
    estimate = len(first) + math.ceil((top - first_last_id) * len(first) / span)
    planner = RangePlanner(first_last_id, top, width)
    yield ExportPage(first, first_last_id, estimate)
    # original lo of each live range, to report completion when its follow-ups finish
    origin: dict[int, int] = {}
    refused_in_a_row = 0  # waves with a command to ask again; too many in a row fail the export
    while planner.pending:
        waves: list[list[IdRange]] = []
        while planner.pending and len(waves) < parallel_calls:
            wave: list[IdRange] = []
            while planner.pending and len(wave) < commands_per_call:
                wave.append(planner.pending.popleft())
            waves.append(wave)
        batches = await asyncio.gather(
            *(client.batch({f"r{i}": command(r) for i, r in enumerate(w)}) for w in waves)
        )
        records: list[Record] = []
        for wave, batch in zip(waves, batches, strict=True):
            limited = limited_commands(batch.errors)
            raise_first_error({k: v for k, v in batch.errors.items() if k not in limited})
            answered = pages(batch.result)
            damaged = _damaged_commands(answered, key)
            if limited or damaged:
                refused_in_a_row += 1
                if refused_in_a_row > client.retry.attempts:
                    raise_first_error(batch.errors)
                    raise _malformed(method.name, damaged)
                if limited:
                    client.pacer.blocked(0.0)
            else:
                refused_in_a_row = 0
            for i, rng in enumerate(wave):
                if f"r{i}" in limited | damaged:  # refused or damaged this time: ask again
                    planner.pending.appendleft(rng)
                    continue
                page = answered.get(f"r{i}", [])
                records.extend(page)
                start_lo = origin.pop(rng.lo, rng.lo)
                last_id = int(page[-1][key]) if page else None
                exhausted = len(page) < PAGE or (rng.hi is not None and last_id == rng.hi)
                if exhausted:
                    planner.complete(
                        start_lo, rng.hi if rng.hi is not None else max(last_id or 0, rng.lo)
                    )
                else:
                    assert last_id is not None
                    origin[last_id] = start_lo
                    # follow-ups go first, so the watermark advances steadily
                    planner.pending.appendleft(IdRange(last_id, rng.hi))
        yield ExportPage(records, planner.done_until, estimate)


async def fetch_by_ids(
    client: BitrixClient, method: ListMethod, ids: Sequence[int], select: list[str]
) -> list[Record]:
    """The records with these IDs: 50 to a command (``@ID``), the commands in one batch call per
    50. A failed command fails the read, so a missing answer never passes for deleted records."""
    wanted = sorted(set(ids))
    key = method.id_field
    commands = {
        f"i{n}": method.command({f"@{key}": wanted[i : i + PAGE]}, select, "ASC")
        for n, i in enumerate(range(0, len(wanted), PAGE))
    }
    batch = await client.batch(commands)
    raise_first_error(batch.errors)
    answered = {name: method.records(batch.result.get(name)) for name in commands}
    damaged = _damaged_commands(answered, key)
    if damaged:  # retried by the caller's job, like a 5xx
        raise _malformed(method.name, damaged)
    return [record for page in answered.values() for record in page]


_RETRYABLE_COMMAND_ERRORS = frozenset({"OPERATION_TIME_LIMIT", "QUERY_LIMIT_EXCEEDED"})


def limited_commands(errors: dict[str, dict[str, Any]]) -> set[str]:
    """Commands inside a batch that a limit refused; they are retried, not failed."""
    return {key for key, error in errors.items() if error.get("error") in _RETRYABLE_COMMAND_ERRORS}


def _damaged_commands(pages: Mapping[str, list[Record]], id_field: str) -> set[str]:
    """Commands whose page holds a record without a usable ID: such a page can be neither
    stored nor paged past, so it is asked for again, like a 5xx answer."""
    return {
        name
        for name, page in pages.items()
        if not all(_has_record_id(record, id_field) for record in page)
    }


def _has_record_id(record: Any, id_field: str = "ID") -> bool:
    return (
        isinstance(record, dict) and _RECORD_ID.fullmatch(str(record.get(id_field, ""))) is not None
    )


def _malformed(method: str, damaged: set[str]) -> MalformedAnswer:
    return MalformedAnswer(
        f"{method} kept answering records without an ID (commands {', '.join(sorted(damaged))}); "
        "the data already stored is kept and the next run asks again"
    )


def raise_first_error(errors: dict[str, dict[str, Any]]) -> None:
    if errors:
        key, error = next(iter(errors.items()))
        raise BitrixError(
            f"export command {key} failed: {error.get('error')} {error.get('error_description')}",
            code=str(error.get("error", "")),
        )


async def prefetched(pages: AsyncIterator[ExportPage], depth: int = 2) -> AsyncIterator[ExportPage]:
    """Fetch up to ``depth`` pages ahead while the caller loads the current one.

    The portal's server time and our parsing and loading then overlap instead of adding up.
    Pages keep their order, so checkpoints stay monotonic.
    """
    queue: asyncio.Queue[ExportPage | BaseException | None] = asyncio.Queue(maxsize=depth)

    async def produce() -> None:
        try:
            async for page in pages:
                await queue.put(page)
            await queue.put(None)
        except BaseException as exc:  # hand any failure to the consumer, then stop
            await queue.put(exc)

    producer = asyncio.create_task(produce())
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
