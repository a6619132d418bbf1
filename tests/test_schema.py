"""Identifiers, the type map and the DDL planner: pure functions, property-tested."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b24sync.errors import UnsafeIdentifier
from b24sync.schema.identifiers import SYSTEM_COLUMNS, column_name, ident, validated
from b24sync.schema.planner import plan_table
from b24sync.schema.types import Unconvertible, convert, pg_type, widened

hostile = st.text(min_size=1, max_size=120)


@given(hostile)
def test_column_name_is_always_safe_and_short(name: str) -> None:
    column = column_name(name)
    assert validated(column) == column
    assert len(column.encode()) <= 63
    assert column == column.lower()


@given(hostile)
def test_column_name_is_deterministic(name: str) -> None:
    assert column_name(name) == column_name(name)


@given(st.lists(hostile, min_size=2, max_size=30, unique=True))
def test_column_names_never_collide_within_a_table(names: list[str]) -> None:
    taken: set[str] = set()
    for name in names:
        if name.upper() == "ID":
            continue
        column = column_name(name, taken)
        assert column not in taken
        assert column not in SYSTEM_COLUMNS
        taken.add(column)


def test_documented_examples() -> None:
    assert column_name("TITLE") == "title"
    assert column_name("UF_CRM_1700000000") == "uf_crm_1700000000"
    assert column_name("ID") == "id"
    assert column_name("_RAW") != "_raw"


@pytest.mark.parametrize("bad", ['a"; DROP TABLE x; --', "Upper", "", "1abc", "a" * 64])
def test_ident_refuses_unsafe_names(bad: str) -> None:
    with pytest.raises(UnsafeIdentifier):
        ident(bad)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(
        hostile,
        st.sampled_from(
            [
                "string",
                "integer",
                "double",
                "date",
                "crm_multifield",
                "weird_type",
                "enumeration",
                "money",
            ]
        ),
        min_size=1,
        max_size=8,
    )
)
def test_planned_ddl_runs_on_postgres(database_url: str, fields: dict[str, str]) -> None:
    portal_fields = {
        name: {"type": t, "isMultiple": False, "title": name} for name, t in fields.items()
    }
    plan = plan_table("bitrix24", "crm_fuzz", {}, portal_fields, "fuzz")
    with psycopg.connect(database_url) as conn:
        for statement in plan.statements:
            conn.execute(statement)
        conn.rollback()


def test_type_map_and_converters() -> None:
    assert pg_type("integer", False) == "bigint"
    assert pg_type("crm_multifield", True) == "jsonb"
    assert pg_type("something_new", False) == "text"
    assert convert("numeric", "1500.00|RUB") == Decimal("1500.00")
    assert convert("boolean", "Y") is True and convert("boolean", "0") is False
    assert convert("bigint", "") is None
    assert convert("timestamptz", "2024-07-18T11:55:36+03:00").utcoffset().total_seconds() == 10800
    with pytest.raises(Unconvertible):
        convert("bigint", "12abc")
    with pytest.raises(Unconvertible):
        convert("timestamptz", "18.07.2024")


def test_widening_never_narrows() -> None:
    assert widened("bigint", "numeric") == "numeric"
    assert widened("numeric", "bigint") == "numeric"
    assert widened("bigint", "text") == "text"
    assert widened("boolean", "bigint") == "text"
    assert widened("date", "timestamptz") == "timestamptz"
