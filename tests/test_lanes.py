"""Pages written on two connections at once commit in the order they were read."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from psycopg import AsyncConnection

from b24sync.sync.lanes import Turn, write_in_order


class PageFailed(Exception):
    pass


async def pages(count: int) -> Any:
    for page in range(count):
        yield page


async def written(database_url: str, failing: int | None = None) -> tuple[list[int], int]:
    """Write pages 0..7 (each waits a random moment before its turn, so later pages often
    finish their work first); returns the pages in commit order and how many backends ran."""
    backends: set[int] = set()
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS lane_pages (page int PRIMARY KEY, turn bigserial)"
        )
        await conn.execute("TRUNCATE lane_pages")

        async def write(c: AsyncConnection[Any], page: int, turn: Turn) -> None:
            async with c.transaction():
                backends.add(c.info.backend_pid)
                await c.execute("INSERT INTO lane_pages (page, turn) VALUES (%s, 0)", (page,))
                await asyncio.sleep(random.uniform(0, 0.05))
                if page == failing:
                    raise PageFailed(page)
                await turn()
                # taken after the page before committed: the commit order
                await c.execute(
                    "UPDATE lane_pages SET turn = nextval('lane_pages_turn_seq') WHERE page = %s",
                    (page,),
                )

        try:
            await write_in_order(conn, database_url, pages(8), write)
        finally:
            rows = await (
                await conn.execute("SELECT page FROM lane_pages ORDER BY turn")
            ).fetchall()
    return [r[0] for r in rows], len(backends)


async def test_pages_commit_in_order_on_two_connections(database_url: str) -> None:
    for _ in range(5):
        order, backends = await written(database_url)
        assert order == list(range(8))
        assert backends == 2


async def test_a_failed_page_stops_the_pages_after_it_and_is_raised_as_it_was(
    database_url: str,
) -> None:
    for _ in range(5):
        with pytest.raises(PageFailed):  # the exception itself, not a group
            await written(database_url, failing=3)
        order, _ = await written(database_url, failing=None)
        assert order == list(range(8))
        with pytest.raises(PageFailed):
            await written(database_url, failing=3)
        async with await AsyncConnection.connect(database_url) as conn:
            rows = await (
                await conn.execute("SELECT page FROM lane_pages ORDER BY page")
            ).fetchall()
        assert [r[0] for r in rows] == [0, 1, 2]  # page 4 had to wait for 3: rolled back


async def test_pages_read_before_the_portal_failed_still_commit(database_url: str) -> None:
    async def failing_after_three() -> Any:
        for page in range(3):
            yield page
        await asyncio.sleep(0)
        raise PageFailed("the portal")

    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE lane_source (page int PRIMARY KEY)")

        async def write(c: AsyncConnection[Any], page: int, turn: Turn) -> None:
            async with c.transaction():
                await c.execute("INSERT INTO lane_source VALUES (%s)", (page,))
                await asyncio.sleep(0.05)  # still converting when the portal fails
                await turn()

        with pytest.raises(PageFailed, match="the portal"):
            await write_in_order(conn, database_url, failing_after_three(), write)
        rows = await (await conn.execute("SELECT page FROM lane_source ORDER BY page")).fetchall()
    assert [r[0] for r in rows] == [0, 1, 2]
