"""Activities, stage history and product rows end to end: b24emu (in-process ASGI) -> client ->
engine -> PostgreSQL, and through the service's event intake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from b24emu import Emulator, seed_portal
from b24sync.bitrix.client import BitrixClient
from b24sync.store.overview import entity_status
from b24sync.streams import STREAMS
from b24sync.sync.engine import SyncEngine
from tests.portal import APPLICATION_TOKEN, SERVICE_BASE, TOKEN, Stack, query, service_stack

HANDLER = f"{SERVICE_BASE}/api/v1/webhooks/bitrix"

# The README's "time in stage" query ("For analysts"); the test runs it as written.
TIME_IN_STAGE = """
WITH stays AS (
  SELECT h.owner_id, h.category_id, h.stage_id,
         lead(h.created_time) OVER (PARTITION BY h.owner_id ORDER BY h.created_time, h.id)
           - h.created_time AS stay
  FROM bitrix24.crm_stage_history h
  WHERE h.entity_type_id = 2
)
SELECT c.name AS pipeline, s.name AS stage, count(*) AS moves_out,
       avg(stays.stay) AS average_stay
FROM stays
JOIN bitrix24.crm_category c ON c.entity_type_id = 2 AND c.id = stays.category_id
JOIN bitrix24.crm_status s ON s.status_id = stays.stage_id
  AND s.entity_id = CASE WHEN stays.category_id = 0 THEN 'DEAL_STAGE'
                         ELSE 'DEAL_STAGE_' || stays.category_id END
WHERE stays.stay IS NOT NULL
GROUP BY stays.category_id, c.name, s.name, s.sort
ORDER BY stays.category_id, s.sort
"""


@pytest.fixture
def emu() -> Emulator:
    emulator = Emulator(webhook_token=TOKEN)
    seed_portal(emulator.portal, {"company": 20, "contact": 60, "lead": 40, "deal": 300})
    return emulator


@pytest.fixture
def engine(client: BitrixClient, database_url: str) -> SyncEngine:
    return SyncEngine(client, database_url)


async def full(engine: SyncEngine, *names: str) -> None:
    for name in names:
        summary = await engine.full(STREAMS[name])
        assert summary.status == "success", (name, summary.error)


# --- activities ---------------------------------------------------------------------------------


async def test_activities_arrive_with_their_owners_named(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    await full(engine, "user", "activity")
    portal = emu.portal.store("activity").records
    assert query(database_url, "SELECT count(*) FROM bitrix24.crm_activity") == [(len(portal),)]
    owners = dict(
        query(
            database_url,
            "SELECT owner_type_name, count(*) FROM bitrix24.v_crm_activity GROUP BY 1",
        )
    )
    assert set(owners) == {"lead", "deal", "contact", "company"}
    assert owners["deal"] == sum(1 for a in portal.values() if a["OWNER_TYPE_ID"] == "2")
    call = next(a for a in portal.values() if a["TYPE_ID"] == "2")
    row = query(
        database_url,
        "SELECT owner_id, type_name, direction_name, responsible_name, last_updated "
        "FROM bitrix24.v_crm_activity WHERE id = %s",
        int(call["ID"]),
    )[0]
    responsible = emu.portal.users[int(call["RESPONSIBLE_ID"])]
    assert row[:4] == (
        int(call["OWNER_ID"]),
        "call",
        {"1": "incoming", "2": "outgoing"}[call["DIRECTION"]],
        f"{responsible['NAME']} {responsible['LAST_NAME']}",
    )
    assert row[4] == datetime.fromisoformat(call["LAST_UPDATED"])


async def test_activity_incremental_reads_what_changed_since_its_last_update_stamp(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    await full(engine, "activity")
    emu.portal.clock.offset += timedelta(minutes=10)
    emu.portal.update("activity", 3, {"SUBJECT": "Перенесли встречу", "COMPLETED": "Y"})
    added = emu.portal.add(
        "activity",
        {"OWNER_TYPE_ID": 2, "OWNER_ID": 5, "TYPE_ID": 2, "SUBJECT": "Новый звонок"},
    )
    changed = await engine.incremental(STREAMS["activity"])
    assert changed.status == "success" and changed.fetched == 2, changed
    assert query(
        database_url,
        "SELECT id, subject, completed, status FROM bitrix24.crm_activity "
        "WHERE id IN (3, %s) ORDER BY id",
        added,
    ) == [(3, "Перенесли встречу", True, 2), (added, "Новый звонок", False, 1)]


# --- stage history --------------------------------------------------------------------------------


async def test_stage_history_arrives_for_deals_and_leads_and_answers_time_in_stage(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    await full(engine, "status", "category", "deal_stage_history", "lead_stage_history")
    history = emu.portal.stage_history
    assert query(
        database_url,
        "SELECT entity_type_id, count(*) FROM bitrix24.crm_stage_history GROUP BY 1 ORDER BY 1",
    ) == [(1, len(history[1].records)), (2, len(history[2].records))]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        status = {row["entity"]: row["rows"] for row in await entity_status(conn)}
    assert status["deal_stage_history"] == len(history[2].records)  # its rows of the shared table
    assert status["lead_stage_history"] == len(history[1].records)
    # every deal's last move is to the stage it is in now
    deals = emu.portal.store("deal").records
    last = query(
        database_url,
        "SELECT DISTINCT ON (owner_id) owner_id, stage_id FROM bitrix24.crm_stage_history "
        "WHERE entity_type_id = 2 ORDER BY owner_id, created_time DESC, id DESC",
    )
    assert dict(last) == {i: d["STAGE_ID"] for i, d in deals.items()}
    leads = query(
        database_url,
        "SELECT DISTINCT stage_id FROM bitrix24.crm_stage_history WHERE entity_type_id = 1",
    )
    assert {s for (s,) in leads} <= {"NEW", "IN_PROCESS", "PROCESSED", "CONVERTED", "JUNK"}
    stays = query(database_url, TIME_IN_STAGE)
    assert stays[0][:2] == ("Общая", "Новая")  # in the pipeline's own order
    assert ("Повторные продажи", "Новая") in {(p, s) for p, s, _, _ in stays}
    assert all(moves > 0 and stay > timedelta(0) for _, _, moves, stay in stays)


async def test_stage_history_is_appended_and_never_rewritten(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    stream = STREAMS["deal_stage_history"]
    await full(engine, "deal_stage_history")
    before = len(emu.portal.stage_history[2].records)
    deal = emu.portal.add("deal", {"TITLE": "Три стадии"})
    for stage in ("PREPARATION", "EXECUTING", "WON"):
        emu.portal.update("deal", deal, {"STAGE_ID": stage})
    emu.portal.update("deal", deal, {"TITLE": "Та же стадия"})  # no move, no row
    # a row the portal already had, edited in the mirror: the log never rewrites it
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE bitrix24.crm_stage_history SET stage_id = 'X' WHERE id = 1")
    appended = await engine.incremental(stream)
    assert appended.status == "success"
    assert (appended.fetched, appended.upserted) == (4, 4)
    assert query(
        database_url,
        "SELECT type_id, stage_id, stage_semantic_id FROM bitrix24.crm_stage_history "
        "WHERE entity_type_id = 2 AND owner_id = %s ORDER BY id",
        deal,
    ) == [(1, "NEW", "P"), (2, "PREPARATION", "P"), (2, "EXECUTING", "P"), (3, "WON", "S")]
    again = await engine.full(stream)
    assert (again.status, again.fetched, again.upserted) == ("success", before + 4, 0)
    assert query(
        database_url,
        "SELECT stage_id FROM bitrix24.crm_stage_history WHERE id = 1 AND entity_type_id = 2",
    ) == [("X",)]


# --- product rows ---------------------------------------------------------------------------------


def rows_on_portal(emu: Emulator, owner_type: str) -> set[tuple[int, int, str]]:
    return {
        (owner_id, row["id"], row["productName"])
        for (kind, owner_id), rows in emu.portal.product_rows.by_owner.items()
        if kind == owner_type
        for row in rows
    }


async def test_product_rows_of_every_deal_and_lead_arrive_on_a_full_sync(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    await full(engine, "deal_productrow", "lead_productrow")
    assert set(
        query(database_url, "SELECT deal_id, id, product_name FROM bitrix24.crm_deal_productrow")
    ) == rows_on_portal(emu, "D")
    assert set(
        query(database_url, "SELECT lead_id, id, product_name FROM bitrix24.crm_lead_productrow")
    ) == rows_on_portal(emu, "L")
    row = emu.portal.product_rows.by_owner[next(iter(emu.portal.product_rows.by_owner))][0]
    assert query(
        database_url,
        f"SELECT price, quantity, tax_included FROM bitrix24.crm_{'deal' if row['ownerType'] == 'D' else 'lead'}_productrow WHERE id = %s",
        row["id"],
    ) == [(pytest.approx(row["price"]), pytest.approx(row["quantity"]), True)]


async def test_product_rows_follow_only_the_deals_that_changed(
    engine: SyncEngine, emu: Emulator, client: BitrixClient, database_url: str
) -> None:
    stream = STREAMS["deal_productrow"]
    await full(engine, "deal_productrow")
    emu.portal.clock.offset += timedelta(minutes=10)
    many = [{"productName": f"Позиция {n}", "price": 100 + n, "quantity": 1} for n in range(120)]
    await client.call(
        "crm.item.productrow.set", {"ownerType": "D", "ownerId": 4, "productRows": many}
    )
    await client.call(
        "crm.item.productrow.set", {"ownerType": "D", "ownerId": 6, "productRows": []}
    )
    emu.portal.delete("deal", 8)
    commands = emu.stats.by_method["crm.item.productrow.list"]
    changed = await engine.incremental(stream)
    assert changed.status == "success", changed.error
    # deals 4 and 6 only: 3 pages of deal 4 (120 rows), one empty page of deal 6
    assert emu.stats.by_method["crm.item.productrow.list"] - commands == 4
    assert query(
        database_url,
        "SELECT deal_id, count(*) FROM bitrix24.crm_deal_productrow WHERE deal_id IN (4, 6) "
        "GROUP BY 1",
    ) == [(4, 120)]
    # an event names the deleted deal: its rows go
    by_parent = await engine.by_ids(stream, [8])
    assert by_parent.status == "success", by_parent.error
    assert query(
        database_url, "SELECT count(*) FROM bitrix24.crm_deal_productrow WHERE deal_id = 8"
    ) == [(0,)]
    # a deal deleted without an event: the reconcile drops its rows, reading only deal IDs
    gone = max(owner for kind, owner in emu.portal.product_rows.by_owner if kind == "D")
    emu.portal.delete("deal", gone)
    commands = emu.stats.by_method["crm.item.productrow.list"]
    reconciled = await engine.reconcile(stream)
    assert reconciled.status == "success" and reconciled.deleted > 0, reconciled
    assert emu.stats.by_method["crm.item.productrow.list"] == commands
    assert query(
        database_url, "SELECT count(*) FROM bitrix24.crm_deal_productrow WHERE deal_id = %s", gone
    ) == [(0,)]
    await full(engine, "deal_productrow")
    assert set(
        query(database_url, "SELECT deal_id, id, product_name FROM bitrix24.crm_deal_productrow")
    ) == rows_on_portal(emu, "D")


# --- events through the service -------------------------------------------------------------------


@pytest.fixture
async def stack(database_url: str, emu: Emulator) -> AsyncIterator[Stack]:
    async with service_stack(database_url, emu) as s:
        yield s


async def test_activity_events_change_rows_and_deal_events_their_product_rows(
    stack: Stack, database_url: str
) -> None:
    """Events of activities reach their rows; a deal's event refreshes its product rows, and
    not when the product-row stream is switched off."""
    for name in ("activity", "deal", "deal_productrow"):
        summary = await stack.service.engine.full(STREAMS[name])
        assert summary.status == "success", summary.error
    stack.emu.events.bind_outbound(HANDLER, APPLICATION_TOKEN)
    await stack.portal.call("crm.activity.update", {"id": 2, "fields": {"SUBJECT": "По событию"}})
    added = (
        await stack.portal.call(
            "crm.activity.add",
            {"fields": {"OWNER_TYPE_ID": 3, "OWNER_ID": 1, "TYPE_ID": 1, "SUBJECT": "Встреча"}},
        )
    )["result"]
    await stack.portal.call("crm.activity.delete", {"id": 4})
    await stack.portal.call(
        "crm.item.productrow.set",
        {"ownerType": "D", "ownerId": 10, "productRows": [{"productName": "Сервер", "price": 5}]},
    )

    def scalar(text: str, *params: Any) -> Any:
        rows = query(database_url, text, *params)
        return rows[0][0] if rows else None

    async def applied() -> bool:
        return (
            scalar("SELECT subject FROM bitrix24.crm_activity WHERE id = 2") == "По событию"
            and scalar("SELECT subject FROM bitrix24.crm_activity WHERE id = %s", added)
            == "Встреча"
            and scalar("SELECT _deleted_at IS NOT NULL FROM bitrix24.crm_activity WHERE id = 4")
            is True
            and scalar(
                "SELECT string_agg(product_name, ',') FROM bitrix24.crm_deal_productrow "
                "WHERE deal_id = 10"
            )
            == "Сервер"
            and scalar("SELECT count(*) FROM b24sync.received_events WHERE processed_at IS NULL")
            == 0
        )

    await stack.wait_for(applied)
    switched = await stack.api.put(
        "/api/v1/sync/config", json={"deal_productrow": {"enabled": False}}
    )
    assert switched.status_code == 200
    await stack.portal.call(
        "crm.item.productrow.set",
        {"ownerType": "D", "ownerId": 10, "productRows": [{"productName": "Стойка", "price": 7}]},
    )

    async def processed() -> bool:
        return (
            scalar("SELECT count(*) FROM b24sync.received_events WHERE processed_at IS NULL") == 0
            and scalar("SELECT count(*) FROM b24sync.received_events") >= 5
        )

    await stack.wait_for(processed)
    assert (
        scalar(
            "SELECT string_agg(product_name, ',') FROM bitrix24.crm_deal_productrow WHERE deal_id = 10"
        )
        == "Сервер"
    )
