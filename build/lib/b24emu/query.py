"""`filter`, `select` and `order` of the crm.*.list methods.

Docs: api-reference/crm/deals/crm-deal-list.md (operators, select masks, either-case names).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from b24emu.fields import DATE_TYPES, NUMERIC_TYPES, FieldDef

# Longest prefixes first, so that ">=" is not read as ">".
_OPERATORS = ("!@", ">=", "<=", "!=", "=%", "%=", "@", ">", "<", "!", "%", "=")

Predicate = Callable[[dict[str, Any]], bool]


def _typed(value: Any, ftype: str) -> Any:
    """A comparable value for one field type; None when it cannot be read."""
    if value is None or value == "":
        return None
    if ftype in NUMERIC_TYPES or ftype == "double":
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    if ftype in DATE_TYPES:
        return _parse_datetime(str(value))
    return str(value).lower()


def _parse_datetime(text: str) -> datetime | None:
    text = text.strip()
    try:
        if len(text) == 10 and text[2] == ".":  # 31.12.2024, the portal's own date format
            return datetime.strptime(text, "%d.%m.%Y")
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed


def _comparable(a: Any, b: Any) -> tuple[Any, Any]:
    """Datetimes with and without offsets: compare in the naive wall clock of the record."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        if (a.tzinfo is None) != (b.tzinfo is None):
            return a.replace(tzinfo=None), b.replace(tzinfo=None)
    elif isinstance(a, date) != isinstance(b, date):
        return None, None
    return a, b


def _equal(a: Any, b: Any) -> bool:
    left, right = _comparable(a, b)
    return left is not None and left == right


def _values(record_value: Any) -> list[Any]:
    """A multiple field matches when any of its values does; multi-fields by VALUE."""
    if isinstance(record_value, list):
        return [v.get("VALUE") if isinstance(v, dict) else v for v in record_value]
    return [record_value]


def _compile_one(op: str, field: str, ftype: str, operand: Any) -> Predicate:
    if op in ("@", "!@"):
        items = operand if isinstance(operand, list) else [operand]
        wanted = {_typed(v, ftype) for v in items}
        negate = op == "!@"
        return lambda r: any(_typed(v, ftype) in wanted for v in _values(r.get(field))) != negate
    if op in ("%", "=%", "%="):
        needle = str(operand).lower()
        if op != "%":
            needle = needle.strip("%")  # a LIKE pattern with the caller's own %; approximated
        return lambda r: any(needle in str(v or "").lower() for v in _values(r.get(field)))
    empty = operand is None or operand == "" or operand is False
    target = _typed(operand, ftype)

    def test(record: dict[str, Any]) -> bool:
        values = [_typed(v, ftype) for v in _values(record.get(field))]
        if op in ("=", "!", "!="):
            if empty:
                hit = all(v is None for v in values)
            else:
                hit = any(v is not None and _equal(v, target) for v in values)
            return hit if op == "=" else not hit
        for value in values:
            left, right = _comparable(value, target)
            if left is None or right is None:
                continue
            if (
                (op == ">" and left > right)
                or (op == ">=" and left >= right)
                or (op == "<" and left < right)
                or (op == "<=" and left <= right)
            ):
                return True
        return False

    return test


def split_key(key: str) -> tuple[str, str]:
    for op in _OPERATORS:
        if key.startswith(op):
            return op, key[len(op) :]
    return "=", key


def compile_filter(
    raw: dict[str, Any] | None, fields: dict[str, FieldDef]
) -> tuple[list[Predicate], tuple[str, Any] | None]:
    """Predicates for every known field, plus a lower ID bound the store can seek to.

    Unknown field names are ignored, as the portal's ORM filter drops them.
    """
    predicates: list[Predicate] = []
    id_floor: tuple[str, Any] | None = None
    for key, operand in (raw or {}).items():
        op, name = split_key(str(key))
        name = name.upper()
        field = fields.get(name)
        if field is None:
            continue
        if name == "ID" and op in (">", ">=") and id_floor is None:
            with contextlib.suppress(InvalidOperation, ValueError):
                id_floor = (op, int(Decimal(str(operand))))
        predicates.append(_compile_one(op, name, field["type"], operand))
    return predicates, id_floor


def order_keys(
    raw: dict[str, Any] | None, fields: dict[str, FieldDef]
) -> list[tuple[str, str, bool]]:
    """[(field, type, descending)]; unknown fields are skipped; ID ascending by default."""
    keys: list[tuple[str, str, bool]] = []
    for name, direction in (raw or {}).items():
        upper = str(name).upper()
        if upper in fields:
            keys.append((upper, fields[upper]["type"], str(direction).upper() == "DESC"))
    return keys or [("ID", "integer", False)]


def sort_records(records: list[dict[str, Any]], keys: list[tuple[str, str, bool]]) -> None:
    for name, ftype, descending in reversed(keys):
        records.sort(
            key=lambda r: (
                (_typed(r.get(name), ftype) is not None, _typed(r.get(name), ftype) or 0)
                if ftype in NUMERIC_TYPES or ftype == "double"
                else str(r.get(name) or "")
            ),
            reverse=descending,
        )


def resolve_select(raw: Iterable[str] | None, fields: dict[str, FieldDef]) -> list[str]:
    """Field names to return: `*` = standard non-multiple, `UF_*` = user non-multiple."""
    names = [str(n).upper() for n in (raw or [])] or ["*", "UF_*"]
    chosen: dict[str, None] = {"ID": None}
    for name in names:
        if name == "*":
            chosen.update(
                (f, None)
                for f, d in fields.items()
                if not f.startswith("UF_") and not d["isMultiple"]
            )
        elif name == "UF_*":
            chosen.update(
                (f, None) for f, d in fields.items() if f.startswith("UF_") and not d["isMultiple"]
            )
        elif name in fields:
            chosen[name] = None
    return list(chosen)
