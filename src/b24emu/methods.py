"""REST methods: name -> handler. Each returns a MethodResult; errors raise RestError."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from b24emu import errors
from b24emu.events import CRM_EVENTS, Binding
from b24emu.fields import ENTITIES
from b24emu.portal import PAGE_SIZE

if TYPE_CHECKING:
    from b24emu.emulator import Emulator


@dataclass
class Call:
    emulator: Emulator
    params: dict[str, Any]
    auth: str  # "webhook" or "app"
    user_id: int

    def param(self, name: str, default: Any = None) -> Any:
        """Parameters are accepted in either case (crm-deal-list.md)."""
        if name in self.params:
            return self.params[name]
        return self.params.get(name.upper(), self.params.get(name.lower(), default))


@dataclass
class MethodResult:
    result: Any
    total: int | None = None
    next: int | None = None
    returned: int = 0
    counted_rows: int | None = None


Handler = Callable[[Call], MethodResult]
METHODS: dict[str, Handler] = {}
NOT_IN_BATCH = frozenset({"batch"})


def method(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        METHODS[name] = handler
        return handler

    return register


def _as_dict(value: Any) -> dict[str, Any]:
    if value in (None, "", []):
        return {}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if not isinstance(value, dict):
        raise errors.bad_parameter("Parameter must be array.")
    return value


def _as_list(value: Any) -> list[Any]:
    if value in (None, ""):
        return []
    if isinstance(value, dict):
        return list(value.values())
    return value if isinstance(value, list) else [value]


def _start(call: Call) -> int:
    try:
        return int(call.param("start", 0) or 0)
    except (TypeError, ValueError):
        return 0


# Link arrays that the classic list and get leave out (crm-deal-fields.md: "CONTACT_IDS is not
# available in crm.deal.get and crm.deal.list"; crm-contact-fields.md likewise for COMPANY_IDS):
# crm.item.list returns them.
UNLISTED = {"deal": frozenset({"CONTACT_IDS"}), "contact": frozenset({"COMPANY_IDS"})}


def _crm_methods(entity: str) -> None:
    prefix = f"crm.{entity}"
    unlisted = UNLISTED.get(entity, frozenset())

    def fields(call: Call) -> MethodResult:
        return MethodResult(call.emulator.portal.store(entity).fields)

    def list_(call: Call) -> MethodResult:
        start = _start(call)
        select = [n for n in _as_list(call.param("select")) if str(n).upper() not in unlisted]
        page = call.emulator.portal.list(
            entity,
            select=select,
            filter=_as_dict(call.param("filter")),
            order=_as_dict(call.param("order")),
            start=start,
        )
        return MethodResult(
            page.items,
            page.total,
            page.next,
            returned=len(page.items),
            counted_rows=page.scanned if start >= 0 else None,
        )

    def get(call: Call) -> MethodResult:
        record = call.emulator.portal.get(entity, call.param("id"))
        return MethodResult({k: v for k, v in record.items() if k not in unlisted}, returned=1)

    def add(call: Call) -> MethodResult:
        fields_ = call.param("fields")
        if not isinstance(fields_, dict):
            raise errors.bad_parameter("Parameter 'fields' must be array.")
        return MethodResult(call.emulator.portal.add(entity, fields_, user_id=call.user_id))

    def update(call: Call) -> MethodResult:
        fields_ = call.param("fields")
        if not isinstance(fields_, dict):
            raise errors.bad_parameter("Parameter 'fields' must be array.")
        call.emulator.portal.update(entity, call.param("id"), fields_, user_id=call.user_id)
        return MethodResult(True)

    def delete(call: Call) -> MethodResult:
        call.emulator.portal.delete(entity, call.param("id"))
        return MethodResult(True)

    for suffix, handler in (
        ("fields", fields),
        ("list", list_),
        ("get", get),
        ("add", add),
        ("update", update),
        ("delete", delete),
    ):
        METHODS[f"{prefix}.{suffix}"] = handler


for _entity in ENTITIES:
    _crm_methods(_entity)


# --- relations (api-reference/crm/contacts/company/*, crm/deals/contacts/*) -----------------


def _link_items(ids: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "COMPANY_ID": int(i),
            "SORT": 10 * (n + 1),
            "ROLE_ID": 0,
            "IS_PRIMARY": "Y" if n == 0 else "N",
        }
        for n, i in enumerate(ids)
    ]


@method("crm.contact.company.items.get")
def contact_company_get(call: Call) -> MethodResult:
    record = call.emulator.portal.get("contact", call.param("id"))
    return MethodResult(_link_items(record.get("COMPANY_IDS") or []))


def _set_contact_companies(call: Call, replace: bool) -> MethodResult:
    portal = call.emulator.portal
    record = portal.get("contact", call.param("id"))
    items = _as_list(call.param("items")) if replace else [call.param("fields")]
    wanted = [] if replace else list(record.get("COMPANY_IDS") or [])
    for item in items:
        if not isinstance(item, dict) or "COMPANY_ID" not in item:
            raise errors.bad_parameter("COMPANY_ID is not defined or invalid.")
        company_id = str(portal.get("company", item["COMPANY_ID"])["ID"])
        if company_id not in wanted:
            wanted.append(company_id)
    portal.update(
        "contact", record["ID"], {"COMPANY_IDS": wanted, "COMPANY_ID": wanted[0] if wanted else ""}
    )
    return MethodResult(True)


@method("crm.contact.company.items.set")
def contact_company_set(call: Call) -> MethodResult:
    return _set_contact_companies(call, replace=True)


@method("crm.contact.company.add")
def contact_company_add(call: Call) -> MethodResult:
    return _set_contact_companies(call, replace=False)


@method("crm.deal.contact.items.get")
def deal_contact_get(call: Call) -> MethodResult:
    record = call.emulator.portal.get("deal", call.param("id"))
    return MethodResult(
        [
            {
                "CONTACT_ID": int(i),
                "SORT": 10 * (n + 1),
                "ROLE_ID": 0,
                "IS_PRIMARY": "Y" if n == 0 else "N",
            }
            for n, i in enumerate(record.get("CONTACT_IDS") or [])
        ]
    )


# --- reference lists ------------------------------------------------------------------------


@method("crm.status.list")
def status_list(call: Call) -> MethodResult:
    flt = _as_dict(call.param("filter"))
    rows = [
        s
        for s in call.emulator.portal.statuses
        if all(str(s.get(k.lstrip("="), "")) == str(v) for k, v in flt.items())
    ]
    return MethodResult(rows, total=len(rows))


@method("crm.category.list")
def category_list(call: Call) -> MethodResult:
    rows = [
        c
        for c in call.emulator.portal.categories
        if str(c["entityTypeId"]) == str(call.param("entityTypeId", 2))
    ]
    return MethodResult({"categories": rows}, total=len(rows))


@method("crm.currency.list")
def currency_list(call: Call) -> MethodResult:
    # `total` "currently always has a value of 0" (crm-currency-list.md)
    return MethodResult(call.emulator.portal.currencies, total=0)


def _page(call: Call, rows: list[dict[str, Any]]) -> MethodResult:
    """50 a page by `start`, with total and next (list-methods-pecularities.md)."""
    start = max(_start(call), 0)
    window = rows[start : start + PAGE_SIZE]
    following = start + PAGE_SIZE if start + PAGE_SIZE < len(rows) else None
    return MethodResult(window, total=len(rows), next=following, returned=len(window))


@method("user.get")
def user_get(call: Call) -> MethodResult:
    """Every user by default, dismissed ones too (``ACTIVE: true`` excludes them)."""
    users = list(call.emulator.portal.users.values())
    flt = {k.upper(): v for k, v in _as_dict(call.param("filter")).items()}
    wanted = call.param("ID") or flt.get("ID")
    if wanted:
        users = [u for u in users if u["ID"] == str(wanted)]
    if "ACTIVE" in flt:
        active = str(flt["ACTIVE"]).lower() in ("true", "y", "1")
        users = [u for u in users if u["ACTIVE"] is active]
    return _page(call, users)


@method("department.get")
def department_get(call: Call) -> MethodResult:
    """Filters are plain top-level parameters (department-get.md)."""
    rows = [
        d
        for d in call.emulator.portal.departments
        if all(
            call.param(key) in (None, "") or str(d.get(key, "")) == str(call.param(key))
            for key in ("ID", "NAME", "PARENT", "UF_HEAD")
        )
    ]
    return _page(call, rows)


@method("profile")
def profile(call: Call) -> MethodResult:
    user = call.emulator.portal.users.get(call.user_id, call.emulator.portal.users[1])
    return MethodResult(
        {
            "ID": user["ID"],
            "ADMIN": user.get("ADMIN", False),
            "NAME": user["NAME"],
            "LAST_NAME": user["LAST_NAME"],
            "PERSONAL_GENDER": "",
            "TIME_ZONE": "",
            "TIME_ZONE_OFFSET": 10800,
        }
    )


# --- events ---------------------------------------------------------------------------------


def _require_app(call: Call) -> None:
    if call.auth != "app":
        raise errors.wrong_auth_type()


def _event_name(call: Call) -> str:
    event = str(call.param("event") or "").upper()
    if event not in CRM_EVENTS:
        raise errors.event_not_found()
    return event


@method("event.bind")
def event_bind(call: Call) -> MethodResult:
    _require_app(call)
    event = _event_name(call)
    offline = str(call.param("event_type") or "online").lower() == "offline"
    handler = str(call.param("handler") or "")
    if not offline and not handler.startswith(("http://", "https://")):
        raise errors.bad_parameter("Handler URL is not valid")
    call.emulator.events.bind(
        Binding(
            event,
            handler,
            call.emulator.app_application_token,
            int(call.param("auth_type") or 0),
            offline,
            str(call.param("auth_connector") or ""),
        )
    )
    return MethodResult(True)


@method("event.unbind")
def event_unbind(call: Call) -> MethodResult:
    _require_app(call)
    offline = str(call.param("event_type") or "online").lower() == "offline"
    handler = call.param("handler")
    count = call.emulator.events.unbind(
        _event_name(call), str(handler) if handler else None, offline
    )
    return MethodResult({"count": count})


@method("event.get")
def event_get(call: Call) -> MethodResult:
    _require_app(call)
    return MethodResult(
        [
            {
                "event": b.event,
                "handler": b.handler,
                "auth_type": str(b.auth_type),
                "offline": 1 if b.offline else 0,
            }
            for b in call.emulator.events.bindings
        ]
    )


@method("event.offline.get")
def event_offline_get(call: Call) -> MethodResult:
    _require_app(call)
    limit = max(1, min(1000, int(call.param("limit") or 50)))
    clear = str(call.param("clear", 1)) not in ("0", "false", "N")
    result = call.emulator.events.offline_get(
        limit=limit,
        clear=clear,
        process_id=call.param("process_id"),
        errors=str(call.param("error", 0)) in ("1", "true", "Y"),
    )
    return MethodResult(result)


@method("event.offline.clear")
def event_offline_clear(call: Call) -> MethodResult:
    _require_app(call)
    process_id = call.param("process_id")
    if not process_id:
        raise errors.bad_parameter("process_id is required")
    ids = call.param("id")
    call.emulator.events.offline_clear(
        str(process_id), [int(i) for i in _as_list(ids)] if ids else None
    )
    return MethodResult(True)


@method("event.offline.error")
def event_offline_error(call: Call) -> MethodResult:
    _require_app(call)
    call.emulator.events.offline_error(
        str(call.param("process_id") or ""), [str(m) for m in _as_list(call.param("message_id"))]
    )
    return MethodResult(True)


@method("event.offline.list")
def event_offline_list(call: Call) -> MethodResult:
    _require_app(call)
    rows = call.emulator.events.offline_list()
    return MethodResult(rows, total=len(rows))
