"""Smart processes (user-defined CRM types): the types (`crm.type.*`), their field set, their
pipelines and stages.

Docs: api-reference/crm/universal/user-defined-object-types/crm-type-{list,add,delete}.md,
crm-item-fields.md. A type has an internal ``id`` (its user fields are ``UF_CRM_<id>_...``) and
an ``entityTypeId`` (an even number from 1030, or 128..192) that the item methods take. Its stages
live in `crm.status.list` under ``ENTITY_ID = DYNAMIC_<entityTypeId>_STAGE_<categoryId>`` with
``STATUS_ID = DT<entityTypeId>_<categoryId>:<CODE>``; its pipelines in `crm.category.list`.
Items are kept like every other record, in the store named :func:`store_name`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from b24emu.fields import FieldDef, spec_definition

FIRST_ENTITY_TYPE_ID = 1030
STORE_PREFIX = "dynamic_"
# (code, name, semantics): the stages a new pipeline gets (S = success, F = failure)
DEFAULT_STAGES = [
    ("NEW", "Начало", None),
    ("PREPARATION", "Подготовка", None),
    ("CLIENT", "Согласование с клиентом", None),
    ("SUCCESS", "Успех", "S"),
    ("FAIL", "Провал", "F"),
]
# The Y/N settings of a type (crm-type-add.md); every one defaults to N but isSetOpenPermissions.
FLAGS = (
    "isCategoriesEnabled",
    "isStagesEnabled",
    "isBeginCloseDatesEnabled",
    "isClientEnabled",
    "isUseInUserfieldEnabled",
    "isLinkWithProductsEnabled",
    "isMycompanyEnabled",
    "isDocumentsEnabled",
    "isSourceEnabled",
    "isObserversEnabled",
    "isRecyclebinEnabled",
    "isAutomationEnabled",
    "isBizProcEnabled",
    "isSetOpenPermissions",
    "isPaymentsEnabled",
    "isCountersEnabled",
)

# Stored under their classic (upper) names; crm.item.* answers in camelCase with `upperName`.
_SPECS: list[tuple[str, ...]] = [
    ("ID", "integer", "ID", "R"),
    ("XML_ID", "string", "External code", ""),
    ("TITLE", "string", "Name", ""),
    ("CREATED_BY", "user", "Created by", "R"),
    ("UPDATED_BY", "user", "Updated by", "R"),
    ("MOVED_BY", "user", "Moved by", "R"),
    ("CREATED_TIME", "datetime", "Created at", "R"),
    ("UPDATED_TIME", "datetime", "Updated at", "R"),
    ("MOVED_TIME", "datetime", "Moved at", "R"),
    ("CATEGORY_ID", "crm_category", "Pipeline", ""),
    ("OPENED", "char", "Publicly available", ""),
    ("STAGE_ID", "crm_status", "Stage", ""),
    ("PREVIOUS_STAGE_ID", "crm_status", "Previous stage", "R"),
    ("BEGINDATE", "date", "Start date", ""),
    ("CLOSEDATE", "date", "End date", ""),
    ("COMPANY_ID", "crm_company", "Company", ""),
    ("CONTACT_ID", "crm_contact", "Contact", ""),
    ("CONTACT_IDS", "crm_contact", "CONTACT_IDS", "M"),
    ("OPPORTUNITY", "double", "Amount", ""),
    ("IS_MANUAL_OPPORTUNITY", "char", "Amount calculation mode", ""),
    ("TAX_VALUE", "double", "Tax amount", ""),
    ("CURRENCY_ID", "crm_currency", "Currency", ""),
    ("MYCOMPANY_ID", "crm_company", "Your company details", ""),
    ("SOURCE_ID", "crm_status", "Source", "", "SOURCE"),
    ("SOURCE_DESCRIPTION", "string", "Additional source info", ""),
    ("ASSIGNED_BY_ID", "user", "Assigned to", ""),
    ("WEBFORM_ID", "integer", "Created by CRM form", ""),
    ("OBSERVERS", "user", "Observers", "M"),
    ("LAST_ACTIVITY_BY", "user", "Last activity in timeline by", "R"),
    ("LAST_ACTIVITY_TIME", "datetime", "Last activity", "R"),
]
STAGE_FIELDS = ("STAGE_ID", "PREVIOUS_STAGE_ID")


@dataclass
class SmartType:
    """One smart process as `crm.type.list` describes it."""

    id: int
    entity_type_id: int
    title: str
    flags: dict[str, str]
    created_time: str
    updated_time: str
    created_by: int = 1

    def enabled(self, flag: str) -> bool:
        """Whether a Y/N setting (crm-type-add.md) is on: ``isStagesEnabled``,
        ``isLinkWithProductsEnabled``..."""
        return self.flags.get(flag) == "Y"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "code": "",
            "createdBy": self.created_by,
            "entityTypeId": self.entity_type_id,
            "customSectionId": None,
            **self.flags,
            "createdTime": self.created_time,
            "updatedTime": self.updated_time,
            "updatedBy": self.created_by,
        }


def store_name(entity_type_id: int) -> str:
    return f"{STORE_PREFIX}{entity_type_id}"


def stage_entity_id(entity_type_id: int, category_id: int) -> str:
    return f"DYNAMIC_{entity_type_id}_STAGE_{category_id}"


def stage_id(entity_type_id: int, category_id: int, code: str) -> str:
    return f"DT{entity_type_id}_{category_id}:{code}"


def flags_from(given: dict[str, Any]) -> dict[str, str]:
    """The settings of a new type: given ones as Y/N, the rest at their documented defaults."""
    defaults = {flag: "Y" if flag == "isSetOpenPermissions" else "N" for flag in FLAGS}
    return defaults | {
        flag: "Y" if str(given[flag]).upper() in ("Y", "1", "TRUE") else "N"
        for flag in FLAGS
        if flag in given
    }


def standard_fields(entity_type_id: int, default_category: int) -> dict[str, FieldDef]:
    """A fresh field set of a type; its stages are those of its default pipeline."""
    fields = dict(spec_definition(spec) for spec in _SPECS)
    for name in STAGE_FIELDS:
        fields[name]["statusType"] = stage_entity_id(entity_type_id, default_category)
    return fields


def owner_type(entity_type_id: int) -> str:
    """The ownerType code of a smart process's product rows: ``T`` and the entityTypeId in
    lower-case hexadecimal, ``T80`` for 128 (crm/data-types.md, object_type)."""
    return f"T{entity_type_id:x}"


def entity_type_of_owner(code: str) -> int | None:
    """The entityTypeId an ownerType code ``T<hex>`` names (None: not a smart process's)."""
    if len(code) < 2 or code[0] != "T":
        return None
    try:
        return int(code[1:], 16)
    except ValueError:
        return None


def entity_type_id_allowed(value: int) -> bool:
    """crm-type-add.md: an even number from 1030, or 128..192."""
    return (value >= FIRST_ENTITY_TYPE_ID and value % 2 == 0) or 128 <= value <= 192
