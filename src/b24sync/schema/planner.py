"""Plans DDL from the stored field snapshot and the portal's current fields. Pure: no I/O.

Rules: a new field adds a column; a removed field keeps its column and data and is marked
removed; a changed type widens the column (or falls back to text) and never drops data.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from psycopg import sql

from b24sync.schema.identifiers import column_name as make_column_name
from b24sync.schema.identifiers import ident
from b24sync.schema.types import pg_type, widened, without_nuls


@dataclass(frozen=True)
class ColumnSpec:
    field_name: str
    column_name: str
    bitrix_type: str
    pg_type: str
    is_multiple: bool
    title: str
    definition: dict[str, Any]
    removed: bool = False


@dataclass
class Plan:
    statements: list[sql.Composed] = field(default_factory=list)
    columns: dict[str, ColumnSpec] = field(default_factory=dict)  # every known field, incl. removed
    changes: list[str] = field(default_factory=list)  # human-readable, for the run log

    @property
    def active(self) -> list[ColumnSpec]:
        return [c for c in self.columns.values() if not c.removed and c.column_name != "id"]


def table_comment(schema: str, table: str, text: str) -> sql.Composed:
    return sql.SQL("COMMENT ON TABLE {} IS {}").format(ident(schema, table), sql.Literal(text))


def field_title(definition: dict[str, Any], name: str) -> str:
    """User fields carry their human label in listLabel/formLabel; `title` is the code."""
    for key in ("listLabel", "formLabel", "filterLabel", "title"):
        label = definition.get(key)
        if isinstance(label, str) and label:
            return label
    return name


def plan_table(
    schema: str,
    table: str,
    stored: dict[str, ColumnSpec],
    portal_fields: dict[str, dict[str, Any]],
    entity_title: str,
) -> Plan:
    portal_fields = without_nuls(portal_fields)  # labels are typed by people; NUL cannot be stored
    plan = Plan(columns=dict(stored))
    target = ident(schema, table)
    plan.statements.append(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident(schema)))
    plan.statements.append(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (id bigint PRIMARY KEY, _raw jsonb NOT NULL, "
            "_synced_at timestamptz NOT NULL DEFAULT now(), _deleted_at timestamptz)"
        ).format(target)
    )
    plan.statements.append(
        table_comment(schema, table, f"Bitrix24 {entity_title}, mirrored by b24sync")
    )
    taken = {c.column_name for c in stored.values()}
    for name, definition in portal_fields.items():
        bitrix_type = str(definition.get("type", "string"))
        multiple = bool(definition.get("isMultiple"))
        wanted = pg_type(bitrix_type, multiple)
        title = field_title(definition, name)
        known = stored.get(name)
        if known is None:
            # the universal methods name fields in camelCase and give the classic name too:
            # `assignedById` is ASSIGNED_BY_ID (crm-item-fields.md), so its column assigned_by_id
            column = make_column_name(str(definition.get("upperName") or name), taken)
            taken.add(column)
            spec = ColumnSpec(name, column, bitrix_type, wanted, multiple, title, definition)
            if column != "id":
                plan.statements.append(
                    sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                        target, ident(column), sql.SQL(wanted)
                    )
                )
                plan.changes.append(f"added {column} {wanted}")
        else:
            spec = replace(
                known,
                bitrix_type=bitrix_type,
                is_multiple=multiple,
                title=title,
                definition=definition,
                removed=False,
            )
            new_type = widened(known.pg_type, wanted)
            if new_type != known.pg_type and known.column_name != "id":
                plan.statements.append(
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}").format(
                        target,
                        ident(known.column_name),
                        sql.SQL(new_type),
                        ident(known.column_name),
                        sql.SQL(new_type),
                    )
                )
                plan.changes.append(f"retyped {known.column_name} {known.pg_type} -> {new_type}")
                spec = replace(spec, pg_type=new_type)
            if known.removed:
                plan.changes.append(f"restored {known.column_name}")
        plan.columns[name] = spec
        plan.statements.append(
            sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                target, ident(spec.column_name), sql.Literal(f"{title} ({name})")
            )
        )
    for name, known in stored.items():
        if name not in portal_fields and not known.removed:
            plan.columns[name] = replace(known, removed=True)
            plan.changes.append(
                f"field {name} removed on the portal; column {known.column_name} kept"
            )
    return plan
