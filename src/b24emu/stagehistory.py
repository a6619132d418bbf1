"""`crm.stagehistory.list` (api-reference/crm/crm-stage-history-list.md): records under
`result.items`, standard `start` paging (`-1`: no count), `order` / `filter` / `select` by the
history's own upper-case field names; `entityTypeId` 1, 2 or a smart process's (with stages)."""

from __future__ import annotations

from b24emu import errors
from b24emu.methods import Call, MethodResult, _as_dict, _as_list, _start, method


@method("crm.stagehistory.list")
def stage_history_list(call: Call) -> MethodResult:
    raw_type = call.param("entityTypeId")
    try:
        store = call.emulator.portal.history_store(int(raw_type))
    except (TypeError, ValueError):
        store = None
    if store is None:  # not 1, 2, nor a smart process with stages
        raise errors.RestError(
            "ENTITY_TYPE_NOT_SUPPORTED", f"Entity type {raw_type} is not supported", 400
        )
    flt = _as_dict(call.param("filter"))
    for key in flt:
        name = key.lstrip("=!<>@%")
        if name.upper() not in store.fields:
            raise errors.RestError(
                "INVALID_ARG_VALUE", f"Invalid filter: field '{name}' is not allowed in filter", 400
            )
    order = _as_dict(call.param("order"))
    for name, direction in order.items():
        if str(name).upper() not in store.fields:
            raise errors.RestError(
                "INVALID_ARG_VALUE", f"Invalid order: field '{name}' is not allowed in order", 400
            )
        if str(direction).upper() not in ("ASC", "DESC"):
            raise errors.RestError(
                "INVALID_ARG_VALUE",
                "Invalid order: allowed sort directions are ASC, DESC. "
                f"But got '{direction}' for field '{name}'",
                400,
            )
    start = _start(call)
    page = call.emulator.portal.list_store(
        store,
        select=[str(n) for n in _as_list(call.param("select"))] or ["*"],
        filter=flt,
        order=order,
        start=start,
    )
    return MethodResult(
        {"items": page.items},
        page.total,
        page.next,
        returned=len(page.items),
        counted_rows=page.scanned if start >= 0 else None,
    )
