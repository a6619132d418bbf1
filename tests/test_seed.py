"""The test-data tool against b24emu: counts, links, call counts, clear, the busy lock, SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from b24emu import Emulator, seed_portal
from b24sync.service.testdata import GENERATED_ONLY_NOTE, LOCK_KEY, ORIGINATOR, creation_plan
from tests.portal import TOKEN, Stack, service_stack


@pytest.fixture
def emu() -> Emulator:
    return Emulator(webhook_token=TOKEN)


@pytest.fixture
async def stack(database_url: str, emu: Emulator) -> AsyncIterator[Stack]:
    async with service_stack(database_url, emu, worker=False) as s:
        yield s


def sse_events(text: str) -> list[tuple[str, str]]:
    events, name = [], "message"
    for line in text.splitlines():
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            events.append((name, line.removeprefix("data:").strip()))
            name = "message"
    return events


async def test_create_100_and_100_linked_in_at_most_4_calls(stack: Stack, emu: Emulator) -> None:
    before = emu.stats.http_calls
    response = await stack.api.post("/bitrix/webhook/push-to-bitrix", params={"count": 100})
    assert response.status_code == 200
    report = response.json()
    assert report["companies"] == 100 and report["contacts"] == 100 and report["failed"] == {}
    assert report["api_calls"] <= 4 and emu.stats.http_calls - before == report["api_calls"]
    companies = emu.portal.store("company").records
    contacts = emu.portal.store("contact").records
    assert len(companies) == 100 and len(contacts) == 100
    for contact in contacts.values():
        assert int(contact["COMPANY_ID"]) in companies  # each contact's company exists
        assert contact["NAME"] and contact["LAST_NAME"] and contact["SECOND_NAME"]
        assert contact["PHONE"][0]["VALUE"].startswith("+79")
        assert contact["ORIGINATOR_ID"] == ORIGINATOR
    assert {c["ORIGINATOR_ID"] for c in companies.values()} == {ORIGINATOR}


async def test_listing_shows_the_first_records_but_counts_and_groups_them_all(
    stack: Stack,
) -> None:
    tool = stack.service.test_data()
    await tool.create(5, 30)
    listing = await tool.listing(limit=10)
    assert listing["companies_total"] == 5 and listing["contacts_total"] == 30
    assert len(listing["companies"]) == 5 and len(listing["contacts"]) == 10
    # members come from every contact, not only the ten shown
    assert sum(len(c["contacts"]) for c in listing["companies"]) == 30


def test_plan_puts_each_company_before_its_contacts() -> None:
    plan = creation_plan(3, 7, seed=1)
    position = {c.key: n for n, c in enumerate(plan)}
    for command in plan:
        if command.company_key:
            assert position[command.company_key] < position[command.key]
    assert sum(c.method == "crm.contact.add" for c in plan) == 7


async def test_clear_removes_only_generated_records_contacts_first(
    stack: Stack, emu: Emulator
) -> None:
    seed_portal(emu.portal, {"company": 5, "contact": 8})  # the portal's "real" records
    await stack.api.post("/bitrix/webhook/push-to-bitrix", params={"count": 60})
    assert len(emu.portal.store("contact").records) == 68
    response = await stack.api.post("/bitrix/clear-bitrix")
    assert response.status_code == 200
    assert response.json() | {"api_calls": 0} == {
        "action": "clear",
        "companies": 60,
        "contacts": 60,
        "api_calls": 0,
        "failed": {},
        "scope": "generated",
        "note": GENERATED_ONLY_NOTE,  # the original tool deleted everything: say it did not
    }
    assert len(emu.portal.store("contact").records) == 8
    assert len(emu.portal.store("company").records) == 5
    everything = await stack.api.post("/bitrix/clear-bitrix", params={"all": "true"})
    assert everything.json()["contacts"] == 8 and everything.json()["companies"] == 5
    assert everything.json()["scope"] == "all" and "note" not in everything.json()
    assert not emu.portal.store("contact").records and not emu.portal.store("company").records


async def test_streams_report_real_progress_then_done(stack: Stack, emu: Emulator) -> None:
    response = await stack.api.get("/bitrix/webhook/push-stream", params={"count": 100})
    assert response.status_code == 200
    events = sse_events(response.text)
    percents = [int(data) for name, data in events if name == "message"]
    assert percents == [25, 50, 75, 100]  # one step per batch call of 50 commands
    assert events[-1][0] == "done" and '"contacts": 100' in events[-1][1]
    listing = (await stack.api.get("/api/v1/testdata")).json()
    assert len(listing["companies"]) == 100 and len(listing["contacts"]) == 100
    assert all(len(c["contacts"]) == 1 for c in listing["companies"])
    cleared = sse_events((await stack.api.get("/bitrix/clear-stream")).text)
    assert cleared[-1][0] == "done" and [d for n, d in cleared if n == "message"][-1] == "100"
    assert not emu.portal.store("contact").records


async def test_a_second_operation_while_one_runs_is_refused_as_busy(
    stack: Stack, database_url: str
) -> None:
    assert (await stack.api.get("/bitrix/status")).json() == {"busy": False}
    with psycopg.connect(database_url, autocommit=True) as other_process:
        other_process.execute("SELECT pg_advisory_lock(hashtext(%s))", (LOCK_KEY,))
        assert (await stack.api.get("/bitrix/status")).json() == {"busy": True}
        for response in (
            await stack.api.post("/bitrix/webhook/push-to-bitrix", params={"count": 5}),
            await stack.api.get("/bitrix/webhook/push-stream", params={"count": 5}),
            await stack.api.get("/bitrix/clear-stream"),
            await stack.api.post("/bitrix/clear-bitrix"),
        ):
            assert response.status_code == 409 and "busy" in response.json()["detail"]
        # let go explicitly: a closed connection's backend ends a moment after the close returns
        other_process.execute("SELECT pg_advisory_unlock(hashtext(%s))", (LOCK_KEY,))
    assert (await stack.api.get("/bitrix/status")).json() == {"busy": False}


@pytest.mark.parametrize("count", ["0", "-1", "5001", "many"])
async def test_bad_counts_are_422(stack: Stack, count: str) -> None:
    response = await stack.api.post("/bitrix/webhook/push-to-bitrix", params={"count": count})
    assert response.status_code == 422


async def test_seed_secret_opens_the_test_data_routes_only(
    database_url: str, emu: Emulator
) -> None:
    async with service_stack(
        database_url, emu, worker=False, bitrix_webhook_secret="seed-secret-1"
    ) as stack:
        stack.api.headers.pop("Authorization")
        ok = await stack.api.get("/bitrix/status", params={"secret": "seed-secret-1"})
        assert ok.status_code == 200
        wrong = await stack.api.get("/bitrix/status", params={"secret": "nope"})
        assert wrong.status_code == 401
        assert (await stack.api.get("/bitrix/status")).status_code == 401
        other = await stack.api.get("/api/v1/sync/status", params={"secret": "seed-secret-1"})
        assert other.status_code == 401
