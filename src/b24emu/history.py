"""Stage history: one row each time a deal, a lead or an item of a smart process with stages is
created, moved to another stage, or moved to another pipeline
(api-reference/crm/crm-stage-history-list.md).

Rows are kept per entity type, as the portal returns them: ``ID``, ``TYPE_ID``, ``OWNER_ID``,
``CATEGORY_ID`` as JSON numbers; deals (and smart processes) carry ``STAGE_ID`` /
``STAGE_SEMANTIC_ID`` / ``CATEGORY_ID``, leads ``STATUS_ID`` / ``STATUS_SEMANTIC_ID``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from b24emu.fields import FieldDef

CREATED, INTERMEDIATE, FINAL, PIPELINE = 1, 2, 3, 5  # TYPE_ID values


@dataclass(frozen=True)
class StageFields:
    """Which fields of an entity say its stage, and how its history names them."""

    entity: str
    stage: str  # the record's stage field, also the history's
    semantic: str
    category: str | None  # None: the entity has no pipelines


# entityTypeId -> the entity whose moves are recorded
STAGED: dict[int, StageFields] = {
    1: StageFields("lead", "STATUS_ID", "STATUS_SEMANTIC_ID", None),
    2: StageFields("deal", "STAGE_ID", "STAGE_SEMANTIC_ID", "CATEGORY_ID"),
}
BY_ENTITY = {spec.entity: (type_id, spec) for type_id, spec in STAGED.items()}


def smart_stage_fields(entity: str) -> StageFields:
    """A smart process's items: named like deals' (the docs' tab "for deals, new invoices, and
    SPAs"); the item keeps no semantics of its own, its stage in crm.status.list has them."""
    return StageFields(entity, "STAGE_ID", "STAGE_SEMANTIC_ID", "CATEGORY_ID")


def _field(ftype: str, title: str) -> FieldDef:
    return {
        "type": ftype,
        "isRequired": False,
        "isReadOnly": True,
        "isImmutable": False,
        "isMultiple": False,
        "isDynamic": False,
        "title": title,
    }


def history_fields(spec: StageFields) -> dict[str, FieldDef]:
    fields = {
        "ID": _field("integer", "ID"),
        "TYPE_ID": _field("integer", "Type"),
        "OWNER_ID": _field("integer", "Owner ID"),
        "CREATED_TIME": _field("datetime", "Created"),
    }
    if spec.category is not None:
        fields["CATEGORY_ID"] = _field("integer", "Pipeline")
    fields[spec.semantic] = _field("string", "Stage semantics")
    fields[spec.stage] = _field("string", "Stage")
    return fields


def stage_of(spec: StageFields, record: dict[str, Any]) -> tuple[str, str]:
    """(pipeline, stage) of a record, as comparable strings."""
    category = str(record.get(spec.category) or "0") if spec.category else ""
    return category, str(record.get(spec.stage) or "")


def move_type(spec: StageFields, before: tuple[str, str], record: dict[str, Any]) -> int | None:
    """The TYPE_ID of the row a change records, or None when the stage stayed."""
    after = stage_of(spec, record)
    if after == before:
        return None
    if after[0] != before[0]:
        return PIPELINE
    return FINAL if record.get(spec.semantic) in ("S", "F") else INTERMEDIATE


def history_row(spec: StageFields, record: dict[str, Any], type_id: int, at: str) -> dict[str, Any]:
    """A row for ``record`` at its current stage (without its ID, which the store assigns)."""
    row: dict[str, Any] = {
        "TYPE_ID": type_id,
        "OWNER_ID": int(record["ID"]),
        "CREATED_TIME": at,
    }
    if spec.category is not None:
        row["CATEGORY_ID"] = int(record.get(spec.category) or 0)
    row[spec.semantic] = record.get(spec.semantic) or "P"
    row[spec.stage] = record.get(spec.stage)
    return row
