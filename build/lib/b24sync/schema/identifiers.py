"""The one place that turns names into PostgreSQL identifiers and quotes them."""

from __future__ import annotations

import hashlib
import re

from psycopg import sql

from b24sync.errors import UnsafeIdentifier

MAX_BYTES = 63
SYSTEM_COLUMNS = frozenset({"id", "_raw", "_synced_at", "_deleted_at"})
_SAFE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_UNSAFE_CHARS = re.compile(r"[^a-z0-9_]+")


def _digest(name: str) -> str:
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]


def column_name(field_name: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A safe, lower-case, <= 63-byte column name for a Bitrix24 field name.

    Deterministic; ``TITLE`` -> ``title``, ``UF_CRM_1700000000`` -> ``uf_crm_1700000000``.
    Names that had to be changed, that collide with ``taken`` or with a system column, carry a
    short hash of the original so that two different fields never share a column.
    """
    if field_name.upper() == "ID":
        return "id"
    base = _UNSAFE_CHARS.sub("_", field_name.lower()).strip("_") or "field"
    if base[0].isdigit():
        base = "f_" + base
    changed = base != field_name.lower()
    candidate = base[:MAX_BYTES]
    if changed or candidate != base or candidate in SYSTEM_COLUMNS or candidate in taken:
        candidate = f"{base[: MAX_BYTES - 9]}_{_digest(field_name)}"
    return validated(candidate)


def validated(name: str) -> str:
    if not _SAFE.match(name):
        raise UnsafeIdentifier(f"{name!r} is not a safe PostgreSQL identifier")
    return name


def ident(*names: str) -> sql.Composable:
    """A quoted (optionally schema-qualified) identifier for composed SQL."""
    return sql.Identifier(*(validated(n) for n in names))
