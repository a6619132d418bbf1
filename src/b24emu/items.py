"""The universal methods, `crm.item.*`, for the four classic types and every smart process
(api-reference/crm/universal/crm-item-*.md), and the smart processes themselves, `crm.type.*`
(user-defined-object-types/crm-type-*.md).

Records sit under `result.items` (one under `result.item`), with camelCase names (`id`,
`contactIds`, `updatedTime`, `ufCrm…`; `useOriginalUfNames=Y` keeps `UF_CRM_…`), numbers and
IDs as JSON numbers, `Y`/`N` and ISO dates as strings. Unlike `crm.deal.list`, the list returns
the link arrays `contactIds` / `companyIds`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from b24emu import errors, smart
from b24emu.fields import INTEGER_TYPES, MULTIFIELDS, FieldDef
from b24emu.methods import Call, MethodResult, _as_dict, _as_list, _page, _start, method

ENTITY_TYPES = {1: "lead", 2: "deal", 3: "contact", 4: "company"}
# Names that are not the camelCase of the classic one (crm-item-fields.md).
_RENAMED = {
    "DATE_CREATE": "createdTime",
    "DATE_MODIFY": "updatedTime",
    "CREATED_BY_ID": "createdBy",
    "MODIFY_BY_ID": "updatedBy",
}
_OPERATORS = ("!@", ">=", "<=", "!=", "=%", "%=", "@", ">", "<", "!", "%", "=")
# A smart process's user field, UF_CRM_<type id>_<code>, is ufCrm<type id>_<code> (crm-item-fields.md)
_SMART_USER_FIELD = re.compile(r"UF_CRM_([0-9]+)_(.+)")
# crm.item.fields calls a Y/N field boolean (crm-item-fields.md: `opened`)
_ITEM_TYPES = {"char": "boolean"}


def camel(name: str, *, original_uf: bool = False) -> str:
    if name in _RENAMED:
        return _RENAMED[name]
    if original_uf and name.startswith("UF_"):
        return name
    smart_user_field = _SMART_USER_FIELD.fullmatch(name)
    if smart_user_field:
        return f"ufCrm{smart_user_field[1]}_{smart_user_field[2]}"
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


def _entity(call: Call) -> str:
    """The store behind `entityTypeId`: a classic type or a smart process."""
    raw = call.param("entityTypeId")
    try:
        return ENTITY_TYPES[int(raw)]
    except (KeyError, TypeError, ValueError):
        return call.emulator.portal.smart_store(raw)


def _original_uf(call: Call) -> bool:
    return str(call.param("useOriginalUfNames", "N")).upper() == "Y"


def _item(record: dict[str, Any], fields: dict[str, FieldDef], original_uf: bool) -> dict[str, Any]:
    return {
        camel(k, original_uf=original_uf): _typed(v, fields[k])
        for k, v in record.items()
        if k in fields
    }


def _given_fields(call: Call, fields: dict[str, FieldDef]) -> dict[str, Any]:
    """`fields` of add/update, by camelCase or original name, as the portal stores them."""
    given = call.param("fields")
    if not isinstance(given, dict):
        raise errors.bad_parameter("Parameter 'fields' must be array.")
    classic = _classic_names(fields, _original_uf(call))
    return {classic.get(str(k), str(k)): v for k, v in given.items()}


@method("crm.item.fields")
def item_fields(call: Call) -> MethodResult:
    fields = call.emulator.portal.store(_entity(call)).fields
    original_uf = _original_uf(call)
    described = {
        camel(name, original_uf=original_uf): definition
        | {"type": _ITEM_TYPES.get(definition["type"], definition["type"]), "upperName": name}
        for name, definition in fields.items()
    }
    return MethodResult({"fields": described})


@method("crm.item.get")
def item_get(call: Call) -> MethodResult:
    entity = _entity(call)
    portal = call.emulator.portal
    record = portal.get(entity, call.param("id"))
    return MethodResult(
        {"item": _item(record, portal.store(entity).fields, _original_uf(call))}, returned=1
    )


@method("crm.item.add")
def item_add(call: Call) -> MethodResult:
    entity = _entity(call)
    portal = call.emulator.portal
    fields = portal.store(entity).fields
    record_id = portal.add(entity, _given_fields(call, fields), user_id=call.user_id)
    return MethodResult({"item": _item(portal.get(entity, record_id), fields, _original_uf(call))})


@method("crm.item.update")
def item_update(call: Call) -> MethodResult:
    entity = _entity(call)
    portal = call.emulator.portal
    fields = portal.store(entity).fields
    portal.update(entity, call.param("id"), _given_fields(call, fields), user_id=call.user_id)
    record = portal.get(entity, call.param("id"))
    return MethodResult({"item": _item(record, fields, _original_uf(call))})


@method("crm.item.delete")
def item_delete(call: Call) -> MethodResult:
    call.emulator.portal.delete(_entity(call), call.param("id"))
    return MethodResult([])


@method("crm.item.list")
def item_list(call: Call) -> MethodResult:
    entity = _entity(call)
    fields = call.emulator.portal.store(entity).fields
    original_uf = _original_uf(call)
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
    # `*` is every field, the multiple ones too: crm.deal.list leaves those out, this does not
    every = [name for name in fields if name not in MULTIFIELDS]  # PHONE, EMAIL...: not item fields
    select = every if "*" in wanted else [classic[n] for n in wanted if n in classic]
    start = _start(call)
    page = call.emulator.portal.list(
        entity, select=select, filter=flt, order=order or {"ID": "ASC"}, start=start
    )
    items = [_item(record, fields, original_uf) for record in page.items]
    return MethodResult(
        {"items": items},
        page.total,
        page.next,
        returned=len(items),
        counted_rows=page.scanned if start >= 0 else None,
    )


# --- the smart processes themselves ----------------------------------------------------------

_TYPE_FIELDS: dict[str, tuple[str, str]] = {
    "id": ("integer", "ID"),
    "title": ("string", "Title"),
    "code": ("string", "Code"),
    "entityTypeId": ("integer", "Entity type ID"),
    "createdBy": ("user", "Created by"),
    "updatedBy": ("user", "Updated by"),
    "createdTime": ("datetime", "Created at"),
    "updatedTime": ("datetime", "Updated at"),
    "customSectionId": ("integer", "Digital workplace"),
} | {flag: ("boolean", flag) for flag in smart.FLAGS}


def _type_by_id(call: Call) -> smart.SmartType:
    wanted = str(call.param("id"))
    for kind in call.emulator.portal.types.values():
        if str(kind.id) == wanted:
            return kind
    raise errors.RestError("NOT_FOUND", "Smart process not found", 400)


@method("crm.type.fields")
def type_fields(call: Call) -> MethodResult:
    return MethodResult(
        {
            "fields": {
                name: {
                    "type": kind,
                    "isRequired": name == "title",
                    "isReadOnly": name in ("id", "createdBy", "createdTime", "updatedTime"),
                    "isImmutable": name == "entityTypeId",
                    "isMultiple": False,
                    "isDynamic": False,
                    "title": title,
                }
                for name, (kind, title) in _TYPE_FIELDS.items()
            }
        }
    )


def _sort_key(name: str) -> Callable[[dict[str, Any]], str]:
    return lambda row: str(row.get(name) or "").zfill(20)


@method("crm.type.list")
def type_list(call: Call) -> MethodResult:
    """Filter by equality of any type field; sorted by `id` unless `order` says otherwise."""
    flt = _as_dict(call.param("filter"))
    rows = [
        t.as_json()
        for t in call.emulator.portal.types.values()
        if all(str(t.as_json().get(k.lstrip("=")) or "") == str(v) for k, v in flt.items())
    ]
    order = _as_dict(call.param("order")) or {"id": "ASC"}
    for key, direction in reversed(list(order.items())):  # a stable sort per key, last key first
        if key not in _TYPE_FIELDS:
            raise errors.RestError(
                "INVALID_ARG_VALUE", f"Invalid order: field '{key}' is not allowed in order", 400
            )
        rows.sort(key=_sort_key(key), reverse=str(direction).upper() == "DESC")
    page = _page(call, rows)
    return MethodResult({"types": page.result}, page.total, page.next, returned=page.returned)


@method("crm.type.get")
def type_get(call: Call) -> MethodResult:
    return MethodResult({"type": _type_by_id(call).as_json()})


@method("crm.type.add")
def type_add(call: Call) -> MethodResult:
    fields = _as_dict(call.param("fields"))
    title = str(fields.get("title") or "").strip()
    if not title:
        raise errors.RestError("", "Field 'title' is required", 400)
    wanted = fields.get("entityTypeId")
    kind = call.emulator.portal.add_type(
        title, fields, entity_type_id=int(wanted) if wanted not in (None, "") else None
    )
    return MethodResult({"type": kind.as_json()})


@method("crm.type.update")
def type_update(call: Call) -> MethodResult:
    kind = _type_by_id(call)
    fields = _as_dict(call.param("fields"))
    if fields.get("title"):
        kind.title = str(fields["title"])
    kind.flags |= {k: v for k, v in smart.flags_from(fields).items() if k in fields}
    kind.updated_time = call.emulator.portal.clock.iso()
    return MethodResult({"type": kind.as_json()})


@method("crm.type.delete")
def type_delete(call: Call) -> MethodResult:
    call.emulator.portal.delete_type(call.param("id"))
    return MethodResult([])
