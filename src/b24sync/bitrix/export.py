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
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from b24sync.bitrix.client import BatchResult, BitrixClient
from b24sync.bitrix.encoding import encode_params
from b24sync.errors import BitrixError, MalformedAnswer

PAGE = 50
# Batch calls side by side. On the cloud's 2 req/s a call of 50 pages takes about half a second
# of server time, so two or three keep the request bucket busy, and more spend the burst at the
# start. The bound is memory: an answer holds up to 2,500 records (about 20 MB parsed) until it
# is loaded, so this many plus the pages queued for the loader stay under 300 MB.
CALLS_IN_FLIGHT = 6
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


ID_MAX = 2**63 - 1  # PostgreSQL's bigint: the open tail's end


@dataclass
class ExportPage:
    records: list[Record]
    # every ID <= watermark has been exported (for a resumable checkpoint)
    watermark: int
    # how many records the whole export will have yielded, estimated from the ID density
    estimated_total: int
    # ID intervals [first, last] that this page's commands read whole and found no matching
    # record in: with no filter, the records deleted on the portal (a full sync marks them)
    absent: list[tuple[int, int]] = field(default_factory=list)


def absent_ids(rng: IdRange, ids: Sequence[int], full: bool) -> list[tuple[int, int]]:
    """The intervals of ``rng`` a page of these IDs shows empty: up to its last ID when the
    page is full (the rest is read by a follow-up), else up to the range's end."""
    end = rng.hi if rng.hi is not None else ID_MAX
    ids = sorted(ids)
    read_until = ids[-1] if full and ids and ids[-1] != end else end
    bounds = [rng.lo, *ids, read_until + 1]
    return [(a + 1, b - 1) for a, b in pairwise(bounds) if b - a > 1]


@dataclass
class RangePlanner:
    """Hands out ranges; tracks which are done to compute the contiguous watermark."""

    start_after: int
    top: int
    width: int
    pending: deque[IdRange] = field(default_factory=deque)
    done_until: int = 0
    _completed: dict[int, int] = field(default_factory=dict)  # lo -> hi of completed ranges
    _origin: dict[int, int] = field(default_factory=dict)  # a follow-up's lo -> its range's lo

    def __post_init__(self) -> None:
        self.done_until = self.start_after
        lo = self.start_after
        while lo < self.top:
            hi = min(self.top, lo + self.width)
            self.pending.append(IdRange(lo, hi))
            lo = hi
        self.pending.append(IdRange(self.top, None))

    def answered(self, rng: IdRange, last_id: int | None, full: bool) -> None:
        """A range's page is in: the range is done when the page is short or reaches its top,
        else its follow-up from ``last_id`` goes first, so the watermark advances steadily."""
        start_lo = self._origin.pop(rng.lo, rng.lo)
        if full and (rng.hi is None or last_id != rng.hi):
            assert last_id is not None
            self._origin[last_id] = start_lo
            self.pending.appendleft(IdRange(last_id, rng.hi))
            return
        self._completed[start_lo] = rng.hi if rng.hi is not None else max(last_id or 0, rng.lo)
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
    calls_in_flight: int = CALLS_IN_FLIGHT,
) -> AsyncIterator[ExportPage]:
    """Yield every matching record once, as pages of up to ``commands_per_call * 50`` records.

    Up to ``calls_in_flight`` batch calls run side by side (disjoint ranges, so order does not
    matter; each answer is yielded as it comes). The client's leaky bucket and operating-time
    pacer decide when each may go, so the portal's burst is used and never overrun.
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
    first_ids = [int(record[key]) for record in first]
    absent = absent_ids(IdRange(start_after, None), first_ids, len(first) >= PAGE)
    if not first:
        yield ExportPage([], start_after, 0, absent)
        return
    top = int(last[0][key]) if last else first_ids[-1]
    first_last_id = first_ids[-1]
    if len(first) < PAGE:
        yield ExportPage(first, max(top, first_last_id), len(first), absent)
        return
    span = max(1, first_last_id - start_after)
    width = max(PAGE, math.floor(PAGE * span / len(first)))
    estimate = len(first) + math.ceil((top - first_last_id) * len(first) / span)
    planner = RangePlanner(first_last_id, top, width)
    yield ExportPage(first, first_last_id, estimate, absent)
    refused_in_a_row = 0  # answers with a command to ask again; too many in a row fail the export
    in_flight: dict[asyncio.Task[BatchResult], list[IdRange]] = {}
    try:
        while planner.pending or in_flight:
            # Full batches go out while there is room; a part batch only when nothing is in
            # flight that could still add follow-ups to it, so calls stay at the minimum.
            while len(in_flight) < calls_in_flight and (
                len(planner.pending) >= commands_per_call or (planner.pending and not in_flight)
            ):
                wave = [
                    planner.pending.popleft() for _ in range(commands_per_call) if planner.pending
                ]
                call = client.batch({f"r{i}": command(r) for i, r in enumerate(wave)})
                in_flight[asyncio.ensure_future(call)] = wave
            done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            # a page each, in the order sent (the watermark moves soonest); what waits for the
            # loader is held once, not merged
            for task in [sent for sent in in_flight if sent in done]:
                wave, batch = in_flight.pop(task), task.result()
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
                        client.pacer.blocked(method.name, 0.0)
                else:
                    refused_in_a_row = 0
                records: list[Record] = []
                absent = []
                for i, rng in enumerate(wave):
                    if f"r{i}" in limited | damaged:  # refused or damaged this time: ask again
                        planner.pending.appendleft(rng)
                        continue
                    page = answered.get(f"r{i}", [])
                    ids = [int(record[key]) for record in page]
                    records.extend(page)
                    absent.extend(absent_ids(rng, ids, len(page) >= PAGE))
                    planner.answered(rng, ids[-1] if ids else None, len(page) >= PAGE)
                yield ExportPage(records, planner.done_until, estimate, absent)
    finally:  # the consumer stopped early or a call failed: no call is left running
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)


def by_ids_commands(method: ListMethod, ids: Sequence[int], select: list[str]) -> dict[str, str]:
    """List commands for the records with these IDs: 50 to a command (``@ID``)."""
    wanted = sorted(set(ids))
    return {
        f"i{n}": method.command({f"@{method.id_field}": wanted[i : i + PAGE]}, select, "ASC")
        for n, i in enumerate(range(0, len(wanted), PAGE))
    }


def by_ids_command_count(ids: int) -> int:
    """How many commands :func:`by_ids_commands` makes for ``ids`` distinct IDs."""
    return math.ceil(ids / PAGE)


def by_ids_records(method: ListMethod, batch: BatchResult, names: Iterable[str]) -> list[Record]:
    """The records the named by-ID commands answered. A failed command fails the read, so a
    missing answer never passes for deleted records."""
    answered = {name: method.records(batch.result.get(name)) for name in names}
    raise_first_error({k: e for k, e in batch.errors.items() if k in answered})
    damaged = _damaged_commands(answered, method.id_field)
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
