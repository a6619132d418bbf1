"""Smart processes: b24emu's `crm.type.*` / `crm.item.*` (each test names the documentation page
it checks) and their mirror (discovered streams, incremental syncs, events, readable views)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from b24emu import Emulator, create_app, seed_portal
from b24emu.events import CRM_EVENTS
from tests.portal import TOKEN

BASE = f"/rest/1/{TOKEN}/"
CONTRACTS, DELIVERIES = 1032, 1036


@pytest.fixture
def emu() -> Emulator:
    emulator = Emulator(webhook_token=TOKEN)
    seed_portal(emulator.portal, {"company": 10, "contact": 20, "item": 120})
    return emulator


@pytest.fixture
async def portal(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(emu)), base_url="http://emu"
    ) as c:
        yield c


async def call(client: httpx.AsyncClient, method: str, **params: Any) -> Any:
    return (await client.post(BASE + method, json=params)).json()


# --- the emulator ------------------------------------------------------------------------------


async def test_type_list_add_and_delete(portal: httpx.AsyncClient) -> None:
    """crm-type-list.md (`result.types`, total), crm-type-add.md (entityTypeId even, from 1030),
    crm-type-delete.md (refused while the type has items; its pipelines and stages go with it)."""
    listed = await call(portal, "crm.type.list")
    assert [t["title"] for t in listed["result"]["types"]] == ["Договоры", "Заявки на доставку"]
    assert listed["total"] == 2
    added = (await call(portal, "crm.type.add", fields={"title": "Проекты"}))["result"]["type"]
    assert added["entityTypeId"] >= 1030 and added["entityTypeId"] % 2 == 0
    assert added["isCategoriesEnabled"] == "N" and added["isSetOpenPermissions"] == "Y"
    pipelines = await call(portal, "crm.category.list", entityTypeId=added["entityTypeId"])
    (pipeline,) = pipelines["result"]["categories"]
    assert pipeline["isDefault"] == "Y"
    stages = await call(
        portal,
        "crm.status.list",
        filter={"ENTITY_ID": f"DYNAMIC_{added['entityTypeId']}_STAGE_{pipeline['id']}"},
    )
    assert stages["result"][0]["STATUS_ID"] == f"DT{added['entityTypeId']}_{pipeline['id']}:NEW"
    refused = await call(portal, "crm.type.delete", id=1)
    assert refused["error"] == "BX_ERROR"
    assert (await call(portal, "crm.type.delete", id=added["id"]))["result"] == []
    gone = await call(portal, "crm.category.list", entityTypeId=added["entityTypeId"])
    assert gone["result"]["categories"] == []
    missing = await call(portal, "crm.item.list", entityTypeId=added["entityTypeId"])
    assert missing["error"] == "NOT_FOUND"


async def test_item_fields_and_list_answer_in_camel_case(portal: httpx.AsyncClient) -> None:
    """crm-item-fields.md (`result.fields`, `upperName`, `ufCrm<N>_…`, stage statusType
    DYNAMIC_<type>_STAGE_<pipeline>), crm-item-list.md (`result.items`, numbers as numbers,
    `useOriginalUfNames`)."""
    fields = (await call(portal, "crm.item.fields", entityTypeId=CONTRACTS))["result"]["fields"]
    assert fields["assignedById"]["upperName"] == "ASSIGNED_BY_ID"
    assert fields["opened"]["type"] == "boolean"
    assert fields["stageId"]["statusType"] == "DYNAMIC_1032_STAGE_2"
    assert [i["VALUE"] for i in fields["ufCrm1_1700000502"]["items"]] == [
        "Разовый",
        "Рамочный",
        "Абонентский",
    ]
    page = await call(
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
    original = await call(
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
        added = await call(c, "crm.item.add", entityTypeId=DELIVERIES, fields={"title": "Заказ"})
        item = added["result"]["item"]
        assert item["stageId"] == "DT1036_4:NEW" and item["categoryId"] == 4
        moved = await call(
            c,
            "crm.item.update",
            entityTypeId=DELIVERIES,
            id=item["id"],
            fields={"stageId": "DT1036_4:CLIENT"},
        )
        assert moved["result"]["item"]["previousStageId"] == "DT1036_4:NEW"
        await call(c, "crm.item.delete", entityTypeId=DELIVERIES, id=item["id"])
        await c.post("/_emulator/events/drain")
    assert [r["event"] for r in received] == [
        "ONCRMDYNAMICITEMADD",
        "ONCRMDYNAMICITEMUPDATE",
        "ONCRMDYNAMICITEMDELETE",
    ]
    assert received[0]["data[FIELDS][ID]"] == str(item["id"])
    assert received[0]["data[FIELDS][ENTITY_TYPE_ID]"] == str(DELIVERIES)
    assert set(CRM_EVENTS) >= {r["event"] for r in received}
