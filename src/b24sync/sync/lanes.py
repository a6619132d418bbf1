"""Pages written on two database connections at once, committed in the order they were read.

One PostgreSQL backend converts a page at a time on one core; at 2,500 records a page it, not the
portal, paced a full sync. Two connections let the next page's conversion run while the one
before it is converted, and each page still commits its own checkpoint with its rows, in order:
a page waits for the one before it to commit before it writes its checkpoint, so after a crash
the checkpoint never points past a page that was lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

from psycopg import AsyncConnection

Page = TypeVar("Page")
# waits until the page before has committed: call it inside the page's transaction, after the
# heavy work and before the checkpoint
Turn = Callable[[], Awaitable[Any]]
WritePage = Callable[[AsyncConnection[Any], Page, Turn], Awaitable[None]]

LANES = 2  # backends converting at once; a third found no free core on the 2-core machine


async def write_in_order(
    first: AsyncConnection[Any],
    dsn: str,
    pages: AsyncIterator[Page],
    write: WritePage[Page],
    lanes: int = LANES,
) -> None:
    """``write(conn, page, turn)`` for every page, up to ``lanes`` at once, each on a connection
    of its own (``first`` and, from the second page on, new ones to ``dsn``), committing in
    order. A page that fails cancels the pages after it (their transactions roll back); when
    reading the pages fails (the portal), the pages read before still commit. Either failure is
    raised as it was."""
    in_flight: deque[asyncio.Task[None]] = deque()
    async with AsyncExitStack() as opened:
        connections = [first]
        before = asyncio.Event()
        before.set()
        try:
            index = 0
            while True:
                try:
                    page = await anext(pages)
                except StopAsyncIteration:
                    break
                except Exception:
                    await _written(in_flight)  # the pages read before the portal failed are good
                    raise
                if len(in_flight) == lanes:
                    await in_flight.popleft()  # its connection is free again
                if index == len(connections) and index < lanes:
                    connections.append(
                        await opened.enter_async_context(
                            await AsyncConnection.connect(dsn, autocommit=True)
                        )
                    )
                committed = asyncio.Event()
                in_flight.append(
                    asyncio.create_task(
                        _write_one(write, connections[index % lanes], page, before.wait, committed)
                    )
                )
                before, index = committed, index + 1
            await _written(in_flight)
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)


async def _written(in_flight: deque[asyncio.Task[None]]) -> None:
    """Wait for the pages in flight, oldest first (each commits after the one before)."""
    while in_flight:
        await in_flight.popleft()


async def _write_one(
    write: WritePage[Page],
    conn: AsyncConnection[Any],
    page: Page,
    turn: Turn,
    committed: asyncio.Event,
) -> None:
    await write(conn, page, turn)
    committed.set()
