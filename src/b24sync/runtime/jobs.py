"""procrastinate tasks: queued syncs, event application, the per-minute scheduler tick and the
offline-event drain every 15 s (a local application's queued events, when it has no public URL).

The tasks are closures over one :class:`SyncService`, so every process (``serve``, ``run``,
``worker``) builds its own app from its own service; the queue itself is shared in PostgreSQL.
Locks: a sync job holds lock ``sync:<entity>`` and its queueing lock refuses a second queued one;
the event-apply job is single-queued the same way; periodic deferral is unique per minute, so
any number of workers tick once.

A job whose worker died (kill -9, OOM, power) stays ``doing`` and keeps its lock, so procrastinate
would never start another job with that lock: events would stop being applied for good. Every
5 s, :func:`requeue_stalled_jobs` finds such jobs by their worker's missing heartbeat and puts
them back in the queue, and events whose process died before queueing their apply job get one.
A failed job is never retried by procrastinate (see :func:`_again`).
"""

from __future__ import annotations

import logging

import procrastinate
from procrastinate import PsycopgConnector
from procrastinate.exceptions import UniqueViolation
from procrastinate.jobs import Status
from procrastinate.types import JSONValue

from b24sync.errors import SyncAlreadyRunning, TransientSyncFailure
from b24sync.service import TASK_APPLY_EVENTS, TASK_SYNC, SyncService
from b24sync.service.queueing import defer_once
from b24sync.store.database import libpq_url

log = logging.getLogger(__name__)

TASK_TICK = "scheduler_tick"
TASK_DRAIN = "drain_offline_events"
TASK_RECOVER = "recover_after_crashes"
# A worker beats every 4 s; three missed beats mean it is gone, and the check runs every 5 s, so
# a dead worker's job is queued again within about 17 s.
HEARTBEAT_SECONDS = 4
STALLED_AFTER_SECONDS = 12
# Ctrl-C or SIGTERM: jobs get this long to finish, then they are cancelled (a full sync resumes
# from its checkpoint at its next run) rather than holding the process for minutes.
SHUTDOWN_GRACE_SECONDS = 5
RECOVER_CRON = "* * * * * */5"
# Every 15 s (croniter's sixth field is seconds): offline events wait at most that long, and an
# empty poll costs one call (about 3 % of a 2 req/s budget); nothing under an inbound webhook.
DRAIN_CRON = "* * * * * */15"
# A job queued while a copy holding its lock runs cannot start then, and procrastinate looks
# again only at its next poll (5 s by default), not when that copy ends: an event that arrives
# as an apply job finishes would wait that long.
JOB_POLL_SECONDS = 1.0
WORKER_CONCURRENCY = 4  # syncs of different entities run side by side; the portal limit is shared

SYNC_RETRY_SECONDS = (10, 20, 40)  # a sync that failed transiently runs again, three times
APPLY_RETRY_SECONDS = 5  # events wait out an outage or a running sync, however long


def build_job_app(service: SyncService, *, scheduler: bool = True) -> procrastinate.App:
    """The tasks over ``service``; ``scheduler=False`` leaves out the per-minute tick."""
    app = procrastinate.App(connector=PsycopgConnector(conninfo=libpq_url(service.database_url)))

    @app.task(name=TASK_SYNC)
    async def sync_entity(entity: str, mode: str, run_id: int, attempt: int = 0) -> None:
        try:
            summary = await service.run_queued(entity, mode, run_id)
        except TransientSyncFailure as exc:
            if attempt >= len(SYNC_RETRY_SECONDS):
                log.warning("sync %s %s failed %d times: %s", entity, mode, attempt + 1, exc)
                return
            lock = f"sync:{entity}"
            await _again(
                app,
                TASK_SYNC,
                lock,
                SYNC_RETRY_SECONDS[attempt],
                entity=entity,
                mode=mode,
                run_id=run_id,
                attempt=attempt + 1,
            )
            return
        if summary is not None:
            log.info("sync %s %s: %s", entity, mode, summary.status)

    @app.task(name=TASK_APPLY_EVENTS)
    async def apply_events() -> None:
        try:
            applied = await service.events.apply()
        except (TransientSyncFailure, SyncAlreadyRunning) as exc:
            log.info("events wait: %s", exc)
            await _again(app, TASK_APPLY_EVENTS, TASK_APPLY_EVENTS, APPLY_RETRY_SECONDS)
            return
        log.info("applied %d events", applied)

    if scheduler:

        @app.periodic(cron="* * * * *")
        @app.task(name=TASK_TICK, queueing_lock=TASK_TICK)
        async def scheduler_tick(timestamp: int) -> None:
            queued = await service.queue_due_syncs()
            if queued:
                log.info("scheduled syncs queued: %s", ", ".join(queued))

        @app.periodic(cron=DRAIN_CRON)
        @app.task(name=TASK_DRAIN, queueing_lock=TASK_DRAIN)  # the next tick is the retry
        async def drain_offline_events(timestamp: int) -> None:
            drained = await service.events.drain_offline()
            if drained:
                log.info("drained %d offline events", drained)

        @app.periodic(cron=RECOVER_CRON)
        @app.task(name=TASK_RECOVER, queueing_lock=TASK_RECOVER)
        async def recover_after_crashes(timestamp: int) -> None:
            requeued = await requeue_stalled_jobs(app)
            if requeued:
                log.warning("requeued %d jobs of workers that stopped: %s", len(requeued), requeued)
            await service.events.queue_leftovers()

    service.jobs = app
    return app


async def _again(
    app: procrastinate.App, task: str, lock: str, seconds: int, **kwargs: JSONValue
) -> None:
    """Queue ``task`` again in ``seconds``; a copy already waiting does the same work.

    procrastinate's own retry would put the failed job itself back in the queue, which its
    queueing lock forbids while a newer copy waits: the job then stays 'doing' for good and,
    its lock held, nothing with that lock ever runs again.
    """
    await defer_once(app, task, lock, in_seconds=seconds, **kwargs)


async def requeue_stalled_jobs(app: procrastinate.App) -> list[int]:
    """Put jobs of dead workers back in the queue; returns their ids.

    When a newer job with the same queueing lock already waits, it will do the same work, so the
    stalled one is closed as failed instead (two waiting copies are what the lock forbids).
    """
    manager = app.job_manager
    requeued = []
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_SECONDS):
        assert job.id is not None
        try:
            await manager.retry_job(job)
        except UniqueViolation:
            await manager.finish_job_by_id_async(job.id, Status.FAILED, delete_job=False)
        requeued.append(job.id)
    return requeued


async def run_worker(app: procrastinate.App, *, name: str = "b24sync") -> None:
    """Run jobs until cancelled; the caller owns signal handling."""
    await app.run_worker_async(
        name=name,
        concurrency=WORKER_CONCURRENCY,
        install_signal_handlers=False,
        delete_jobs="successful",
        update_heartbeat_interval=HEARTBEAT_SECONDS,
        stalled_worker_timeout=STALLED_AFTER_SECONDS,
        shutdown_graceful_timeout=SHUTDOWN_GRACE_SECONDS,
        fetch_job_polling_interval=JOB_POLL_SECONDS,
    )
