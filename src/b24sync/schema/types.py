"""The one Bitrix24 -> PostgreSQL type map, and value conversions keyed by column type.

Each conversion exists twice, from one grammar: as a Python converter (the declared tables'
rows) and as a PostgreSQL expression (the mirror's loader casts the raw records in SQL);
tests/test_loader.py holds them to the same value, value by value. Conversions are chosen by the
*column's* type, so a column widened to text after a type change keeps receiving values it can
hold. A value that does not convert becomes NULL (it is still in ``_raw``) and is counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from psycopg import sql

# Bitrix24 field types (crm.*.fields `type`, user-field USER_TYPE_ID) -> PostgreSQL type.
TYPE_MAP: dict[str, str] = {
    "integer": "bigint",
    "double": "numeric",
    "char": "boolean",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamptz",
    "string": "text",
    "url": "text",
    "address": "text",
    "location": "text",
    "crm": "text",
    "crm_status": "text",
    "crm_currency": "text",
    "crm_category": "bigint",
    "crm_company": "bigint",
    "crm_contact": "bigint",
    "crm_lead": "bigint",
    "crm_quote": "bigint",
    "crm_entity": "bigint",
    "user": "bigint",
    "employee": "bigint",
    "enumeration": "bigint",
    "iblock_element": "bigint",
    "iblock_section": "bigint",
    "money": "numeric",
    "crm_multifield": "jsonb",
    "file": "jsonb",
    # activities (crm-activity-fields.md): codes of documented lists, and structures
    "crm_enum_ownertype": "bigint",
    "crm_enum_activitytype": "bigint",
    "crm_enum_activitystatus": "bigint",
    "crm_enum_activitypriority": "bigint",
    "crm_enum_activitynotifytype": "bigint",
    "crm_enum_activitydirection": "bigint",
    "crm_enum_contenttype": "bigint",
    "object": "jsonb",
    "diskfile": "jsonb",
    "crm_activity_binding": "jsonb",
    "crm_activity_communication": "jsonb",
}
FALLBACK = "text"
# widening: (stored, wanted) -> type that holds both without losing data
_WIDER = {
    ("bigint", "numeric"): "numeric",
    ("numeric", "bigint"): "numeric",
    ("date", "timestamptz"): "timestamptz",
    ("timestamptz", "date"): "timestamptz",
}


class Unconvertible(ValueError):
    """The value does not fit the column type."""


def pg_type(bitrix_type: str, is_multiple: bool) -> str:
    return "jsonb" if is_multiple else TYPE_MAP.get(bitrix_type, FALLBACK)


def widened(stored: str, wanted: str) -> str:
    """The column type after a field's type changed: never narrower than what is stored."""
    if stored == wanted:
        return stored
    return _WIDER.get((stored, wanted), "text")


# The forms a value may take, one grammar for both loaders. NUMBER is a pattern that Python's
# ``re`` and PostgreSQL's ``~`` read alike (ASCII classes, groups, ``?``, ``{m,n}``, ``|``). A
# date or date-time is judged by its shape, the text with every digit made ``#`` (``translate``
# in PostgreSQL, ``str.translate`` here): far cheaper than a pattern in PostgreSQL. Within a
# shape each side's own parser then refuses what is not a real moment (2024-02-30, the portal's
# 0000-00-00, 25:00); PostgreSQL's also takes 24:00:00 and a 60th second, which the SQL refuses
# apart, and Python's takes offsets beyond PostgreSQL's 15:59, which _offset_fits refuses.
NUMBER = r" *[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})? *"
NUMBER_MAX_LENGTH = 1000  # with a 3-digit exponent, far inside numeric's range
DIGITS, DIGIT_MARKS = "0123456789", "#" * 10
_TO_SHAPE = str.maketrans(DIGITS, DIGIT_MARKS)
_DAY = "####-##-##"
_TIMES = ("##:##", "##:##:##", *(f"##:##:##.{'#' * n}" for n in range(1, 7)))
_OFFSETS = ("Z", *(sign + hours for sign in "+-" for hours in ("##", "####", "##:##")))
# an instant needs its offset
TIMESTAMPTZ_SHAPES = frozenset(
    f"{_DAY}{separator}{time}{offset}"
    for separator in "T "
    for time in _TIMES
    for offset in _OFFSETS
)
# a date-time in a date column gives its date as written
DATE_SHAPES = frozenset(
    {_DAY}
    | {
        f"{_DAY}{separator}{time}{offset}"
        for separator in "T "
        for time in _TIMES
        for offset in ("", *_OFFSETS)
    }
)
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
TRUE_WORDS = ("Y", "1", "TRUE")
FALSE_WORDS = ("N", "0", "FALSE")


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _number(text: str) -> Decimal:
    if len(text) > NUMBER_MAX_LENGTH or not re.fullmatch(NUMBER, text):
        raise Unconvertible(text)
    return Decimal(text)


def _bigint(value: Any) -> int:
    number = _number(str(value))
    if number != int(number) or not BIGINT_MIN <= number <= BIGINT_MAX:
        raise Unconvertible(value)
    return int(number)


def _numeric(value: Any) -> Decimal:
    return _number(str(value).split("|", 1)[0])  # money: "1500.00|RUB"


def _boolean(value: Any) -> bool:
    text = str(value).strip(" ")
    word = text.upper() if text.isascii() else text
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise Unconvertible(value)


def _offset_fits(text: str) -> bool:
    """Whether a date-time's offset, if any, is within PostgreSQL's ±15:59 (of a known shape)."""
    tail = text[len(_DAY) + 6 :]  # after the hours and minutes
    sign = max(tail.rfind("+"), tail.rfind("-"))
    if sign < 0:
        return True
    digits = tail[sign + 1 :].replace(":", "")
    return int(digits[:2]) <= 15 and int(digits[2:] or "0") <= 59


def _moment(value: Any, shapes: frozenset[str]) -> datetime:
    text = str(value)
    if text.translate(_TO_SHAPE) not in shapes or not _offset_fits(text):
        raise Unconvertible(value)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise Unconvertible(value) from None


def _timestamptz(value: Any) -> datetime:
    return _moment(value, TIMESTAMPTZ_SHAPES)


def _date(value: Any) -> date:
    return _moment(value, DATE_SHAPES).date()


def without_nul(text: str) -> str:
    """PostgreSQL text and jsonb cannot hold NUL; it is the one character we drop."""
    return text.replace("\x00", "")


def without_nuls(value: Any) -> Any:
    """``value`` with NUL dropped from every string in it, keys included.

    This works on values, never on serialised JSON: the six characters ``\\u0000`` typed into a
    title serialise as ``\\\\u0000`` and must come back exactly as typed.
    """
    if isinstance(value, str):
        return without_nul(value)
    if isinstance(value, dict):
        return {without_nul(str(k)): without_nuls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nuls(v) for v in value]
    return value


def _dumps(value: Any) -> bytes:
    """orjson, ten times faster than ``json`` (a record of a hundred fields in 2 µs); it writes
    all that JSON can hold but integers beyond 64 bits, which ``json`` then writes."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False).encode()


def json_bytes(value: Any) -> bytes:
    """``value`` as UTF-8 JSON, with NUL dropped from its strings."""
    data = _dumps(value)
    if b"\\u0000" not in data:  # the common case: one pass, no copy of the value
        return data
    return _dumps(without_nuls(value))


def json_text(value: Any) -> str:
    return json_bytes(value).decode()


def _text(value: Any) -> str:
    return without_nul(value) if isinstance(value, str) else json_text(value)


def _jsonb(value: Any) -> str:
    return json_text(value)


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "bigint": _bigint,
    "numeric": _numeric,
    "boolean": _boolean,
    "timestamptz": _timestamptz,
    "date": _date,
    "text": _text,
    "jsonb": _jsonb,
}


# The same conversions as PostgreSQL expressions, for the loader's INSERT .. SELECT. In each,
# {text} is the value as text (``_raw ->> field``: NULL when absent or JSON null, the JSON of an
# array or object), {value} the value as jsonb, {valid} a function like PostgreSQL 16's
# ``pg_input_is_valid(text, type)`` (the loader picks it), and {number} .. {date_shapes} the
# grammar above. A value that does not fit yields NULL, as Unconvertible does in Python.
# PostgreSQL's patterns cost about half a microsecond a value, so the forms the portal sends
# (digits, 1500.00|RUB, Y/N) are tried first by a cheaper test that admits only what NUMBER
# admits, and a length is taken in bytes (``octet_length``, no decoding) where a pattern has
# already admitted only ASCII. A shape is looked up among the keys of a jsonb object (a binary
# search): an ``IN`` list of a hundred shapes in a select list is searched one by one.


def _moment_cast(shapes: str, checked_as: str, moment: str) -> str:
    """The cast of a date or date-time: the grammar's shapes, the type whose input function
    tells a real moment, and the value. 24:00:00 and a 60th second: PostgreSQL reads them,
    Python (and so the grammar) does not."""
    return (
        f"CASE WHEN {shapes} ? translate({{text}}, {{digits}}, {{digit_marks}})"
        " AND {text} NOT LIKE '___________24%' AND {text} NOT LIKE '_________________60%'"
        f" AND {{valid}}({{text}}, '{checked_as}') THEN {moment} END"
    )


_SQL_CASTS: dict[str, str] = {
    "bigint": (
        "CASE WHEN octet_length({text}) <= 18 AND {text} ~ '^[0-9]+$' THEN {text}::bigint"
        " WHEN NOT (octet_length({text}) <= {number_max_length} AND {text} ~ {number}) THEN NULL"
        " WHEN mod({text}::numeric, 1) <> 0 THEN NULL"
        " WHEN {text}::numeric BETWEEN {bigint_min} AND {bigint_max}"
        " THEN {text}::numeric::bigint END"
    ),
    "numeric": (
        "CASE WHEN octet_length({text}) <= {number_max_length}"
        " AND {text} ~ '^[0-9]+([.][0-9]+)?([|].*)?$' THEN split_part({text}, '|', 1)::numeric"
        " WHEN split_part({text}, '|', 1) ~ {number}"
        " AND octet_length(split_part({text}, '|', 1)) <= {number_max_length}"
        " THEN split_part({text}, '|', 1)::numeric END"
    ),
    "boolean": (
        "CASE {text} WHEN 'Y' THEN true WHEN 'N' THEN false ELSE"
        " CASE WHEN upper(btrim({text}, ' ') COLLATE \"C\") IN ({true}) THEN true"
        " WHEN upper(btrim({text}, ' ') COLLATE \"C\") IN ({false}) THEN false END END"
    ),
    "timestamptz": _moment_cast("{timestamptz_shapes}", "timestamptz", "{text}::timestamptz"),
    "date": _moment_cast("{date_shapes}", "timestamp", "left({text}, 10)::date"),
    "text": "CASE WHEN {present} THEN {text} END",
    "jsonb": "nullif({value}, 'null')",
}
# Not empty, in SQL: what _empty() says in Python, for a non-NULL {text}. Three bytes or more
# are never empty.
_SQL_PRESENT = (
    "(octet_length({text}) > 2"
    " OR ({text} <> '' AND NOT ({text} IN ('[]', '{{}}') AND jsonb_typeof({value}) <> 'string')))"
)
CAN_BE_UNFIT = frozenset(("bigint", "numeric", "boolean", "timestamptz", "date"))


def _literals(values: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Literal(v) for v in sorted(values))


def _key_set(values: Iterable[str]) -> sql.Composable:
    """A jsonb object with these keys, for ``?``."""
    return sql.SQL("{}::jsonb").format(sql.Literal(json.dumps(dict.fromkeys(sorted(values), 0))))


_SQL_GRAMMAR: dict[str, sql.Composable] = {
    "number": sql.Literal(f"^(?:{NUMBER})$"),
    "number_max_length": sql.Literal(NUMBER_MAX_LENGTH),
    "bigint_min": sql.Literal(BIGINT_MIN),
    "bigint_max": sql.Literal(BIGINT_MAX),
    "true": _literals(TRUE_WORDS),
    "false": _literals(FALSE_WORDS),
    "digits": sql.Literal(DIGITS),
    "digit_marks": sql.Literal(DIGIT_MARKS),
    "timestamptz_shapes": _key_set(TIMESTAMPTZ_SHAPES),
    "date_shapes": _key_set(DATE_SHAPES),
}


def sql_present(text: sql.Composable, value: sql.Composable) -> sql.Composed:
    """Whether a value is there to convert (not NULL, '', [] or {}); NULL when {text} is NULL."""
    return sql.SQL(_SQL_PRESENT).format(text=text, value=value)


def sql_cast(
    column_type: str, text: sql.Composable, value: sql.Composable, valid: sql.Composable
) -> sql.Composed:
    """The PostgreSQL expression of ``converter(column_type)``: the same value, or NULL where
    Python raises Unconvertible (empty values are NULL too, and not unfit)."""
    return sql.SQL(_SQL_CASTS[column_type]).format(
        text=text,
        value=value,
        valid=valid,
        present=sql_present(text, value),
        **_SQL_GRAMMAR,
    )


def converter(column_type: str) -> Callable[[Any], Any]:
    """The converter for one column type: None for empty; raises Unconvertible."""
    cast = CONVERTERS[column_type]
    structured_ok = column_type in ("jsonb", "text")

    def convert_value(value: Any) -> Any:
        if isinstance(value, str):
            value = without_nul(value)  # as in `_raw`, which the SQL path converts
        if value is None or (column_type != "jsonb" and _empty(value)):
            return None
        if not structured_ok and isinstance(value, (list, dict)):
            raise Unconvertible(value)
        return cast(value)

    return convert_value


def convert(column_type: str, value: Any) -> Any:
    return converter(column_type)(value)
