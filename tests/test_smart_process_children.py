"""Stage history and product rows of smart processes: b24emu's `crm.stagehistory.list` and
`crm.item.productrow.*` for dynamic types (each test names the documentation page it checks),
and their mirror (the streams discovered with each type, appended history, per-parent rows,
events, a deleted type, the dashboard's groups)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg import AsyncConnection

from b24emu import Emulator, seed_portal
from b24sync.bitrix.client import BitrixClient
from b24sync.service.events import HANDLER_PATH
from b24sync.store.overview import entity_status
from b24sync.streams import STREAMS, stream_or_item
from b24sync.sync import discovery
from b24sync.sync.engine import SyncEngine
from b24sync.sync.per_parent import predicted_full_calls
from tests.portal import (
    APPLICATION_TOKEN,
    SERVICE_BASE,
    TOKEN,
    query,
    rest_call,
    service_stack,
)

pytestmark = pytest.mark.usefixtures("declared_streams_only")
REPO = Path(__file__).resolve().parent.parent
CONTRACTS, DELIVERIES = 1032, 1036  # both have stages; only the contracts link products
HANDLER = SERVICE_BASE + HANDLER_PATH
# The README's time in stage of a smart process ("For analysts"), run as written.
SMART_TIME_IN_STAGE = """
WITH stays AS (
  SELECT h.owner_id, h.category_id, h.stage_id,
         lead(h.created_time) OVER (PARTITION BY h.owner_id ORDER BY h.created_time, h.id)
           - h.created_time AS stay
  FROM bitrix24.crm_stage_history h
  WHERE h.entity_type_id = 1032
)
SELECT c.name AS pipeline, s.name AS stage, count(*) AS moves_out,
       avg(stays.stay) AS average_stay
FROM stays
JOIN bitrix24.crm_category c ON c.entity_type_id = 1032 AND c.id = stays.category_id
JOIN bitrix24.crm_status s ON s.status_id = stays.stage_id
  AND s.entity_id = 'DYNAMIC_1032_STAGE_' || stays.category_id
WHERE stays.stay IS NOT NULL
GROUP BY stays.category_id, c.name, s.name, s.sort
ORDER BY stays.category_id, s.sort
"""


@pytest.fixture
def emu() -> Emulator:
    emulator = Emulator(webhook_token=TOKEN)
    seed_portal(emulator.portal, {"company": 10, "contact": 20, "deal": 30, "item": 120})
    return emulator


def history_rows(emu: Emulator, entity_type_id: int) -> list[dict[str, Any]]:
    store = emu.portal.stage_history[entity_type_id]
    return [store.records[i] for i in store.ids]


# --- the emulator ------------------------------------------------------------------------------


async def test_a_smart_process_with_stages_has_a_stage_history(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    """crm-stage-history-list.md: `entityTypeId` of a smart process; its rows carry
    CATEGORY_ID, STAGE_ID and STAGE_SEMANTIC_ID (the tab "for deals, new invoices, and SPAs");
    every seeded item's last row is the stage it is in; a move appends a row."""
    page = await rest_call(
        portal, "crm.stagehistory.list", entityTypeId=CONTRACTS, order={"ID": "ASC"}
    )
    first = page["result"]["items"][0]
    assert set(first) == {
        "ID",
        "TYPE_ID",
        "OWNER_ID",
        "CREATED_TIME",
        "CATEGORY_ID",
        "STAGE_SEMANTIC_ID",
        "STAGE_ID",
    }
    assert (
        first["TYPE_ID"] == 1 and first["STAGE_ID"] == f"DT{CONTRACTS}_{first['CATEGORY_ID']}:NEW"
    )
    assert page["total"] == len(emu.portal.stage_history[CONTRACTS].records)
    for entity_type_id in (CONTRACTS, DELIVERIES):
        last = {r["OWNER_ID"]: r["STAGE_ID"] for r in history_rows(emu, entity_type_id)}
        items = emu.portal.store(f"dynamic_{entity_type_id}").records
        assert last == {i: item["STAGE_ID"] for i, item in items.items()}

    added = await rest_call(
        portal, "crm.item.add", entityTypeId=DELIVERIES, fields={"title": "Заказ"}
    )
    item = added["result"]["item"]["id"]
    for stage in ("PREPARATION", "CLIENT", "SUCCESS"):
        fields = {"stageId": f"DT{DELIVERIES}_4:{stage}"}
        await rest_call(portal, "crm.item.update", entityTypeId=DELIVERIES, id=item, fields=fields)
    await rest_call(
        portal, "crm.item.update", entityTypeId=DELIVERIES, id=item, fields={"title": "Т"}
    )
    moves = await rest_call(
        portal,
        "crm.stagehistory.list",
        entityTypeId=DELIVERIES,
        filter={"OWNER_ID": item},
        select=["TYPE_ID", "STAGE_ID", "STAGE_SEMANTIC_ID"],
    )
    assert [{k: v for k, v in r.items() if k != "ID"} for r in moves["result"]["items"]] == [
        {"TYPE_ID": 1, "STAGE_ID": "DT1036_4:NEW", "STAGE_SEMANTIC_ID": "P"},
        {"TYPE_ID": 2, "STAGE_ID": "DT1036_4:PREPARATION", "STAGE_SEMANTIC_ID": "P"},
        {"TYPE_ID": 2, "STAGE_ID": "DT1036_4:CLIENT", "STAGE_SEMANTIC_ID": "P"},
        {"TYPE_ID": 3, "STAGE_ID": "DT1036_4:SUCCESS", "STAGE_SEMANTIC_ID": "S"},
    ]
    plain = await rest_call(portal, "crm.type.add", fields={"title": "Без стадий"})
    refused = await rest_call(
        portal, "crm.stagehistory.list", entityTypeId=plain["result"]["type"]["entityTypeId"]
    )
    assert refused["error"] == "ENTITY_TYPE_NOT_SUPPORTED"


async def test_a_smart_process_that_links_products_has_rows_under_its_hex_owner_type(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    """product-rows/index.md and crm/data-types.md (object_type): a smart process's ownerType is
    `T` + its entityTypeId in lower-case hex (T80 for 128); crm-item-productrow-list.md
    (ACCESS_DENIED for a type without product rows), crm-item-productrow-set.md
    (ENTITY_TYPE_NOT_SUPPORTED, OWNER_NOT_FOUND)."""
    (owner,) = [o for kind, o in emu.portal.product_rows.by_owner if kind == "T408"][:1]
    listed = await rest_call(
        portal, "crm.item.productrow.list", filter={"=ownerType": "T408", "=ownerId": owner}
    )
    rows = listed["result"]["productRows"]
    assert rows and {r["ownerType"] for r in rows} == {"T408"}
    assert {r["ownerId"] for r in rows} == {owner}

    before = emu.portal.store("dynamic_1032").records[3]["UPDATED_TIME"]
    emu.portal.clock.offset += timedelta(minutes=5)
    saved = await rest_call(
        portal,
        "crm.item.productrow.set",
        ownerType="T408",
        ownerId=3,
        productRows=[{"productName": "Сопровождение", "price": 5000, "quantity": 2}],
    )
    assert [r["ownerType"] for r in saved["result"]["productRows"]] == ["T408"]
    assert emu.portal.store("dynamic_1032").records[3]["UPDATED_TIME"] > before

    no_products = await rest_call(
        portal, "crm.item.productrow.list", filter={"=ownerType": "T40c", "=ownerId": 1}
    )
    assert no_products["error"] == "ACCESS_DENIED"
    not_supported = await rest_call(
        portal, "crm.item.productrow.set", ownerType="T40c", ownerId=1, productRows=[]
    )
    assert not_supported["error"] == "ENTITY_TYPE_NOT_SUPPORTED"
    missing = await rest_call(
        portal, "crm.item.productrow.set", ownerType="T408", ownerId=99999, productRows=[]
    )
    assert missing["error"] == "OWNER_NOT_FOUND"
    contact = await rest_call(
        portal, "crm.item.productrow.list", filter={"=ownerType": "C", "=ownerId": 1}
    )
    assert contact["result"]["productRows"] == []

    fields = {"title": "Сервис", "entityTypeId": 128, "isLinkWithProductsEnabled": "Y"}
    await rest_call(portal, "crm.type.add", fields=fields)
    item = (await rest_call(portal, "crm.item.add", entityTypeId=128, fields={"title": "Первый"}))[
        "result"
    ]["item"]["id"]
    rows = [{"productName": "Час работы", "price": 3000}]
    saved = await rest_call(
        portal, "crm.item.productrow.set", ownerType="T80", ownerId=item, productRows=rows
    )
    assert saved["result"]["productRows"][0]["ownerType"] == "T80"


# --- the mirror --------------------------------------------------------------------------------


async def discover(client: BitrixClient, database_url: str) -> None:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        await discovery.discover(client, conn)


async def full(engine: SyncEngine, *names: str) -> None:
    for name in names:
        summary = await engine.full(STREAMS[name])
        assert summary.status == "success", (name, summary.error)


async def rows_of(database_url: str) -> dict[str, int]:
    async with await AsyncConnection.connect(database_url) as conn:
        return {row["entity"]: row["rows"] for row in await entity_status(conn)}


def rows_on_portal(emu: Emulator, owner_type: str) -> set[tuple[int, int, str]]:
    return {
        (owner_id, row["id"], row["productName"])
        for (kind, owner_id), rows in emu.portal.product_rows.by_owner.items()
        if kind == owner_type
        for row in rows
    }


async def test_each_type_brings_the_streams_it_has(client: BitrixClient, database_url: str) -> None:
    """Stage history for a type with stages, product rows for one that links products: both
    for the contracts, only the history for the deliveries."""
    await discover(client, database_url)
    smart = [name for name in STREAMS if name.startswith("item_")]
    assert smart == [
        "item_1032",
        "item_1032_stage_history",
        "item_1032_productrow",
        "item_1036",
        "item_1036_stage_history",
    ]
    rows = STREAMS["item_1032_productrow"]
    assert (rows.kind, rows.parent, rows.table, rows.cursor_field) == (
        "child",
        "item_1032",
        "crm_item_1032_productrow",
        "updatedTime",
    )
    assert dict(rows.owner_filter) == {"=ownerType": "T408"}
    history = STREAMS["item_1036_stage_history"]
    assert (history.kind, history.table, history.scope) == (
        "log",
        "crm_stage_history",
        {"entity_type_id": DELIVERIES},
    )
    # a process that has not loaded the smart processes (the CLI) names them all the same
    STREAMS.use_smart_processes([])
    assert stream_or_item("item_1036_stage_history").scope == {"entity_type_id": DELIVERIES}
    assert stream_or_item("item_1032_productrow").table == "crm_item_1032_productrow"
    # and a run of one its type does not have says so, rather than make an empty table
    refused = await SyncEngine(client, database_url).full(stream_or_item("item_1036_productrow"))
    assert refused.status == "failed" and "«Заявки на доставку» has no stream" in (
        refused.error or ""
    )
    assert query(database_url, "SELECT to_regclass('bitrix24.crm_item_1036_productrow')") == [
        (None,)
    ]


async def test_smart_process_stage_history_is_appended_and_answers_time_in_stage(
    client: BitrixClient, emu: Emulator, database_url: str
) -> None:
    await discover(client, database_url)
    engine = SyncEngine(client, database_url)
    names = ("item_1032_stage_history", "item_1036_stage_history", "deal_stage_history")
    await full(engine, "status", "category", *names)
    assert query(
        database_url,
        "SELECT entity_type_id, count(*) FROM bitrix24.crm_stage_history GROUP BY 1 ORDER BY 1",
    ) == [(t, len(emu.portal.stage_history[t].records)) for t in (2, CONTRACTS, DELIVERIES)]
    rows = await rows_of(database_url)
    assert rows["item_1036_stage_history"] == len(emu.portal.stage_history[DELIVERIES].records)
    ((comment,),) = query(
        database_url, "SELECT obj_description('bitrix24.crm_stage_history'::regclass)"
    )
    assert "deals" in comment and "smart processes" in comment  # whichever type came last

    assert SMART_TIME_IN_STAGE.strip() + ";" in (REPO / "README.md").read_text()
    stays = query(database_url, SMART_TIME_IN_STAGE)
    assert {p for p, *_ in stays} == {"Договоры продажи", "Договоры поставки"}
    assert [s for p, s, *_ in stays if p == "Договоры поставки"] == ["Черновик", "Проверка юристом"]
    assert all(moves > 0 and stay > timedelta(0) for _, _, moves, stay in stays)

    # an item moved through three stages in the portal's UI: three rows, appended
    emu.portal.clock.offset += timedelta(minutes=10)
    for stage in ("PREPARATION", "CLIENT", "SUCCESS"):
        emu.portal.update("dynamic_1036", 7, {"STAGE_ID": f"DT1036_4:{stage}"})
    stream = STREAMS["item_1036_stage_history"]
    appended = await engine.incremental(stream)
    assert (appended.status, appended.fetched, appended.upserted) == ("success", 3, 3)
    assert query(
        database_url,
        "SELECT type_id, stage_id, stage_semantic_id FROM bitrix24.crm_stage_history "
        "WHERE entity_type_id = 1036 AND owner_id = 7 ORDER BY id DESC LIMIT 3",
    ) == [
        (3, "DT1036_4:SUCCESS", "S"),
        (2, "DT1036_4:CLIENT", "P"),
        (2, "DT1036_4:PREPARATION", "P"),
    ]
    untouched = await engine.incremental(STREAMS["item_1032_stage_history"])
    assert (untouched.fetched, untouched.upserted) == (0, 0)
    again = await engine.full(stream)
    assert (again.status, again.upserted) == ("success", 0)


async def test_smart_process_product_rows_follow_the_items_that_changed(
    client: BitrixClient, emu: Emulator, database_url: str
) -> None:
    await discover(client, database_url)
    engine = SyncEngine(client, database_url)
    stream = STREAMS["item_1032_productrow"]
    first = await engine.full(stream)
    assert first.status == "success", first.error
    assert first.api_calls == predicted_full_calls(120)  # 120 items: 3 calls, their IDs 1
    mirrored = "SELECT item_id, id, product_name FROM bitrix24.crm_item_1032_productrow"
    assert set(query(database_url, mirrored)) == rows_on_portal(emu, "T408")
    ((comment,),) = query(
        database_url, "SELECT obj_description('bitrix24.crm_item_1032_productrow'::regclass)"
    )
    assert "«Договоры»" in comment and "1032" in comment and "T408" in comment

    emu.portal.clock.offset += timedelta(minutes=10)
    many = [{"productName": f"Позиция {n}", "price": 100 + n} for n in range(60)]
    await client.call(
        "crm.item.productrow.set", {"ownerType": "T408", "ownerId": 4, "productRows": many}
    )
    await client.call(
        "crm.item.productrow.set", {"ownerType": "T408", "ownerId": 6, "productRows": []}
    )
    commands = emu.stats.by_method["crm.item.productrow.list"]
    changed = await engine.incremental(stream)
    assert changed.status == "success", changed.error
    # items 4 and 6 only: two pages of item 4 (60 rows), one empty page of item 6
    assert emu.stats.by_method["crm.item.productrow.list"] - commands == 3
    assert query(
        database_url,
        "SELECT item_id, count(*) FROM bitrix24.crm_item_1032_productrow "
        "WHERE item_id IN (4, 6) GROUP BY 1",
    ) == [(4, 60)]

    gone = max(owner for kind, owner in emu.portal.product_rows.by_owner if kind == "T408")
    emu.portal.delete("dynamic_1032", gone)  # no event: the reconcile reads item IDs only
    commands = emu.stats.by_method["crm.item.productrow.list"]
    reconciled = await engine.reconcile(stream)
    assert reconciled.status == "success" and reconciled.deleted > 0, reconciled
    assert emu.stats.by_method["crm.item.productrow.list"] == commands
    assert set(query(database_url, mirrored)) == rows_on_portal(emu, "T408")
    assert (await rows_of(database_url))["item_1032_productrow"] == len(rows_on_portal(emu, "T408"))


async def test_an_item_event_refreshes_its_product_rows(emu: Emulator, database_url: str) -> None:
    async with service_stack(database_url, emu) as stack:
        await stack.service.discover()
        engine = stack.service.engine
        assert (await engine.full(STREAMS["item_1032"])).status == "success"
        assert (await engine.full(STREAMS["item_1032_productrow"])).status == "success"
        emu.events.bind_outbound(HANDLER, APPLICATION_TOKEN)
        rows = [{"productName": "Срочная доставка", "price": 1500}]
        await stack.portal.call(
            "crm.item.productrow.set", {"ownerType": "T408", "ownerId": 9, "productRows": rows}
        )

        async def applied() -> bool:
            found = query(
                database_url,
                "SELECT product_name FROM bitrix24.crm_item_1032_productrow WHERE item_id = 9",
            )
            return found == [("Срочная доставка",)]

        await stack.wait_for(applied)


async def test_a_deleted_type_keeps_its_tables_and_the_overview_groups_by_kind(
    emu: Emulator, database_url: str
) -> None:
    """The streams of a type come with it at the next tick and go with it: gone in the status,
    no longer scheduled, the product-row table's comment says so; the dashboard places each
    stream in its kind's group."""
    async with service_stack(database_url, emu, worker=False) as stack:
        await stack.service.discover()
        fields = {"title": "Проекты", "isStagesEnabled": "Y", "isLinkWithProductsEnabled": "Y"}
        created = await stack.portal.call("crm.type.add", {"fields": fields})
        number = created["result"]["type"]["entityTypeId"]
        queued = set(await stack.service.queue_due_syncs())
        assert {f"item_{number}_stage_history", f"item_{number}_productrow"} <= queued

        engine = stack.service.engine
        for name in ("item_1032", "item_1032_stage_history", "item_1032_productrow"):
            assert (await engine.full(STREAMS[name])).status == "success", name
        history = len(emu.portal.stage_history[CONTRACTS].records)
        before = (await stack.api.get("/api/v1/sync/status")).json()["entities"]
        (cost,) = [r["full_sync_calls"] for r in before if r["entity"] == "item_1032_productrow"]
        assert cost == predicted_full_calls(120)  # what the dashboard shows before the button
        for item_id in list(emu.portal.store("dynamic_1032").records):
            emu.portal.delete("dynamic_1032", item_id)
        await stack.portal.call("crm.type.delete", {"id": 1})
        later = datetime.now(UTC) + timedelta(hours=1)
        assert not {n for n in await stack.service.queue_due_syncs(later) if "1032" in n}

        status = (await stack.api.get("/api/v1/sync/status")).json()["entities"]
        by_name = {row["entity"]: row for row in status}
        for name in ("item_1032_stage_history", "item_1032_productrow"):
            assert by_name[name]["state"] == "gone" and by_name[name]["next_run_at"] is None
        assert by_name["item_1032_stage_history"]["rows"] == history
        ((comment,),) = query(
            database_url, "SELECT obj_description('bitrix24.crm_item_1032_productrow'::regclass)"
        )
        assert "deleted on the portal" in comment and "«Договоры»" in comment
        ((shared,),) = query(
            database_url, "SELECT obj_description('bitrix24.crm_stage_history'::regclass)"
        )
        assert "deleted" not in shared  # the other types' history goes on
        refused = await engine.incremental(STREAMS["item_1032_productrow"])
        assert refused.status == "failed" and "no longer has" in (refused.error or "")

        page = (await stack.api.get("/")).text
        groups = re.split(r'<h2 class="group">', page)[1:]
        placed = {
            name: n
            for n, section in enumerate(groups)
            for name in re.findall(r'data-start="([a-z0-9_]+)"', section)
        }
        assert placed["item_1036_stage_history"] == placed["deal_stage_history"]
        assert placed[f"item_{number}_productrow"] == placed["deal_productrow"]
        assert placed["item_1036"] != placed["deal_stage_history"] != placed["deal_productrow"]
