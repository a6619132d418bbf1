"""Smart processes: b24emu's `crm.type.*` / `crm.item.*` (each test names the documentation page
it checks) and their mirror (discovered streams, incremental syncs, events, readable views)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI, Request
from psycopg import AsyncConnection

from b24emu import Emulator, create_app, seed_portal
from b24emu.events import CRM_EVENTS
from b24sync.bitrix.client import BitrixClient
from b24sync.service.events import HANDLER_PATH
from b24sync.store.overview import entity_status
from b24sync.streams import STREAMS, stream_or_item
from b24sync.sync import discovery
from b24sync.sync.engine import SyncEngine
from tests.portal import (
    APPLICATION_TOKEN,
    SERVICE_BASE,
    TOKEN,
    query,
    rest_call,
    service_stack,
)

pytestmark = pytest.mark.usefixtures("declared_streams_only")
CONTRACTS, DELIVERIES = 1032, 1036
HANDLER = SERVICE_BASE + HANDLER_PATH
# The README's smart-process query ("For analysts"), run as written.
SMART_PROCESS_FUNNEL = """
SELECT i.category_name, i.stage_name, count(*) AS items, sum(i.opportunity) AS amount
FROM bitrix24.v_crm_item_1032_dogovory i
JOIN bitrix24.crm_status s ON s.status_id = i.stage_id
  AND s.entity_id = 'DYNAMIC_1032_STAGE_' || i.category_id
GROUP BY i.category_id, i.category_name, i.stage_name, s.sort
ORDER BY i.category_id, s.sort;
"""


@pytest.fixture
def emu() -> Emulator:
    emulator = Emulator(webhook_token=TOKEN)
    seed_portal(emulator.portal, {"company": 10, "contact": 20, "item": 120})
    return emulator


# --- the emulator ------------------------------------------------------------------------------


async def test_type_list_add_and_delete(portal: httpx.AsyncClient) -> None:
    """crm-type-list.md (`result.types`, total), crm-type-add.md (entityTypeId even, from 1030),
    crm-type-delete.md (refused while the type has items; its pipelines and stages go with it)."""
    listed = await rest_call(portal, "crm.type.list")
    assert [t["title"] for t in listed["result"]["types"]] == ["Договоры", "Заявки на доставку"]
    assert listed["total"] == 2
    added = (await rest_call(portal, "crm.type.add", fields={"title": "Проекты"}))["result"]["type"]
    assert added["entityTypeId"] >= 1030 and added["entityTypeId"] % 2 == 0
    assert added["isCategoriesEnabled"] == "N" and added["isSetOpenPermissions"] == "Y"
    pipelines = await rest_call(portal, "crm.category.list", entityTypeId=added["entityTypeId"])
    (pipeline,) = pipelines["result"]["categories"]
    assert pipeline["isDefault"] == "Y"
    stages = await rest_call(
        portal,
        "crm.status.list",
        filter={"ENTITY_ID": f"DYNAMIC_{added['entityTypeId']}_STAGE_{pipeline['id']}"},
    )
    assert stages["result"][0]["STATUS_ID"] == f"DT{added['entityTypeId']}_{pipeline['id']}:NEW"
    refused = await rest_call(portal, "crm.type.delete", id=1)
    assert refused["error"] == "BX_ERROR"
    assert (await rest_call(portal, "crm.type.delete", id=added["id"]))["result"] == []
    gone = await rest_call(portal, "crm.category.list", entityTypeId=added["entityTypeId"])
    assert gone["result"]["categories"] == []
    missing = await rest_call(portal, "crm.item.list", entityTypeId=added["entityTypeId"])
    assert missing["error"] == "NOT_FOUND"


async def test_item_fields_and_list_answer_in_camel_case(portal: httpx.AsyncClient) -> None:
    """crm-item-fields.md (`result.fields`, `upperName`, `ufCrm<N>_…`, stage statusType
    DYNAMIC_<type>_STAGE_<pipeline>), crm-item-list.md (`result.items`, numbers as numbers,
    `useOriginalUfNames`)."""
    fields = (await rest_call(portal, "crm.item.fields", entityTypeId=CONTRACTS))["result"][
        "fields"
    ]
    assert fields["assignedById"]["upperName"] == "ASSIGNED_BY_ID"
    assert fields["opened"]["type"] == "boolean"
    assert fields["stageId"]["statusType"] == "DYNAMIC_1032_STAGE_2"
    assert [i["VALUE"] for i in fields["ufCrm1_1700000502"]["items"]] == [
        "Разовый",
        "Рамочный",
        "Абонентский",
    ]
    page = await rest_call(
        portal,
        "crm.item.list",
        entityTypeId=CONTRACTS,
        order={"id": "ASC"},
        filter={">id": 100},
        select=["*"],
        start=-1,
    )
    items = page["result"]["items"]
    assert [i["id"] for i in items] == list(range(101, 121))
    assert isinstance(items[0]["categoryId"], int)
    assert items[0]["stageId"].startswith(f"DT{CONTRACTS}_{items[0]['categoryId']}:")
    assert "ufCrm1_1700000501" in items[0] and "contactIds" in items[0]
    original = await rest_call(
        portal, "crm.item.list", entityTypeId=DELIVERIES, useOriginalUfNames="Y", select=["*"]
    )
    assert original["total"] == 120 and original["next"] == 50
    assert "UF_CRM_2_1700000601" in original["result"]["items"][0]


async def test_item_changes_send_dynamic_item_events(emu: Emulator) -> None:
    """on-crm-dynamic-item-{add,update,delete}.md: one event name for every smart process,
    `data[FIELDS][ENTITY_TYPE_ID]` says whose item; crm-item-update.md moves the stage."""
    received: list[dict[str, str]] = []
    handler_app = FastAPI()

    @handler_app.post("/hook")
    async def hook(request: Request) -> dict[str, bool]:
        received.append(dict((await request.form()).items()))
        return {"ok": True}

    emu.events.transport = httpx.ASGITransport(app=handler_app)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(emu)), base_url="http://emu"
    ) as c:
        bound = await c.post(
            "/_emulator/outbound-webhooks",
            json={"handler": "http://handler/hook", "application_token": "t"},
        )
        assert "ONCRMDYNAMICITEMUPDATE" in bound.json()["events"]
        added = await rest_call(
            c, "crm.item.add", entityTypeId=DELIVERIES, fields={"title": "Заказ"}
        )
        item = added["result"]["item"]
        assert item["stageId"] == "DT1036_4:NEW" and item["categoryId"] == 4
        moved = await rest_call(
            c,
            "crm.item.update",
            entityTypeId=DELIVERIES,
            id=item["id"],
            fields={"stageId": "DT1036_4:CLIENT"},
        )
        assert moved["result"]["item"]["previousStageId"] == "DT1036_4:NEW"
        await rest_call(c, "crm.item.delete", entityTypeId=DELIVERIES, id=item["id"])
        await c.post("/_emulator/events/drain")
    assert [r["event"] for r in received] == [
        "ONCRMDYNAMICITEMADD",
        "ONCRMDYNAMICITEMUPDATE",
        "ONCRMDYNAMICITEMDELETE",
    ]
    assert received[0]["data[FIELDS][ID]"] == str(item["id"])
    assert received[0]["data[FIELDS][ENTITY_TYPE_ID]"] == str(DELIVERIES)
    assert set(CRM_EVENTS) >= {r["event"] for r in received}


# --- the mirror --------------------------------------------------------------------------------


async def discovered(client: BitrixClient, database_url: str) -> list[str]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        return [s.name for s in await discovery.discover(client, conn)]


async def test_a_smart_process_is_mirrored_fully_then_incrementally(
    client: BitrixClient, emu: Emulator, database_url: str
) -> None:
    assert await discovered(client, database_url) == ["item_1032", "item_1036"]
    engine = SyncEngine(client, database_url)
    contracts = STREAMS["item_1032"]
    full = await engine.full(contracts)
    assert full.status == "success", full.error
    assert full.fetched == full.upserted == 120
    assert full.api_calls <= 2 + 1  # fields, then probe + one batch per 2,500 items
    ((rows, assigned, stages),) = query(
        database_url,
        "SELECT count(*), count(assigned_by_id), count(DISTINCT stage_id) "
        "FROM bitrix24.crm_item_1032 WHERE uf_crm_1_1700000501 LIKE 'Д-%%'",
    )
    assert rows == 120 and assigned == 120 and stages > 3
    ((comment,),) = query(
        database_url, "SELECT obj_description('bitrix24.crm_item_1032'::regclass)"
    )
    assert "«Договоры»" in comment and "1032" in comment

    emu.portal.update("dynamic_1032", 7, {"TITLE": "Договор изменён"})  # in the portal's UI
    incremental = await engine.incremental(contracts)
    assert incremental.status == "success" and incremental.fetched == 1
    assert query(database_url, "SELECT title FROM bitrix24.crm_item_1032 WHERE id = 7") == [
        ("Договор изменён",)
    ]
    emu.portal.delete("dynamic_1032", 8)
    reconciled = await engine.reconcile(contracts)
    assert reconciled.deleted == 1
    async with await AsyncConnection.connect(database_url) as conn:
        (row,) = [r for r in await entity_status(conn) if r["entity"] == "item_1032"]
    assert (row["kind"], row["rows"], row["deleted_rows"]) == ("item", 119, 1)


async def test_the_readable_view_names_stages_pipelines_and_people(
    client: BitrixClient, database_url: str
) -> None:
    await discovered(client, database_url)
    engine = SyncEngine(client, database_url)
    for name in ("status", "category", "user", "item_1032", "item_1036"):
        summary = await engine.full(STREAMS[name])
        assert summary.status == "success", (name, summary.error)
    rows = query(
        database_url,
        "SELECT stage_id, stage_name, category_name, assigned_by_name, uf_crm_1_1700000502_name "
        "FROM bitrix24.v_crm_item_1032_dogovory",
    )
    assert len(rows) == 120
    assert all(stage and category and person and kind for _, stage, category, person, kind in rows)
    assert {stage for _, stage, *_ in rows} >= {"Черновик", "Подписан", "Проверка юристом"}
    assert {category for _, _, category, *_ in rows} == {"Договоры продажи", "Договоры поставки"}
    funnel = query(database_url, SMART_PROCESS_FUNNEL)
    assert sum(items for _, _, items, _ in funnel) == 120
    assert [stage for pipeline, stage, _, _ in funnel if pipeline == "Договоры поставки"] == [
        "Черновик",
        "Проверка юристом",
        "Подписан",
        "Отклонён",
    ]
    deliveries = query(
        database_url, "SELECT DISTINCT stage_name FROM bitrix24.v_crm_item_1036_zayavki_na_dostavku"
    )
    assert {"В пути", "Доставлена"} <= {name for (name,) in deliveries}


async def test_smart_processes_come_and_go_at_the_next_run(
    emu: Emulator, database_url: str
) -> None:
    """A type created after the service started is synced at the next tick; a deleted one keeps
    its table, marked in the status and the table's comment, and is no longer scheduled."""
    async with service_stack(database_url, emu, worker=False) as stack:
        await stack.service.discover()
        assert {"item_1032", "item_1036"} <= set(STREAMS)
        created = await stack.portal.call("crm.type.add", {"fields": {"title": "Проекты"}})
        added = f"item_{created['result']['type']['entityTypeId']}"
        assert added not in STREAMS
        assert {added, "item_1032", "item_1036"} <= set(await stack.service.queue_due_syncs())

        deliveries = STREAMS["item_1036"]
        assert (await stack.service.engine.full(deliveries)).upserted == 120
        for item_id in list(emu.portal.store("dynamic_1036").records):
            emu.portal.delete("dynamic_1036", item_id)
        await stack.portal.call("crm.type.delete", {"id": 2})
        later = datetime.now(UTC) + timedelta(hours=1)
        assert "item_1036" not in await stack.service.queue_due_syncs(later)

        status = (await stack.api.get("/api/v1/sync/status")).json()["entities"]
        (row,) = [r for r in status if r["entity"] == "item_1036"]
        assert row["state"] == "gone" and row["gone_at"] and row["rows"] == 120
        assert row["kind"] == "item" and row["next_run_at"] is None
        unknown = await stack.api.post("/api/v1/sync/start/item_9998", json={"sync_type": "full"})
        assert unknown.status_code == 422
        started = await stack.api.post(f"/api/v1/sync/start/{added}", json={"sync_type": "full"})
        assert started.status_code == 409, started.text  # a known stream, queued by the tick
        ((comment,),) = query(
            database_url, "SELECT obj_description('bitrix24.crm_item_1036'::regclass)"
        )
        assert "deleted on the portal" in comment
        refused = await stack.service.engine.incremental(STREAMS["item_1036"])
        assert refused.status == "failed" and "no longer has" in (refused.error or "")


async def test_an_item_event_reaches_its_row(emu: Emulator, database_url: str) -> None:
    async with service_stack(database_url, emu) as stack:
        await stack.service.discover()
        assert (await stack.service.engine.full(STREAMS["item_1036"])).status == "success"
        emu.events.bind_outbound(HANDLER, APPLICATION_TOKEN)
        await stack.portal.call(
            "crm.item.update",
            {"entityTypeId": DELIVERIES, "id": 5, "fields": {"stageId": "DT1036_4:SUCCESS"}},
        )

        async def applied() -> bool:
            found = query(database_url, "SELECT stage_id FROM bitrix24.crm_item_1036 WHERE id = 5")
            return found == [("DT1036_4:SUCCESS",)]

        await stack.wait_for(applied)
        ((event, entity),) = query(
            database_url, "SELECT event_name, entity FROM b24sync.received_events"
        )
        assert (event, entity) == ("ONCRMDYNAMICITEMUPDATE", "item_1036")


async def test_a_renamed_smart_process_renames_its_view(
    client: BitrixClient, database_url: str
) -> None:
    """The view's name carries the title: after a rename on the portal, the next run (here the
    CLI's way in, by name only) makes the new view and drops the old one."""
    await discovered(client, database_url)
    engine = SyncEngine(client, database_url)
    assert (await engine.full(STREAMS["item_1036"])).status == "success"
    await client.call("crm.type.update", {"id": 2, "fields": {"title": "Доставка"}})
    await discovered(client, database_url)
    STREAMS.use_smart_processes([])  # a process that has not loaded them, like the CLI
    summary = await engine.incremental(stream_or_item("item_1036"))
    assert summary.status == "success", summary.error
    views = query(
        database_url,
        "SELECT viewname FROM pg_views WHERE schemaname = 'bitrix24' "
        "AND viewname LIKE 'v_crm_item_1036%%'",
    )
    assert views == [("v_crm_item_1036_dostavka",)]
    ((comment,),) = query(
        database_url, "SELECT obj_description('bitrix24.crm_item_1036'::regclass)"
    )
    assert "«Доставка»" in comment
