"""The loader alone: N records of a 100-column table into PostgreSQL, pages of 2,500 as a sync
writes them, each in its own transaction. Prints rows/s for a first load (inserts) and a second
load of changed records (updates), for two mixes of column types (see MIXES).

    .venv/bin/python bench/loader_bench.py --rows 50000

Without DATABASE_URL it starts an embedded PostgreSQL in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from b24sync.schema.planner import ColumnSpec, plan_table
from b24sync.schema.types import json_text
from b24sync.store import mirror
from b24sync.store.embedded import EmbeddedPostgres
from b24sync.store.migrate import migrate
from b24sync.sync.lanes import Turn, write_in_order
from cpu import cpu_seconds

PAGE = 2500
TABLE = "crm_bench"
# (Bitrix24 type, multiple, the value of record i), repeated over the columns
Mix = list[tuple[str, bool, Callable[[int], Any]]]
MIXES: dict[str, Mix] = {
    # the mix of the figure in #4 (8,500 rows/s with the loader converting in Python)
    "plain": [
        ("string", False, lambda i: "text value"),
        ("integer", False, lambda i: str(i * 7)),
        ("double", False, lambda i: "12.50"),
        ("datetime", False, lambda i: "2024-07-18T11:55:36+03:00"),
    ],
    # every column type, with the values a portal really sends, ugly ones included
    "portal": [
        ("string", False, lambda i: f"text value {i}"),
        ("integer", False, lambda i: str(i * 7)),
        ("double", False, lambda i: f"{i}.50"),
        ("datetime", False, lambda i: "2024-07-18T11:55:36+03:00"),
        ("money", False, lambda i: f"{i}.00|RUB"),
        ("boolean", False, lambda i: "Y" if i % 2 else "N"),
        ("date", False, lambda i: "0000-00-00" if i % 10 == 0 else "2024-07-18"),
        ("enumeration", False, lambda i: "" if i % 3 == 0 else str(40 + i % 5)),
        ("crm_status", False, lambda i: "NEW"),
        ("string", True, lambda i: [f"a{i}", "b"]),
    ],
}
COLUMNS = 99  # and id: a 100-column table (besides _raw, _synced_at, _deleted_at)


def bench_fields(mix: Mix) -> dict[str, dict[str, Any]]:
    return {
        f"UF_CRM_{j}": {"type": mix[j % len(mix)][0], "isMultiple": mix[j % len(mix)][1]}
        for j in range(COLUMNS)
    }


def bench_records(mix: Mix, rows: int, salt: int = 0) -> list[dict[str, Any]]:
    return [
        {"ID": str(i), **{f"UF_CRM_{j}": mix[j % len(mix)][2](i + salt) for j in range(COLUMNS)}}
        for i in range(1, rows + 1)
    ]


@dataclass
class Rate:
    """Rows per second of wall time, and per second of CPU spent by this process and its
    PostgreSQL backend together: the machine is shared, so wall time varies with the others'
    load; the CPU figure much less."""

    wall: float
    cpu: float | None  # None when the server is not on this machine

    def __str__(self) -> str:
        cpu = f"{self.cpu:.0f}" if self.cpu is not None else "n/a"
        return f"{self.wall:.0f} rows/s ({cpu} rows per CPU-second)"


async def load(
    conn: psycopg.AsyncConnection[Any],
    db_url: str,
    columns: list[ColumnSpec],
    records: list[dict[str, Any]],
) -> Rate:
    """Write ``records`` through the loader as a sync does: a page per transaction, two pages
    converting at once on two connections, committed in order (sync/lanes.py)."""
    backend_cpu: dict[int, tuple[float, float]] = {}  # backend -> CPU seconds first seen, last

    async def write(
        c: psycopg.AsyncConnection[Any], page: list[dict[str, Any]], turn: Turn
    ) -> None:
        pid = c.info.backend_pid
        seen = cpu_seconds(pid) or 0.0
        async with c.transaction():
            await mirror.upsert(c, TABLE, columns, page)
            await turn()
        backend_cpu[pid] = (backend_cpu.get(pid, (seen, 0.0))[0], cpu_seconds(pid) or 0.0)

    started, cpu_started = time.perf_counter(), time.process_time()
    await write_in_order(conn, db_url, pages_of(records), write)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if cpu_seconds(conn.info.backend_pid) is None:  # the server is not on this machine
        return Rate(len(records) / wall, None)
    backends = sum(last - first for first, last in backend_cpu.values())
    return Rate(len(records) / wall, len(records) / (cpu + backends))


async def pages_of(records: list[dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
    for offset in range(0, len(records), PAGE):
        yield records[offset : offset + PAGE]


async def copy_ceiling(conn: psycopg.AsyncConnection[Any], records: list[dict[str, Any]]) -> Rate:
    """PostgreSQL's own COPY of the records as (id, _raw jsonb) into a table of just those, a
    page per transaction, one connection: no conversion, no upsert, no typed column. What one
    backend can take in at all on this machine, for the loader's figures to be read against."""
    await conn.execute("CREATE TEMP TABLE copy_ceiling (id bigint PRIMARY KEY, _raw jsonb)")
    backend_before = cpu_seconds(conn.info.backend_pid)
    started, cpu_started = time.perf_counter(), time.process_time()
    for offset in range(0, len(records), PAGE):
        async with (
            conn.transaction(),
            conn.cursor().copy("COPY copy_ceiling (id, _raw) FROM STDIN") as copy,
        ):
            for record in records[offset : offset + PAGE]:
                await copy.write_row((int(record["ID"]), json_text(record)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    backend_after = cpu_seconds(conn.info.backend_pid)
    await conn.execute("DROP TABLE copy_ceiling")
    if backend_before is None or backend_after is None:
        return Rate(len(records) / wall, None)
    return Rate(len(records) / wall, len(records) / (cpu + backend_after - backend_before))


async def loader_rows_per_second(db_url: str, mix: Mix, rows: int) -> tuple[Rate, Rate, Rate]:
    """A first load into an empty table, then a load of every record changed; and the COPY
    ceiling of the same records."""
    plan = plan_table(mirror.DATA_SCHEMA, TABLE, {}, bench_fields(mix), "bench")
    first, changed = bench_records(mix, rows), bench_records(mix, rows, salt=1)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(f"DROP TABLE IF EXISTS {mirror.DATA_SCHEMA}.{TABLE}")
        for statement in plan.statements:
            await conn.execute(statement)
        inserted = await load(conn, db_url, plan.active, first)
        updated = await load(conn, db_url, plan.active, changed)
        await conn.execute(f"DROP TABLE {mirror.DATA_SCHEMA}.{TABLE}")
        ceiling = await copy_ceiling(conn, first)
    return inserted, updated, ceiling


@contextmanager
def database() -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp))
        try:
            yield server.start()
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=50000)
    parser.add_argument("--mix", choices=[*MIXES, "all"], default="all")
    args = parser.parse_args()
    with database() as db_url:
        migrate(db_url)
        for name in MIXES if args.mix == "all" else [args.mix]:
            inserts, updates, ceiling = asyncio.run(
                loader_rows_per_second(db_url, MIXES[name], args.rows)
            )
            print(
                f"loader, {args.rows} records of the {name} mix into a 100-column table: "
                f"inserted {inserts}; updated {updates}; PostgreSQL's COPY of (id, _raw) "
                f"alone, one connection: {ceiling}"
            )


if __name__ == "__main__":
    main()
