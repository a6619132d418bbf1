"""Queueing a job of which at most one copy may wait, without an ERROR in PostgreSQL's log."""

from __future__ import annotations

from contextlib import suppress

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.types import JSONValue

WAITING = (
    "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs "
    "WHERE queueing_lock = %(lock)s AND status = 'todo') AS waiting"
)


async def defer_once(
    app: procrastinate.App,
    task: str,
    lock: str,
    *,
    in_seconds: int = 0,
    **kwargs: JSONValue,
) -> bool:
    """Queue ``task`` under ``lock`` (its run lock and queueing lock) unless a copy already
    waits, which will do the same work; ``in_seconds`` delays it. True when queued.

    procrastinate keeps a second copy out with a unique index: the refused insert fails inside
    PostgreSQL, which logs an ERROR and the statement every time (800 events, 806 KB of log).
    Asking first keeps the log for real errors; the rare race that still meets the index is
    refused as before, and harmless.
    """
    row = await app.connector.execute_query_one_async(WAITING, lock=lock)
    if row["waiting"]:
        return False
    schedule_in = {"seconds": in_seconds} if in_seconds else None
    with suppress(AlreadyEnqueued):
        await app.configure_task(
            task, lock=lock, queueing_lock=lock, schedule_in=schedule_in
        ).defer_async(**kwargs)
        return True
    return False
