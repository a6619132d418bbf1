"""The universal list, `crm.item.list`, for the four classic types (api-reference/crm/universal/
crm-item-list.md): records under `result.items`, camelCase names (`id`, `contactIds`,
`updatedTime`, `ufCrm…`; `useOriginalUfNames=Y` keeps `UF_CRM_…`), numbers and IDs as JSON
numbers, `Y`/`N` and ISO dates as strings. Unlike `crm.deal.list`, it returns the link arrays
`contactIds` / `companyIds`.
"""

from __future__ import annotations

from typing import Any

from b24emu import errors
from b24emu.fields import INTEGER_TYPES, FieldDef
from b24emu.methods import Call, MethodResult, _as_dict, _as_list, _start, method

ENTITY_TYPES = {1: "lead", 2: "deal", 3: "contact", 4: "company"}
# Names that are not the camelCase of the classic one (crm-item-fields.md).
_RENAMED = {
    "DATE_CREATE": "createdTime",
    "DATE_MODIFY": "updatedTime",
    "CREATED_BY_ID": "createdBy",
    "MODIFY_BY_ID": "updatedBy",
}
_OPERATORS = ("!@", ">=", "<=", "!=", "=%", "%=", "@", ">", "<", "!", "%", "=")


def camel(name: str, *, original_uf: bool = False) -> str:
    if name in _RENAMED:
        return _RENAMED[name]
    if original_uf and name.startswith("UF_"):
        return name
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def _classic_names(fields: dict[str, FieldDef], original_uf: bool) -> dict[str, str]:
    """camelCase name -> classic name, for every field of the type."""
    return {camel(name, original_uf=original_uf): name for name in fields}


def _split(key: str) -> tuple[str, str]:
    for operator in _OPERATORS:
        if key.startswith(operator):
            return operator, key[len(operator) :]
    return "", key


def _typed(value: Any, definition: FieldDef) -> Any:
    """A classic string value as crm.item.list types it."""
    integer = definition["type"] in INTEGER_TYPES
    if definition["isMultiple"] and isinstance(value, list):
        return [int(v) if integer and str(v).isdigit() else v for v in value]
    if integer:
        return (
            int(value)
            if str(value or "").isdigit()
            else (0 if definition["type"] != "integer" else None)
        )
    if definition["type"] == "double" and value not in (None, ""):
        try:
            return float(value)
        except ValueError:
            return value
    return value


@method("crm.item.list")
def item_list(call: Call) -> MethodResult:
    try:
        entity = ENTITY_TYPES[int(call.param("entityTypeId"))]
    except (KeyError, TypeError, ValueError):
        raise errors.RestError("NOT_FOUND", "Smart process not found", 400) from None
    fields = call.emulator.portal.store(entity).fields
    original_uf = str(call.param("useOriginalUfNames", "N")).upper() == "Y"
    classic = _classic_names(fields, original_uf)

    def translated(key: str) -> str:
        operator, name = _split(key)
        if name not in classic:
            raise errors.RestError(
                "INVALID_ARG_VALUE", f"Invalid filter: field '{name}' is not allowed in filter", 400
            )
        return operator + classic[name]

    flt = {translated(k): v for k, v in _as_dict(call.param("filter")).items()}
    order = {classic.get(k, k): v for k, v in _as_dict(call.param("order")).items()}
    wanted = [str(n) for n in _as_list(call.param("select"))] or ["*"]
    select = ["*", "UF_*"] if "*" in wanted else [classic[n] for n in wanted if n in classic]
    # the link arrays are multiple fields: `*` leaves them out of crm.deal.list, not out of here
    select += [classic[n] for n in wanted if n in classic and fields[classic[n]]["isMultiple"]]
    start = _start(call)
    page = call.emulator.portal.list(
        entity, select=select, filter=flt, order=order or {"ID": "ASC"}, start=start
    )
    items = [
        {camel(k, original_uf=original_uf): _typed(v, fields[k]) for k, v in record.items()}
        for record in page.items
    ]
    return MethodResult(
        {"items": items},
        page.total,
        page.next,
        returned=len(items),
        counted_rows=page.scanned if start >= 0 else None,
    )
