"""How a stream of each kind is declared: one function per shape of Bitrix24 dataset (classic
objects, smart processes and what hangs off them, logs, per-parent rows, links, reference lists).
The declarations themselves are in :mod:`b24sync.streams.registry`."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from b24sync.streams.model import Column, Kind, SmartProcess, Stream

ACTIONS = ("ADD", "UPDATE", "DELETE")
# One set of events for the items of every smart process; data[FIELDS][ENTITY_TYPE_ID] says
# whose (api-reference/crm/universal/events/index.md).
ITEM_EVENT_PREFIX = "ONCRMDYNAMICITEM"
ITEM_EVENTS = tuple(f"{ITEM_EVENT_PREFIX}{action}" for action in ACTIONS)
STAGE_HISTORY_SUFFIX = "_stage_history"
PRODUCT_ROWS_SUFFIX = "_productrow"
# one table for the stage history of every type; its comment must not depend on which came last
STAGE_HISTORY_TABLE = (
    "stage history of deals (entity_type_id 2), leads (1) and smart processes (their entityTypeId)"
)


def object_stream(
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


def link_stream(
    name: str, parent: str, linked: str, entity_type_id: int, en: str, ru: str
) -> Stream:
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


def reference_stream(
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
