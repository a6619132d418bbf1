"""The loader converts in PostgreSQL: property tests that it agrees, value by value, with the
Python conversion (which the declared tables still use) on records of every Bitrix24 type,
ugly values included, and counts the same values as unfit."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from b24sync.schema.planner import ColumnSpec, plan_table
from b24sync.schema.types import TYPE_MAP, Unconvertible, converter
from b24sync.store import mirror

TABLE = "crm_loader_check"
# one field per Bitrix24 type of the map, a multiple one, and a type the map does not know
FIELDS: dict[str, dict[str, Any]] = {
    **{f"UF_{t.upper()}": {"type": t, "isMultiple": False} for t in TYPE_MAP},
    "UF_MULTIPLE": {"type": "string", "isMultiple": True},
    "UF_UNKNOWN": {"type": "resourcebooking", "isMultiple": False},
}
PLAN = plan_table(mirror.DATA_SCHEMA, TABLE, {}, FIELDS, "loader")

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
junk = st.one_of(
    st.none(),
    st.sampled_from(["", [], {}, "[]", "{}", "null", " ", "\x00", "a\x00b"]),
    text,
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(text, max_size=3),
    st.dictionaries(text, st.integers(), max_size=2),
)
numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.from_regex(r"\A *[+-]?[0-9]{0,4}(\.[0-9]{0,3})?([eE][+-]?[0-9]{1,5})? *\Z"),
    st.sampled_from(
        [
            "132000.00|RUB",
            "1500|USD|x",
            "|RUB",
            "12.5|",
            "1e400",
            "1e999",
            "1e1000",
            "-1e-999",
            "0e-5000",
            "-0",
            ".5",
            "5.",
            ".",
            "NaN",
            "Infinity",
            "0x1F",
            "1_000",
            " 12 ",
            "\t12",
            "+5",
            "1e3",
            "1.0",
            "1.5",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "000000000000000000001",
            "1" * 1001,
            "٣",
            "²",
        ]
    ),
)
booleans = st.builds(
    lambda word, left, right, upper: " " * left + (word.upper() if upper else word) + " " * right,
    st.sampled_from(["Y", "N", "y", "n", "1", "0", "true", "False", "yes", "T", "ſ", "on"]),
    st.integers(0, 2),
    st.integers(0, 2),
    st.booleans(),
)


@st.composite
def moments(draw: st.DrawFn) -> str:
    """Dates and date-times near and beyond the grammar: odd separators, ranges, offsets."""
    year = draw(st.sampled_from(["0000", "0001", "1970", "2024", "9999", "10000", "24"]))
    month = draw(st.sampled_from(["00", "01", "02", "07", "12", "13", "7"]))
    day = draw(st.sampled_from(["00", "01", "18", "28", "29", "30", "31", "32"]))
    stamp = f"{year}-{month}-{day}"
    if draw(st.booleans()):
        separator = draw(st.sampled_from(["T", " ", "t", "_", "  "]))
        hour = draw(st.sampled_from(["00", "11", "23", "24", "25", "1"]))
        minute = draw(st.sampled_from(["00", "55", "59", "60"]))
        second = draw(st.sampled_from(["", ":00", ":36", ":59", ":60", ":61"]))
        fraction = draw(st.sampled_from(["", ".1", ".123456", ".1234567"])) if second else ""
        offset = draw(
            st.sampled_from(
                [
                    *("", "Z", "+03:00", "-05:30", "+0300", "+03", "+15:59", "+16:00", "+03:60"),
                    *("-00:00", " +03:00", "z", "+3", "+03:0", "UTC"),
                ]
            )
        )
        stamp += f"{separator}{hour}:{minute}{second}{fraction}{offset}"
    return stamp


@st.composite
def spoiled(draw: st.DrawFn, values: st.SearchStrategy[str]) -> str:
    """A value with a few of its characters replaced: junk where a digit should be."""
    chars = list(draw(values))
    for _ in range(draw(st.integers(1, 3)) if chars else 0):
        chars[draw(st.integers(0, len(chars) - 1))] = draw(st.sampled_from("05-:T +.Za|e,١"))
    return "".join(chars)


BY_COLUMN_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "bigint": st.one_of(numbers, spoiled(numbers)),
    "numeric": st.one_of(numbers, spoiled(numbers)),
    "boolean": booleans,
    "timestamptz": st.one_of(moments(), spoiled(moments())),
    "date": st.one_of(moments(), spoiled(moments())),
    "text": text,
    "jsonb": st.lists(text, max_size=3),
}


def records() -> st.SearchStrategy[list[dict[str, Any]]]:
    record = st.fixed_dictionaries(
        {
            c.field_name: st.one_of(junk, BY_COLUMN_TYPE[c.pg_type])
            for c in PLAN.active
            if c.field_name != "ID"
        }
    )
    return st.lists(record, min_size=1, max_size=12).map(
        lambda rs: [{"ID": str(i), **r} for i, r in enumerate(rs, start=1)]
    )


def python_conversion(
    columns: list[ColumnSpec], record: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    values, unfit = {}, 0
    for column in columns:
        try:
            values[column.column_name] = converter(column.pg_type)(record.get(column.field_name))
        except Unconvertible:
            values[column.column_name] = None
            unfit += 1
    return values, unfit


def as_json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def same(column: ColumnSpec, python: Any, stored: Any, raw: Any) -> bool:
    """A text column holds a non-text value as JSON: PostgreSQL's jsonb writes it (key order,
    number form) its own way, so that one compares as JSON; everything else compares exactly."""
    if column.pg_type == "jsonb" and python is not None:
        return bool(as_json(python) == as_json(json.dumps(stored)))
    if column.pg_type == "text" and python is not None and not isinstance(raw, str):
        return bool(as_json(python) == as_json(stored))
    return bool(python == stored)


async def load(url: str, batch: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        async with conn.transaction():
            written = await mirror.upsert(conn, TABLE, PLAN.active, batch)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(f"SELECT * FROM {mirror.DATA_SCHEMA}.{TABLE} ORDER BY id")
        rows = await cur.fetchall()
        await conn.execute(f"TRUNCATE {mirror.DATA_SCHEMA}.{TABLE}")
        await conn.commit()
    return rows, written.unfit


@pytest.fixture
def loader_table(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        for statement in PLAN.statements:
            conn.execute(statement)
    return database_url


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=records())
def test_sql_conversion_agrees_with_python_value_by_value(
    loader_table: str, batch: list[dict[str, Any]]
) -> None:
    rows, unfit = asyncio.run(load(loader_table, batch))
    assert [row["id"] for row in rows] == [int(r["ID"]) for r in batch]
    expected_unfit = 0
    for record, row in zip(batch, rows, strict=True):
        python, record_unfit = python_conversion(PLAN.active, record)
        expected_unfit += record_unfit
        for column in PLAN.active:
            name = column.column_name
            raw = record.get(column.field_name)
            assert same(column, python[name], row[name], raw), (
                column,
                raw,
                python[name],
                row[name],
            )
    assert unfit == expected_unfit


def test_portal_quirks_load_as_documented(loader_table: str) -> None:
    """The values the portal really sends, each with the value its column holds."""
    record = {
        "ID": "7",
        "UF_DOUBLE": "",
        "UF_MONEY": "132000.00|RUB",
        "UF_CHAR": "Y",
        "UF_BOOLEAN": "0",
        "UF_DATE": "0000-00-00",
        "UF_DATETIME": "2024-07-18T11:55:36+03:00",
        "UF_INTEGER": "92233720368547758070",
        "UF_ENUMERATION": [],
        "UF_MULTIPLE": ["a", "b"],
        "UF_STRING": "",
    }
    rows, unfit = asyncio.run(load(loader_table, [record]))
    row = rows[0]
    assert str(row["uf_money"]) == "132000.00" and row["uf_double"] is None
    assert row["uf_char"] is True and row["uf_boolean"] is False
    assert row["uf_date"] is None and row["uf_integer"] is None  # unfit: kept in _raw only
    assert row["uf_datetime"].utcoffset() is not None
    assert row["uf_datetime"].isoformat() != "" and row["uf_multiple"] == ["a", "b"]
    assert row["uf_enumeration"] is None and row["uf_string"] is None  # empty: not unfit
    assert (
        row["_raw"]["UF_DATE"] == "0000-00-00" and row["_raw"]["UF_INTEGER"] == record["UF_INTEGER"]
    )
    assert unfit == 2


def test_a_table_of_no_fields_but_its_id_loads(database_url: str) -> None:
    plan = plan_table(mirror.DATA_SCHEMA, "crm_bare", {}, {}, "bare")

    async def load_bare() -> tuple[int, int]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            for statement in plan.statements:
                await conn.execute(statement)
            async with conn.transaction():
                written = await mirror.upsert(conn, "crm_bare", plan.active, [{"ID": "3"}])
            return written.upserted, written.unfit

    assert asyncio.run(load_bare()) == (1, 0)
