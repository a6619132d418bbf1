"""Reference, link and object streams end to end, and the readable views an analyst queries:
b24emu (in-process ASGI) -> client -> engine -> PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from b24emu import Emulator, seed_portal
from b24sync.bitrix.client import BitrixClient
from b24sync.streams import STREAMS, Kind, streams_of
from b24sync.sync.engine import SyncEngine
from b24sync.sync.per_parent import predicted_full_calls
from tests.portal import TOKEN, query

# The README's three analyst queries ("For analysts"); the tests run them as written.
FUNNEL = """
SELECT d.category_name, d.stage_name, count(*) AS deals, sum(d.opportunity) AS amount
FROM bitrix24.v_crm_deal d
LEFT JOIN bitrix24.crm_status s ON s.status_id = d.stage_id AND s.entity_id LIKE 'DEAL_STAGE%'
GROUP BY d.category_id, d.category_name, d.stage_name, s.sort
ORDER BY d.category_id, s.sort
"""
REVENUE_BY_MANAGER = """
SELECT assigned_by_name, date_trunc('month', closedate)::date AS month, sum(opportunity) AS revenue
FROM bitrix24.v_crm_deal
WHERE stage_semantic_id = 'S'
GROUP BY assigned_by_name, month
ORDER BY month, revenue DESC
"""
DEALS_PER_CONTACT = """
SELECT c.id, c.last_name, c.name, count(dc.deal_id) AS deals
FROM bitrix24.v_crm_contact c
JOIN bitrix24.crm_deal_contact dc ON dc.contact_id = c.id
JOIN bitrix24.v_crm_deal d ON d.id = dc.deal_id
GROUP BY c.id, c.last_name, c.name
ORDER BY deals DESC, c.id
LIMIT 20
"""


@pytest.fixture
def emu() -> Emulator:
    emulator = Emulator(webhook_token=TOKEN)
    seed_portal(emulator.portal, {"company": 40, "contact": 120, "lead": 60, "deal": 600})
    return emulator


@pytest.fixture
async def synced(client: BitrixClient, database_url: str) -> SyncEngine:
    """Every stream synced once, in the registry's order (objects, references, links)."""
    engine = SyncEngine(client, database_url)
    for stream in STREAMS.values():
        summary = await engine.full(stream)
        assert summary.status == "success", (stream.name, summary.error)
    return engine


def links_on_portal(emu: Emulator, entity: str, field: str) -> set[tuple[int, int]]:
    return {
        (record_id, int(linked))
        for record_id, record in emu.portal.store(entity).records.items()
        for linked in record.get(field) or []
    }


async def test_reference_lists_are_mirrored_whole(
    synced: SyncEngine, emu: Emulator, database_url: str
) -> None:
    portal = emu.portal
    assert query(database_url, "SELECT count(*) FROM bitrix24.crm_status") == [
        (len(portal.statuses),)
    ]
    assert query(
        database_url,
        "SELECT name FROM bitrix24.crm_status WHERE entity_id = 'DEAL_STAGE_1' "
        "AND status_id = 'C1:WON'",
    ) == [("Сделка успешна",)]
    assert query(database_url, "SELECT id, name FROM bitrix24.crm_category ORDER BY id") == [
        (0, "Общая"),
        (1, "Повторные продажи"),
    ]
    assert query(
        database_url, "SELECT full_name FROM bitrix24.crm_currency WHERE currency = 'RUB'"
    ) == [("Российский рубль",)]
    users = query(
        database_url, "SELECT id, active, uf_department FROM bitrix24.b24_user ORDER BY id"
    )
    assert len(users) == len(portal.users) and (5, False, [2]) in users  # dismissed ones too
    assert query(database_url, "SELECT count(*) FROM bitrix24.b24_department") == [(3,)]
    # replaced whole: a status removed on the portal is gone after the next refresh
    portal.statuses = [s for s in portal.statuses if s["ENTITY_ID"] != "INDUSTRY"]
    again = await synced.full(STREAMS["status"])
    assert again.status == "success" and again.api_calls == 1
    assert query(
        database_url, "SELECT count(*) FROM bitrix24.crm_status WHERE entity_id = 'INDUSTRY'"
    ) == [(0,)]


async def test_links_hold_every_contact_of_every_deal(
    synced: SyncEngine, emu: Emulator, database_url: str
) -> None:
    mirrored = set(query(database_url, "SELECT deal_id, contact_id FROM bitrix24.crm_deal_contact"))
    assert mirrored == links_on_portal(emu, "deal", "CONTACT_IDS")
    assert any(
        len(r.get("CONTACT_IDS") or []) > 1 for r in emu.portal.store("deal").records.values()
    )
    primary = query(
        database_url,
        "SELECT deal_id, contact_id FROM bitrix24.crm_deal_contact WHERE is_primary",
    )
    assert {d: c for d, c in primary} == {
        record_id: int(record["CONTACT_IDS"][0])
        for record_id, record in emu.portal.store("deal").records.items()
        if record.get("CONTACT_IDS")
    }
    companies = set(
        query(database_url, "SELECT contact_id, company_id FROM bitrix24.crm_contact_company")
    )
    assert companies == links_on_portal(emu, "contact", "COMPANY_IDS")


async def test_links_follow_changes_incrementally_and_by_parent(
    synced: SyncEngine, emu: Emulator, database_url: str
) -> None:
    deal_contact = STREAMS["deal_contact"]
    emu.portal.clock.offset += timedelta(minutes=10)
    emu.portal.update("deal", 5, {"CONTACT_IDS": ["7", "8", "9"]})
    emu.portal.update("deal", 6, {"CONTACT_IDS": []})
    emu.portal.delete("deal", 9)
    changed = await synced.incremental(deal_contact)
    assert changed.status == "success" and changed.fetched == 2  # the two edited deals only
    rows = query(
        database_url,
        "SELECT deal_id, contact_id, sort, is_primary FROM bitrix24.crm_deal_contact "
        "WHERE deal_id IN (5, 6) ORDER BY deal_id, sort",
    )
    assert rows == [(5, 7, 10, True), (5, 8, 20, False), (5, 9, 30, False)]
    # an event names the deal: its links follow (a deleted deal loses them)
    by_parent = await synced.by_ids(deal_contact, [9])
    assert by_parent.status == "success"
    assert query(
        database_url, "SELECT count(*) FROM bitrix24.crm_deal_contact WHERE deal_id = 9"
    ) == [(0,)]
    full = await synced.full(deal_contact)
    assert full.status == "success"
    mirrored = set(query(database_url, "SELECT deal_id, contact_id FROM bitrix24.crm_deal_contact"))
    assert mirrored == links_on_portal(emu, "deal", "CONTACT_IDS")


async def test_readable_views_name_every_code(
    synced: SyncEngine, emu: Emulator, database_url: str
) -> None:
    portal = emu.portal.store("deal").records
    second = next(r for r in portal.values() if r["CATEGORY_ID"] == "1")
    row = query(
        database_url,
        "SELECT stage_id, stage_name, category_name, assigned_by_name, currency_name, "
        "type_name, source_name, uf_crm_1700000007_name, uf_crm_1700000008_currency "
        "FROM bitrix24.v_crm_deal WHERE id = %s",
        int(second["ID"]),
    )[0]
    owner = emu.portal.users[int(second["ASSIGNED_BY_ID"])]
    region = next(
        i["VALUE"]
        for i in emu.portal.store("deal").fields["UF_CRM_1700000007"]["items"]
        if i["ID"] == second["UF_CRM_1700000007"]
    )
    stage_names = {
        s["STATUS_ID"]: s["NAME"] for s in emu.portal.statuses if s["ENTITY_ID"] == "DEAL_STAGE_1"
    }
    assert row == (
        second["STAGE_ID"],
        stage_names[second["STAGE_ID"]],
        "Повторные продажи",
        f"{owner['NAME']} {owner['LAST_NAME']}",
        "Российский рубль",
        "Продажа",
        {s["STATUS_ID"]: s["NAME"] for s in emu.portal.statuses if s["ENTITY_ID"] == "SOURCE"}[
            second["SOURCE_ID"]
        ],
        region,
        "RUB",
    )
    emu.portal.delete("deal", int(second["ID"]))
    await synced.reconcile(STREAMS["deal"])
    assert query(
        database_url, "SELECT count(*) FROM bitrix24.v_crm_deal WHERE id = %s", int(second["ID"])
    ) == [(0,)]  # live rows only
    comment = query(
        database_url,
        "SELECT col_description('bitrix24.v_crm_deal'::regclass, a.attnum) FROM pg_attribute a "
        "WHERE a.attrelid = 'bitrix24.v_crm_deal'::regclass AND a.attname = 'uf_crm_1700000007_name'",
    )
    assert comment == [("Регион: name (UF_CRM_1700000007)",)]
    for view in ("v_crm_contact", "v_crm_lead", "v_crm_company"):
        assert query(database_url, f"SELECT count(*) > 0 FROM bitrix24.{view}") == [(True,)]


async def test_a_view_follows_its_table_when_a_field_changes(
    synced: SyncEngine, emu: Emulator, database_url: str
) -> None:
    emu.portal.add_user_field("deal", "UF_CRM_CITY_LIST", "enumeration", "Город", items=["Тверь"])
    emu.portal.retype_user_field("deal", "UF_CRM_1700000002", "string")  # a column under the view
    summary = await synced.incremental(STREAMS["deal"])
    assert summary.status == "success", summary.error
    columns = {
        r[0]
        for r in query(
            database_url,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'bitrix24' AND table_name = 'v_crm_deal'",
        )
    }
    assert {"uf_crm_city_list", "uf_crm_city_list_name", "uf_crm_1700000002"} <= columns


async def test_analyst_queries_answer_in_russian(synced: SyncEngine, database_url: str) -> None:
    funnel = query(database_url, FUNNEL)
    assert funnel[0][:2] == ("Общая", "Новая")  # in the pipeline's own order
    assert ("Общая", "Сделка успешна") in {(c, s) for c, s, _, _ in funnel}
    assert ("Повторные продажи", "Переговоры") in {(c, s) for c, s, _, _ in funnel}
    revenue = query(database_url, REVENUE_BY_MANAGER)
    assert revenue and all(name for name, _, _ in revenue)
    assert {"Иван Петров", "Мария Смирнова"} <= {name for name, _, _ in revenue}
    per_contact = query(database_url, DEALS_PER_CONTACT)
    assert per_contact and per_contact[0][3] >= 2


async def test_a_full_sync_of_everything_costs_the_minimum(
    client: BitrixClient, emu: Emulator, database_url: str
) -> None:
    """Object streams: fields + probe + one batch per 2,500 records; a reference list: one call
    (plus one per 2,500 more records); a link stream: probe + one batch per 2,500 parents; a
    per-parent child stream: what ``predicted_full_calls`` says; a log: probe + one batch per
    2,500 rows."""
    engine = SyncEngine(client, database_url)
    spent = {}
    for stream in STREAMS.values():
        summary = await engine.full(stream)
        assert summary.status == "success", (stream.name, summary.error)
        spent[stream.name] = summary.api_calls
    for stream in streams_of(Kind.OBJECT):
        records = len(emu.portal.store(stream.name).records)
        assert spent[stream.name] <= 2 + -(-records // 2500), (stream.name, spent)
    for stream in streams_of(Kind.REFERENCE):
        assert spent[stream.name] <= 2, (stream.name, spent)
    for stream in streams_of(Kind.CHILD):
        parents = len(emu.portal.store(stream.parent or "").records)
        least = predicted_full_calls(parents) if stream.owner_key else 1 + -(-parents // 2500)
        assert spent[stream.name] <= least, (stream.name, spent)
    for stream in streams_of(Kind.LOG):
        rows = len(emu.portal.stage_history[stream.params["entityTypeId"]].records)
        assert spent[stream.name] <= 1 + -(-rows // 2500), (stream.name, spent)
