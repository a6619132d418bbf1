"""Readable views, the layer BI tools point at. Pure: builds SQL, runs nothing.

One view per object stream, ``v_<table>``: live rows only (``_deleted_at IS NULL``) and, right
after every code column, its label, looked up in the reference tables by the field's Bitrix24
type: stages and statuses (``crm_status``, per pipeline for deal stages), pipelines
(``crm_category``), users (``b24_user``), currencies (``crm_currency``), list values of
enumeration fields (``crm_enum_value``); a money field also gets its currency. Labels are
scalar subqueries, so a label renamed on the portal shows at the next reference refresh without
rebuilding anything; the view itself is rebuilt whenever its table evolves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from psycopg import sql

from b24sync.schema.identifiers import ident
from b24sync.schema.planner import ColumnSpec
from b24sync.streams import STREAMS, Kind, Stream

SCHEMA = "bitrix24"
ENUM_VIEW = "crm_enum_value"
USER_TYPES = frozenset({"user", "employee"})
SLUG_CHARS = 40  # v_crm_item_<entityTypeId>_ + this stays within PostgreSQL's 63 bytes
_LATIN = str.maketrans(
    {
        **dict(zip("абвгдезийклмнопрстуфхцыэ", "abvgdeziyklmnoprstufhcye", strict=True)),
        **{"ё": "e", "ж": "zh", "ч": "ch", "ш": "sh", "щ": "sch", "ю": "yu", "я": "ya"},
        **dict.fromkeys("ъь", ""),
    }
)


def _slug(title: str) -> str:
    """``Заявки на доставку`` -> ``zayavki_na_dostavku``: a title readable in an identifier."""
    latin = title.lower().translate(_LATIN)
    return "_".join(re.findall(r"[a-z0-9]+", latin))[:SLUG_CHARS].strip("_")


# Codes of the lists the documentation fixes (crm-activity-fields.md, crm data-types.md).
FIXED_LABELS: dict[str, dict[int, str]] = {
    "crm_enum_activitytype": {1: "meeting", 2: "call", 3: "task", 4: "email", 6: "activity"},
    "crm_enum_activitydirection": {0: "none", 1: "incoming", 2: "outgoing"},
    "crm_enum_activitystatus": {0: "undefined", 1: "waiting", 2: "completed", 3: "autocompleted"},
    "crm_enum_activitypriority": {0: "none", 1: "low", 2: "medium", 3: "high"},
}
OWNER_TYPE = "crm_enum_ownertype"


def _fixed_labels(kind: str) -> dict[int, str] | None:
    """The names of a fixed list's codes; an owner type is named by the registry's stream of
    that entity type (``deal``, ``item_1038``), so an activity says which table its owner is in."""
    if kind == OWNER_TYPE:
        return {
            s.entity_type_id: s.name
            for s in STREAMS.values()
            if s.entity_type_id is not None and s.kind in (Kind.OBJECT, Kind.ITEM)
        }
    return FIXED_LABELS.get(kind)


def view_name(stream: Stream) -> str:
    """``v_<table>``; a smart process's also carries its title, ``v_crm_item_1032_dogovory``."""
    slug = _slug(stream.title) if stream.kind is Kind.ITEM else ""
    return f"v_{stream.table}_{slug}" if slug else f"v_{stream.table}"


def drop_statement(stream: Stream) -> sql.Composed:
    return sql.SQL("DROP VIEW IF EXISTS {}").format(ident(SCHEMA, view_name(stream)))


def enum_view_statements() -> list[sql.Composed]:
    """``crm_enum_value``: the items of every enumeration field, from the fields metadata the
    object syncs store anyway (no call of its own)."""
    return [
        sql.SQL(
            "CREATE OR REPLACE VIEW {} AS SELECT fs.entity, fs.field_name, fs.column_name, "
            "i->>'ID' AS value_id, i->>'VALUE' AS value, "
            "CASE WHEN i->>'SORT' ~ '^[0-9]{{1,9}}$' THEN (i->>'SORT')::int END AS sort "
            "FROM b24sync.field_snapshots fs CROSS JOIN LATERAL jsonb_array_elements("
            "CASE WHEN jsonb_typeof(fs.definition->'items') = 'array' "
            "THEN fs.definition->'items' ELSE '[]'::jsonb END) AS i "
            "WHERE fs.bitrix_type = 'enumeration'"
        ).format(ident(SCHEMA, ENUM_VIEW)),
        sql.SQL("COMMENT ON VIEW {} IS {}").format(
            ident(SCHEMA, ENUM_VIEW),
            sql.Literal("Values of list (enumeration) fields: entity, field, value id, label"),
        ),
    ]


def _same(column: sql.Composable, key: sql.Composable, pg_type: str, key_type: str) -> sql.Composed:
    """``key = column``, typed when the types agree (an index lookup), else as text."""
    if pg_type == key_type:
        return sql.SQL("{} = t.{}").format(key, column)
    return sql.SQL("{}::text = t.{}::text").format(key, column)


def _user_label(spec: ColumnSpec) -> sql.Composed:
    column = ident(spec.column_name)
    full_name = sql.SQL("nullif(concat_ws(' ', u.name, u.last_name), '')")
    if spec.is_multiple:
        return sql.SQL(
            "(SELECT string_agg({name}, ', ' ORDER BY v.n) FROM "
            "jsonb_array_elements_text(CASE WHEN jsonb_typeof(t.{col}) = 'array' THEN t.{col} "
            "ELSE '[]'::jsonb END) WITH ORDINALITY AS v(id, n) "
            "JOIN {users} u ON u.id::text = v.id)"
        ).format(name=full_name, col=column, users=ident(SCHEMA, "b24_user"))
    return sql.SQL("(SELECT {} FROM {} u WHERE {})").format(
        full_name, ident(SCHEMA, "b24_user"), _same(column, sql.SQL("u.id"), spec.pg_type, "bigint")
    )


def _enum_label(stream: Stream, spec: ColumnSpec) -> sql.Composed:
    column = ident(spec.column_name)
    where = sql.SQL("e.entity = {} AND e.field_name = {}").format(
        sql.Literal(stream.name), sql.Literal(spec.field_name)
    )
    if spec.is_multiple:
        return sql.SQL(
            "(SELECT string_agg(e.value, ', ' ORDER BY v.n) FROM "
            "jsonb_array_elements_text(CASE WHEN jsonb_typeof(t.{col}) = 'array' THEN t.{col} "
            "ELSE '[]'::jsonb END) WITH ORDINALITY AS v(id, n) "
            "JOIN {enum} e ON {where} AND e.value_id = v.id)"
        ).format(col=column, enum=ident(SCHEMA, ENUM_VIEW), where=where)
    return sql.SQL("(SELECT e.value FROM {} e WHERE {} AND e.value_id = t.{}::text)").format(
        ident(SCHEMA, ENUM_VIEW), where, column
    )


def _status_label(stream: Stream, spec: ColumnSpec, columns: set[str]) -> sql.Composed | None:
    status_type = spec.definition.get("statusType")
    if not isinstance(status_type, str) or not status_type:
        return None
    entity_id: sql.Composable = sql.Literal(status_type)
    smart_stages = f"DYNAMIC_{stream.entity_type_id}_STAGE_"
    if status_type == "DEAL_STAGE" and "category_id" in columns:  # stages are per pipeline
        entity_id = sql.SQL(
            "CASE WHEN coalesce(t.category_id::text, '0') = '0' THEN 'DEAL_STAGE' "
            "ELSE 'DEAL_STAGE_' || t.category_id::text END"
        )
    elif status_type.startswith(smart_stages) and "category_id" in columns:
        entity_id = sql.SQL("{} || t.category_id::text").format(sql.Literal(smart_stages))
    return sql.SQL("(SELECT s.name FROM {} s WHERE s.entity_id = {} AND {})").format(
        ident(SCHEMA, "crm_status"),
        entity_id,
        _same(ident(spec.column_name), sql.SQL("s.status_id"), spec.pg_type, "text"),
    )


def label(stream: Stream, spec: ColumnSpec, columns: set[str]) -> sql.Composed | None:
    """The expression naming a code column's value, or None for a column that needs none."""
    column = ident(spec.column_name)
    kind = spec.bitrix_type
    if kind == "crm_status":
        return _status_label(stream, spec, columns)
    if kind == "crm_category" and stream.entity_type_id is not None:
        return sql.SQL("(SELECT c.name FROM {} c WHERE c.entity_type_id = {} AND {})").format(
            ident(SCHEMA, "crm_category"),
            sql.Literal(stream.entity_type_id),
            _same(column, sql.SQL("c.id"), spec.pg_type, "bigint"),
        )
    if kind in USER_TYPES:
        return _user_label(spec)
    if kind == "crm_currency":
        return sql.SQL("(SELECT c.full_name FROM {} c WHERE {})").format(
            ident(SCHEMA, "crm_currency"),
            _same(column, sql.SQL("c.currency"), spec.pg_type, "text"),
        )
    if kind == "enumeration":
        return _enum_label(stream, spec)
    names = _fixed_labels(kind)
    if names and spec.pg_type == "bigint":
        return sql.SQL("CASE t.{} {} END").format(
            column,
            sql.SQL(" ").join(
                sql.SQL("WHEN {} THEN {}").format(sql.Literal(code), sql.Literal(name))
                for code, name in sorted(names.items())
            ),
        )
    return None


def label_column(column: str, taken: set[str], suffix: str = "name") -> str:
    """``stage_id`` -> ``stage_name``, ``uf_crm_7`` -> ``uf_crm_7_name``; never a taken name."""
    base = column.removesuffix("_id") if column.endswith("_id") else column
    name = f"{base}_{suffix}"
    return name if name not in taken else f"{column}_{suffix}_label"


def _drop_renamed(stream: Stream) -> sql.Composed:
    """Drop the views over this table under another name of the same stem (a smart process
    renamed on the portal: ``v_crm_item_1032_old`` when it is now ``..._new``)."""
    bare = f"v_{stream.table}"
    return sql.SQL(
        "DO $$DECLARE stale text; BEGIN FOR stale IN SELECT DISTINCT v.relname FROM pg_depend d "
        "JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class "
        "WHERE d.refobjid = {table}::regclass AND v.relkind = 'v' AND v.relname <> {current} "
        "AND (v.relname = {bare} OR left(v.relname, {n}) = {prefix}) LOOP "
        "EXECUTE format('DROP VIEW %I.%I', {schema}, stale); END LOOP; END$$"
    ).format(
        table=sql.Literal(f"{SCHEMA}.{stream.table}"),
        schema=sql.Literal(SCHEMA),
        bare=sql.Literal(bare),
        n=sql.Literal(len(bare) + 1),
        prefix=sql.Literal(bare + "_"),
        current=sql.Literal(view_name(stream)),
    )


def view_statements(stream: Stream, columns: Sequence[ColumnSpec]) -> list[sql.Composed]:
    """Drop and create ``v_<table>`` with its column comments (inside the caller's transaction:
    readers never see it missing)."""
    target = ident(SCHEMA, view_name(stream))
    names = {c.column_name for c in columns} | {"id"}
    taken = set(names)
    select: list[sql.Composable] = [sql.SQL("t.id")]
    comments: list[tuple[str, str]] = [("id", "ID")]
    for spec in columns:
        select.append(sql.SQL("t.{}").format(ident(spec.column_name)))
        comments.append((spec.column_name, f"{spec.title} ({spec.field_name})"))
        expression = label(stream, spec, names)
        if expression is not None:
            name = label_column(spec.column_name, taken)
            taken.add(name)
            select.append(sql.SQL("{} AS {}").format(expression, ident(name)))
            comments.append((name, f"{spec.title}: name ({spec.field_name})"))
        if spec.bitrix_type == "money":
            name = label_column(spec.column_name, taken, "currency")
            taken.add(name)
            select.append(
                sql.SQL("nullif(split_part(t._raw->>{}, '|', 2), '') AS {}").format(
                    sql.Literal(spec.field_name), ident(name)
                )
            )
            comments.append((name, f"{spec.title}: currency ({spec.field_name})"))
    statements = [
        drop_statement(stream),
        *([_drop_renamed(stream)] if stream.kind is Kind.ITEM else []),
        sql.SQL("CREATE VIEW {} AS SELECT {} FROM {} t WHERE t._deleted_at IS NULL").format(
            target, sql.SQL(", ").join(select), ident(SCHEMA, stream.table)
        ),
        sql.SQL("COMMENT ON VIEW {} IS {}").format(
            target,
            sql.Literal(f"Bitrix24 {stream.title}: live rows, codes with their labels (b24sync)"),
        ),
    ]
    statements += [
        sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(target, ident(name), sql.Literal(text))
        for name, text in comments
    ]
    return statements
