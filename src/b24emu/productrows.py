"""`crm.item.productrow.*` (api-reference/crm/universal/product-rows/): one owner per `list`
command (`=ownerType` and `=ownerId` required), records under `result.productRows`, 50 a page
by `start` (`-1`: no count), order by `id` or `sort` only, filter by `id` and `productId` only."""

from __future__ import annotations

from typing import Any

from b24emu import errors
from b24emu.methods import Call, MethodResult, _as_dict, _as_list, _start, method
from b24emu.portal import PAGE_SIZE
from b24emu.products import FIELDS, FILTERABLE, OWNER_TYPES
from b24emu.query import compile_filter, split_key


def _owner(call: Call, owner_type: Any, owner_id: Any) -> tuple[str, int]:
    """The owner named by a call; ACCESS_DENIED when it does not exist or has no product rows
    (crm-item-productrow-list.md)."""
    entity = OWNER_TYPES.get(str(owner_type))
    try:
        number = int(str(owner_id))
    except ValueError:
        number = 0
    if entity is None or number not in call.emulator.portal.store(entity).records:
        raise errors.RestError("ACCESS_DENIED", "Access denied", 400)
    return str(owner_type), number


@method("crm.item.productrow.fields")
def productrow_fields(call: Call) -> MethodResult:
    return MethodResult({"fields": FIELDS})


@method("crm.item.productrow.list")
def productrow_list(call: Call) -> MethodResult:
    flt = _as_dict(call.param("filter"))
    if "=ownerType" not in flt or "=ownerId" not in flt:
        raise errors.RestError("REQUIRED_ARG_MISSING", "Required fields: =ownerType, =ownerId", 400)
    owner = _owner(call, flt["=ownerType"], flt["=ownerId"])
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
    owner_type, owner_id = _owner(call, call.param("ownerType"), call.param("ownerId"))
    given = [dict(item) for item in _as_list(call.param("productRows")) if isinstance(item, dict)]
    portal = call.emulator.portal
    rows = portal.product_rows.replace(owner_type, owner_id, given)
    portal.update(OWNER_TYPES[owner_type], owner_id, {}, user_id=call.user_id)
    return MethodResult({"productRows": rows})
