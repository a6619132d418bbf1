"""Parents whose children (links, product rows) events asked to refresh and no call has carried
yet (b24sync.pending_children): event application spends its calls on the records first."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection


async def note(conn: AsyncConnection[Any], stream: str, parent_ids: list[int]) -> None:
    """These parents' rows of ``stream`` are to be refreshed (once, however often noted).

    A note another worker has claimed and is refreshing right now is waited for rather than
    merged into: that refresh may have read the portal before this change, and its end deletes
    the note. Once it commits, the insert goes ahead and the parent is read again.
    """
    await conn.execute(
        "INSERT INTO b24sync.pending_children (stream, parent_id) "
        "SELECT %s, unnest(%s::bigint[]) ORDER BY 2 "
        "ON CONFLICT (stream, parent_id) DO UPDATE SET noted_at = pending_children.noted_at",
        (stream, sorted(set(parent_ids))),
    )


async def claim(conn: AsyncConnection[Any], stream: str, limit: int) -> list[int]:
    """Lock up to ``limit`` parents noted for ``stream``, oldest first (inside a transaction);
    ones another worker holds are skipped."""
    if limit <= 0:
        return []
    rows = await (
        await conn.execute(
            "SELECT parent_id FROM b24sync.pending_children WHERE stream = %s "
            "ORDER BY noted_at, parent_id LIMIT %s FOR UPDATE SKIP LOCKED",
            (stream, limit),
        )
    ).fetchall()
    return [int(r[0]) for r in rows]


async def refreshed(conn: AsyncConnection[Any], stream: str, parent_ids: list[int]) -> None:
    """The claimed parents' rows were read: their notes go."""
    await conn.execute(
        "DELETE FROM b24sync.pending_children WHERE stream = %s AND parent_id = ANY(%s)",
        (stream, parent_ids),
    )


async def drop(conn: AsyncConnection[Any], stream: str) -> None:
    """Every note of a stream that is switched off or gone: there is nothing to refresh."""
    await conn.execute("DELETE FROM b24sync.pending_children WHERE stream = %s", (stream,))


async def streams(conn: AsyncConnection[Any]) -> list[str]:
    """The streams with notes waiting."""
    rows = await (
        await conn.execute("SELECT DISTINCT stream FROM b24sync.pending_children")
    ).fetchall()
    return [r[0] for r in rows]
