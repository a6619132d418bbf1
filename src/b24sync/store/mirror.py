"""Writes the mirrored tables: DDL plans, field snapshots, COPY-based upserts, checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, AsyncRawCursor, sql
from psycopg.types.array import ListBinaryDumper
from psycopg.types.json import Jsonb

from b24sync.schema.identifiers import ident
from b24sync.schema.planner import ColumnSpec, Plan
from b24sync.schema.types import CAN_BE_UNFIT, json_bytes, sql_cast, sql_present

DATA_SCHEMA = "bitrix24"


async def load_snapshot(conn: AsyncConnection[Any], entity: str) -> dict[str, ColumnSpec]:
    rows = await (
        await conn.execute(
            "SELECT field_name, column_name, bitrix_type, pg_type, is_multiple, coalesce(title, ''), "
            "definition, removed_at IS NOT NULL FROM b24sync.field_snapshots WHERE entity = %s",
            (entity,),
        )
    ).fetchall()
    return {r[0]: ColumnSpec(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows}


async def apply_plan(conn: AsyncConnection[Any], entity: str, plan: Plan) -> None:
    """Run the plan's DDL (inside the caller's transaction).

    DDL of different entities is serialised: syncs of two entities running side by side would
    otherwise race on ``CREATE SCHEMA IF NOT EXISTS`` (a unique violation in pg_namespace).
    """
    if plan.statements:
        await lock_ddl(conn)
    for statement in plan.statements:
        await conn.execute(statement)
    for spec in plan.columns.values():
        await conn.execute(
            "INSERT INTO b24sync.field_snapshots AS s (entity, field_name, column_name, bitrix_type, "
            "pg_type, is_multiple, title, definition, removed_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END) "
            "ON CONFLICT (entity, field_name) DO UPDATE SET bitrix_type = EXCLUDED.bitrix_type, "
            "pg_type = EXCLUDED.pg_type, is_multiple = EXCLUDED.is_multiple, title = EXCLUDED.title, "
            "definition = EXCLUDED.definition, updated_at = now(), "
            "removed_at = CASE WHEN %s THEN coalesce(s.removed_at, now()) END",
            (
                entity,
                spec.field_name,
                spec.column_name,
                spec.bitrix_type,
                spec.pg_type,
                spec.is_multiple,
                spec.title,
                Jsonb(spec.definition),
                spec.removed,
                spec.removed,
            ),
        )


async def lock_ddl(conn: AsyncConnection[Any]) -> None:
    """Serialise DDL of the mirror across sessions, until the transaction ends.

    Take it before the transaction looks anything up in the catalog: an advisory lock does not
    refresh the session's catalog cache, so a schema another session created while this one
    waited could still look missing, and ``CREATE SCHEMA IF NOT EXISTS`` would then fail.
    """
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('b24sync.ddl'))")


async def run_ddl(conn: AsyncConnection[Any], statements: Sequence[sql.Composed]) -> None:
    """Statements in one transaction, serialised with every other DDL of the mirror."""
    async with conn.transaction():
        await lock_ddl(conn)
        for statement in statements:
            await conn.execute(statement)


async def relation_exists(conn: AsyncConnection[Any], name: str) -> bool:
    row = await (
        await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{DATA_SCHEMA}.{name}",))
    ).fetchone()
    return bool(row and row[0])


@dataclass
class Written:
    upserted: int  # rows inserted or changed
    unfit: int  # values that did not fit their column: NULL there, kept in `_raw`


# Names of the page query's columns: the value's text, and its typed form.
_TEXT, _TYPED = "t{}", "c{}"


def _has_input_check(conn: AsyncConnection[Any]) -> bool:
    return conn.info.server_version >= 160000


def validity_function(conn: AsyncConnection[Any]) -> sql.Composable:
    """``pg_input_is_valid`` where the server has it (16+); before, the migration's
    ``b24sync.input_is_valid``, which tries the cast in a plpgsql exception block: slower (a
    subtransaction per value), so the casts ask it only for text the grammar already admits."""
    if _has_input_check(conn):
        return sql.SQL("pg_input_is_valid")
    return sql.SQL("b24sync.input_is_valid")


def _page_query(table: str, columns: Sequence[ColumnSpec], valid: sql.Composable) -> sql.Composed:
    """One statement: the page's records ($1 their IDs, $2 a JSON array of the records in the
    same order) cast into the typed columns, upserted, and the count of written rows and of
    unfit values.

    Levels, each kept apart by ``OFFSET 0`` so PostgreSQL evaluates it once a row: ``parsed``
    pairs each ID with its record (the array is parsed once, as a whole); ``page`` takes
    each field's text once; ``converted`` casts it (types.sql_cast, the type map's own expressions);
    ``typed`` keeps what the insert and the count need (not the texts) for both to read.
    """
    fields = [sql.Literal(c.field_name) for c in columns]
    value = [sql.SQL("r -> {}").format(f) for f in fields]
    text = [ident(_TEXT.format(i)) for i in range(len(columns))]
    typed = [ident(_TYPED.format(i)) for i in range(len(columns))]
    names = [ident(c.column_name) for c in columns]
    unfit = [
        sql.SQL("CASE WHEN {} IS NULL AND {} THEN 1 ELSE 0 END").format(
            typed[i], sql_present(text[i], value[i])
        )
        for i, c in enumerate(columns)
        if c.pg_type in CAN_BE_UNFIT
    ]

    def each(parts: Sequence[sql.Composable]) -> sql.Composable:  # ", a, b" or nothing
        return sql.SQL("").join(sql.SQL(", ") + part for part in parts)

    return sql.SQL(
        "WITH typed AS MATERIALIZED (SELECT id, r{typed}, {unfit} AS unfit FROM ("
        "SELECT page.*{casts} FROM ("
        "SELECT id, r{texts} FROM (SELECT id, r FROM ROWS FROM (unnest($1::bigint[]), "
        "jsonb_array_elements(convert_from($2, 'UTF8')::jsonb)) AS staged (id, r) OFFSET 0) parsed "
        "OFFSET 0) page OFFSET 0) converted), "
        "written AS (INSERT INTO {target} AS t (id, _raw, _synced_at{names}) "
        "SELECT id, r, now(){typed} FROM typed "
        "ON CONFLICT (id) DO UPDATE SET {updates}, _deleted_at = NULL "
        "WHERE t._raw IS DISTINCT FROM EXCLUDED._raw OR t._deleted_at IS NOT NULL RETURNING 1) "
        "SELECT (SELECT count(*) FROM written), (SELECT coalesce(sum(unfit), 0) FROM typed)"
    ).format(
        casts=each(
            [
                sql.SQL("{} AS {}").format(sql_cast(c.pg_type, text[i], value[i], valid), typed[i])
                for i, c in enumerate(columns)
            ]
        ),
        texts=each(
            [sql.SQL("r ->> {} AS {}").format(fields[i], text[i]) for i in range(len(columns))]
        ),
        target=ident(DATA_SCHEMA, table),
        names=each(names),
        typed=each(typed),
        updates=sql.SQL(", ").join(
            sql.SQL("{} = EXCLUDED.{}").format(n, n)
            for n in [ident("_raw"), ident("_synced_at"), *names]
        ),
        unfit=sql.SQL(" + ").join(unfit) if unfit else sql.Literal(0),
    )


_STATEMENTS: dict[tuple[object, ...], bytes] = {}
_STATEMENTS_KEPT = 64


def _page_statement(conn: AsyncConnection[Any], table: str, columns: Sequence[ColumnSpec]) -> bytes:
    """The page query of these columns, composed once: a hundred columns take milliseconds of
    Python to compose and quote, every page. Its text depends on the connection only through
    the server's version and the client's encoding."""
    key = (
        table,
        _has_input_check(conn),
        conn.info.encoding,
        *((c.field_name, c.column_name, c.pg_type) for c in columns),
    )
    statement = _STATEMENTS.get(key)
    if statement is None:
        if len(_STATEMENTS) >= _STATEMENTS_KEPT:
            _STATEMENTS.clear()
        statement = _page_query(table, columns, validity_function(conn)).as_bytes(conn)
        _STATEMENTS[key] = statement
    return statement


async def upsert(
    conn: AsyncConnection[Any],
    table: str,
    columns: Sequence[ColumnSpec],
    records: Sequence[dict[str, Any]],
    id_field: str = "ID",
) -> Written:
    """Send the records as they came (id, JSON) in one INSERT .. SELECT .. ON CONFLICT that
    casts them into the typed columns; unchanged `_raw` is skipped. A record read twice in one
    page is written once, as last read.

    PostgreSQL converts, so Python only serialises each record once. Runs inside the caller's
    transaction, so the checkpoint commits with the data.
    """
    if not records:
        return Written(0, 0)
    latest = {int(record[id_field]): record for record in records}
    ids = sorted(latest)
    # The page's JSON as one array, not a value a record: orjson's bytes of a record take about
    # five times their length in memory, and pages in flight made that 100 MB of a large sync.
    page = json_bytes([latest[i] for i in ids])
    # $n parameters, sent as they are: the query's literals (field names) may hold a `%`
    async with AsyncRawCursor(conn) as cur:
        cur.adapters.register_dumper(list, ListBinaryDumper)  # arrays in binary: no escaping
        await cur.execute("SET LOCAL work_mem = '64MB'")  # a page's typed rows stay in memory
        await cur.execute(_page_statement(conn, table, columns), [ids, page])
        row = await cur.fetchone()
    assert row is not None
    return Written(int(row[0]), int(row[1]))


async def note_seen(conn: AsyncConnection[Any], entity: str, ids: Sequence[int]) -> None:
    """Remember IDs a full sync has read; committed with the page and its checkpoint."""
    await conn.execute(
        "INSERT INTO b24sync.full_sync_seen (entity, id) SELECT %s, unnest(%s::bigint[]) "
        "ON CONFLICT DO NOTHING",
        (entity, list(ids)),
    )


async def forget_seen(conn: AsyncConnection[Any], entity: str) -> None:
    await conn.execute("DELETE FROM b24sync.full_sync_seen WHERE entity = %s", (entity,))


async def mark_deleted_unseen(conn: AsyncConnection[Any], entity: str, table: str) -> int:
    """Soft-delete every live row the full sync did not read, then forget what it read.

    The IDs live in PostgreSQL, not in the process: a run resumed after a crash knows what the
    first attempt read, and a million IDs cost no memory here.
    """
    cur = await conn.execute(
        sql.SQL(
            "UPDATE {} AS t SET _deleted_at = now() WHERE t._deleted_at IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM b24sync.full_sync_seen s WHERE s.entity = %s AND s.id = t.id)"
        ).format(ident(DATA_SCHEMA, table)),
        (entity,),
    )
    await forget_seen(conn, entity)
    return cur.rowcount


async def mark_absent(
    conn: AsyncConnection[Any], table: str, intervals: Sequence[tuple[int, int]]
) -> int:
    """Soft-delete the live rows with IDs in these intervals ``[lo, hi]``, which a full sync
    read whole from the portal and found empty; committed with the page that read them.

    The intervals are written into the statement: the planner then scans the key's index for
    each, where a join with them as an array (sizes unknown) scans the whole table a page.
    """
    if not intervals:
        return 0
    cur = await conn.execute(
        sql.SQL("UPDATE {} SET _deleted_at = now() WHERE _deleted_at IS NULL AND ({})").format(
            ident(DATA_SCHEMA, table),
            sql.SQL(" OR ").join(
                sql.SQL("id BETWEEN {} AND {}").format(sql.Literal(lo), sql.Literal(hi))
                for lo, hi in intervals
            ),
        )
    )
    return cur.rowcount


async def mark_deleted(conn: AsyncConnection[Any], table: str, ids: Sequence[int]) -> int:
    cur = await conn.execute(
        sql.SQL(
            "UPDATE {} SET _deleted_at = now() WHERE _deleted_at IS NULL AND id = ANY(%s)"
        ).format(ident(DATA_SCHEMA, table)),
        (list(ids),),
    )
    return cur.rowcount
