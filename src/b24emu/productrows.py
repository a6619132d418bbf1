"""`crm.item.productrow.*` (api-reference/crm/universal/product-rows/): one owner per `list`
command (`=ownerType` and `=ownerId` required: `D`, `L`, or a smart process's `T<hex>`), records
under `result.productRows`, 50 a page by `start` (`-1`: no count), order by `id` or `sort` only,
filter by `id` and `productId` only."""

from __future__ import annotations

from typing import Any

from b24emu import errors
from b24emu.methods import Call, MethodResult, _as_dict, _as_list, _start, method
from b24emu.portal import PAGE_SIZE
from b24emu.products import FIELDS, FILTERABLE, WITHOUT_ROWS
from b24emu.query import compile_filter, split_key


def _owner_id(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _listed_owner(call: Call, owner_type: Any, owner_id: Any) -> tuple[str, int]:
    """The owner a list names; ACCESS_DENIED when it does not exist or its type has no product
    rows (crm-item-productrow-list.md)."""
    owner = call.emulator.portal.product_owner(str(owner_type))
    number = _owner_id(owner_id)
    if owner is None or number not in call.emulator.portal.store(owner[1]).records:
        raise errors.RestError("ACCESS_DENIED", "Access denied", 400)
    return owner[0], number


def _written_owner(call: Call, owner_type: Any, owner_id: Any) -> tuple[str, str, int]:
    """(code, store, id) of the owner a write names: ENTITY_TYPE_NOT_SUPPORTED for a type
    without product rows, OWNER_NOT_FOUND for a missing owner (crm-item-productrow-set.md)."""
    owner = call.emulator.portal.product_owner(str(owner_type))
    if owner is None:
        raise errors.RestError(
            "ENTITY_TYPE_NOT_SUPPORTED",
            "This type of CRM object does not support product rows",
            400,
        )
    number = _owner_id(owner_id)
    if number not in call.emulator.portal.store(owner[1]).records:
        raise errors.RestError("OWNER_NOT_FOUND", "Owner was not found", 400)
    return owner[0], owner[1], number


@method("crm.item.productrow.fields")
def productrow_fields(call: Call) -> MethodResult:
    return MethodResult({"fields": FIELDS})


@method("crm.item.productrow.list")
def productrow_list(call: Call) -> MethodResult:
    flt = _as_dict(call.param("filter"))
    if "=ownerType" not in flt or "=ownerId" not in flt:
        raise errors.RestError("REQUIRED_ARG_MISSING", "Required fields: =ownerType, =ownerId", 400)
    if str(flt["=ownerType"]) in WITHOUT_ROWS:  # contacts, companies: an empty answer
        return MethodResult({"productRows": []}, 0 if _start(call) >= 0 else None, returned=0)
    owner = _listed_owner(call, flt["=ownerType"], flt["=ownerId"])
    conditions: dict[str, Any] = {}
    for key, value in flt.items():
        operator, name = split_key(key)
        if name.upper() not in FILTERABLE:
            continue  # other keys are ignored silently, as the docs say
        if isinstance(value, list) and operator != "@":
            raise errors.RestError("INVALID_ARG_VALUE", f"Invalid value for '{key}'", 400)
        conditions[operator + name.upper()] = value
    predicates, _ = compile_filter(conditions, FILTERABLE)
    rows = [
        r
        for r in call.emulator.portal.product_rows.rows(*owner)
        if all(p({"ID": r["id"], "PRODUCTID": r["productId"]}) for p in predicates)
    ]
    for name, direction in reversed(list(_as_dict(call.param("order")).items())):
        if name in ("id", "sort"):
            rows = sorted(rows, key=lambda r: r[name], reverse=str(direction).lower() == "desc")
    start = _start(call)
    offset = max(start, 0)
    window = rows[offset : offset + PAGE_SIZE]
    following = offset + PAGE_SIZE if offset + PAGE_SIZE < len(rows) else None
    return MethodResult(
        {"productRows": window},
        len(rows) if start >= 0 else None,
        following if start >= 0 else None,
        returned=len(window),
    )


@method("crm.item.productrow.set")
def productrow_set(call: Call) -> MethodResult:
    """Replace every row of the owner; the owner counts as modified (its event fires)."""
    owner_type, entity, owner_id = _written_owner(
        call, call.param("ownerType"), call.param("ownerId")
    )
    given = [dict(item) for item in _as_list(call.param("productRows")) if isinstance(item, dict)]
    portal = call.emulator.portal
    rows = portal.product_rows.replace(owner_type, owner_id, given)
    portal.update(entity, owner_id, {}, user_id=call.user_id)
    return MethodResult({"productRows": rows})
