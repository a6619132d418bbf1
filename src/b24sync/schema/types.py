"""The one Bitrix24 -> PostgreSQL type map, and value converters keyed by column type.

Converters are chosen by the *column's* type, so a column widened to text after a type change
keeps receiving values it can hold. A value that does not convert becomes NULL (it is still in
``_raw``) and is counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

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


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _bigint(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise Unconvertible(value) from None
    if number != number.to_integral_value() or abs(number) >= 2**63:
        raise Unconvertible(value)
    return int(number)


def _numeric(value: Any) -> Decimal:
    text = str(value).split("|", 1)[0]  # money: "1500.00|RUB"
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise Unconvertible(value) from None
    if not number.is_finite():
        raise Unconvertible(value)
    return number


def _boolean(value: Any) -> bool:
    text = str(value).strip().upper()
    if text in ("Y", "1", "TRUE"):
        return True
    if text in ("N", "0", "FALSE"):
        return False
    raise Unconvertible(value)


def _timestamptz(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise Unconvertible(value) from None
    if parsed.tzinfo is None:
        raise Unconvertible(value)
    return parsed


def _date(value: Any) -> date:
    text = str(value)
    try:
        return datetime.fromisoformat(text).date() if len(text) > 10 else date.fromisoformat(text)
    except ValueError:
        raise Unconvertible(value) from None


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


def json_text(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    if "\\u0000" not in text:  # the common case: one pass, no copy of the value
        return text
    return json.dumps(without_nuls(value), ensure_ascii=False)


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


def converter(column_type: str) -> Callable[[Any], Any]:
    """The converter for one column type: None for empty; raises Unconvertible."""
    cast = CONVERTERS[column_type]
    structured_ok = column_type in ("jsonb", "text")

    def convert_value(value: Any) -> Any:
        if value is None or (column_type != "jsonb" and _empty(value)):
            return None
        if not structured_ok and isinstance(value, (list, dict)):
            raise Unconvertible(value)
        return cast(value)

    return convert_value


def convert(column_type: str, value: Any) -> Any:
    return converter(column_type)(value)
