"""The declarations, and the registry that adds the streams of each smart process the portal has.

Adding a stream of an existing kind is one entry here (plus its b24emu methods and tests). Smart
processes are not declared: :meth:`StreamRegistry.use_smart_processes` turns what
``crm.type.list`` answered (kept in the service table by :mod:`b24sync.sync.discovery`) into
item streams, stage history and product rows (:func:`smart_process_streams`), so every process
(API, worker, CLI) sees the same ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from b24sync.errors import UnknownEntity
from b24sync.streams.model import Column, Kind, SmartProcess, Stream

ACTIONS = ("ADD", "UPDATE", "DELETE")
# One set of events for the items of every smart process; data[FIELDS][ENTITY_TYPE_ID] says
# whose (api-reference/crm/universal/events/index.md).
ITEM_EVENT_PREFIX = "ONCRMDYNAMICITEM"
ITEM_EVENTS = tuple(f"{ITEM_EVENT_PREFIX}{action}" for action in ACTIONS)
STAGE_HISTORY_SUFFIX = "_stage_history"
PRODUCT_ROWS_SUFFIX = "_productrow"
# a smart process's streams: its items, its stage history, its product rows
ITEM_NAME_PATTERN = f"^item_[0-9]{{1,9}}({STAGE_HISTORY_SUFFIX}|{PRODUCT_ROWS_SUFFIX})?$"
_ITEM_NAME = re.compile(ITEM_NAME_PATTERN)
# one table for the stage history of every type; its comment must not depend on which came last
STAGE_HISTORY_TABLE = (
    "stage history of deals (entity_type_id 2), leads (1) and smart processes (their entityTypeId)"
)


def _object(
    name: str, en: str, ru: str, entity_type_id: int | None, cursor: str = "DATE_MODIFY"
) -> Stream:
    """A CRM object of the classic API: ``crm.<name>.list`` / ``.fields``, events per action."""
    return Stream(
        name=name,
        table=f"crm_{name}",
        kind=Kind.OBJECT,
        titles={"en": en, "ru": ru},
        list_method=f"crm.{name}.list",
        fields_method=f"crm.{name}.fields",
        cursor_field=cursor,
        entity_type_id=entity_type_id,
        events=tuple(f"ONCRM{name.upper()}{action}" for action in ACTIONS),
    )


def item_stream_name(entity_type_id: int) -> str:
    return f"item_{entity_type_id}"


def item_stream(process: SmartProcess) -> Stream:
    """A smart process's items: ``crm.item.list`` / ``.fields`` with its ``entityTypeId``."""
    entity_type_id = process.entity_type_id
    return Stream(
        name=item_stream_name(entity_type_id),
        table=f"crm_item_{entity_type_id}",
        kind=Kind.ITEM,
        titles={"en": process.title, "ru": process.title},
        list_method="crm.item.list",
        fields_method="crm.item.fields",
        params={"entityTypeId": entity_type_id},
        id_field="id",
        cursor_field="updatedTime",
        records_at="items",
        fields_at="fields",
        entity_type_id=entity_type_id,
        events=ITEM_EVENTS,
        gone=process.gone,
    )


def smart_process_streams(process: SmartProcess) -> list[Stream]:
    """A smart process's streams: its items; its stage history when it has stages; its product
    rows when it links products (``T`` + its entityTypeId in lower-case hex, crm/data-types.md,
    object_type). A type the portal no longer has keeps them all, marked gone."""
    items = item_stream(process)
    entity_type_id, title = process.entity_type_id, process.title
    streams = [items]
    if process.has_stages:
        streams.append(
            stage_history(
                items.name,
                entity_type_id,
                f"«{title}»: stage history",
                f"«{title}»: история стадий",
            )
        )
    if process.links_products:
        owner_type = f"T{entity_type_id:x}"
        streams.append(
            product_rows(
                items.name,
                owner_type,
                f"«{title}»: product rows",
                f"«{title}»: товары",
                owner="item",
                cursor=items.cursor,
                table_title=(
                    f"product rows of smart process «{title}» (entityTypeId {entity_type_id}, "
                    f"ownerType {owner_type})"
                ),
            )
        )
    return [replace(stream, gone=process.gone) for stream in streams]


def stage_history(
    owner: str, entity_type_id: int, en: str, ru: str, *, lead_like: bool = False
) -> Stream:
    """The stage moves of one entity type (``crm.stagehistory.list``), appended by ID to the one
    table ``crm_stage_history`` that every type shares (``entity_type_id`` tells them apart), so
    "time in stage" is one window over it. Leads name their stage ``STATUS_ID`` and have no
    pipelines (crm-stage-history-list.md); deals and smart processes are alike."""
    stage, semantic = (
        ("STATUS_ID", "STATUS_SEMANTIC_ID") if lead_like else ("STAGE_ID", "STAGE_SEMANTIC_ID")
    )
    return Stream(
        name=f"{owner}{STAGE_HISTORY_SUFFIX}",
        table="crm_stage_history",
        table_title=STAGE_HISTORY_TABLE,
        kind=Kind.LOG,
        titles={"en": en, "ru": ru},
        list_method="crm.stagehistory.list",
        params={"entityTypeId": entity_type_id},
        cursor_field=None,
        records_at="items",
        select=(
            "ID",
            "TYPE_ID",
            "OWNER_ID",
            "CREATED_TIME",
            *(() if lead_like else ("CATEGORY_ID",)),
            stage,
            semantic,
        ),
        columns=(
            Column("entityTypeId", "integer", "entity_type_id"),
            Column("ID", "integer"),
            Column("OWNER_ID", "integer"),
            Column("TYPE_ID", "integer"),
            Column("CREATED_TIME", "datetime"),
            Column("CATEGORY_ID", "integer"),
            Column(stage, "string", "stage_id"),
            Column(semantic, "string", "stage_semantic_id"),
        ),
        key=("entity_type_id", "id"),
    )


def product_rows(
    parent: str,
    owner_type: str,
    en: str,
    ru: str,
    *,
    owner: str = "",
    cursor: str = "DATE_MODIFY",
    table_title: str = "",
) -> Stream:
    """The product rows of each ``parent`` (``crm.item.productrow.list``): the method takes one
    owner per command (``=ownerType``, ``=ownerId``, crm-item-productrow-list.md), so a batch
    call carries 50 parents; the parents to read come from the parent's own list, those changed
    since the ``cursor`` (the parent's) for an incremental run. ``owner``: what the parent's ID
    column is named after (the parent's name)."""
    return Stream(
        name=f"{parent}{PRODUCT_ROWS_SUFFIX}",
        table=f"crm_{parent}{PRODUCT_ROWS_SUFFIX}",
        table_title=table_title,
        kind=Kind.CHILD,
        titles={"en": en, "ru": ru},
        list_method="crm.item.productrow.list",
        id_field="id",
        cursor_field=cursor,
        records_at="productRows",
        parent=parent,
        owner_filter={"=ownerType": owner_type},
        owner_key="=ownerId",
        columns=(
            Column("ownerId", "integer", f"{owner or parent}_id"),
            Column("id", "integer"),
            Column("productId", "integer", "product_id"),
            Column("productName", "string", "product_name"),
            Column("price", "double"),
            Column("priceAccount", "double", "price_account"),
            Column("priceExclusive", "double", "price_exclusive"),
            Column("priceNetto", "double", "price_netto"),
            Column("priceBrutto", "double", "price_brutto"),
            Column("quantity", "double"),
            Column("discountTypeId", "integer", "discount_type_id"),
            Column("discountRate", "double", "discount_rate"),
            Column("discountSum", "double", "discount_sum"),
            Column("taxRate", "double", "tax_rate"),
            Column("taxIncluded", "char", "tax_included"),
            Column("taxName", "string", "tax_name"),
            Column("measureCode", "integer", "measure_code"),
            Column("measureName", "string", "measure_name"),
            Column("sort", "integer"),
            Column("type", "integer"),
            Column("storeId", "integer", "store_id"),
            Column("xmlId", "string", "xml_id"),
        ),
        key=(f"{owner or parent}_id", "id"),
    )


def _link(name: str, parent: str, linked: str, entity_type_id: int, en: str, ru: str) -> Stream:
    """Records of ``parent`` linked to many ``linked`` ones, read from the universal list: one
    command carries 50 parents with all their links (``<linked>Ids``)."""
    return Stream(
        name=name,
        table=f"crm_{name}",
        kind=Kind.CHILD,
        titles={"en": en, "ru": ru},
        list_method="crm.item.list",
        params={"entityTypeId": entity_type_id},
        id_field="id",
        cursor_field="updatedTime",
        records_at="items",
        parent=parent,
        select=("id", f"{linked}Ids"),
        columns=(
            Column("id", "integer", f"{parent}_id"),
            Column(f"{linked}Ids", "integer", f"{linked}_id"),
            Column("sort", "integer"),
            Column("isPrimary", "boolean", "is_primary"),
        ),
        key=(f"{parent}_id", f"{linked}_id"),
    )


def _reference(
    name: str,
    table: str,
    method: str,
    en: str,
    ru: str,
    columns: tuple[Column, ...],
    key: tuple[str, ...] = ("id",),
    **shape: Any,
) -> Stream:
    """A reference list: read whole (a call or a few), replaced in one transaction; ``shape``
    says where its records sit and what identifies them when the answer is not classic."""
    return Stream(
        name=name,
        table=table,
        kind=Kind.REFERENCE,
        titles={"en": en, "ru": ru},
        list_method=method,
        cursor_field=None,
        columns=columns,
        key=key,
        **shape,
    )


_STREAMS = (
    _object("deal", "Deals", "Сделки", 2),
    _object("contact", "Contacts", "Контакты", 3),
    _object("lead", "Leads", "Лиды", 1),
    _object("company", "Companies", "Компании", 4),
    # crm-activity-fields.md: an activity's last change is LAST_UPDATED; it has no pipelines
    _object("activity", "Activities", "Дела", None, cursor="LAST_UPDATED"),
    _reference(
        "status",
        "crm_status",
        "crm.status.list",
        "Stages and reference lists",
        "Стадии и справочники",
        columns=(
            Column("ID", "integer"),
            Column("ENTITY_ID", "string"),
            Column("STATUS_ID", "string"),
            Column("NAME", "string"),
            Column("NAME_INIT", "string"),
            Column("SORT", "integer"),
            Column("SYSTEM", "char"),
            Column("CATEGORY_ID", "integer"),
            Column("COLOR", "string"),
            Column("SEMANTICS", "string"),
        ),
    ),
    _reference(
        "category",
        "crm_category",
        "crm.category.list",
        "Pipelines",
        "Воронки",
        columns=(
            Column("id", "integer"),
            Column("entityTypeId", "integer", "entity_type_id"),
            Column("name", "string"),
            Column("sort", "integer"),
            Column("isDefault", "char", "is_default"),
        ),
        key=("entity_type_id", "id"),
        params={"entityTypeId": 2},
        id_field="id",
        records_at="categories",
        per_smart_process=True,
    ),
    _reference(
        "currency",
        "crm_currency",
        "crm.currency.list",
        "Currencies",
        "Валюты",
        columns=(
            Column("CURRENCY", "string"),
            Column("FULL_NAME", "string"),
            Column("BASE", "char"),
            Column("AMOUNT", "double"),
            Column("AMOUNT_CNT", "integer"),
            Column("SORT", "integer"),
        ),
        key=("currency",),
        id_field="CURRENCY",
    ),
    _reference(
        "user",
        "b24_user",
        "user.get",
        "Users",
        "Пользователи",
        columns=(
            Column("ID", "integer"),
            Column("ACTIVE", "boolean"),
            Column("NAME", "string"),
            Column("LAST_NAME", "string"),
            Column("SECOND_NAME", "string"),
            Column("EMAIL", "string"),
            Column("WORK_POSITION", "string"),
            Column("UF_DEPARTMENT", "integer", multiple=True),
        ),
    ),
    _reference(
        "department",
        "b24_department",
        "department.get",
        "Departments",
        "Подразделения",
        columns=(
            Column("ID", "integer"),
            Column("NAME", "string"),
            Column("SORT", "integer"),
            Column("PARENT", "integer"),
            Column("UF_HEAD", "integer"),
        ),
    ),
    _link("deal_contact", "deal", "contact", 2, "Deal contacts", "Контакты сделок"),
    _link("contact_company", "contact", "company", 3, "Contact companies", "Компании контактов"),
    stage_history("deal", 2, "Deal stage history", "История стадий сделок"),
    stage_history("lead", 1, "Lead status history", "История статусов лидов", lead_like=True),
    product_rows("deal", "D", "Deal product rows", "Товары сделок"),
    product_rows("lead", "L", "Lead product rows", "Товары лидов"),
)


class StreamRegistry(Mapping[str, Stream]):
    """Every stream by name: the declared ones and one per smart process in use."""

    def __init__(self, declared: Iterable[Stream]) -> None:
        self._declared = {stream.name: stream for stream in declared}
        self._streams = dict(self._declared)

    def __getitem__(self, name: str) -> Stream:
        return self._streams[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._streams))  # a snapshot: the smart processes may change meanwhile

    def __len__(self) -> int:
        return len(self._streams)

    def use_smart_processes(self, processes: Iterable[SmartProcess]) -> None:
        """Replace the smart processes' streams with those of these (gone ones stay, marked):
        each process's items, then what hangs off them."""
        ordered = sorted(processes, key=lambda p: p.entity_type_id)
        self._streams = self._declared | {
            s.name: s for process in ordered for s in smart_process_streams(process)
        }

    def named(self, name: str) -> Stream:
        try:
            return self._streams[name.strip().lower()]
        except KeyError:
            raise UnknownEntity(
                f"unknown stream {name[:60]!r}: use one of {', '.join(self._streams)}"
            ) from None

    def of_kind(self, kind: Kind) -> list[Stream]:
        return [s for s in self._streams.values() if s.kind is kind]

    def children_of(self, parent: Stream) -> list[Stream]:
        return [s for s in self._streams.values() if s.parent == parent.name]

    def live(self) -> list[Stream]:
        """The streams there is something to sync for (not a smart process the portal deleted)."""
        return [s for s in self._streams.values() if not s.gone]


STREAMS = StreamRegistry(_STREAMS)
EVENT_NAMES: tuple[str, ...] = (
    *(event for s in _STREAMS for event in s.events),
    *ITEM_EVENTS,
)
_BY_EVENT = {
    event: (s.name, event.removeprefix(f"ONCRM{s.name.upper()}"))
    for s in _STREAMS
    for event in s.events
}


def stream_named(name: str) -> Stream:
    return STREAMS.named(name)


def streams_of(kind: Kind) -> list[Stream]:
    return STREAMS.of_kind(kind)


def children_of(parent: Stream) -> list[Stream]:
    return STREAMS.children_of(parent)


def stream_or_item(name: str) -> Stream:
    """:func:`stream_named`, also for a smart process's stream (``item_<entityTypeId>``, its
    ``_stage_history``, its ``_productrow``) when this process has not loaded the smart
    processes: a run loads the stored ones and takes the title (and more) from there."""
    wanted = name.strip().lower()
    if wanted in STREAMS or _ITEM_NAME.fullmatch(wanted) is None:
        return stream_named(name)
    number = wanted.removeprefix("item_").split("_")[0]
    process = SmartProcess(int(number), name, has_stages=True, links_products=True)
    return next(s for s in smart_process_streams(process) if s.name == wanted)


def is_stream_name(name: str) -> bool:
    """A declared stream, or a smart process's (which this process may not have seen yet)."""
    return name in STREAMS or _ITEM_NAME.fullmatch(name) is not None


def event_target(event: str, entity_type_id: int | None) -> tuple[str, str] | None:
    """The name of the stream an event touches and its action (``ADD``, ``UPDATE``,
    ``DELETE``); a smart process's item event names its type in ``entity_type_id``."""
    if event in ITEM_EVENTS:
        if entity_type_id is None or not 0 < entity_type_id < 10**9:
            return None
        return item_stream_name(entity_type_id), event.removeprefix(ITEM_EVENT_PREFIX)
    return _BY_EVENT.get(event)
