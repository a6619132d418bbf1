"""The sync engine end to end: b24emu (in-process ASGI) -> client -> PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from b24emu import Emulator, create_app, seed_portal
from b24emu.methods import UNLISTED
from b24sync.bitrix.auth import WebhookAuth
from b24sync.bitrix.client import BitrixClient
from b24sync.config import WebhookUrl
from b24sync.errors import PortalMismatch
from b24sync.store import runs
from b24sync.streams import STREAMS, stream_named
from b24sync.sync.engine import SyncEngine
from tests.portal import TOKEN, fast_client


@pytest.fixture
def emu() -> Emulator:
    return Emulator(webhook_token=TOKEN)


@pytest.fixture
def engine(client: BitrixClient, database_url: str) -> SyncEngine:
    return SyncEngine(client, database_url)


def rows(url: str, table: str, where: str = "true") -> dict[int, dict[str, Any]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(f"SELECT * FROM bitrix24.{table} WHERE {where} ORDER BY id")
        return {r["id"]: r for r in cur.fetchall()}


def assert_mirror_equals_portal(url: str, emu: Emulator, entity: str) -> None:
    table = STREAMS[entity].table
    live = rows(url, table, "_deleted_at IS NULL")
    portal = emu.portal.store(entity).records
    assert sorted(live) == sorted(portal)
    unlisted = UNLISTED.get(entity, frozenset())  # link arrays crm.*.list does not return
    for record_id, record in portal.items():
        listed = {k: v for k, v in record.items() if k not in unlisted}
        assert live[record_id]["_raw"] == json.loads(json.dumps(listed)), record_id


async def test_full_sync_of_all_entities_equals_portal(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    seed_portal(emu.portal, {"company": 80, "contact": 260, "lead": 130, "deal": 3100})
    for name in ("company", "contact", "lead", "deal"):
        summary = await engine.full(stream_named(name))
        assert summary.status == "success", summary.error
        assert_mirror_equals_portal(database_url, emu, name)
    deal = rows(database_url, "crm_deal")[7]
    portal = emu.portal.store("deal").records[7]
    assert deal["title"] == portal["TITLE"]
    assert str(deal["opportunity"]) == portal["OPPORTUNITY"]
    assert deal["closed"] is (portal["CLOSED"] == "Y")
    assert deal["date_modify"] == datetime.fromisoformat(portal["DATE_MODIFY"])
    assert deal["contact_ids"] is None  # crm.deal.list leaves it out: crm_deal_contact has them
    assert deal["uf_crm_1700000008"] is not None  # money amount
    contact = rows(database_url, "crm_contact")[3]
    assert (
        contact["phone"][0]["VALUE"] == emu.portal.store("contact").records[3]["PHONE"][0]["VALUE"]
    )


async def test_export_call_count_is_near_the_minimum(engine: SyncEngine, emu: Emulator) -> None:
    seed_portal(emu.portal, {"deal": 10000})
    summary = await engine.full(stream_named("deal"))
    # fields + probe + ceil(10000 / 2500) batches, a few spare for follow-ups
    assert summary.fetched == 10000 and summary.api_calls <= 2 + 4 + 2


async def test_no_record_skipped_or_repeated_with_gaps(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    seed_portal(emu.portal, {"deal": 3000})
    store = emu.portal.store("deal")
    for rid in list(store.records):
        if rid % 7 in (1, 2, 3) or 1200 < rid < 1900:
            store.remove(rid)
    summary = await engine.full(stream_named("deal"))
    assert summary.fetched == len(store.records)
    assert_mirror_equals_portal(database_url, emu, "deal")


async def test_a_second_full_sync_marks_exactly_the_records_gone(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    """Gone one by one, in runs, at either end and beyond the last one: each page marks the
    ranges it read empty, the rest stays live."""
    seed_portal(emu.portal, {"deal": 3000})
    await engine.full(stream_named("deal"))
    gone = [1, 2, 500, *range(1201, 1900), 2950, 2999, 3000]
    for rid in gone:
        emu.portal.delete("deal", rid)
    summary = await engine.full(stream_named("deal"))
    assert summary.status == "success" and summary.deleted == len(gone)
    assert_mirror_equals_portal(database_url, emu, "deal")
    assert sorted(rows(database_url, "crm_deal", "_deleted_at IS NOT NULL")) == gone


async def test_incremental_after_edits_adds_and_deletes(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    seed_portal(emu.portal, {"deal": 500})
    await engine.full(stream_named("deal"))
    emu.portal.clock.offset += timedelta(minutes=10)
    emu.portal.update("deal", 10, {"TITLE": "изменено"})
    new_id = emu.portal.add("deal", {"TITLE": "новая"})
    summary = await engine.incremental(stream_named("deal"))
    assert summary.status == "success" and summary.fetched == 2
    mirror = rows(database_url, "crm_deal")
    assert mirror[10]["title"] == "изменено" and mirror[new_id]["title"] == "новая"
    emu.portal.delete("deal", 11)
    reconcile = await engine.reconcile(stream_named("deal"))
    assert reconcile.deleted == 1
    assert rows(database_url, "crm_deal")[11]["_deleted_at"] is not None


async def test_incremental_sees_edit_made_during_run(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    seed_portal(emu.portal, {"deal": 3000})
    await engine.full(stream_named("deal"))
    emu.portal.clock.offset += timedelta(minutes=5)
    emu.portal.update("deal", 2999, {"TITLE": "before"})
    edited = False

    original_list = emu.portal.list

    def list_and_edit(*args: Any, **kwargs: Any) -> Any:
        nonlocal edited
        page = original_list(*args, **kwargs)
        if not edited:
            edited = True
            emu.portal.update("deal", 5, {"TITLE": "during"})  # already passed by the keyset
        return page

    emu.portal.list = list_and_edit  # type: ignore[method-assign]
    await engine.incremental(stream_named("deal"))
    emu.portal.list = original_list  # type: ignore[method-assign]
    await engine.incremental(stream_named("deal"))
    mirror = rows(database_url, "crm_deal")
    assert mirror[5]["title"] == "during" and mirror[2999]["title"] == "before"


async def test_user_field_added_removed_and_retyped(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    seed_portal(emu.portal, {"deal": 60})
    await engine.full(stream_named("deal"))
    emu.portal.add_user_field("deal", "UF_CRM_NEW1", "integer", "Новое поле")
    emu.portal.update("deal", 1, {"UF_CRM_NEW1": 42})
    emu.portal.retype_user_field("deal", "UF_CRM_1700000002", "string")
    emu.portal.update("deal", 2, {"UF_CRM_1700000002": "много"})
    emu.portal.remove_user_field("deal", "UF_CRM_1700000001")
    summary = await engine.full(stream_named("deal"))
    assert summary.status == "success", summary.error
    mirror = rows(database_url, "crm_deal")
    assert mirror[1]["uf_crm_new1"] == 42
    assert mirror[2]["uf_crm_1700000002"] == "много"  # column widened to text
    assert mirror[3]["uf_crm_1700000002"] is not None  # old integers kept
    assert "uf_crm_1700000001" in mirror[1]  # removed field keeps its column and data
    assert mirror[4]["uf_crm_1700000001"] is not None
    with psycopg.connect(database_url) as conn:
        removed = conn.execute(
            "SELECT removed_at IS NOT NULL FROM b24sync.field_snapshots "
            "WHERE entity='deal' AND field_name='UF_CRM_1700000001'"
        ).fetchone()
        comment = conn.execute(
            "SELECT col_description('bitrix24.crm_deal'::regclass, attnum) FROM "
            "pg_attribute WHERE attrelid='bitrix24.crm_deal'::regclass "
            "AND attname='uf_crm_new1'"
        ).fetchone()
    assert removed == (True,)
    assert comment == ("Новое поле (UF_CRM_NEW1)",)


async def test_value_that_does_not_fit_is_kept_in_raw(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    seed_portal(emu.portal, {"deal": 3})
    emu.portal.store("deal").records[2]["OPPORTUNITY"] = "not a number"
    summary = await engine.full(stream_named("deal"))
    assert summary.failed_conversions == 1
    row = rows(database_url, "crm_deal")[2]
    assert row["opportunity"] is None and row["_raw"]["OPPORTUNITY"] == "not a number"


async def test_killed_sync_resumes_and_ends_identical(
    emu: Emulator, client: BitrixClient, database_url: str
) -> None:
    seed_portal(emu.portal, {"deal": 9000})
    await SyncEngine(client, database_url).full(stream_named("deal"))
    emu.portal.update("deal", 2, {"TITLE": "edited before the second full sync"})
    pages = 0

    def crash_after_two_pages(progress: Any) -> None:
        nonlocal pages
        pages += 1
        if pages == 2:
            raise RuntimeError("killed")

    crashed = await SyncEngine(
        client, database_url, commands_per_call=10, on_progress=crash_after_two_pages
    ).full(stream_named("deal"))
    assert crashed.status == "failed" and "killed" in (crashed.error or "")
    assert rows(database_url, "crm_deal")[2]["title"] == "edited before the second full sync"
    emu.portal.delete("deal", 8990)  # in the part the first attempt did not read
    emu.portal.clock.offset += timedelta(minutes=10)
    emu.portal.update("deal", 1, {"TITLE": "edited between the crash and the resume"})
    emu.portal.clock.offset += timedelta(minutes=10)
    resumed = await SyncEngine(client, database_url, commands_per_call=10).full(
        stream_named("deal")
    )
    assert resumed.status == "success"
    assert resumed.fetched < 9000  # it did not start over
    assert rows(database_url, "crm_deal")[8990]["_deleted_at"] is not None
    await SyncEngine(client, database_url).incremental(stream_named("deal"))
    assert_mirror_equals_portal(database_url, emu, "deal")
    fresh = await SyncEngine(client, database_url, commands_per_call=10).full(stream_named("deal"))
    # Deletion marking after a resume reads no IDs again: the rest of the export is all it costs.
    assert resumed.api_calls < fresh.api_calls, (resumed.api_calls, fresh.api_calls)
    assert fresh.deleted == 0
    assert_mirror_equals_portal(database_url, emu, "deal")


async def test_database_connections_lost_mid_sync_are_logged_not_raised(
    emu: Emulator, client: BitrixClient, database_url: str
) -> None:
    """What a PostgreSQL restart does to a running sync, seen from the client: every session
    ends. The run log must say so, and the process must not die with a traceback."""
    seed_portal(emu.portal, {"deal": 3000})
    pages = 0

    def restart_database_after_one_page(progress: Any) -> None:
        nonlocal pages
        pages += 1
        if pages == 1:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )

    broken = await SyncEngine(
        client, database_url, commands_per_call=10, on_progress=restart_database_after_one_page
    ).full(stream_named("deal"))
    assert broken.status == "failed" and broken.transient
    # the database's own words, as the connection that noticed first heard them: a session
    # waiting for its next statement reads the termination notice, one in a query sees it close
    assert re.search("terminating connection|server closed the connection", broken.error or "")
    with psycopg.connect(database_url) as conn:
        logged = conn.execute(
            "SELECT status, error FROM b24sync.sync_runs WHERE id = %s", (broken.run_id,)
        ).fetchone()
    assert logged == ("failed", broken.error)
    again = await SyncEngine(client, database_url).full(stream_named("deal"))
    assert again.status == "success"
    assert_mirror_equals_portal(database_url, emu, "deal")


async def test_a_second_portal_is_refused_not_mixed_in(
    emu: Emulator, engine: SyncEngine, database_url: str
) -> None:
    seed_portal(emu.portal, {"deal": 20})
    await engine.full(stream_named("deal"))
    other = Emulator(webhook_token=TOKEN)
    seed_portal(other.portal, {"deal": 30}, 7)
    transport = httpx.ASGITransport(app=create_app(other))
    async with httpx.AsyncClient(transport=transport, timeout=30) as http:
        stranger = SyncEngine(fast_client(http, base="http://other.example"), database_url)
        with pytest.raises(PortalMismatch, match="already mirrors the portal emu"):
            await stranger.full(stream_named("deal"))
    assert_mirror_equals_portal(database_url, emu, "deal")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM b24sync.sync_runs").fetchone() == (1,)


async def test_pages_with_a_record_missing_its_id_are_asked_again(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    seed_portal(emu.portal, {"deal": 6000})
    emu.faults.missing_id = 0.2
    summary = await engine.full(stream_named("deal"))
    assert summary.status == "success", summary.error
    assert emu.stats.ids_withheld  # the fault did strike
    assert_mirror_equals_portal(database_url, emu, "deal")
    emu.faults.missing_id = 1.0  # a portal that always answers so: the run fails, data stays
    emu.portal.update("deal", 3, {"TITLE": "never read"})
    failed = await engine.incremental(stream_named("deal"))
    assert failed.status == "failed" and "without an ID" in (failed.error or ""), failed.error
    assert failed.transient
    assert len(rows(database_url, "crm_deal", "_deleted_at IS NULL")) == 6000
    emu.faults.missing_id = 0.0
    await engine.incremental(stream_named("deal"))
    assert_mirror_equals_portal(database_url, emu, "deal")


async def test_thirty_percent_503_still_ends_identical(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    seed_portal(emu.portal, {"deal": 4000})
    emu.faults.error_503 = 0.3
    summary = await engine.full(stream_named("deal"))
    assert summary.status == "success", summary.error
    assert emu.stats.faults_injected > 0
    assert_mirror_equals_portal(database_url, emu, "deal")


async def test_concurrent_runs_each_log_their_own_calls(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    """Three full syncs at once on one client: the run log adds up to what the portal served,
    refused calls included (each run counts its own, not a share of a process-wide counter)."""
    seed_portal(emu.portal, {"company": 2600, "contact": 2700, "deal": 5100})
    emu.faults.error_503 = 0.2
    summaries = await asyncio.gather(
        *(engine.full(stream_named(name)) for name in ("company", "contact", "deal"))
    )
    assert all(s.status == "success" for s in summaries), [s.error for s in summaries]
    assert emu.stats.faults_injected > 0
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        logged = await (
            await conn.execute("SELECT sum(api_calls), sum(commands) FROM b24sync.sync_runs")
        ).fetchone()
        metric = await runs.run_totals(conn)
    assert logged == (emu.stats.http_calls, emu.stats.commands)
    assert sum(s.api_calls for s in summaries) == emu.stats.http_calls
    assert sum(t["api_calls"] for t in metric) == emu.stats.http_calls  # b24sync_api_calls


async def test_by_ids_fetches_changes_and_marks_deletions(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    seed_portal(emu.portal, {"contact": 120})
    await engine.full(stream_named("contact"))
    emu.portal.update("contact", 4, {"NAME": "Ева"})
    emu.portal.delete("contact", 5)
    summary = await engine.by_ids(stream_named("contact"), [4, 5])
    assert summary.status == "success"
    mirror = rows(database_url, "crm_contact")
    assert mirror[4]["name"] == "Ева" and mirror[5]["_deleted_at"] is not None


async def test_event_application_reuses_fields_until_a_record_shows_a_new_one(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    seed_portal(emu.portal, {"deal": 30})
    await engine.full(stream_named("deal"))
    emu.portal.update("deal", 3, {"TITLE": "by event"})
    first = await engine.by_ids(stream_named("deal"), [3])
    assert first.api_calls == 1  # the list batch only: the fields read by the full sync hold
    emu.portal.add_user_field("deal", "UF_CRM_LATE", "string", "Поле позже")
    emu.portal.update("deal", 4, {"UF_CRM_LATE": "seen"})
    second = await engine.by_ids(stream_named("deal"), [4])
    assert second.api_calls == 2 and second.status == "success"  # the new key: fields again
    mirror = rows(database_url, "crm_deal")
    assert mirror[3]["title"] == "by event" and mirror[4]["uf_crm_late"] == "seen"


async def test_second_sync_of_same_entity_is_refused(engine: SyncEngine, emu: Emulator) -> None:
    from b24sync.errors import SyncAlreadyRunning

    seed_portal(emu.portal, {"deal": 2})
    engine.lock_wait_seconds = 1  # a sync waits for the lock that long, then gives up
    async with engine._lock(stream_named("deal")):
        with pytest.raises(SyncAlreadyRunning):
            await engine.full(stream_named("deal"))
        with pytest.raises(SyncAlreadyRunning):  # an event batch never waits
            await engine.by_ids(stream_named("deal"), [1])


async def test_failed_sync_keeps_last_good_data(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    seed_portal(emu.portal, {"deal": 100})
    await engine.full(stream_named("deal"))
    emu.webhook_token = "rotated"
    summary = await engine.full(stream_named("deal"))
    assert summary.status == "failed" and "INVALID_CREDENTIALS" in (summary.error or "")
    assert TOKEN not in (summary.error or "")
    assert len(rows(database_url, "crm_deal", "_deleted_at IS NULL")) == 100
    await asyncio.sleep(0)


async def test_nul_characters_do_not_break_the_load(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    seed_portal(emu.portal, {"deal": 2})
    emu.portal.store("deal").records[1]["TITLE"] = "a\x00b"
    summary = await engine.full(stream_named("deal"))
    assert summary.status == "success", summary.error
    assert rows(database_url, "crm_deal")[1]["title"] == "ab"


async def test_text_typed_by_outsiders_is_stored_exactly(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    """A web form can send the six characters \\u0000; a label can hold a real NUL byte."""
    seed_portal(emu.portal, {"lead": 3})
    typed = "Order \\u0000 from the site \\\\u0000"
    emu.portal.store("lead").records[2]["TITLE"] = typed
    emu.portal.store("lead").records[3]["COMMENTS"] = "nul \x00 and \\u0000 together"
    emu.portal.add_user_field("lead", "UF_CRM_NUL", "string", "Label\x00with NUL")
    summary = await engine.full(stream_named("lead"))
    assert summary.status == "success", summary.error
    stored = rows(database_url, "crm_lead")
    assert stored[2]["title"] == typed and stored[2]["_raw"]["TITLE"] == typed
    assert stored[3]["comments"] == "nul  and \\u0000 together"
    assert len(stored) == 3
    with psycopg.connect(database_url) as conn:
        label = conn.execute(
            "SELECT title FROM b24sync.field_snapshots WHERE field_name = 'UF_CRM_NUL'"
        ).fetchone()
    assert label == ("Labelwith NUL",)


async def test_dropped_connections_over_real_sockets_are_retried(
    emu: Emulator, database_url: str
) -> None:
    from b24emu.server import serving

    seed_portal(emu.portal, {"lead": 3000})
    emu.faults.drop = 0.3
    with serving(create_app(emu)) as base:
        async with httpx.AsyncClient(timeout=30) as http:
            client = fast_client(http, base)
            summary = await SyncEngine(client, database_url).full(stream_named("lead"))
    assert summary.status == "success", summary.error
    assert emu.stats.faults_injected > 0
    assert_mirror_equals_portal(database_url, emu, "lead")


async def test_operating_time_limit_is_paced_and_waited_out(
    emu: Emulator, client: BitrixClient, database_url: str
) -> None:
    """limits.md: past the per-method budget the portal blocks the method until reset."""
    seed_portal(emu.portal, {"deal": 3000})
    emu.cost.enabled, emu.cost.base, emu.cost.per_record = True, 0.0, 0.00002  # 1 ms a page
    emu.budget.budget, emu.budget.window = 0.02, 1.0  # ~20 pages a second at most
    client.pacer.budget = 0.02
    summary = await SyncEngine(client, database_url, commands_per_call=25).full(
        stream_named("deal")
    )
    assert summary.status == "success", summary.error
    assert client.pacer.waited_seconds > 0
    assert_mirror_equals_portal(database_url, emu, "deal")


class CountingTransport(httpx.AsyncBaseTransport):
    """The ASGI transport, noting how many requests were in flight at once."""

    def __init__(self, emu: Emulator) -> None:
        self.inner = httpx.ASGITransport(app=create_app(emu))
        self.in_flight = self.most_in_flight = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1


def limited_portal(emu: Emulator, deals: int) -> None:
    """The cloud's request bucket (2/s, burst 50) and server time per page, as in the bench."""
    seed_portal(emu.portal, {"deal": deals})
    emu.bucket.enabled, emu.bucket.rate, emu.bucket.burst = True, 2.0, 50
    emu.cost.enabled, emu.cost.base, emu.cost.per_record = True, 0.002, 0.00002


async def test_ranges_side_by_side_mirror_exactly_and_nothing_is_refused(
    emu: Emulator, database_url: str
) -> None:
    limited_portal(emu, 12000)
    transport = CountingTransport(emu)
    async with httpx.AsyncClient(transport=transport, timeout=30) as http:
        client = BitrixClient(http, WebhookAuth(WebhookUrl.parse(f"http://emu/rest/1/{TOKEN}/")))
        summary = await SyncEngine(client, database_url, commands_per_call=10).full(
            stream_named("deal")
        )
    assert summary.status == "success", summary.error
    assert transport.most_in_flight > 2  # more than the two batch calls of before
    assert emu.stats.rate_limited == 0 and emu.stats.operation_limited == 0
    # fields + probe + one call per 10 pages of 50: the ranges hold a page each
    assert summary.api_calls == 2 + 12000 // 500
    assert_mirror_equals_portal(database_url, emu, "deal")


async def test_sync_waits_for_the_operating_budget_instead_of_being_refused(
    emu: Emulator, database_url: str
) -> None:
    """limits.md: the `operating` figure each answer reports paces the calls, so the portal
    never has to block the method (OPERATION_TIME_LIMIT) while a full sync runs flat out."""
    limited_portal(emu, 6000)
    emu.cost.base, emu.cost.per_record = 0.004, 0.0  # 40 ms a batch of 10 pages
    emu.budget.budget, emu.budget.window = 0.3, 1.5  # about 8 batches in any 1.5 s
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(emu))) as http:
        client = BitrixClient(http, WebhookAuth(WebhookUrl.parse(f"http://emu/rest/1/{TOKEN}/")))
        client.pacer.budget = emu.budget.budget
        summary = await SyncEngine(client, database_url, commands_per_call=10).full(
            stream_named("deal")
        )
    assert summary.status == "success", summary.error
    assert emu.stats.operation_limited == 0 and emu.stats.rate_limited == 0
    assert client.pacer.waited_seconds > 0
    assert summary.api_calls == 2 + 6000 // 500
    assert_mirror_equals_portal(database_url, emu, "deal")


async def test_reconcile_between_a_killed_full_sync_and_its_resume(
    emu: Emulator, client: BitrixClient, database_url: str
) -> None:
    """The reconcile keeps the IDs it reads in PostgreSQL too, apart from the full sync's."""
    seed_portal(emu.portal, {"deal": 3000})

    def crash(progress: Any) -> None:
        if progress.done >= 1000:
            raise RuntimeError("killed")

    crashed = await SyncEngine(client, database_url, commands_per_call=5, on_progress=crash).full(
        stream_named("deal")
    )
    assert crashed.status == "failed"
    emu.portal.delete("deal", 7)
    reconciled = await SyncEngine(client, database_url).reconcile(stream_named("deal"))
    assert reconciled.fetched == 2999 and reconciled.deleted == 1
    resumed = await SyncEngine(client, database_url).full(stream_named("deal"))
    assert resumed.status == "success" and resumed.fetched < 2999 and resumed.deleted == 0
    assert_mirror_equals_portal(database_url, emu, "deal")


async def test_run_left_running_by_a_dead_process_is_marked_interrupted(
    engine: SyncEngine, emu: Emulator, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO b24sync.sync_runs (entity, sync_type, status) VALUES ('deal', 'full', 'running')"
        )
    seed_portal(emu.portal, {"deal": 5})
    await engine.full(stream_named("deal"))
    with psycopg.connect(database_url) as conn:
        statuses = conn.execute("SELECT status FROM b24sync.sync_logs ORDER BY id").fetchall()
    assert statuses == [("interrupted",), ("success",)]


async def test_a_sync_cancelled_with_its_process_says_so_and_resumes(
    emu: Emulator, client: BitrixClient, database_url: str
) -> None:
    """A stopping service cancels its jobs: the run log says the run was interrupted (not
    'running' for good) and the next full sync goes on from the checkpoint."""
    seed_portal(emu.portal, {"deal": 6000})
    cancel_after_first_page = asyncio.Event()
    engine = SyncEngine(
        client,
        database_url,
        commands_per_call=10,
        on_progress=lambda progress: cancel_after_first_page.set(),
    )
    sync = asyncio.create_task(engine.full(stream_named("deal")))
    await cancel_after_first_page.wait()
    sync.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sync
    with psycopg.connect(database_url) as conn:
        status, error = conn.execute(
            "SELECT status, error FROM b24sync.sync_runs ORDER BY id DESC LIMIT 1"
        ).fetchone() or (None, None)
    assert status == "interrupted" and "stopped with the process" in error
    resumed = await SyncEngine(client, database_url).full(stream_named("deal"))
    assert resumed.status == "success" and resumed.fetched < 6000
    assert_mirror_equals_portal(database_url, emu, "deal")
