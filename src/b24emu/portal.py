"""The portal's state: CRM records, user fields, reference lists, users, a clock.

Records are kept exactly as the REST API serialises them (IDs and numbers as strings, 'Y'/'N',
ISO 8601 datetimes with the portal's offset), so reads cost nothing but a projection.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from b24emu import errors, history, references, smart
from b24emu.fields import (
    ENTITIES,
    INTEGER_TYPES,
    MULTIFIELDS,
    USER_FIELD_TYPES,
    FieldDef,
    standard_fields,
    user_field_definition,
)
from b24emu.products import OWNER_TYPES, ProductRows
from b24emu.query import compile_filter, order_keys, resolve_select, sort_records

PAGE_SIZE = 50
PORTAL_TZ = timezone(timedelta(hours=3))  # Moscow, the offset most portals report

ChangeListener = Callable[[str, str, int], None]  # (entity, ADD|UPDATE|DELETE, id)


class Clock:
    """The portal's wall clock; tests may move it forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return (datetime.now(UTC) + self.offset).astimezone(PORTAL_TZ).replace(microsecond=0)

    def iso(self) -> str:
        return self.now().isoformat()


@dataclass
class ListPage:
    items: list[dict[str, Any]]
    total: int | None
    next: int | None
    scanned: int


@dataclass(frozen=True)
class AuditFields:
    """Which fields say when and by whom a record was created and last changed."""

    created_at: str = "DATE_CREATE"
    modified_at: str = "DATE_MODIFY"
    created_by: str = "CREATED_BY_ID"
    modified_by: str = "MODIFY_BY_ID"
    assigned_to: str = "ASSIGNED_BY_ID"


# crm-activity-fields.md: CREATED / LAST_UPDATED, AUTHOR_ID / EDITOR_ID, RESPONSIBLE_ID
ACTIVITY_AUDIT = AuditFields("CREATED", "LAST_UPDATED", "AUTHOR_ID", "EDITOR_ID", "RESPONSIBLE_ID")
SMART_AUDIT = AuditFields("CREATED_TIME", "UPDATED_TIME", "CREATED_BY", "UPDATED_BY")


@dataclass
class EntityStore:
    name: str
    fields: dict[str, FieldDef]
    audit: AuditFields = AuditFields()
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)  # ascending, for keyset seeks
    next_id: int = 1

    def insert(self, record: dict[str, Any]) -> int:
        record_id = self.next_id
        self.next_id += 1
        record["ID"] = str(record_id)
        self.records[record_id] = record
        self.ids.append(record_id)
        return record_id

    def remove(self, record_id: int) -> None:
        del self.records[record_id]
        index = bisect.bisect_left(self.ids, record_id)
        del self.ids[index]

    def iter_from(self, floor: tuple[str, int] | None) -> Iterator[dict[str, Any]]:
        start = 0
        if floor is not None:
            op, value = floor
            start = (bisect.bisect_right if op == ">" else bisect.bisect_left)(self.ids, value)
        records = self.records
        for index in range(start, len(self.ids)):
            yield records[self.ids[index]]


def _as_bool_char(value: Any) -> str:
    return "Y" if str(value).upper() in ("Y", "1", "TRUE") else "N"


class Portal:
    """All data of one emulated portal; every REST handler goes through it."""

    def __init__(self, domain: str = "b24emu.local") -> None:
        self.domain = domain
        self.member_id = "b24emu0000000000000000000000000a"
        self.clock = Clock()
        self.stores: dict[str, EntityStore] = {
            name: EntityStore(name, standard_fields(name)) for name in ENTITIES
        }
        self.stores["activity"].audit = ACTIVITY_AUDIT
        self.stage_history: dict[int, EntityStore] = {
            type_id: EntityStore(f"stagehistory.{type_id}", history.history_fields(spec))
            for type_id, spec in history.STAGED.items()
        }
        self.product_rows = ProductRows()
        self.multifield_ids = itertools.count(1)
        self.listeners: list[ChangeListener] = []
        self.users = references.users()
        self.departments = references.departments()
        self.statuses = references.statuses()
        self.categories = references.categories()
        self.currencies = references.currencies()
        self.user_field_ids = itertools.count(100)
        self.types: dict[int, smart.SmartType] = {}  # by entityTypeId
        self.type_ids = itertools.count(1)

    # --- helpers --------------------------------------------------------------------------

    def store(self, entity: str) -> EntityStore:
        return self.stores[entity]

    def _notify(self, entity: str, action: str, record_id: int) -> None:
        for listener in self.listeners:
            listener(entity, action, record_id)

    @staticmethod
    def parse_id(value: Any) -> int:
        try:
            record_id = int(str(value))
        except (TypeError, ValueError):
            raise errors.invalid_id() from None
        if record_id <= 0:
            raise errors.invalid_id()
        return record_id

    def _serialise(self, fdef: FieldDef, value: Any, name: str) -> Any:
        """Input value -> the string form the API returns for this field type."""
        if fdef["isMultiple"] and name not in MULTIFIELDS:
            items = value if isinstance(value, list) else [value]
            single = dict(fdef, isMultiple=False)
            return [self._serialise(single, v, name) for v in items if v not in (None, "")]
        if value is None:
            return None
        ftype = fdef["type"]
        if ftype in INTEGER_TYPES:
            if value == "":
                return None if name != "CATEGORY_ID" else "0"
            try:
                return str(int(Decimal(str(value))))
            except (InvalidOperation, ValueError):
                raise errors.bad_parameter(f"Field '{name}' must be an integer.") from None
        if ftype == "double":
            if value == "":
                return None
            try:
                return f"{Decimal(str(value)):.2f}"
            except InvalidOperation:
                raise errors.bad_parameter(f"Field '{name}' must be a number.") from None
        if ftype == "char":
            return _as_bool_char(value)
        if ftype == "boolean":
            return "1" if str(value).upper() in ("Y", "1", "TRUE") else "0"
        if ftype in ("date", "datetime"):
            return self._serialise_datetime(str(value), date_only=ftype == "date")
        if ftype == "money":
            amount, _, currency = str(value).partition("|")
            return f"{Decimal(amount or '0'):.2f}|{currency or 'RUB'}" if value != "" else ""
        return value if isinstance(value, (dict, list)) else str(value)

    def _serialise_datetime(self, text: str, *, date_only: bool) -> str | None:
        if not text:
            return None
        try:
            if len(text) == 10 and text[2] == ".":
                parsed = datetime.strptime(text, "%d.%m.%Y")
            else:
                parsed = datetime.fromisoformat(text)
        except ValueError:
            raise errors.bad_parameter(f"Invalid date value '{text}'.") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=PORTAL_TZ)
        parsed = parsed.astimezone(PORTAL_TZ).replace(microsecond=0)
        if date_only:
            parsed = parsed.replace(hour=0, minute=0, second=0)
        return parsed.isoformat()

    def _multifield(
        self, name: str, current: list[dict[str, Any]], given: Any
    ) -> list[dict[str, Any]]:
        """PHONE/EMAIL/...: items with ID update (empty VALUE deletes), without ID are added."""
        items = (
            given
            if isinstance(given, list)
            else list(given.values())
            if isinstance(given, dict)
            else []
        )
        result = [dict(i) for i in current]
        for item in items:
            if not isinstance(item, dict):
                continue
            if item.get("ID"):
                for existing in result:
                    if existing["ID"] == str(item["ID"]):
                        if (
                            item.get("VALUE", existing["VALUE"]) in ("", None)
                            or item.get("DELETE") == "Y"
                        ):
                            result.remove(existing)
                        else:
                            existing["VALUE"] = str(item.get("VALUE", existing["VALUE"]))
                            existing["VALUE_TYPE"] = str(
                                item.get("VALUE_TYPE", existing["VALUE_TYPE"])
                            )
                        break
            elif item.get("VALUE") not in (None, ""):
                result.append(
                    {
                        "ID": str(next(self.multifield_ids)),
                        "VALUE_TYPE": str(item.get("VALUE_TYPE") or "WORK"),
                        "VALUE": str(item["VALUE"]),
                        "TYPE_ID": name,
                    }
                )
        return result

    def _apply(
        self, store: EntityStore, record: dict[str, Any], given: dict[str, Any], *, creating: bool
    ) -> None:
        for raw_name, value in given.items():
            name = str(raw_name).upper()
            fdef = store.fields.get(name)
            if fdef is None or name == "ID":
                continue
            if fdef["isReadOnly"] and not creating:
                continue
            if fdef["isImmutable"] and not creating:
                continue
            if name in MULTIFIELDS:
                record[name] = self._multifield(name, record.get(name, []), value)
                has = {"PHONE": "HAS_PHONE", "EMAIL": "HAS_EMAIL", "IM": "HAS_IMOL"}.get(name)
                if has and has in store.fields:
                    record[has] = "Y" if record[name] else "N"
                continue
            record[name] = self._serialise(fdef, value, name)

    # --- CRM records --------------------------------------------------------------------------

    def add(
        self, entity: str, fields: dict[str, Any], *, user_id: int = 1, notify: bool = True
    ) -> int:
        store = self.store(entity)
        now = self.clock.iso()
        record: dict[str, Any] = {
            name: None
            for name, d in store.fields.items()
            if not d["isMultiple"] or name not in MULTIFIELDS
        }
        for name, fdef in store.fields.items():
            if fdef["isMultiple"] and name not in MULTIFIELDS:
                record[name] = []
            elif fdef["type"] == "char":
                record[name] = "N"
        audit = store.audit
        record.update(
            {
                audit.created_at: now,
                audit.modified_at: now,
                audit.created_by: str(user_id),
                audit.modified_by: str(user_id),
                audit.assigned_to: str(user_id),
                **({"OPENED": "Y"} if "OPENED" in store.fields else {}),
            }
        )
        record.update(self._defaults(entity))
        self._apply(store, record, fields, creating=True)
        self._derive(entity, record)
        record_id = store.insert(record)
        self.record_stage(entity, record, None, now)
        if notify:
            self._notify(entity, "ADD", record_id)
        return record_id

    def get(self, entity: str, record_id: Any) -> dict[str, Any]:
        rid = self.parse_id(record_id)
        record = self.store(entity).records.get(rid)
        if record is None:
            raise errors.not_found()
        return record

    def update(
        self, entity: str, record_id: Any, fields: dict[str, Any], *, user_id: int = 1
    ) -> None:
        record = self.get(entity, record_id)
        store = self.store(entity)
        stage = record.get("STAGE_ID")
        staged = self.staged(entity)
        before = history.stage_of(staged[1], record) if staged else None
        self._apply(store, record, fields, creating=False)
        now = self.clock.iso()
        record[store.audit.modified_at] = now
        record[store.audit.modified_by] = str(user_id)
        self._derive(entity, record)
        if before is not None:
            self.record_stage(entity, record, before, now)
        if entity in self._smart_stores() and record.get("STAGE_ID") != stage:
            record.update(
                {
                    "PREVIOUS_STAGE_ID": stage,
                    "MOVED_TIME": record[store.audit.modified_at],
                    "MOVED_BY": str(user_id),
                }
            )
        self._notify(entity, "UPDATE", int(record["ID"]))

    def delete(self, entity: str, record_id: Any) -> None:
        record = self.get(entity, record_id)
        rid = int(record["ID"])
        self.store(entity).remove(rid)
        owner_type = self._owner_type_of(entity)
        if owner_type is not None:
            self.product_rows.drop(owner_type, rid)
        self._notify(entity, "DELETE", rid)

    # --- stage history (b24emu.history) ---------------------------------------------------------

    def staged(self, entity: str) -> tuple[int, history.StageFields] | None:
        """The entity type whose stage history ``entity``'s moves go to, and how it names them:
        deals, leads, and the items of a smart process with stages (``isStagesEnabled``)."""
        if entity in history.BY_ENTITY:
            return history.BY_ENTITY[entity]
        kind = self._smart_type(entity)
        if kind is None or not kind.enabled("isStagesEnabled"):
            return None
        return kind.entity_type_id, history.smart_stage_fields(entity)

    def history_store(self, entity_type_id: int) -> EntityStore | None:
        """The stage history of a type that has one (None: crm.stagehistory.list refuses it)."""
        entity = (
            history.STAGED[entity_type_id].entity
            if entity_type_id in history.STAGED
            else smart.store_name(entity_type_id)
        )
        staged = self.staged(entity)
        if staged is None:
            return None
        if entity_type_id not in self.stage_history:
            self.stage_history[entity_type_id] = EntityStore(
                f"stagehistory.{entity_type_id}", history.history_fields(staged[1])
            )
        return self.stage_history[entity_type_id]

    def stage_view(self, entity: str, record: dict[str, Any]) -> dict[str, Any]:
        """The record as its stage history sees it: a smart-process item's stage semantics are
        its stage's in crm.status.list (``SEMANTICS``); deals and leads carry their own."""
        if self._smart_type(entity) is None:
            return record
        stage = record.get("STAGE_ID")
        semantics = next((s["SEMANTICS"] for s in self.statuses if s["STATUS_ID"] == stage), None)
        return record | {"STAGE_SEMANTIC_ID": semantics or "P"}

    def record_stage(
        self, entity: str, record: dict[str, Any], before: tuple[str, str] | None, at: str
    ) -> None:
        """Append a stage-history row when a record with stage history is created (``before``
        None) or its stage or pipeline changed."""
        staged = self.staged(entity)
        history_store = self.history_store(staged[0]) if staged else None
        if staged is None or history_store is None:
            return
        spec = staged[1]
        view = self.stage_view(entity, record)
        move = history.CREATED if before is None else history.move_type(spec, before, view)
        if move is None:
            return
        if spec.stage == "STAGE_ID":
            record["MOVED_TIME"] = at
        row = history.history_row(spec, view, move, at)
        row["ID"] = history_store.insert(row)

    # --- product rows (b24emu.products) ---------------------------------------------------------

    def product_owner(self, owner_type: str) -> tuple[str, str] | None:
        """(the canonical ownerType code, the store of its records) for a code whose records
        have product rows: ``D``, ``L``, and ``T<hex>`` of a smart process that links products
        (``isLinkWithProductsEnabled``); None for any other (crm-item-productrow-list.md)."""
        if owner_type in OWNER_TYPES:
            return owner_type, OWNER_TYPES[owner_type]
        entity_type_id = smart.entity_type_of_owner(owner_type)
        kind = self.types.get(entity_type_id) if entity_type_id is not None else None
        if kind is None or not kind.enabled("isLinkWithProductsEnabled"):
            return None
        return smart.owner_type(kind.entity_type_id), smart.store_name(kind.entity_type_id)

    def _owner_type_of(self, entity: str) -> str | None:
        """The ownerType code of ``entity``'s product rows, whether or not it links products."""
        kind = self._smart_type(entity)
        if kind is not None:
            return smart.owner_type(kind.entity_type_id)
        return next((code for code, owner in OWNER_TYPES.items() if owner == entity), None)

    def _derive(self, entity: str, record: dict[str, Any]) -> None:
        """Fields the portal computes: stage semantics, the deprecated single-link fields."""
        if entity == "deal":
            stage = record.get("STAGE_ID") or "NEW"
            record["STAGE_SEMANTIC_ID"] = (
                "S" if stage.endswith("WON") else "F" if stage.endswith("LOSE") else "P"
            )
            record["CLOSED"] = "Y" if record["STAGE_SEMANTIC_ID"] != "P" else "N"
            ids = record.get("CONTACT_IDS") or []
            record["CONTACT_ID"] = ids[0] if ids else record.get("CONTACT_ID")
        if entity == "contact":
            ids = record.get("COMPANY_IDS") or []
            company = record.get("COMPANY_ID")
            if company and company not in ids:
                ids = [company, *ids]
                record["COMPANY_IDS"] = ids
            record["COMPANY_ID"] = ids[0] if ids else None
        if entity in self._smart_stores():
            self._derive_stage(entity, record)
        if entity == "activity":
            # crm-activity-fields.md: DEADLINE comes from START_TIME for calls and meetings,
            # from END_TIME for tasks; a completed activity has STATUS 2
            record["DEADLINE"] = record.get(
                "END_TIME" if record.get("TYPE_ID") == "3" else "START_TIME"
            )
            record["STATUS"] = "2" if record.get("COMPLETED") == "Y" else "1"
        if entity == "lead":
            status = record.get("STATUS_ID") or "NEW"
            record["STATUS_SEMANTIC_ID"] = (
                "S" if status == "CONVERTED" else "F" if status == "JUNK" else "P"
            )

    def list(
        self,
        entity: str,
        *,
        select: list[str] | None,
        filter: dict[str, Any] | None,
        order: dict[str, Any] | None,
        start: int,
    ) -> ListPage:
        """One page as crm.*.list returns it; ``start=-1`` skips counting (no total/next)."""
        return self.list_store(
            self.store(entity), select=select, filter=filter, order=order, start=start
        )

    def list_store(
        self,
        store: EntityStore,
        *,
        select: list[str] | None,
        filter: dict[str, Any] | None,
        order: dict[str, Any] | None,
        start: int,
    ) -> ListPage:
        """One page of any store's records (CRM records, stage history)."""
        predicates, floor = compile_filter(filter, store.fields)
        keys = order_keys(order, store.fields)
        columns = resolve_select(select, store.fields)
        id_ascending = keys == [("ID", "integer", False)]

        def matches(record: dict[str, Any]) -> bool:
            return all(p(record) for p in predicates)

        if id_ascending and start < 0:
            page: list[dict[str, Any]] = []
            scanned = 0
            for record in store.iter_from(floor):
                scanned += 1
                if matches(record):
                    page.append(record)
                    if len(page) == PAGE_SIZE:
                        break
            return ListPage(_projected(page, columns), None, None, scanned)
        matching = [r for r in store.iter_from(floor) if matches(r)]
        if not id_ascending:
            sort_records(matching, keys)
        offset = max(start, 0)
        window = matching[offset : offset + PAGE_SIZE]
        following = offset + PAGE_SIZE if offset + PAGE_SIZE < len(matching) else None
        total = len(matching) if start >= 0 else None
        return ListPage(
            _projected(window, columns),
            total,
            following if start >= 0 else None,
            len(store.records) + offset,
        )

    # --- smart processes (b24emu.smart) --------------------------------------------------------

    def _smart_stores(self) -> set[str]:
        return {smart.store_name(t) for t in self.types}

    def _smart_type(self, entity: str) -> smart.SmartType | None:
        """The smart process whose items ``entity`` holds (None: not a smart process's store)."""
        if not entity.startswith(smart.STORE_PREFIX):
            return None
        suffix = entity.removeprefix(smart.STORE_PREFIX)
        return self.types.get(int(suffix)) if suffix.isdigit() else None

    def smart_store(self, entity_type_id: Any) -> str:
        """The store of a smart process's items; NOT_FOUND as crm.item.* answers it."""
        try:
            known = int(str(entity_type_id)) in self.types
        except ValueError:
            known = False
        if not known:
            raise errors.RestError("NOT_FOUND", "Smart process not found", 400)
        return smart.store_name(int(str(entity_type_id)))

    def add_type(
        self,
        title: str,
        flags: dict[str, Any],
        *,
        entity_type_id: int | None = None,
        pipelines: list[tuple[str, list[tuple[str, str, str | None]]]] | None = None,
    ) -> smart.SmartType:
        """A new smart process with its pipelines (name, stages), the first one the default."""
        if entity_type_id is None:
            entity_type_id = smart.FIRST_ENTITY_TYPE_ID
            while entity_type_id in self.types:
                entity_type_id += 2
        elif entity_type_id in self.types or not smart.entity_type_id_allowed(entity_type_id):
            raise errors.bad_parameter(f"entityTypeId {entity_type_id} is taken or not allowed")
        now = self.clock.iso()
        kind = smart.SmartType(
            next(self.type_ids), entity_type_id, title, smart.flags_from(flags), now, now
        )
        self.types[entity_type_id] = kind
        chosen = pipelines or [("Общая", smart.DEFAULT_STAGES)]
        categories = [self.add_category(entity_type_id, name, stages) for name, stages in chosen]
        self.categories[-len(categories)]["isDefault"] = "Y"
        name = smart.store_name(entity_type_id)
        fields = smart.standard_fields(entity_type_id, categories[0])
        self.stores[name] = EntityStore(name, fields, SMART_AUDIT)
        return kind

    def add_category(
        self, entity_type_id: int, name: str, stages: list[tuple[str, str, str | None]]
    ) -> int:
        """A pipeline of a smart process and its stages (`crm.category.list`, `crm.status.list`)."""
        category_id = max(int(c["id"]) for c in self.categories) + 1
        sort = 100 * (1 + sum(c["entityTypeId"] == entity_type_id for c in self.categories))
        self.categories.append(
            {
                "id": category_id,
                "name": name,
                "sort": sort,
                "entityTypeId": entity_type_id,
                "isDefault": "N",
            }
        )
        entity_id = smart.stage_entity_id(entity_type_id, category_id)
        for n, (code, stage_name, semantics) in enumerate(stages):
            self.statuses.append(
                references.status_row(
                    max(int(s["ID"]) for s in self.statuses) + 1,
                    entity_id,
                    n,
                    smart.stage_id(entity_type_id, category_id, code),
                    stage_name,
                    semantics,
                    str(category_id),
                )
            )
        return category_id

    def delete_type(self, type_id: Any) -> None:
        """crm-type-delete.md: only a type without items; its pipelines and stages go with it."""
        kind = next((t for t in self.types.values() if str(t.id) == str(type_id)), None)
        if kind is None:
            raise errors.RestError("0", "Smart process not found", 400)
        name = smart.store_name(kind.entity_type_id)
        if self.stores[name].records:
            raise errors.RestError(
                "BX_ERROR", "You cannot delete an entity type that has elements", 400
            )
        del self.types[kind.entity_type_id]
        del self.stores[name]
        self.stage_history.pop(kind.entity_type_id, None)
        self.categories = [c for c in self.categories if c["entityTypeId"] != kind.entity_type_id]
        prefix = f"DYNAMIC_{kind.entity_type_id}_STAGE_"
        self.statuses = [s for s in self.statuses if not s["ENTITY_ID"].startswith(prefix)]

    def stages_of(self, entity_type_id: int, category_id: int) -> list[dict[str, Any]]:
        entity_id = smart.stage_entity_id(entity_type_id, category_id)
        return [s for s in self.statuses if s["ENTITY_ID"] == entity_id]

    def default_category(self, entity_type_id: int) -> int:
        return next(
            int(c["id"])
            for c in self.categories
            if c["entityTypeId"] == entity_type_id and c["isDefault"] == "Y"
        )

    def _defaults(self, entity: str) -> dict[str, Any]:
        if entity not in self._smart_stores():
            return _ENTITY_DEFAULTS.get(entity, {})
        return {"CURRENCY_ID": "RUB", "OPPORTUNITY": "0.00", "IS_MANUAL_OPPORTUNITY": "N"}

    def _derive_stage(self, entity: str, record: dict[str, Any]) -> None:
        """A smart-process item stands in a stage of its own pipeline: the first one when none
        (or one of another pipeline) was given."""
        entity_type_id = int(entity.removeprefix(smart.STORE_PREFIX))
        category = record.get("CATEGORY_ID") or str(self.default_category(entity_type_id))
        stages = self.stages_of(entity_type_id, int(category))
        if not stages:
            raise errors.bad_parameter(f"Pipeline {category} not found")
        record["CATEGORY_ID"] = str(category)
        if record.get("STAGE_ID") not in {s["STATUS_ID"] for s in stages}:
            record["STAGE_ID"] = stages[0]["STATUS_ID"]

    # --- user fields ------------------------------------------------------------------------

    def add_user_field(
        self,
        entity: str,
        name: str,
        user_type: str,
        label: str,
        *,
        multiple: bool = False,
        items: list[str] | None = None,
    ) -> FieldDef:
        name = name.upper()
        if not name.startswith("UF_CRM_"):
            raise errors.bad_parameter("FIELD_NAME must start with UF_CRM_.")
        if user_type not in USER_FIELD_TYPES:
            raise errors.bad_parameter(f"Unknown USER_TYPE_ID '{user_type}'.")
        store = self.store(entity)
        enum_items = [{"ID": str(next(self.user_field_ids)), "VALUE": v} for v in (items or [])]
        store.fields[name] = user_field_definition(
            name, user_type, label, multiple=multiple, items=enum_items
        )
        for record in store.records.values():
            record.setdefault(name, [] if multiple else None)
        return store.fields[name]

    def remove_user_field(self, entity: str, name: str) -> None:
        store = self.store(entity)
        name = name.upper()
        if name not in store.fields or not name.startswith("UF_"):
            raise errors.not_found()
        del store.fields[name]
        for record in store.records.values():
            record.pop(name, None)

    def retype_user_field(self, entity: str, name: str, user_type: str) -> None:
        """Not possible on a real portal through REST; the emulator does it to test evolution."""
        store = self.store(entity)
        fdef = store.fields.get(name.upper())
        if fdef is None or not name.upper().startswith("UF_"):
            raise errors.not_found()
        fdef["type"] = user_type


_ENTITY_DEFAULTS: dict[str, dict[str, Any]] = {
    "deal": {
        "STAGE_ID": "NEW",
        "CATEGORY_ID": "0",
        "CURRENCY_ID": "RUB",
        "OPPORTUNITY": "0.00",
        "PROBABILITY": None,
        "IS_NEW": "Y",
        "TYPE_ID": "SALE",
    },
    "lead": {"STATUS_ID": "NEW", "CURRENCY_ID": "RUB", "OPPORTUNITY": "0.00"},
    "contact": {"TYPE_ID": "CLIENT", "EXPORT": "Y"},
    "company": {"COMPANY_TYPE": "CUSTOMER", "CURRENCY_ID": "RUB"},
    "activity": {
        "COMPLETED": "N",
        "STATUS": "1",
        "PRIORITY": "2",
        "DIRECTION": "0",
        "DESCRIPTION_TYPE": "1",
        "NOTIFY_TYPE": "0",
    },
}


def _projected(records: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    """The selected fields of each record, in the select's order. A record holding them all
    is read by one itemgetter, in C (a list page's projection was a third of the emulator's
    CPU); one that lacks some, field by field."""
    if len(columns) < 2:  # itemgetter of one name returns the value, not a tuple
        return [{c: r[c] for c in columns if c in r} for r in records]
    pick = operator.itemgetter(*columns)
    return [_project(record, columns, pick) for record in records]


def _project(
    record: dict[str, Any], columns: list[str], pick: Callable[[dict[str, Any]], tuple[Any, ...]]
) -> dict[str, Any]:
    try:
        return dict(zip(columns, pick(record), strict=True))
    except KeyError:
        return {c: record[c] for c in columns if c in record}
