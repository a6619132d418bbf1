"""Tables whose columns the registry declares: reference lists, replaced whole in one
transaction; child rows, replaced per parent; logs, appended to and never rewritten."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import AsyncConnection, sql

from b24sync.schema.identifiers import ident
from b24sync.schema.types import Unconvertible, converter, json_text, pg_type
from b24sync.store import mirror
from b24sync.store.mirror import DATA_SCHEMA
from b24sync.streams import Column, Stream

Row = tuple[Any, ...]


def _type(column: Column) -> str:
    return pg_type(column.bitrix_type, column.multiple)


def table_statements(stream: Stream) -> list[sql.Composed]:
    """The table's DDL, safe to repeat: declared columns, ``_raw``, ``_synced_at``, the key."""
    target = ident(DATA_SCHEMA, stream.table)
    columns = [sql.SQL("{} {}").format(ident(c.column), sql.SQL(_type(c))) for c in stream.columns]
    return [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident(DATA_SCHEMA)),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ({}, _raw jsonb NOT NULL, "
            "_synced_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY ({}))"
        ).format(
            target,
            sql.SQL(", ").join(columns),
            sql.SQL(", ").join(ident(k) for k in stream.key),
        ),
        sql.SQL("COMMENT ON TABLE {} IS {}").format(target, sql.Literal(stream.table_comment)),
    ]


async def ensure_table(conn: AsyncConnection[Any], stream: Stream) -> None:
    async with conn.transaction():
        await mirror.lock_ddl(conn)
        for statement in table_statements(stream):
            await conn.execute(statement)


def typed_row(stream: Stream, values: dict[str, Any], raw: dict[str, Any]) -> tuple[Row, int]:
    """One row of declared columns (``values`` by field name) and its failed conversions."""
    row: list[Any] = []
    failed = 0
    for column in stream.columns:
        try:
            row.append(converter(_type(column))(values.get(column.field)))
        except Unconvertible:
            row.append(None)
            failed += 1
    row.append(json_text(raw))
    return tuple(row), failed


async def _copy(conn: AsyncConnection[Any], stream: Stream, rows: Iterable[Row]) -> int:
    names = [*(c.column for c in stream.columns), "_raw"]
    count = 0
    async with (
        conn.cursor() as cur,
        cur.copy(
            sql.SQL("COPY {} ({}) FROM STDIN").format(
                ident(DATA_SCHEMA, stream.table), sql.SQL(", ").join(ident(n) for n in names)
            )
        ) as copy,
    ):
        for row in rows:
            await copy.write_row(row)
            count += 1
    return count


async def replace_all(conn: AsyncConnection[Any], stream: Stream, rows: Sequence[Row]) -> int:
    """The whole table becomes ``rows``; readers see the old or the new list, never a mix."""
    async with conn.transaction():
        await conn.execute(sql.SQL("DELETE FROM {}").format(ident(DATA_SCHEMA, stream.table)))
        return await _copy(conn, stream, _unique(stream, rows))


async def replace_children(
    conn: AsyncConnection[Any], stream: Stream, parent_ids: Sequence[int], rows: Sequence[Row]
) -> int:
    """The rows of these parents become ``rows`` (inside the caller's transaction)."""
    await conn.execute(
        sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(
            ident(DATA_SCHEMA, stream.table), ident(stream.key[0])
        ),
        (list(parent_ids),),
    )
    return await _copy(conn, stream, _unique(stream, rows))


def scope_condition(stream: Stream) -> sql.Composed:
    """``true``, or the condition that picks this stream's rows in a table it shares."""
    terms = [
        sql.SQL("{} = {}").format(ident(column), sql.Literal(value))
        for column, value in stream.scope.items()
    ]
    return sql.SQL(" AND ").join(terms) if terms else sql.SQL("true").format()


async def last_id(conn: AsyncConnection[Any], stream: Stream) -> int:
    """The highest ID of this stream's rows (0 when it has none): a log reads on from there."""
    cur = await conn.execute(
        sql.SQL("SELECT coalesce(max(id), 0) FROM {} WHERE {}").format(
            ident(DATA_SCHEMA, stream.table), scope_condition(stream)
        )
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def append(conn: AsyncConnection[Any], stream: Stream, rows: Sequence[Row]) -> int:
    """Add the rows whose key is new; a row already stored is never rewritten (a log)."""
    staging = sql.Identifier(f"_append_{stream.name}")
    names = sql.SQL(", ").join(ident(n) for n in [*(c.column for c in stream.columns), "_raw"])
    async with conn.transaction():
        await conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            ).format(staging, ident(DATA_SCHEMA, stream.table))
        )
        async with (
            conn.cursor() as cur,
            cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(staging, names)) as copy,
        ):
            for row in _unique(stream, rows):
                await copy.write_row(row)
        cur = await conn.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                ident(DATA_SCHEMA, stream.table), names, names, staging
            )
        )
        return cur.rowcount


async def drop_unseen_parents(conn: AsyncConnection[Any], stream: Stream) -> int:
    """Delete rows whose parent the full refresh did not read (the parent was deleted), then
    forget what it read, in one transaction (as mirror.mark_deleted_unseen does for objects)."""
    async with conn.transaction():
        cur = await conn.execute(
            sql.SQL(
                "DELETE FROM {} AS t WHERE NOT EXISTS (SELECT 1 FROM b24sync.full_sync_seen s "
                "WHERE s.entity = %s AND s.id = t.{})"
            ).format(ident(DATA_SCHEMA, stream.table), ident(stream.key[0])),
            (stream.name,),
        )
        await mirror.forget_seen(conn, stream.name)
    return cur.rowcount


def _unique(stream: Stream, rows: Iterable[Row]) -> list[Row]:
    """The first row of each key: a portal that repeats an item must not break the load."""
    positions = [i for i, c in enumerate(stream.columns) if c.column in stream.key]
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for row in rows:
        key = tuple(row[i] for i in positions)
        if key not in seen and None not in key:
            seen.add(key)
            unique.append(row)
    return unique
