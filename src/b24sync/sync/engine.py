"""One engine for all entities: schema sync, export, load, checkpoints, run log, locks."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from b24sync.bitrix.client import MAX_BATCH, BatchResult, BitrixClient, counting_calls, grouped
from b24sync.bitrix.export import (
    ExportPage,
    by_ids_command_count,
    by_ids_commands,
    by_ids_records,
    export_records,
    prefetched,
)
from b24sync.errors import (
    BitrixError,
    DatabaseUnavailable,
    OperationTimeLimit,
    PortalServerError,
    RateLimited,
    StreamGone,
    SyncAlreadyRunning,
)
from b24sync.logs import capturing_run_log
from b24sync.redaction import redact
from b24sync.schema import views
from b24sync.schema.planner import ColumnSpec, plan_table
from b24sync.store import declared, mirror, runs
from b24sync.store.database import libpq_url
from b24sync.store.locks import held_locks, session_lock
from b24sync.store.portal_claim import claim_portal
from b24sync.store.runs import RunCounts, RunMode, RunStatus
from b24sync.streams import STREAMS, Kind, Stream, streams_of
from b24sync.sync import discovery, links, logs, per_parent, references
from b24sync.sync.cursor import Cursor
from b24sync.sync.lanes import Turn, write_in_order

log = logging.getLogger(__name__)


@dataclass
class Progress:
    entity: str
    mode: str
    done: int
    estimated_total: int


@dataclass
class SyncSummary:
    entity: str
    mode: str
    run_id: int
    status: str
    fetched: int
    upserted: int
    deleted: int
    failed_conversions: int
    api_calls: int
    seconds: float
    error: str | None = None
    transient: bool = False  # the failure may pass: portal 5xx, limits, network
    children: tuple[str, ...] = ()  # by-ids: the child streams refreshed along with the records

    def as_json(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "mode": self.mode,
            "fetched": self.fetched,
            "upserted": self.upserted,
            "deleted": self.deleted,
            "api_calls": self.api_calls,
            "seconds": round(self.seconds, 3),
            "status": self.status,
            "run_id": self.run_id,
            "failed_conversions": self.failed_conversions,
            "error": self.error,
        }


ProgressCallback = Callable[[Progress], None]
Work = Callable[[AsyncConnection[Any], Stream, RunCounts, int], Awaitable[None]]


SCHEMA_CHANGES_SHOWN = 5
SCHEMA_REUSE_SECONDS = 300.0  # how long event application trusts the field metadata it read
DATABASE_RETURN_SECONDS = 30
SYNC_LOCK_WAIT_SECONDS = 30
TRANSIENT_ERRORS = (PortalServerError, RateLimited, OperationTimeLimit, psycopg.OperationalError)


def _view_ddl(stream: Stream, columns: list[ColumnSpec]) -> list[sql.Composed]:
    """The readable view of an object stream, with the tables its labels come from."""
    statements = [
        statement
        for source in streams_of(Kind.REFERENCE)
        for statement in declared.table_statements(source)
    ]
    return statements + views.enum_view_statements() + views.view_statements(stream, columns)


def _lock_key(entity: Stream) -> str:
    return f"b24sync.sync.{entity.name}"


@dataclass
class Schema:
    columns: list[ColumnSpec]
    select: list[str]
    fields: frozenset[str]  # the portal's field names when this was read
    read_at: float  # time.monotonic()

    def lacks_any(self, records: Sequence[dict[str, Any]]) -> bool:
        """Whether a record carries a field this schema does not know (a field added since)."""
        return any(key not in self.fields for record in records for key in record)


class SyncEngine:
    def __init__(
        self,
        client: BitrixClient,
        database_url: str,
        *,
        commands_per_call: int = 50,
        on_progress: ProgressCallback | None = None,
        lock_wait_seconds: int = SYNC_LOCK_WAIT_SECONDS,
    ) -> None:
        self.client = client
        self.lock_wait_seconds = lock_wait_seconds
        self.dsn = libpq_url(database_url)
        self.commands_per_call = commands_per_call
        self.on_progress = on_progress
        self._schemas: dict[str, Schema] = {}

    # --- public runs -----------------------------------------------------------------------

    async def full(self, entity: Stream, queued_id: int | None = None) -> SyncSummary:
        return await self.run_mode(entity, RunMode.FULL, queued_id)

    async def incremental(self, entity: Stream, queued_id: int | None = None) -> SyncSummary:
        return await self.run_mode(entity, RunMode.INCREMENTAL, queued_id)

    async def reconcile(self, entity: Stream, queued_id: int | None = None) -> SyncSummary:
        return await self.run_mode(entity, RunMode.RECONCILE, queued_id)

    async def run_mode(
        self, entity: Stream, mode: str, queued_id: int | None = None
    ) -> SyncSummary:
        """``full``, ``incremental`` or ``reconcile`` of any stream, by name (jobs, API, CLI).

        A reference list is always read whole; a link stream's reconcile is its full refresh, a
        per-parent child's drops the rows of parents gone; a log's full run reads every row again
        and adds the missing ones.
        """
        like_objects: dict[str, Work] = {
            RunMode.FULL: self._full,
            RunMode.INCREMENTAL: self._incremental,
            RunMode.RECONCILE: self._reconcile,
        }
        work: dict[Kind, dict[str, Work]] = {
            Kind.OBJECT: like_objects,
            Kind.ITEM: like_objects,
            Kind.REFERENCE: dict.fromkeys(
                (RunMode.FULL, RunMode.INCREMENTAL, RunMode.RECONCILE), self._snapshot
            ),
            Kind.CHILD: {
                RunMode.FULL: self._children_full,
                RunMode.INCREMENTAL: self._children_incremental,
                RunMode.RECONCILE: self._children_reconcile,
            },
            Kind.LOG: {
                RunMode.FULL: self._log_full,
                RunMode.INCREMENTAL: self._log_incremental,
                RunMode.RECONCILE: self._log_incremental,  # nothing is ever deleted
            },
        }
        return await self._run(entity, mode, work[entity.kind][mode], queued_id)

    async def by_ids(
        self,
        entity: Stream,
        ids: Sequence[int],
        along: Sequence[tuple[Stream, Sequence[int]]] = (),
    ) -> SyncSummary:
        """The named records of an object stream, or the rows of these parents of a child one.

        ``along``: child streams, each with the parents whose rows are read in the same batch
        call as the records (an event's deals, their contacts and their product rows: one call,
        where three runs took three), and the records' stage history (its new rows; no parents).
        One whose own sync is running is left out; the summary's ``children`` names the ones
        refreshed.
        """
        refreshed: list[str] = []

        async def work(
            conn: AsyncConnection[Any], e: Stream, counts: RunCounts, run_id: int
        ) -> None:
            if e.kind is Kind.CHILD:
                await _child_reader(e).refresh_parents(self.client, conn, e, ids, counts)
            else:
                await self._by_ids(conn, e, counts, run_id, ids, along, refreshed)

        summary = await self._run(entity, RunMode.BY_IDS, work)
        return replace(summary, children=tuple(refreshed))

    # --- the frame every run shares ----------------------------------------------------------

    async def _run(
        self,
        entity: Stream,
        mode: str,
        work: Work,
        queued_id: int | None = None,
    ) -> SyncSummary:
        started = time.perf_counter()
        counts = RunCounts()
        async with (
            counting_calls() as spent,  # this run's own calls, whatever runs beside it
            capturing_run_log() as run_log,  # and its own log lines
            self._lock(
                entity, wait_seconds=0 if mode == RunMode.BY_IDS else self.lock_wait_seconds
            ),
            await AsyncConnection.connect(self.dsn, autocommit=True) as conn,
        ):
            await claim_portal(conn, self.client.auth.portal)
            await discovery.load(conn)  # a smart process as last discovered: title, gone or not
            await runs.close_interrupted_runs(conn, entity.name)
            run_id = await runs.start_run(conn, entity.name, mode, queued_id)
            status, error, transient = RunStatus.SUCCESS, None, False
            try:
                entity = STREAMS.current(entity)  # its smart process as last discovered
                if entity.gone:
                    raise StreamGone(
                        f"the portal no longer has {entity.described}: its table "
                        f"{entity.table} is kept as it was, there is nothing to sync"
                    )
                await work(conn, entity, counts, run_id)
            except asyncio.CancelledError:  # the process is stopping: say so, then stop
                counts.api_calls, counts.commands = spent.http_calls, spent.commands
                stopped = "stopped with the process; the next run goes on from here"
                await self._finish_run(
                    conn, run_id, counts, RunStatus.INTERRUPTED, stopped, run_log.lines()
                )
                raise
            except Exception as exc:  # the run log must say why, whatever failed
                status, error = RunStatus.FAILED, redact(f"{type(exc).__name__}: {exc}")
                transient = isinstance(exc, TRANSIENT_ERRORS)
                log.warning("sync %s %s failed: %s", entity.name, mode, error)
            counts.api_calls = spent.http_calls
            counts.commands = spent.commands
            await self._finish_run(conn, run_id, counts, status, error, run_log.lines())
        return SyncSummary(
            entity.name,
            mode,
            run_id,
            status,
            counts.fetched,
            counts.upserted,
            counts.deleted,
            counts.failed_conversions,
            counts.api_calls,
            time.perf_counter() - started,
            error,
            transient,
        )

    async def _finish_run(
        self,
        conn: AsyncConnection[Any],
        run_id: int,
        counts: RunCounts,
        status: str,
        error: str | None,
        log_lines: list[str],
    ) -> None:
        """Record the end of a run, on a new connection when the database dropped the old one.

        A restarted PostgreSQL is waited for up to DATABASE_RETURN_SECONDS, so the run log says
        what happened (the database error) rather than a later "interrupted".
        """
        if not conn.closed:
            with suppress(psycopg.OperationalError):
                await runs.finish_run(conn, run_id, counts, status, error, log_lines)
                return
        deadline = time.monotonic() + DATABASE_RETURN_SECONDS
        while True:
            try:
                async with await AsyncConnection.connect(self.dsn, autocommit=True) as fresh:
                    await runs.finish_run(fresh, run_id, counts, status, error, log_lines)
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise DatabaseUnavailable(
                        f"PostgreSQL went away during run {run_id} and was not back within "
                        f"{DATABASE_RETURN_SECONDS} s ({error or exc}); the next run resumes"
                    ) from None
                await asyncio.sleep(1.0)

    @asynccontextmanager
    async def _lock(self, entity: Stream, wait_seconds: int = 0) -> AsyncIterator[None]:
        """One sync per entity across every process sharing the database.

        A sync waits up to ``wait_seconds`` for the lock: under a steady stream of events an
        event batch holds it for a moment at a time, and a sync asked for meanwhile must run.
        """
        busy = SyncAlreadyRunning(f"a {entity.name} sync is already running")
        async with session_lock(self.dsn, _lock_key(entity), busy=busy, wait_seconds=wait_seconds):
            yield

    async def running_entities(self, conn: AsyncConnection[Any]) -> set[str]:
        """The entities whose sync lock some session holds right now."""
        keys = {_lock_key(e): e.name for e in STREAMS.values()}
        return {keys[key] for key in await held_locks(conn, keys)}

    async def sync_schema(self, conn: AsyncConnection[Any], entity: Stream) -> Schema:
        """Evolve the table to the portal's fields; return the columns and the select list."""
        envelope = await self.client.call(entity.metadata_method, dict(entity.params))
        result = envelope.get("result") or {}
        fields = (result.get(entity.fields_at) or {}) if entity.fields_at else result
        async with conn.transaction():  # readers never see the view missing
            await mirror.lock_ddl(conn)
            stored = await mirror.load_snapshot(conn, entity.name)
            plan = plan_table(mirror.DATA_SCHEMA, entity.table, stored, fields, entity.described)
            if plan.changes:  # a column under a view cannot change its type
                await conn.execute(views.drop_statement(entity))
            await mirror.apply_plan(conn, entity.name, plan)
            if plan.changes or not await mirror.relation_exists(conn, views.view_name(entity)):
                await mirror.run_ddl(conn, _view_ddl(entity, plan.active))
        if plan.changes:  # a new table brings dozens of columns: one line, the details at debug
            shown = ", ".join(plan.changes[:SCHEMA_CHANGES_SHOWN])
            more = len(plan.changes) - SCHEMA_CHANGES_SHOWN
            log.info(
                "schema %s: %d changes: %s%s",
                entity.name,
                len(plan.changes),
                shown,
                f" and {more} more" if more > 0 else "",
            )
            for change in plan.changes:
                log.debug("schema %s: %s", entity.name, change)
        schema = Schema(plan.active, entity.select_for(fields), frozenset(fields), time.monotonic())
        self._schemas[entity.name] = schema
        return schema

    async def recent_schema(self, conn: AsyncConnection[Any], entity: Stream) -> Schema:
        """The schema read in the last SCHEMA_REUSE_SECONDS, else a fresh one.

        Event application runs every second or so under load; a `fields` call each time would
        double its API calls. A field added meanwhile shows up as an unknown key in the fetched
        records, and :meth:`_by_ids` then reads the schema again before writing.
        """
        cached = self._schemas.get(entity.name)
        if cached is not None and time.monotonic() - cached.read_at < SCHEMA_REUSE_SECONDS:
            return cached
        return await self.sync_schema(conn, entity)

    def _portal_now(self) -> datetime:
        stamp = self.client.last_time.get("date_start")
        return datetime.fromisoformat(stamp) if stamp else datetime.now(UTC)

    async def _load(
        self,
        conn: AsyncConnection[Any],
        entity: Stream,
        columns: list[ColumnSpec],
        page: ExportPage,
        counts: RunCounts,
        mode: str,
        run_id: int,
        checkpoint: dict[str, Any] | None,
        turn: Turn | None = None,
    ) -> None:
        """One page in one transaction: its rows, what it found gone, its checkpoint and the
        run's counts; ``turn`` (lanes.write_in_order) waits for the page before to commit."""
        async with conn.transaction():
            written = await mirror.upsert(
                conn, entity.table, columns, page.records, entity.id_field
            )
            if turn is not None:
                await turn()
            counts.upserted += written.upserted
            if checkpoint is not None:  # a full sync: what the page found gone is gone
                counts.deleted += await mirror.mark_absent(conn, entity.table, page.absent)
                await runs.write_state(conn, entity.name, full_checkpoint=checkpoint)
            counts.fetched += len(page.records)
            counts.estimated_total = max(page.estimated_total, counts.fetched)
            counts.failed_conversions += written.unfit
            await runs.record_progress(conn, run_id, counts)
        if self.on_progress:
            self.on_progress(Progress(entity.name, mode, counts.fetched, counts.estimated_total))

    async def _full(
        self, conn: AsyncConnection[Any], entity: Stream, counts: RunCounts, run_id: int
    ) -> None:
        schema = await self.sync_schema(conn, entity)
        state = await runs.read_state(conn, entity.name)
        checkpoint = state["full_checkpoint"] or {}
        start_after = int(checkpoint.get("last_id", 0))
        # A resumed run keeps the first attempt's start as its cursor: edits made since then to
        # records below the checkpoint are read by the next incremental run.
        run_started = (
            datetime.fromisoformat(checkpoint["portal_started"])
            if "portal_started" in checkpoint
            else self._portal_now()
        )

        async def write(c: AsyncConnection[Any], page: ExportPage, turn: Turn) -> None:
            reached = {
                "last_id": page.watermark,
                "run_id": run_id,
                "portal_started": run_started.isoformat(),
            }
            await self._load(
                c, entity, schema.columns, page, counts, RunMode.FULL, run_id, reached, turn
            )

        pages = export_records(
            self.client,
            entity.listing,
            select=schema.select,
            start_after=start_after,
            commands_per_call=self.commands_per_call,
        )
        await write_in_order(conn, self.dsn, prefetched(pages), write)
        # Each page marked the records its ranges no longer hold: no ID is kept for the end. A
        # record deleted after its range was read is caught by its event or the reconcile.
        await runs.write_state(
            conn,
            entity.name,
            full_checkpoint=None,
            cursor=Cursor(entity.cursor, run_started).to_json(),
            last_full_sync_at=datetime.now(UTC),
        )

    async def _incremental(
        self, conn: AsyncConnection[Any], entity: Stream, counts: RunCounts, run_id: int
    ) -> None:
        state = await runs.read_state(conn, entity.name)
        cursor = Cursor.from_json(state["cursor"])
        if cursor is None:
            log.info("no cursor for %s yet: running a full sync instead", entity.name)
            await runs.relabel_run(conn, run_id, RunMode.FULL)  # the run log says what ran
            await self._full(conn, entity, counts, run_id)
            return
        schema = await self.sync_schema(conn, entity)
        run_started = self._portal_now()

        async def write(c: AsyncConnection[Any], page: ExportPage, turn: Turn) -> None:
            await self._load(
                c, entity, schema.columns, page, counts, RunMode.INCREMENTAL, run_id, None, turn
            )

        pages = export_records(
            self.client,
            entity.listing,
            select=schema.select,
            filter=cursor.filter(),
            commands_per_call=self.commands_per_call,
        )
        await write_in_order(conn, self.dsn, prefetched(pages), write)
        await runs.write_state(
            conn,
            entity.name,
            cursor=Cursor(entity.cursor, run_started, cursor.overlap_seconds).to_json(),
            last_incremental_sync_at=datetime.now(UTC),
        )

    async def _snapshot(
        self, conn: AsyncConnection[Any], entity: Stream, counts: RunCounts, run_id: int
    ) -> None:
        await runs.relabel_run(conn, run_id, RunMode.FULL)  # a reference list is always read whole
        await references.refresh(self.client, conn, entity, counts)
        await runs.write_state(conn, entity.name, last_full_sync_at=datetime.now(UTC))

    async def _children_full(
        self, conn: AsyncConnection[Any], entity: Stream, counts: RunCounts, run_id: int
    ) -> None:
        await runs.relabel_run(conn, run_id, RunMode.FULL)
        run_started = self._portal_now()
        reader = _child_reader(entity)
        await reader.refresh(
            self.client, conn, entity, counts, commands_per_call=self.commands_per_call
        )
        await runs.write_state(
            conn,
            entity.name,
            cursor=Cursor(entity.cursor, run_started).to_json(),
            last_full_sync_at=datetime.now(UTC),
        )

    async def _children_reconcile(
        self, conn: AsyncConnection[Any], entity: Stream, counts: RunCounts, run_id: int
    ) -> None:
        if not entity.owner_key:  # a link stream's full refresh costs no more than the IDs
            await self._children_full(conn, entity, counts, run_id)
            return
        await per_parent.drop_gone_parents(
            self.client, conn, entity, counts, commands_per_call=self.commands_per_call
        )

    async def _children_incremental(
        self, conn: AsyncConnection[Any], entity: Stream, counts: RunCounts, run_id: int
    ) -> None:
        cursor = Cursor.from_json((await runs.read_state(conn, entity.name))["cursor"])
        if cursor is None:
            await self._children_full(conn, entity, counts, run_id)
            return
        run_started = self._portal_now()
        reader = _child_reader(entity)
        await reader.refresh(
            self.client,
            conn,
            entity,
            counts,
            filter=cursor.filter(),
            commands_per_call=self.commands_per_call,
        )
        await runs.write_state(
            conn,
            entity.name,
            cursor=Cursor(entity.cursor, run_started, cursor.overlap_seconds).to_json(),
            last_incremental_sync_at=datetime.now(UTC),
        )

    async def _log_full(
        self, conn: AsyncConnection[Any], entity: Stream, counts: RunCounts, run_id: int
    ) -> None:
        await runs.relabel_run(conn, run_id, RunMode.FULL)
        await logs.append_new(
            self.client,
            conn,
            entity,
            counts,
            from_start=True,
            commands_per_call=self.commands_per_call,
        )
        await runs.write_state(conn, entity.name, last_full_sync_at=datetime.now(UTC))

    async def _log_incremental(
        self, conn: AsyncConnection[Any], entity: Stream, counts: RunCounts, run_id: int
    ) -> None:
        await logs.append_new(
            self.client,
            conn,
            entity,
            counts,
            from_start=False,
            commands_per_call=self.commands_per_call,
        )
        await runs.write_state(conn, entity.name, last_incremental_sync_at=datetime.now(UTC))

    async def _reconcile(
        self, conn: AsyncConnection[Any], entity: Stream, counts: RunCounts, run_id: int
    ) -> None:
        """Soft-delete the rows whose IDs the portal no longer lists. The IDs read go to
        PostgreSQL page by page (a million cost no memory here) under a key of the reconcile's
        own, so a full sync interrupted meanwhile keeps what it had read."""
        seen = f"{entity.name}/reconcile"
        await mirror.forget_seen(conn, seen)
        async for page in export_records(
            self.client,
            entity.listing,
            select=[entity.id_field],
            commands_per_call=self.commands_per_call,
        ):
            await mirror.note_seen(conn, seen, [int(r[entity.id_field]) for r in page.records])
            counts.fetched += len(page.records)
        async with conn.transaction():
            counts.deleted = await mirror.mark_deleted_unseen(conn, seen, entity.table)

    async def _by_ids(
        self,
        conn: AsyncConnection[Any],
        entity: Stream,
        counts: RunCounts,
        run_id: int,
        ids: Sequence[int],
        along: Sequence[tuple[Stream, Sequence[int]]],
        refreshed: list[str],
    ) -> None:
        """Fetch the given records (50 IDs per list command), and the children ``along`` in the
        same batch; IDs the portal lacks are deleted."""
        schema = await self.recent_schema(conn, entity)
        async with AsyncExitStack() as held:
            groups = {"r": by_ids_commands(entity.listing, ids, schema.select)}
            children: list[tuple[Stream, Sequence[int]]] = []
            for child, parents in along:
                commands = await self._rider_commands(held, conn, child, parents)
                if commands:
                    groups[f"c{len(children)}"] = commands
                    children.append((child, parents))
            batch = await self.client.batch(grouped(groups))
            records = by_ids_records(entity.listing, batch.part("r"), groups["r"])
            if schema.lacks_any(records):
                schema = await self.sync_schema(conn, entity)
            page = ExportPage(records, 0, len(records))
            await self._load(
                conn, entity, schema.columns, page, counts, RunMode.BY_IDS, run_id, None
            )
            found = {int(r[entity.id_field]) for r in records}
            async with conn.transaction():
                counts.deleted += await mirror.mark_deleted(
                    conn, entity.table, [i for i in set(ids) if i not in found]
                )
            for n, (child, parents) in enumerate(children):
                if await self._refresh_along(conn, child, parents, batch.part(f"c{n}")):
                    refreshed.append(child.name)

    async def _rider_commands(
        self,
        held: AsyncExitStack,
        conn: AsyncConnection[Any],
        child: Stream,
        parents: Sequence[int],
    ) -> dict[str, str]:
        """What a stream riding in the records' call asks; nothing while its own sync runs, or
        for a log never synced (its first run reads it whole, which is no event's business)."""
        if not await self._hold_lock(held, child):
            return {}
        if child.kind is Kind.LOG:
            return await logs.commands(conn, child)
        return dict(_child_reader(child).commands(child, parents))

    async def _refresh_along(
        self,
        conn: AsyncConnection[Any],
        child: Stream,
        parents: Sequence[int],
        answered: BatchResult,
    ) -> bool:
        """Store a child's rows that rode in the records' call; a child the portal refused
        fails alone (its parents stay noted), so the records it rode with are kept."""
        rows = RunCounts()
        try:
            if child.kind is Kind.LOG:
                await logs.append_answered(self.client, conn, child, rows, answered)
            else:
                await _child_reader(child).refresh_parents(
                    self.client, conn, child, parents, rows, answered
                )
        except BitrixError as exc:
            log.warning("%s of %d parents not refreshed: %s", child.name, len(parents), exc)
            return False
        log.info(
            "%s of %d parents refreshed along: %d rows", child.name, len(parents), rows.upserted
        )
        return True

    async def _hold_lock(self, held: AsyncExitStack, entity: Stream) -> bool:
        """Take ``entity``'s sync lock for the rest of ``held``; False when a sync holds it."""
        try:
            await held.enter_async_context(self._lock(entity))
        except SyncAlreadyRunning:
            return False
        return True


def _child_reader(stream: Stream) -> ModuleType:
    """The module that reads a child stream: one parent a command, or 50 parents a command."""
    return per_parent if stream.owner_key else links


def parents_per_command(child: Stream) -> int:
    """How many parents' rows one command reads: 50 for links, one for product rows."""
    return int(_child_reader(child).PARENTS_PER_COMMAND)


def riding_order(children: Sequence[Stream]) -> list[Stream]:
    """The order children take the free commands of a records' call: the cheapest per parent
    first (links: 50 parents a command), so one call refreshes the most parents."""
    return sorted(children, key=parents_per_command, reverse=True)


def free_commands(records: int) -> int:
    """The commands a by-ids call for ``records`` records leaves free in its last batch call."""
    used = by_ids_command_count(records)
    return max(1, math.ceil(used / MAX_BATCH)) * MAX_BATCH - used
