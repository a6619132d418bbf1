"""b24emu conformance: each test names the documentation page (bitrix24/b24restdocs) it checks."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from b24emu import Emulator, create_app, seed_portal
from b24emu.events import CRM_EVENTS, DELIVERIES_IN_FLIGHT

TOKEN = "testtoken1234"
BASE = f"/rest/1/{TOKEN}/"


@pytest.fixture
def emu() -> Emulator:
    return Emulator(webhook_token=TOKEN)


async def call(portal: httpx.AsyncClient, method: str, **params: Any) -> httpx.Response:
    return await portal.post(BASE + method, json=params)


# --- settings/how-to-call-rest-api/general-principles.md, data-encoding.md -------------------


async def test_success_envelope_has_result_and_time_block(portal: httpx.AsyncClient) -> None:
    body = (await call(portal, "crm.deal.fields")).json()
    assert body["result"]["TITLE"]["type"] == "string"
    assert set(body["time"]) == {
        "start",
        "finish",
        "duration",
        "processing",
        "date_start",
        "date_finish",
        "operating",
        "operating_reset_at",
    }
    assert body["time"]["date_start"].endswith("+03:00")


async def test_json_suffix_get_and_form_encoded_nested_keys_are_accepted(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    seed_portal(emu.portal, {"deal": 60})
    by_get = await portal.get(
        BASE + "crm.deal.list.json",
        params={"select[]": ["ID", "TITLE"], "filter[>ID]": "55", "start": "-1"},
    )
    assert [r["ID"] for r in by_get.json()["result"]] == ["56", "57", "58", "59", "60"]
    added = await portal.post(
        BASE + "crm.contact.add",
        data={
            "fields[NAME]": "Иван",
            "fields[PHONE][0][VALUE]": "+79990001122",
            "fields[PHONE][0][VALUE_TYPE]": "WORK",
        },
    )
    contact = (await call(portal, "crm.contact.get", id=added.json()["result"])).json()["result"]
    assert contact["NAME"] == "Иван"
    assert contact["PHONE"][0]["VALUE"] == "+79990001122"


# --- _includes/system-errors.md ---------------------------------------------------------------


async def test_wrong_token_is_invalid_credentials_401(portal: httpx.AsyncClient) -> None:
    response = await portal.post("/rest/1/wrong/crm.deal.list")
    assert response.status_code == 401
    assert response.json() == {
        "error": "INVALID_CREDENTIALS",
        "error_description": "Invalid request credentials",
    }


async def test_unknown_method_is_404(portal: httpx.AsyncClient) -> None:
    response = await call(portal, "crm.nothing.here")
    assert response.status_code == 404
    assert response.json()["error"] == "ERROR_METHOD_NOT_FOUND"


async def test_application_call_without_auth_is_no_auth_found(portal: httpx.AsyncClient) -> None:
    response = await portal.post("/rest/crm.deal.list", json={})
    assert response.status_code == 401
    assert response.json()["error"] == "NO_AUTH_FOUND"


# --- api-reference/crm/deals/crm-deal-get.md, -add, -update, -delete --------------------------


async def test_get_missing_record_is_400_not_found(portal: httpx.AsyncClient) -> None:
    response = await call(portal, "crm.deal.get", id=424242)
    assert response.status_code == 400
    assert response.json() == {"error": "", "error_description": "Not found"}
    bad = await call(portal, "crm.deal.get", id="abc")
    assert bad.json()["error_description"] == "ID is not defined or invalid."


async def test_add_update_delete_maintain_dates_and_serialise_as_strings(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    new_id = (
        await call(portal, "crm.deal.add", fields={"TITLE": "A", "OPPORTUNITY": 1500})
    ).json()["result"]
    deal = (await call(portal, "crm.deal.get", id=new_id)).json()["result"]
    assert deal["ID"] == str(new_id) and deal["OPPORTUNITY"] == "1500.00"
    assert deal["DATE_CREATE"] == deal["DATE_MODIFY"] and deal["DATE_CREATE"].endswith("+03:00")
    emu.portal.clock.offset = emu.portal.clock.offset.__class__(seconds=90)
    assert (await call(portal, "crm.deal.update", id=new_id, fields={"TITLE": "B"})).json()[
        "result"
    ] is True
    updated = (await call(portal, "crm.deal.get", id=new_id)).json()["result"]
    assert updated["TITLE"] == "B" and updated["DATE_MODIFY"] > updated["DATE_CREATE"]
    assert (await call(portal, "crm.deal.delete", id=new_id)).json()["result"] is True
    assert (await call(portal, "crm.deal.get", id=new_id)).status_code == 400


# --- api-reference/crm/deals/crm-deal-list.md; list-methods-pecularities.md -------------------


async def test_list_pages_of_50_with_next_and_total(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    seed_portal(emu.portal, {"deal": 120})
    first = (await call(portal, "crm.deal.list", start=0)).json()
    assert (len(first["result"]), first["next"], first["total"]) == (50, 50, 120)
    last = (await call(portal, "crm.deal.list", start=100)).json()
    assert len(last["result"]) == 20 and "next" not in last and last["total"] == 120


async def test_start_minus_one_skips_counting(portal: httpx.AsyncClient, emu: Emulator) -> None:
    seed_portal(emu.portal, {"deal": 120})
    body = (
        await call(portal, "crm.deal.list", start=-1, order={"ID": "ASC"}, filter={">ID": 100})
    ).json()
    assert "total" not in body and "next" not in body
    assert [r["ID"] for r in body["result"]] == [str(i) for i in range(101, 121)]


async def test_select_masks_exclude_multiple_fields(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    seed_portal(emu.portal, {"contact": 3})
    default = (await call(portal, "crm.contact.list")).json()["result"][0]
    assert "PHONE" not in default and "COMPANY_IDS" not in default
    assert "UF_CRM_1700000101" in default and "NAME" in default
    named = (await call(portal, "crm.contact.list", select=["ID", "PHONE"])).json()["result"][0]
    assert set(named) == {"ID", "PHONE"}
    assert set(named["PHONE"][0]) == {"ID", "VALUE_TYPE", "VALUE", "TYPE_ID"}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({">ID": 3}, ["4", "5"]),
        ({">=ID": 3}, ["3", "4", "5"]),
        ({"<ID": 3}, ["1", "2"]),
        ({"<=ID": 2}, ["1", "2"]),
        ({"@ID": [1, 4]}, ["1", "4"]),
        ({"!@ID": [1, 4]}, ["2", "3", "5"]),
        ({"!ID": 2}, ["1", "3", "4", "5"]),
        ({"=ID": 2}, ["2"]),
        ({"ID": 2}, ["2"]),
        ({"%TITLE": "ЕТ"}, ["2", "3"]),
        ({"STAGE_ID": "WON"}, ["5"]),
        ({">OPPORTUNITY": 250}, ["3", "4", "5"]),
        ({"NO_SUCH_FIELD": 1}, ["1", "2", "3", "4", "5"]),
    ],
)
async def test_filter_operators(
    portal: httpx.AsyncClient, emu: Emulator, flt: dict[str, Any], expected: list[str]
) -> None:
    titles = ["альфа", "бета", "мета", "гамма", "дельта"]
    for n, title in enumerate(titles, 1):
        emu.portal.add(
            "deal", {"TITLE": title, "OPPORTUNITY": n * 100, "STAGE_ID": "WON" if n == 5 else "NEW"}
        )
    body = (await call(portal, "crm.deal.list", filter=flt, select=["ID"])).json()
    assert [r["ID"] for r in body["result"]] == expected


async def test_filter_by_date_modify_and_order_desc(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    seed_portal(emu.portal, {"deal": 200})
    records = emu.portal.store("deal").records.values()
    cutoff = sorted(r["DATE_MODIFY"] for r in records)[150]
    body = (
        await call(
            portal,
            "crm.deal.list",
            filter={">=DATE_MODIFY": cutoff},
            order={"DATE_MODIFY": "DESC"},
            select=["ID", "DATE_MODIFY"],
        )
    ).json()
    assert body["total"] == sum(1 for r in records if r["DATE_MODIFY"] >= cutoff)
    stamps = [r["DATE_MODIFY"] for r in body["result"]]
    assert stamps == sorted(stamps, reverse=True)


# --- settings/how-to-call-rest-api/batch.md ---------------------------------------------------


async def test_batch_result_shape_references_and_errors(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    seed_portal(emu.portal, {"deal": 120})
    body = (
        await call(
            portal,
            "batch",
            halt=0,
            cmd={
                "a": "crm.deal.list?start=-1&order[ID]=ASC&select[]=ID",
                "b": "crm.deal.list?start=-1&order[ID]=ASC&select[]=ID&filter[>ID]=$result[a][49][ID]",
                "c": "crm.deal.get?id=$result[b][0][ID]",
                "bad": "crm.deal.get?id=999999",
                "counted": "crm.deal.list?start=0&select[]=ID",
            },
        )
    ).json()["result"]
    assert body["result"]["b"][0]["ID"] == "51"
    assert body["result"]["c"]["ID"] == "51"
    assert body["result_error"]["bad"] == {"error": "", "error_description": "Not found"}
    assert body["result_total"] == {"counted": 120}
    assert body["result_next"] == {"counted": 50}
    assert set(body["result_time"]) == {"a", "b", "c", "counted"}


async def test_batch_empty_parts_are_lists_and_halt_stops(portal: httpx.AsyncClient) -> None:
    body = (
        await call(portal, "batch", halt=1, cmd={"x": "crm.deal.get?id=5", "y": "crm.deal.fields"})
    ).json()["result"]
    assert body["result"] == [] and body["result_total"] == [] and body["result_next"] == []
    assert "x" in body["result_error"] and "y" not in body["result_error"]


async def test_batch_over_50_commands_is_refused(portal: httpx.AsyncClient) -> None:
    response = await call(portal, "batch", cmd={f"c{i}": "crm.deal.fields" for i in range(51)})
    assert response.status_code == 400
    assert response.json()["error"] == "ERROR_BATCH_LENGTH_EXCEEDED"


async def test_batch_inside_batch_is_not_allowed(portal: httpx.AsyncClient) -> None:
    body = (await call(portal, "batch", cmd={"inner": "batch?cmd[a]=crm.deal.fields"})).json()
    assert body["result"]["result_error"]["inner"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"


# --- limits.md --------------------------------------------------------------------------------


async def test_leaky_bucket_refuses_above_burst_and_batch_counts_once(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    emu.bucket.enabled, emu.bucket.rate, emu.bucket.burst = True, 0.001, 3
    batch = await call(portal, "batch", cmd={f"c{i}": "crm.deal.fields" for i in range(50)})
    assert batch.status_code == 200
    statuses = [(await call(portal, "crm.deal.fields")).status_code for _ in range(3)]
    assert statuses == [200, 200, 503]
    refused = await call(portal, "crm.deal.fields")
    assert refused.json() == {
        "error": "QUERY_LIMIT_EXCEEDED",
        "error_description": "Too many requests",
    }
    assert emu.stats.rate_limited == 2


async def test_operating_time_limit_blocks_one_method_only(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    seed_portal(emu.portal, {"deal": 100})
    emu.cost.enabled, emu.cost.base = True, 0.0
    emu.cost.per_record = 0.0001
    emu.budget.budget = 0.004  # 50 records * 0.0001 = 0.005 s: one page exceeds the budget
    first = (await call(portal, "crm.deal.list", start=-1)).json()
    assert first["time"]["operating"] > 0
    blocked = await call(portal, "crm.deal.list", start=-1)
    assert blocked.status_code == 429
    assert blocked.json()["error"] == "OPERATION_TIME_LIMIT"
    assert (await call(portal, "crm.deal.fields")).status_code == 200


async def test_counting_costs_more_than_start_minus_one(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    seed_portal(emu.portal, {"deal": 2000})
    emu.cost.enabled = True
    counted = (await call(portal, "crm.deal.list", start=1000)).json()["time"]["processing"]
    fast = (await call(portal, "crm.deal.list", start=-1, filter={">ID": 1000})).json()["time"][
        "processing"
    ]
    assert counted > fast


# --- relations and reference lists ------------------------------------------------------------


async def test_contact_company_items_and_reference_lists(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    company = emu.portal.add("company", {"TITLE": "ООО Ромашка"})
    contact = emu.portal.add("contact", {"NAME": "Пётр"})
    assert (
        await call(
            portal, "crm.contact.company.items.set", id=contact, items=[{"COMPANY_ID": company}]
        )
    ).json()["result"] is True
    items = (await call(portal, "crm.contact.company.items.get", id=contact)).json()["result"]
    assert items[0]["COMPANY_ID"] == company
    assert (await call(portal, "crm.contact.get", id=contact)).json()["result"][
        "COMPANY_ID"
    ] == str(company)
    assert (await call(portal, "crm.currency.list")).json()["result"][0]["CURRENCY"] == "RUB"
    assert (await call(portal, "user.get")).json()["result"][0]["ID"] == "1"
    assert (await call(portal, "profile")).json()["result"]["ADMIN"] is True
    cats = (await call(portal, "crm.category.list", entityTypeId=2)).json()["result"]["categories"]
    assert cats[0]["id"] == 0


async def test_user_field_types_are_described(portal: httpx.AsyncClient, emu: Emulator) -> None:
    seed_portal(emu.portal, {"deal": 1})
    fields = (await call(portal, "crm.deal.fields")).json()["result"]
    types = {f["type"] for name, f in fields.items() if name.startswith("UF_CRM_")}
    assert {
        "string",
        "integer",
        "double",
        "boolean",
        "date",
        "datetime",
        "enumeration",
        "money",
        "crm",
        "file",
    } <= types
    assert fields["UF_CRM_1700000007"]["items"][0]["VALUE"] == "Москва"
    assert fields["UF_CRM_1700000009"]["isMultiple"] is True
    assert fields["UF_CRM_1700000001"]["listLabel"] == "Канал продаж"


# --- api-reference/events/event-bind.md, offline-events.md, local-webhooks.md -----------------


async def test_event_bind_refused_for_inbound_webhook(portal: httpx.AsyncClient) -> None:
    response = await call(
        portal, "event.bind", event="ONCRMDEALADD", handler="https://example.org/h"
    )
    assert response.status_code == 403
    assert response.json()["error"] == "WRONG_AUTH_TYPE"


async def test_app_auth_binds_and_unknown_event_is_refused(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    token = (await portal.post("/_emulator/app")).json()["access_token"]
    ok = await portal.post(
        "/rest/event.bind",
        json={"auth": token, "event": "ONCRMDEALADD", "handler": "https://example.org/h"},
    )
    assert ok.json()["result"] is True
    bad = await portal.post(
        "/rest/event.bind", json={"auth": token, "event": "ONNOTHING", "handler": "https://x/"}
    )
    assert bad.status_code == 400 and bad.json()["error"] == "ERROR_EVENT_NOT_FOUND"
    listed = (await portal.post("/rest/event.get", json={"auth": token})).json()["result"]
    assert listed == [
        {
            "event": "ONCRMDEALADD",
            "handler": "https://example.org/h",
            "auth_type": "0",
            "offline": 0,
        }
    ]


async def test_outbound_webhook_posts_form_encoded_payload(emu: Emulator) -> None:
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
        await c.post(
            "/_emulator/outbound-webhooks",
            json={
                "handler": "http://handler/hook",
                "application_token": "apptok",
                "events": list(CRM_EVENTS),
            },
        )
        new_id = (await call(c, "crm.lead.add", fields={"TITLE": "x"})).json()["result"]
        calls_before = emu.stats.http_calls
        edited = await c.patch(f"/_emulator/records/lead/{new_id}", json={"TITLE": "in the UI"})
        assert edited.status_code == 200 and emu.stats.http_calls == calls_before  # no REST spent
        await call(c, "crm.lead.delete", id=new_id)
        await c.post("/_emulator/events/drain")
    # delivered several at a time, like the portal's queue server: in any order
    by_event = {r["event"]: r for r in received}
    assert sorted(by_event) == ["ONCRMLEADADD", "ONCRMLEADDELETE", "ONCRMLEADUPDATE"]
    assert len(received) == 3
    added = by_event["ONCRMLEADADD"]
    assert added["data[FIELDS][ID]"] == str(new_id)
    assert added["auth[application_token]"] == "apptok"
    assert {"ts", "auth[domain]", "auth[member_id]", "auth[client_endpoint]"} <= set(added)


async def test_events_are_delivered_several_at_a_time(emu: Emulator) -> None:
    """A slow handler does not hold every later event back: the portal's queue server keeps
    a few deliveries in flight (DELIVERIES_IN_FLIGHT)."""
    in_flight, most = 0, 0
    all_in = asyncio.Event()
    handler_app = FastAPI()

    @handler_app.post("/hook")
    async def hook() -> dict[str, bool]:
        """Held until DELIVERIES_IN_FLIGHT deliveries are in: a portal delivering one at a
        time gets each through only after the wait times out."""
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == DELIVERIES_IN_FLIGHT:
            all_in.set()
        with suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), 2)
        in_flight -= 1
        return {"ok": True}

    seed_portal(emu.portal, {"deal": 8})
    emu.events.transport = httpx.ASGITransport(app=handler_app)
    emu.events.bind_outbound("http://handler/hook", "apptok")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(emu)), base_url="http://emu"
    ) as c:
        for n in range(8):
            await c.patch(f"/_emulator/records/deal/{n + 1}", json={"TITLE": f"edit {n}"})
        await c.post("/_emulator/events/drain")
    assert most == DELIVERIES_IN_FLIGHT
    assert len(emu.events.delivered) == 8


async def test_offline_events_get_and_clear(portal: httpx.AsyncClient, emu: Emulator) -> None:
    token = (await portal.post("/_emulator/app")).json()["access_token"]
    await portal.post(
        "/rest/event.bind",
        json={"auth": token, "event": "ONCRMDEALUPDATE", "event_type": "offline"},
    )
    deal = emu.portal.add("deal", {"TITLE": "x"})
    for title in ("y", "z", "w"):  # one entry per object however often it changes
        emu.portal.update("deal", deal, {"TITLE": title})
    assert len(emu.events.offline) == 1
    kept = (await portal.post("/rest/event.offline.get", json={"auth": token, "clear": 0})).json()[
        "result"
    ]
    assert kept["process_id"] and kept["events"][0]["EVENT_DATA"] == {"FIELDS": {"ID": deal}}
    await portal.post(
        "/rest/event.offline.clear", json={"auth": token, "process_id": kept["process_id"]}
    )
    empty = (await portal.post("/rest/event.offline.get", json={"auth": token})).json()["result"]
    assert empty["events"] == []


# --- control API and scale ---------------------------------------------------------------------


async def test_control_api_seeds_injects_faults_and_counts(portal: httpx.AsyncClient) -> None:
    seeded = (await portal.post("/_emulator/seed", json={"deal": 100000, "seed": 3})).json()
    assert seeded["created"]["deal"] == 100000
    await portal.put("/_emulator/faults", json={"error_500": 1.0})
    failing = await call(portal, "crm.deal.fields")
    assert failing.status_code == 500 and failing.json()["error"] == "INTERNAL_SERVER_ERROR"
    await portal.put("/_emulator/faults", json={"error_500": 0.0})
    stats = (await portal.get("/_emulator/stats")).json()
    assert (
        stats["http_calls"] == 1
        and stats["faults_injected"] == 1
        and stats["records"]["deal"] == 100000
    )


def test_seed_is_deterministic() -> None:
    one, two = Emulator(), Emulator()
    seed_portal(one.portal, {"deal": 50, "contact": 20, "company": 5}, seed=9)
    seed_portal(two.portal, {"deal": 50, "contact": 20, "company": 5}, seed=9)
    strip = lambda rs: [{k: v for k, v in r.items() if not k.startswith("DATE_")} for r in rs]  # noqa: E731
    assert strip(one.portal.store("deal").records.values()) == strip(
        two.portal.store("deal").records.values()
    )


# --- a real third-party client --------------------------------------------------------------------


def test_fast_bitrix24_reads_creates_and_deletes(emu: Emulator) -> None:
    from fast_bitrix24 import Bitrix

    from b24emu.server import serving

    seed_portal(emu.portal, {"deal": 730})
    with serving(create_app(emu)) as url:
        b = Bitrix(f"{url}/rest/1/{TOKEN}/", ssl=False, verbose=False)
        deals = b.get_all("crm.deal.list", {"select": ["*", "UF_*"]})
        assert sorted(int(d["ID"]) for d in deals) == list(range(1, 731))
        assert {d["ID"]: d["TITLE"] for d in deals} == {
            r["ID"]: r["TITLE"] for r in emu.portal.store("deal").records.values()
        }
        created = b.call("crm.deal.add", [{"fields": {"TITLE": f"fb {i}"}} for i in range(60)])
        assert len(created) == 60 and len(emu.portal.store("deal").records) == 790
        b.call("crm.deal.delete", [{"ID": i} for i in created])
        assert len(emu.portal.store("deal").records) == 730
        assert emu.stats.by_method["crm.deal.add"] == 60


async def test_events_drain_is_safe_without_deliveries(emu: Emulator) -> None:
    await asyncio.wait_for(emu.events.drain(), 1)


# --- stage history and product rows (crm-stage-history-list.md, crm-item-productrow-list.md) --


async def test_stage_history_answers_as_documented(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    deal = emu.portal.add("deal", {"TITLE": "Путь"})
    emu.portal.update("deal", deal, {"STAGE_ID": "PREPARATION"})
    emu.portal.update("deal", deal, {"STAGE_ID": "LOSE"})
    answer = await call(
        portal,
        "crm.stagehistory.list",
        entityTypeId=2,
        filter={"OWNER_ID": deal},
        order={"ID": "ASC"},
        select=["ID", "TYPE_ID", "STAGE_ID", "STAGE_SEMANTIC_ID"],
    )
    body = answer.json()
    assert body["total"] == 3
    assert body["result"]["items"] == [
        {"ID": 1, "TYPE_ID": 1, "STAGE_ID": "NEW", "STAGE_SEMANTIC_ID": "P"},
        {"ID": 2, "TYPE_ID": 2, "STAGE_ID": "PREPARATION", "STAGE_SEMANTIC_ID": "P"},
        {"ID": 3, "TYPE_ID": 3, "STAGE_ID": "LOSE", "STAGE_SEMANTIC_ID": "F"},
    ]
    unsupported = await call(portal, "crm.stagehistory.list", entityTypeId=7)
    assert unsupported.json()["error"] == "ENTITY_TYPE_NOT_SUPPORTED"
    bad_filter = await call(portal, "crm.stagehistory.list", entityTypeId=2, filter={"TITLE": 1})
    assert bad_filter.json()["error"] == "INVALID_ARG_VALUE"


async def test_product_rows_answer_one_owner_per_command(
    portal: httpx.AsyncClient, emu: Emulator
) -> None:
    deal = emu.portal.add("deal", {"TITLE": "Корзина"})
    rows = [{"productName": f"Товар {n}", "price": 10 + n} for n in range(60)]
    emu.portal.product_rows.replace("D", deal, rows)
    first = (
        await call(
            portal,
            "crm.item.productrow.list",
            filter={"=ownerType": "D", "=ownerId": deal},
            order={"id": "asc"},
        )
    ).json()
    assert (len(first["result"]["productRows"]), first["total"], first["next"]) == (50, 60, 50)
    last_id = first["result"]["productRows"][-1]["id"]
    keyset = (
        await call(
            portal,
            "crm.item.productrow.list",
            filter={"=ownerType": "D", "=ownerId": deal, ">id": last_id},
            start=-1,
        )
    ).json()
    assert len(keyset["result"]["productRows"]) == 10 and "total" not in keyset
    missing = await call(portal, "crm.item.productrow.list", filter={"=ownerType": "D"})
    assert missing.json()["error"] == "REQUIRED_ARG_MISSING"
    nobody = await call(
        portal, "crm.item.productrow.list", filter={"=ownerType": "D", "=ownerId": 999999}
    )
    assert nobody.json()["error"] == "ACCESS_DENIED"
    fields = (await call(portal, "crm.item.productrow.fields")).json()["result"]["fields"]
    assert fields["price"]["type"] == "double" and fields["id"]["isReadOnly"] is True


def test_related_demo_data_is_deterministic() -> None:
    one, two = Emulator(), Emulator()
    for emulator in (one, two):
        seed_portal(emulator.portal, {"deal": 80, "lead": 20, "contact": 30, "company": 5}, seed=4)
    assert one.portal.store("activity").records == two.portal.store("activity").records
    for type_id in (1, 2):
        assert (
            one.portal.stage_history[type_id].records == two.portal.stage_history[type_id].records
        )
    assert one.portal.product_rows.by_owner == two.portal.product_rows.by_owner
