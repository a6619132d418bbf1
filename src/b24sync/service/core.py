"""The always-on service's use cases; the API, the jobs and the CLI call these and nothing lower.
Events (receiving, draining, applying, registering) are :attr:`SyncService.events`; a local
application's installation and authorization are :attr:`SyncService.app`.

Everything that crosses processes goes through PostgreSQL: a requested sync is a 'queued' row in
the run log plus a procrastinate job, a received event is a row in the inbox plus a job, and
progress is read back from the run log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from psycopg import AsyncConnection

from b24sync.bitrix.client import BitrixClient
from b24sync.config import Settings
from b24sync.errors import (
    BitrixError,
    SyncAlreadyRunning,
    TransientSyncFailure,
    UnknownRun,
)
from b24sync.service.application import LocalApplication
from b24sync.service.events import EventIntake
from b24sync.service.queueing import defer_once
from b24sync.service.testdata import TestData
from b24sync.store import inbox, runs, schedule
from b24sync.store.database import PooledDatabase, libpq_url
from b24sync.store.overview import entity_status
from b24sync.store.runs import RunCounts, RunMode, RunStatus
from b24sync.store.smart_processes import gone_since
from b24sync.streams import STREAMS, stream_named
from b24sync.sync import discovery
from b24sync.sync.engine import SyncEngine, SyncSummary
from b24sync.sync.per_parent import predicted_full_calls

log = logging.getLogger(__name__)

TASK_SYNC = "sync_entity"
TASK_APPLY_EVENTS = "apply_events"
PORTAL_CHECK_TTL_SECONDS = 60.0
HEALTH_TIMEOUT_SECONDS = 5.0
# the live view shows every run in flight and the newest finished ones: a run of each stream
LIVE_FINISHED_RUNS = len(STREAMS) + 4


@dataclass
class SyncService:
    settings: Settings
    database_url: str
    engine: SyncEngine
    jobs: procrastinate.App | None = None
    _portal_checked: tuple[float, bool, str] = field(default=(0.0, False, ""))
    db: PooledDatabase = field(init=False)
    app: LocalApplication = field(init=False)
    events: EventIntake = field(init=False)

    def __post_init__(self) -> None:
        self.db = PooledDatabase(self.database_url)
        self.app = LocalApplication(self.settings, self.db, self.engine.client)
        self.events = EventIntake(self.settings, self.db, self.engine, self.app, self._defer_apply)

    @property
    def client(self) -> BitrixClient:
        return self.engine.client

    async def close(self) -> None:
        await self.db.close()

    def _jobs(self) -> procrastinate.App:
        if self.jobs is None:
            raise RuntimeError("the service was built without a job queue")
        return self.jobs

    # --- the streams ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection, the registry holding the smart processes as last discovered (by
        whichever process did): what this process lists and accepts is what the others do."""
        async with self.db.connection() as conn:
            await discovery.load(conn)
            yield conn

    async def discover(self) -> None:
        """Ask the portal which smart processes it has (at the start and every scheduler tick);
        when it cannot answer, keep the ones last discovered."""
        async with self.db.connection() as conn:
            try:
                await discovery.discover(self.client, conn)
            except BitrixError as exc:
                log.warning("smart processes not discovered this time: %s", exc)
                await discovery.load(conn)

    # --- syncs ---------------------------------------------------------------------------------

    async def request_sync(self, entity_name: str, mode: str) -> int:
        """Queue a sync; returns the run id. SyncAlreadyRunning when one is queued or running."""
        async with self._connection() as conn:
            entity = stream_named(entity_name)
            # An event batch holds the entity's lock for a moment; the queued run waits for it.
            syncing = await self.engine.running_entities(conn) & await runs.running_sync_entities(
                conn
            )
            busy = syncing | await runs.queued_entities(conn)
            if entity.name in busy:
                raise SyncAlreadyRunning(f"a {entity.name} sync is already queued or running")
            run_id = await runs.queue_run(conn, entity.name, mode)
            lock = f"sync:{entity.name}"
            try:
                await (
                    self._jobs()
                    .configure_task(TASK_SYNC, lock=lock, queueing_lock=lock)
                    .defer_async(entity=entity.name, mode=mode, run_id=run_id)
                )
            except AlreadyEnqueued:
                await runs.drop_queued_run(conn, run_id)
                raise SyncAlreadyRunning(f"a {entity.name} sync is already queued") from None
        return run_id

    async def run_queued(self, entity_name: str, mode: str, run_id: int) -> SyncSummary | None:
        """The job body: run the queued sync; a transient failure raises so the job retries."""
        async with self._connection():
            entity = stream_named(entity_name)
        try:
            summary = await self.engine.run_mode(entity, mode, run_id)
        except SyncAlreadyRunning as exc:
            async with self.db.connection() as conn:
                await runs.finish_run(conn, run_id, RunCounts(), RunStatus.SKIPPED, str(exc))
            return None
        if summary.transient:
            raise TransientSyncFailure(summary.error or "transient failure")
        return summary

    async def queue_due_syncs(self, now: datetime | None = None) -> list[str]:
        """The scheduler tick: queue a sync of each enabled entity that is due.

        Usually incremental. When the entity's deletions were last checked more than
        SYNC_RECONCILE_HOURS ago, a reconcile (IDs only) goes first, since incremental runs
        cannot see records deleted on the portal; the incremental follows at the next tick.
        """
        now = now or datetime.now(UTC)
        await self.discover()
        async with self.db.connection() as conn:
            schedules = await schedule.read_schedules(
                conn, [s.name for s in STREAMS.live()], self.settings.sync_default_interval_minutes
            )
            starts = await schedule.last_scheduled_starts(conn)
            checks = await schedule.last_deletion_checks(conn)
        queued = []
        for name, entity_schedule in schedules.items():
            due = schedule.next_run_at(entity_schedule, starts.get(name), now)
            if due is None or due > now:
                continue
            reconcile = schedule.reconcile_due(
                checks.get(name), now, self.settings.sync_reconcile_hours
            )
            try:
                mode = RunMode.RECONCILE if reconcile else RunMode.INCREMENTAL
                await self.request_sync(name, mode)
            except SyncAlreadyRunning:
                continue
            queued.append(name)
        return queued

    # --- reading -------------------------------------------------------------------------------

    async def status(self) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        async with self._connection() as conn:
            schedules = await schedule.read_schedules(
                conn, list(STREAMS), self.settings.sync_default_interval_minutes
            )
            starts = await schedule.last_scheduled_starts(conn)
            running = await self.engine.running_entities(conn)
            queued = await runs.queued_entities(conn)
            overview = await entity_status(conn)
            gone = await gone_since(conn)
        rows = {row["entity"]: row["rows"] for row in overview}
        result = []
        for row in overview:
            name = row["entity"]
            state = (
                "gone"  # a smart process deleted on the portal: its table is kept
                if name in gone
                else "running"
                if name in running
                else "queued"
                if name in queued
                else "idle"
                if schedules[name].enabled
                else "disabled"
            )
            next_run = schedule.next_run_at(schedules[name], starts.get(name), now)
            result.append(
                row
                | {
                    "state": state,
                    "schedule": schedules[name].as_json(),
                    "next_run_at": next_run.isoformat() if next_run and name not in gone else None,
                    "gone_at": gone[name].isoformat() if name in gone else None,
                    "full_sync_calls": self._full_sync_calls(name, rows),
                }
            )
        return result

    def _full_sync_calls(self, name: str, rows: Mapping[str, int]) -> int | None:
        """What a full sync of a per-parent stream will cost, from its parent's rows (these
        streams cost a call per 50 parents: worth knowing before pressing the button)."""
        stream = STREAMS.get(name)
        if stream is None or stream.owner_key is None or stream.parent is None:
            return None
        return predicted_full_calls(rows.get(stream.parent, 0), self.settings.sync_batch_size)

    async def runs(
        self,
        *,
        limit: int,
        offset: int,
        entity: str | None,
        status: str | None,
        sync_types: Sequence[str] | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        async with self.db.connection() as conn:
            return await runs.list_runs(
                conn,
                limit=limit,
                offset=offset,
                entity=entity,
                status=status,
                sync_types=sync_types,
            )

    async def run(self, run_id: int) -> dict[str, Any]:
        """One run of the log; UnknownRun when there is none."""
        async with self.db.connection() as conn:
            found = await runs.read_run(conn, run_id)
        if found is None:
            raise UnknownRun(f"no run {run_id} in the run log")
        return found

    async def live_snapshot(self) -> dict[str, Any]:
        """What the dashboard's live view shows: runs in flight and the newest finished ones."""
        async with self._connection() as conn:
            recent, _ = await runs.list_runs(conn, limit=LIVE_FINISHED_RUNS, in_flight=True)
            running = await self.engine.running_entities(conn)
            stats = await inbox.inbox_stats(conn)
        return {
            "running": sorted(running),
            "runs": recent,
            "events_pending": stats.pending,
            "last_event_at": stats.last_received_at,
        }

    async def schedules(self) -> dict[str, schedule.EntitySchedule]:
        async with self._connection() as conn:
            return await schedule.read_schedules(
                conn, list(STREAMS), self.settings.sync_default_interval_minutes
            )

    async def update_schedules(
        self, changes: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, schedule.EntitySchedule]:
        """Apply partial changes ``{entity: {enabled?, interval_minutes?, webhook_enabled?}}``."""
        current = await self.schedules()
        async with self.db.connection() as conn, conn.transaction():
            for name, patch in changes.items():
                entity = stream_named(name)
                merged = current[entity.name].as_json() | dict(patch)
                await schedule.write_schedule(conn, entity.name, schedule.EntitySchedule(**merged))
        return await self.schedules()

    async def health(self) -> dict[str, Any]:
        database_ok, database_error = True, ""
        try:
            async with self.db.connection(timeout=HEALTH_TIMEOUT_SECONDS) as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:  # health reports every failure, it never raises
            database_ok, database_error = False, type(exc).__name__
        portal_ok, portal_error = await self._portal_reachable()
        return {
            "status": "ok" if database_ok and portal_ok else "degraded",
            "database": {"ok": database_ok, "error": database_error or None},
            "portal": {
                "ok": portal_ok,
                "auth": self.client.auth.kind,
                "url": self.client.auth.masked,
                "error": portal_error or None,
            },
        }

    async def _portal_reachable(self) -> tuple[bool, str]:
        """One cheap call a minute at most: health checks must not eat the request budget."""
        checked_at, ok, error = self._portal_checked
        if time.monotonic() - checked_at < PORTAL_CHECK_TTL_SECONDS:
            return ok, error
        try:
            await self.client.call("profile")
            ok, error = True, ""
        except BitrixError as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        self._portal_checked = (time.monotonic(), ok, error)
        return ok, error

    async def metrics_snapshot(self) -> dict[str, Any]:
        async with self._connection() as conn:
            totals = await runs.run_totals(conn)
            stats = await inbox.inbox_stats(conn)
            overview = await entity_status(conn)
        return {
            "runs": totals,
            "rows": {row["entity"]: row["rows"] for row in overview},
            "events_pending": stats.pending,
            "event_lag_seconds": stats.lag_seconds,
            "rate_limit_wait_seconds": self.client.limiter.waited_seconds,
            "process_api_calls": self.client.counters.http_calls,
        }

    async def _defer_apply(self) -> None:
        await defer_once(self._jobs(), TASK_APPLY_EVENTS, TASK_APPLY_EVENTS)

    # --- test data ---------------------------------------------------------------------------

    def test_data(self) -> TestData:
        return TestData(self.client, libpq_url(self.database_url))

    async def test_data_busy(self) -> bool:
        async with self.db.connection() as conn:
            return await self.test_data().busy(conn)
