"""The service over HTTP: routes, auth, jobs, the scheduler and Bitrix24 events.

Real parts throughout: b24emu (ASGI), PostgreSQL, procrastinate with an in-process worker, and
the FastAPI app through httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from b24emu import Emulator, seed_portal
from b24emu.errors import RestError
from b24emu.methods import METHODS
from b24sync.runtime.jobs import requeue_stalled_jobs, run_worker
from b24sync.store.database import libpq_url
from b24sync.store.locks import session_lock
from b24sync.streams import STREAMS, stream_named
from tests.portal import (
    API_KEY,
    APPLICATION_TOKEN,
    JWT_SECRET,
    SERVICE_BASE,
    TOKEN,
    Stack,
    service_stack,
)

HANDLER = f"{SERVICE_BASE}/api/v1/webhooks/bitrix"


@pytest.fixture
def emu() -> Emulator:
    emulator = Emulator(webhook_token=TOKEN)
    seed_portal(emulator.portal, {"company": 20, "contact": 40, "lead": 30, "deal": 120})
    return emulator


@pytest.fixture
async def stack(database_url: str, emu: Emulator) -> AsyncIterator[Stack]:
    async with service_stack(database_url, emu) as s:
        yield s


def scalar(url: str, query: str, *params: Any) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None


def token(**claims: Any) -> str:
    # a day: parametrized tokens are minted at collection, and a loaded machine's run is long
    base = {"sub": "user-1", "aud": "authenticated", "exp": int(time.time()) + 86400}
    return jwt.encode(base | claims, JWT_SECRET, algorithm="HS256")


async def finished(stack: Stack, run_id: int) -> dict[str, Any]:
    run: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal run
        runs = (await stack.api.get("/api/v1/sync/runs", params={"limit": 100})).json()["runs"]
        run = next(r for r in runs if r["id"] == run_id)
        return run["status"] not in ("queued", "running")

    await stack.wait_for(done)
    return run


# --- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "Authorization"),
        ("Bearer wrong-key", "neither an API key nor a JWT"),
        ("Basic " + API_KEY, "Authorization"),
        (f"Bearer {token(exp=int(time.time()) - 10)}", "expired"),
        (f"Bearer {token(aud='anon')}", "audience"),
        (f"Bearer {jwt.encode({'aud': 'authenticated', 'sub': 'x'}, JWT_SECRET)}", "verify"),
        (
            "Bearer "
            + jwt.encode(
                {"aud": "authenticated", "exp": int(time.time()) + 60}, None, algorithm="none"
            ),
            "'none'",
        ),
        (
            "Bearer "
            + jwt.encode(
                {"aud": "authenticated", "exp": int(time.time()) + 60},
                rsa.generate_private_key(public_exponent=65537, key_size=2048),
                algorithm="RS256",
            ),
            "'RS256'",
        ),
        (
            f"Bearer {jwt.encode({'aud': 'authenticated', 'exp': 9999999999}, 'other-secret-of-32-bytes-or-longer!!')}",
            "verify",
        ),
    ],
)
async def test_refused_credentials_get_401_with_a_reason(
    stack: Stack, header: str | None, why: str
) -> None:
    headers = {"Authorization": header} if header else {}
    stack.api.headers.pop("Authorization")
    response = await stack.api.get("/api/v1/sync/status", headers=headers)
    assert response.status_code == 401
    assert why in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


async def test_api_key_and_supabase_jwt_are_accepted(stack: Stack) -> None:
    assert (await stack.api.get("/api/v1/sync/config")).status_code == 200
    stack.api.headers["Authorization"] = f"Bearer {token()}"
    assert (await stack.api.get("/api/v1/sync/config")).status_code == 200


async def test_health_and_metrics_are_public_and_never_show_the_token(stack: Stack) -> None:
    stack.api.headers.pop("Authorization")
    health = await stack.api.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["portal"]["url"] == "http://emu/rest/1/***/"
    assert TOKEN not in health.text
    metrics = await stack.api.get("/metrics")
    assert metrics.status_code == 200 and "b24sync_events_pending 0.0" in metrics.text


# --- syncs through jobs ------------------------------------------------------------------------


async def test_start_sync_queues_a_job_that_fills_the_table(
    stack: Stack, database_url: str
) -> None:
    response = await stack.api.post("/api/v1/sync/start/deal", json={"sync_type": "full"})
    assert response.status_code == 202
    run = await finished(stack, response.json()["run_id"])
    assert run["status"] == "success" and run["fetched"] == 120
    assert scalar(database_url, "SELECT count(*) FROM bitrix24.crm_deal") == 120
    status = {
        e["entity"]: e for e in (await stack.api.get("/api/v1/sync/status")).json()["entities"]
    }
    assert status["deal"]["rows"] == 120 and status["deal"]["state"] == "idle"
    assert status["deal"]["last_run"]["id"] == run["id"]
    assert status["deal"]["next_run_at"] is not None


async def test_a_second_start_while_one_is_queued_is_409(database_url: str, emu: Emulator) -> None:
    async with service_stack(database_url, emu, worker=False) as stack:
        first = await stack.api.post("/api/v1/sync/start/lead", json={"sync_type": "full"})
        second = await stack.api.post("/api/v1/sync/start/lead", json={"sync_type": "incremental"})
        assert first.status_code == 202
        assert second.status_code == 409 and "already queued" in second.json()["detail"]
        assert (await stack.api.post("/api/v1/sync/start/deal", json={})).status_code == 202


async def test_a_reconcile_can_be_started_by_hand(stack: Stack, database_url: str) -> None:
    first = await stack.api.post("/api/v1/sync/start/lead", json={"sync_type": "full"})
    await finished(stack, first.json()["run_id"])
    stack.emu.portal.delete("lead", 3)  # nobody tells the service
    started = await stack.api.post("/api/v1/sync/start/lead", json={"sync_type": "reconcile"})
    assert started.status_code == 202, started.text
    run = await finished(stack, started.json()["run_id"])
    assert run["status"] == "success" and run["sync_type"] == "reconcile" and run["deleted"] == 1


async def test_a_start_while_an_event_batch_holds_the_lock_is_accepted_and_waits(
    stack: Stack, database_url: str
) -> None:
    """Under a steady stream of events a batch holds the entity's lock most of the time; a sync
    asked for meanwhile is queued and runs when the batch lets go, it is not refused."""
    engine = stack.service.engine
    deal = stream_named("deal")
    async with engine._lock(deal):  # what an event batch does for a moment
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO b24sync.sync_runs (entity, sync_type, status) "
                "VALUES ('deal', 'by_ids', 'running')"
            )
        started = await stack.api.post("/api/v1/sync/start/deal", json={"sync_type": "full"})
        assert started.status_code == 202, started.text
        await asyncio.sleep(1.0)  # the job has started and waits for the lock
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE b24sync.sync_runs SET status = 'success' WHERE sync_type = 'by_ids'"
            )
    run = await finished(stack, started.json()["run_id"])
    assert run["status"] == "success" and run["fetched"] == 120


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/sync/start/invoice", {"sync_type": "full"}),
        ("/api/v1/sync/start/deal", {"sync_type": "everything"}),
        ("/api/v1/sync/start/deal", {"sync_type": "full", "extra": 1}),
        ("/api/v1/sync/start/deal", [1, 2]),
    ],
)
async def test_bad_start_requests_are_422(stack: Stack, path: str, body: Any) -> None:
    response = await stack.api.post(path, json=body)
    assert response.status_code == 422 and response.json()["detail"]


async def test_runs_are_paged_and_filtered(stack: Stack) -> None:
    for entity in ("deal", "lead", "company"):
        run_id = (
            await stack.api.post(f"/api/v1/sync/start/{entity}", json={"sync_type": "full"})
        ).json()["run_id"]
        await finished(stack, run_id)
    page = (await stack.api.get("/api/v1/sync/runs", params={"limit": 2})).json()
    assert page["total"] == 3 and [r["entity"] for r in page["runs"]] == ["company", "lead"]
    rest = (await stack.api.get("/api/v1/sync/runs", params={"limit": 2, "offset": 2})).json()
    assert [r["entity"] for r in rest["runs"]] == ["deal"]
    only = (await stack.api.get("/api/v1/sync/runs", params={"entity": "lead"})).json()
    assert only["total"] == 1 and only["runs"][0]["entity"] == "lead"
    bad = await stack.api.get("/api/v1/sync/runs", params={"limit": 0})
    assert bad.status_code == 422


async def test_config_put_changes_what_the_scheduler_queues(
    database_url: str, emu: Emulator
) -> None:
    async with service_stack(database_url, emu, worker=False) as stack:
        config = (await stack.api.get("/api/v1/sync/config")).json()
        assert config["deal"] == {"enabled": True, "interval_minutes": 30, "webhook_enabled": True}
        changed = await stack.api.put(
            "/api/v1/sync/config",
            json={"lead": {"enabled": False}, "deal": {"interval_minutes": 60}},
        )
        assert changed.status_code == 200
        assert changed.json()["lead"]["enabled"] is False
        assert changed.json()["deal"]["interval_minutes"] == 60
        # the original service's flat body (its README), answered in the same form
        document = {
            "entity_type": "contact",
            "enabled": True,
            "sync_interval_minutes": 15,
            "webhook_enabled": False,
        }
        flat = await stack.api.put("/api/v1/sync/config", json=document)
        assert flat.status_code == 200 and flat.json() == document
        config = (await stack.api.get("/api/v1/sync/config")).json()
        assert config["contact"] == {
            "enabled": True,
            "interval_minutes": 15,
            "webhook_enabled": False,
        }
        queued = await stack.service.queue_due_syncs()
        # never synced; lead is off
        assert sorted(queued) == sorted(set(STREAMS) - {"lead"})
        assert await stack.service.queue_due_syncs() == []  # queued already: never twice
        later = datetime.now(UTC) + timedelta(minutes=30)
        assert sorted(await stack.service.queue_due_syncs(later)) == []  # still queued
        for bad in (
            {"deal": {"interval_minutes": 0}},
            {"invoice": {"enabled": True}},
            {"deal": {"colour": "red"}},
            {"deal": {"enabled": "maybe"}},
            {"entity_type": "invoice", "enabled": True},
            {"entity_type": "deal", "sync_interval_minutes": 0},
            {"entity_type": "deal", "interval_minutes": 15},
        ):
            response = await stack.api.put("/api/v1/sync/config", json=bad)
            assert response.status_code == 422, bad


async def test_scheduler_queues_again_after_the_interval(stack: Stack, database_url: str) -> None:
    await stack.api.put(
        "/api/v1/sync/config",
        json={name: {"enabled": name == "company"} for name in STREAMS},
    )
    assert await stack.service.queue_due_syncs() == ["company"]

    async def company_done() -> bool:
        return (
            scalar(
                database_url,
                "SELECT count(*) FROM b24sync.sync_runs WHERE entity='company' AND status='success'",
            )
            == 1
        )

    await stack.wait_for(company_done)
    assert await stack.service.queue_due_syncs() == []
    later = datetime.now(UTC) + timedelta(minutes=31)  # the default interval is 30
    assert await stack.service.queue_due_syncs(later) == ["company"]


async def test_scheduler_checks_for_deletions_once_a_day(stack: Stack, database_url: str) -> None:
    """Incremental runs cannot see records deleted on the portal (no events here): every
    SYNC_RECONCILE_HOURS the scheduled run is a reconcile, and the incremental follows."""
    await stack.api.put(
        "/api/v1/sync/config",
        json={name: {"enabled": name == "lead"} for name in STREAMS},
    )

    async def runs_done(count: int) -> bool:
        done = "SELECT count(*) FROM b24sync.sync_runs WHERE entity='lead' AND status='success'"
        return bool(scalar(database_url, done) == count)

    assert await stack.service.queue_due_syncs() == ["lead"]  # the first run: a full sync
    await stack.wait_for(lambda: runs_done(1))
    assert scalar(database_url, "SELECT sync_type FROM b24sync.sync_runs") == "full"
    stack.emu.portal.delete("lead", 4)  # nobody tells the service

    tomorrow = datetime.now(UTC) + timedelta(hours=25)
    assert await stack.service.queue_due_syncs(tomorrow) == ["lead"]
    await stack.wait_for(lambda: runs_done(2))
    assert (
        scalar(database_url, "SELECT sync_type FROM b24sync.sync_runs ORDER BY id DESC LIMIT 1")
        == "reconcile"
    )
    assert (
        scalar(database_url, "SELECT _deleted_at IS NOT NULL FROM bitrix24.crm_lead WHERE id = 4")
        is True
    )

    soon = datetime.now(UTC) + timedelta(minutes=31)  # the interval, not a day, after the check
    assert await stack.service.queue_due_syncs(soon) == ["lead"]  # now the incremental
    await stack.wait_for(lambda: runs_done(3))
    assert (
        scalar(database_url, "SELECT sync_type FROM b24sync.sync_runs ORDER BY id DESC LIMIT 1")
        == "incremental"
    )


# --- events ------------------------------------------------------------------------------------


async def test_portal_events_change_rows_without_a_scheduled_sync(
    stack: Stack, database_url: str
) -> None:
    run_id = (await stack.api.post("/api/v1/sync/start/deal", json={"sync_type": "full"})).json()[
        "run_id"
    ]
    await finished(stack, run_id)
    stack.emu.events.bind_outbound(HANDLER, APPLICATION_TOKEN)

    await stack.portal.call("crm.deal.update", {"id": 5, "fields": {"TITLE": "Edited by event"}})
    added = (await stack.portal.call("crm.deal.add", {"fields": {"TITLE": "Born by event"}}))[
        "result"
    ]
    await stack.portal.call("crm.deal.delete", {"id": 7})

    async def applied() -> bool:
        title = scalar(database_url, "SELECT title FROM bitrix24.crm_deal WHERE id = 5")
        new = scalar(database_url, "SELECT title FROM bitrix24.crm_deal WHERE id = %s", added)
        gone = scalar(
            database_url, "SELECT _deleted_at IS NOT NULL FROM bitrix24.crm_deal WHERE id = 7"
        )
        pending = scalar(
            database_url, "SELECT count(*) FROM b24sync.received_events WHERE processed_at IS NULL"
        )
        # rows are written by the by-ids run just before its events are marked: wait for both
        return (
            title == "Edited by event" and new == "Born by event" and gone is True and not pending
        )

    await stack.wait_for(applied)
    runs = scalar(database_url, "SELECT array_agg(DISTINCT sync_type) FROM b24sync.sync_runs")
    assert sorted(runs) == ["by_ids", "full"]  # no scheduled incremental did this
    stored = scalar(database_url, "SELECT payload::text FROM b24sync.received_events LIMIT 1")
    assert APPLICATION_TOKEN not in stored


async def test_event_application_keeps_to_its_share_of_the_request_rate(
    stack: Stack, database_url: str
) -> None:
    """BITRIX_RATE 2 and EVENTS_BUDGET_SHARE 0.5: by-ids calls start at least 1 s apart, and the
    events that arrive meanwhile ride along in the next call."""
    run_id = (await stack.api.post("/api/v1/sync/start/deal", json={"sync_type": "full"})).json()[
        "run_id"
    ]
    await finished(stack, run_id)
    by_ids_runs = (
        "SELECT count(*) FROM b24sync.sync_runs WHERE sync_type = 'by_ids' AND status = 'success' "
        "AND entity = 'deal'"
    )
    pending = "SELECT count(*) FROM b24sync.received_events WHERE processed_at IS NULL"

    await stack.api.post("/api/v1/webhooks/bitrix", data=event_form(APPLICATION_TOKEN))

    async def first_applied() -> bool:
        return bool(scalar(database_url, by_ids_runs) == 1 and scalar(database_url, pending) == 0)

    await stack.wait_for(first_applied)
    for record_id in range(10, 15):
        form = event_form(APPLICATION_TOKEN) | {"data[FIELDS][ID]": str(record_id)}
        await stack.api.post("/api/v1/webhooks/bitrix", data=form)

    async def all_applied() -> bool:
        return bool(scalar(database_url, pending) == 0 and scalar(database_url, by_ids_runs) == 2)

    await stack.wait_for(all_applied)
    gap = scalar(
        database_url,
        "SELECT extract(epoch FROM max(started_at) - min(started_at)) FROM b24sync.sync_runs "
        "WHERE sync_type = 'by_ids'",
    )
    assert gap >= 0.95  # 1 / (2 requests/s x 0.5)
    assert scalar(database_url, by_ids_runs) == 2  # the five later events shared one call


async def sync_deals_with_children(stack: Stack) -> None:
    for name in ("deal", "deal_contact", "deal_productrow"):
        summary = await stack.service.engine.full(STREAMS[name])
        assert summary.status == "success", (name, summary.error)


def product_names(url: str, deal_ids: list[int]) -> dict[int, list[str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT deal_id, product_name FROM bitrix24.crm_deal_productrow "
            "WHERE deal_id = ANY(%s) ORDER BY deal_id, sort, id",
            (deal_ids,),
        ).fetchall()
    names: dict[int, list[str]] = {deal: [] for deal in deal_ids}
    for deal, name in rows:
        names[deal].append(name)
    return names


def by_ids_calls(url: str) -> list[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT entity, api_calls FROM b24sync.sync_runs WHERE sync_type = 'by_ids' "
            "AND status = 'success' ORDER BY id"
        ).fetchall()
    return [(entity, calls) for entity, calls in rows]


async def test_a_deal_event_refreshes_its_contacts_and_product_rows_in_the_same_call(
    stack: Stack, database_url: str
) -> None:
    await sync_deals_with_children(stack)
    stack.emu.portal.update(
        "deal", 10, {"TITLE": "Edited with its rows", "CONTACT_IDS": ["3", "4"]}
    )
    stack.emu.portal.product_rows.replace("D", 10, [{"productName": "Сервер", "price": 5}])
    listed = stack.emu.stats.by_method["crm.deal.list"]
    await stack.api.post(
        "/api/v1/webhooks/bitrix", data=event_form(APPLICATION_TOKEN, **{"data[FIELDS][ID]": "10"})
    )

    async def applied() -> bool:
        return (
            scalar(database_url, "SELECT title FROM bitrix24.crm_deal WHERE id = 10")
            == "Edited with its rows"
            and scalar(
                database_url,
                "SELECT array_agg(contact_id ORDER BY sort) FROM bitrix24.crm_deal_contact "
                "WHERE deal_id = 10",
            )
            == [3, 4]
            and product_names(database_url, [10]) == {10: ["Сервер"]}
            and scalar(database_url, "SELECT count(*) FROM b24sync.pending_children") == 0
            and bool(by_ids_calls(database_url))  # the run's end is written after its rows
        )

    await stack.wait_for(applied)
    assert by_ids_calls(database_url) == [("deal", 1)]  # deals, links and rows: one batch call
    assert stack.emu.stats.by_method["crm.deal.list"] == listed + 1


async def test_a_deal_event_brings_the_deals_new_stage_moves_in_the_same_call(
    stack: Stack, database_url: str
) -> None:
    """A deal moved through three stages in the portal's UI: its event's one call also reads
    the deal stage history above the highest stored row, so the moves are there at once, not
    at the history's next scheduled run."""
    for name in ("deal", "deal_stage_history"):
        summary = await stack.service.engine.full(STREAMS[name])
        assert summary.status == "success", (name, summary.error)
    for stage in ("PREPARATION", "EXECUTING", "WON"):
        stack.emu.portal.update("deal", 10, {"STAGE_ID": stage})
    await stack.api.post(
        "/api/v1/webhooks/bitrix", data=event_form(APPLICATION_TOKEN, **{"data[FIELDS][ID]": "10"})
    )
    moves = (
        "SELECT array_agg(stage_id ORDER BY id) FROM bitrix24.crm_stage_history "
        "WHERE entity_type_id = 2 AND owner_id = 10 AND stage_id IN ('PREPARATION', 'EXECUTING', "
        "'WON')"
    )

    async def applied() -> bool:
        return scalar(database_url, moves) == ["PREPARATION", "EXECUTING", "WON"] and bool(
            by_ids_calls(database_url)
        )

    await stack.wait_for(applied)
    assert by_ids_calls(database_url) == [("deal", 1)]


async def test_product_rows_no_call_had_room_for_follow_in_their_own(
    stack: Stack, database_url: str
) -> None:
    """A hundred deal events: one call carries the deals, their contacts and the product rows
    of as many deals as its 50 commands leave room for; the rest follow in calls of their own,
    each at the events' share of the rate, and none is lost."""
    await sync_deals_with_children(stack)
    deals = list(range(1, 101))
    for deal in deals:
        rows = [{"productName": f"Товар {deal}", "price": deal}]
        stack.emu.portal.product_rows.replace("D", deal, rows)
    await asyncio.gather(
        *(
            stack.api.post(
                "/api/v1/webhooks/bitrix",
                data=event_form(APPLICATION_TOKEN, **{"data[FIELDS][ID]": str(deal)}),
            )
            for deal in deals
        )
    )

    async def applied() -> bool:
        return (
            scalar(database_url, "SELECT count(*) FROM b24sync.pending_children") == 0
            and scalar(
                database_url,
                "SELECT count(*) FROM b24sync.received_events WHERE processed_at IS NULL",
            )
            == 0
            and product_names(database_url, deals) == {d: [f"Товар {d}"] for d in deals}
        )

    await stack.wait_for(applied, timeout=60)
    calls = by_ids_calls(database_url)
    assert all(spent == 1 for _, spent in calls), calls  # one call each run
    assert ("deal_productrow", 1) in calls, calls  # the rows that did not fit
    assert len(calls) <= 5, calls  # 100 deals: 4 commands; 100 product rows: 100


async def test_a_child_the_portal_refuses_fails_alone_and_stays_noted(
    stack: Stack, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A product-row command that fails inside the deals' call does not fail the deals: they
    are applied, the events are done, the rows stay noted and follow once the portal answers."""
    await sync_deals_with_children(stack)

    def refused(call: Any) -> Any:
        raise RestError("INTERNAL_SERVER_ERROR", "Internal error", 500)

    monkeypatch.setitem(METHODS, "crm.item.productrow.list", refused)
    stack.emu.portal.update("deal", 12, {"TITLE": "Rows refused"})
    stack.emu.portal.product_rows.replace("D", 12, [{"productName": "Позже"}])
    await stack.api.post(
        "/api/v1/webhooks/bitrix", data=event_form(APPLICATION_TOKEN, **{"data[FIELDS][ID]": "12"})
    )
    pending = "SELECT array_agg(parent_id) FROM b24sync.pending_children"

    async def deal_applied() -> bool:
        return (
            scalar(database_url, "SELECT title FROM bitrix24.crm_deal WHERE id = 12")
            == "Rows refused"
            and scalar(
                database_url,
                "SELECT count(*) FROM b24sync.received_events WHERE processed_at IS NULL",
            )
            == 0
        )

    await stack.wait_for(deal_applied)
    assert scalar(database_url, pending) == [12]
    logged = scalar(
        database_url, "SELECT log FROM b24sync.sync_runs WHERE sync_type = 'by_ids' ORDER BY id"
    )
    assert "deal_productrow of 1 parents not refreshed" in logged
    monkeypatch.undo()
    await stack.service.events.queue_leftovers()

    async def rows_followed() -> bool:
        return product_names(database_url, [12]) == {12: ["Позже"]} and (
            scalar(database_url, pending) is None
        )

    await stack.wait_for(rows_followed)


async def test_product_rows_wait_while_their_own_sync_runs_then_follow(
    stack: Stack, database_url: str
) -> None:
    """While a product-row sync holds its stream, a deal event updates the deal and notes its
    rows; once the stream is free they follow (in the next deal event's call, oldest first, or
    in a call of their own when the recovery tick comes first)."""
    await sync_deals_with_children(stack)
    for deal in (10, 11):
        stack.emu.portal.product_rows.replace("D", deal, [{"productName": f"Новый {deal}"}])
    pending = "SELECT array_agg(parent_id) FROM b24sync.pending_children"
    async with session_lock(
        libpq_url(database_url), "b24sync.sync.deal_productrow", busy=AssertionError("held")
    ):
        stack.emu.portal.update("deal", 10, {"TITLE": "While rows were busy"})
        await stack.api.post(
            "/api/v1/webhooks/bitrix",
            data=event_form(APPLICATION_TOKEN, **{"data[FIELDS][ID]": "10"}),
        )

        async def deal_applied() -> bool:
            return scalar(
                database_url, "SELECT title FROM bitrix24.crm_deal WHERE id = 10"
            ) == "While rows were busy" and scalar(database_url, pending) == [10]

        await stack.wait_for(deal_applied)
        assert product_names(database_url, [10]) != {10: ["Новый 10"]}
    await stack.api.post(
        "/api/v1/webhooks/bitrix", data=event_form(APPLICATION_TOKEN, **{"data[FIELDS][ID]": "11"})
    )

    async def rows_applied() -> bool:
        return (
            product_names(database_url, [10, 11])
            == {
                10: ["Новый 10"],
                11: ["Новый 11"],
            }
            and scalar(database_url, pending) is None
        )

    await stack.wait_for(rows_applied)


FORM = {"content-type": "application/x-www-form-urlencoded"}


def event_form(token_value: str | None, **extra: str) -> dict[str, str]:
    form = {
        "event": "ONCRMDEALUPDATE",
        "event_handler_id": "3",
        "data[FIELDS][ID]": "5",
        "ts": str(int(time.time())),
        "auth[domain]": "emu.bitrix24.ru",
        "auth[member_id]": "abc",
    }
    if token_value is not None:
        form["auth[application_token]"] = token_value
    return form | extra


@pytest.mark.parametrize("forged", [None, "", "forged-token", APPLICATION_TOKEN + "x"])
async def test_forged_events_are_403_and_change_nothing(
    stack: Stack, database_url: str, forged: str | None
) -> None:
    stack.api.headers.pop("Authorization")
    response = await stack.api.post("/api/v1/webhooks/bitrix", data=event_form(forged))
    assert response.status_code == 403 and "application_token" in response.json()["detail"]
    assert scalar(database_url, "SELECT count(*) FROM b24sync.received_events") == 0


@pytest.mark.parametrize(
    ("body", "kwargs", "why"),
    [
        (None, {"json": {"event": "ONCRMDEALUPDATE"}}, "form-encoded"),
        (event_form(APPLICATION_TOKEN, event=""), {}, "no 'event'"),
        (event_form(APPLICATION_TOKEN, event="ONTASKADD"), {}, "not one b24sync handles"),
        (event_form(APPLICATION_TOKEN, **{"data[FIELDS][ID]": "x"}), {}, "positive integer"),
        (event_form(APPLICATION_TOKEN, **{"data[FIELDS][ID]": "-3"}), {}, "positive integer"),
        (event_form(APPLICATION_TOKEN, **{"data[FIELDS][ID]": "\u00b2"}), {}, "positive integer"),
        (event_form(APPLICATION_TOKEN, **{"data[FIELDS][ID]": "\u2460"}), {}, "positive integer"),
        (event_form(APPLICATION_TOKEN, **{"data[FIELDS][ID]": "9" * 5000}), {}, "positive"),
        (event_form(APPLICATION_TOKEN, **{"data[FIELDS][ID]": str(2**63)}), {}, "positive"),
        (None, {"content": b"event=ONCRMDEALADD&x=\xff\xfe", "headers": FORM}, "UTF-8"),
        (None, {"content": "&".join(["a=1"] * 101), "headers": FORM}, "more than 100"),
    ],
)
async def test_malformed_events_are_400_with_a_message(
    stack: Stack, body: dict[str, str] | None, kwargs: dict[str, Any], why: str
) -> None:
    response = await stack.api.post("/api/v1/webhooks/bitrix", data=body, **kwargs)
    assert response.status_code == 400 and why in response.json()["detail"]


async def test_the_token_is_checked_before_anything_else_is_read(
    stack: Stack, database_url: str
) -> None:
    stack.api.headers.pop("Authorization")
    hostile = event_form("wrong", **{"data[FIELDS][ID]": "\u2460", "auth[member_id]": "a\x00b"})
    response = await stack.api.post("/api/v1/webhooks/bitrix", data=hostile)
    assert response.status_code == 403
    huge = await stack.api.post(
        "/api/v1/webhooks/bitrix", content=b"event=" + b"A" * 70_000, headers=FORM
    )
    assert huge.status_code == 413
    odd = event_form(APPLICATION_TOKEN, ts=str(2**63), **{"auth[member_id]": "a\x00b"})
    accepted = await stack.api.post("/api/v1/webhooks/bitrix", data=odd)
    assert accepted.status_code == 200, accepted.text
    stored = scalar(database_url, "SELECT (event_ts, member_id) FROM b24sync.received_events")
    assert stored == (None, "")  # what does not fit is dropped, the event is kept


async def test_an_apply_job_left_by_a_dead_worker_is_requeued(
    database_url: str, emu: Emulator
) -> None:
    """kill -9 while `apply_events` runs: its job stays 'doing' and holds its lock, so without
    the requeue no event is ever applied again."""
    async with service_stack(database_url, emu, worker=False) as stack:
        jobs = stack.service.jobs
        assert jobs is not None
        await stack.api.post("/api/v1/webhooks/bitrix", data=event_form(APPLICATION_TOKEN))
        dead = await jobs.job_manager.register_worker()
        assert await jobs.job_manager.fetch_job(queues=None, worker_id=dead) is not None
        with psycopg.connect(database_url, autocommit=True) as conn:  # its heartbeat stops
            conn.execute(
                "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 minute' "
                "WHERE id = %s",
                (dead,),
            )
        stack.emu.portal.update("deal", 7, {"TITLE": "Edited after the crash"})
        after = event_form(APPLICATION_TOKEN, **{"data[FIELDS][ID]": "7"})
        await stack.api.post("/api/v1/webhooks/bitrix", data=after)
        pending = "SELECT count(*) FROM b24sync.received_events WHERE processed_at IS NULL"
        worker = asyncio.create_task(run_worker(jobs))
        try:
            await asyncio.sleep(1.0)
            assert scalar(database_url, pending) == 2  # the new job waits for the dead one's lock
            assert len(await requeue_stalled_jobs(jobs)) == 1

            async def applied() -> bool:
                return scalar(database_url, pending) == 0 and (
                    scalar(database_url, "SELECT title FROM bitrix24.crm_deal WHERE id = 7")
                    == "Edited after the crash"
                )

            await stack.wait_for(applied)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)


async def test_events_stored_by_a_process_that_died_before_queueing_are_applied(
    stack: Stack, database_url: str
) -> None:
    stack.emu.portal.update("deal", 9, {"TITLE": "Stored, then the process died"})
    with psycopg.connect(database_url, autocommit=True) as conn:  # the commit before the defer
        conn.execute(
            "INSERT INTO b24sync.received_events (event_name, entity, record_id, member_id, "
            "payload) VALUES ('ONCRMDEALUPDATE', 'deal', 9, '', '{}')"
        )
    assert await stack.service.events.queue_leftovers() == 1

    async def applied() -> bool:
        if scalar(database_url, "SELECT to_regclass('bitrix24.crm_deal')") is None:
            return False
        title = "SELECT title FROM bitrix24.crm_deal WHERE id = 9"
        pending = "SELECT count(*) FROM b24sync.received_events WHERE processed_at IS NULL"
        # the row is written first; the event is marked once the deal's links are refreshed too
        return (
            scalar(database_url, title) == "Stored, then the process died"
            and scalar(database_url, pending) == 0
        )

    await stack.wait_for(applied)
    assert await stack.service.events.queue_leftovers() == 0


async def test_events_that_meet_a_running_sync_are_applied_after_it(
    stack: Stack, database_url: str
) -> None:
    """The apply job queues itself again instead of procrastinate's retry, which fails on the
    queueing lock when a newer copy waits and then leaves the job 'doing' for good."""
    deal = stream_named("deal")
    pending = "SELECT count(*) FROM b24sync.received_events WHERE processed_at IS NULL"
    async with stack.service.engine._lock(deal):  # a long full sync holds the entity
        await stack.api.post("/api/v1/webhooks/bitrix", data=event_form(APPLICATION_TOKEN))

        async def waited_once() -> bool:
            return bool(
                scalar(
                    database_url,
                    "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'apply_events' "
                    "AND status = 'todo' AND scheduled_at > now()",
                )
            )

        await stack.wait_for(waited_once)
        later = event_form(APPLICATION_TOKEN, **{"data[FIELDS][ID]": "6"})
        await stack.api.post("/api/v1/webhooks/bitrix", data=later)
        assert scalar(database_url, pending) == 2
    await stack.wait_for(lambda: _zero(database_url, pending), timeout=30)
    doing = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'"
    await stack.wait_for(lambda: _zero(database_url, doing))


async def _zero(database_url: str, query: str) -> bool:
    return scalar(database_url, query) == 0


async def test_events_for_an_entity_with_events_off_are_ignored(
    stack: Stack, database_url: str
) -> None:
    await stack.api.put("/api/v1/sync/config", json={"deal": {"webhook_enabled": False}})
    response = await stack.api.post("/api/v1/webhooks/bitrix", data=event_form(APPLICATION_TOKEN))
    assert response.status_code == 200

    async def processed() -> bool:
        return (
            scalar(database_url, "SELECT processed_at IS NOT NULL FROM b24sync.received_events")
            is True
        )

    await stack.wait_for(processed)
    assert scalar(database_url, "SELECT error FROM b24sync.received_events").startswith("ignored")
    assert scalar(database_url, "SELECT to_regclass('bitrix24.crm_deal')") is None


async def test_events_wait_out_a_portal_outage_and_are_applied_after_it(
    stack: Stack, database_url: str
) -> None:
    """Transient failures keep the events pending; the apply job retries with backoff."""
    run_id = (await stack.api.post("/api/v1/sync/start/deal", json={"sync_type": "full"})).json()[
        "run_id"
    ]
    await finished(stack, run_id)
    stack.emu.portal.update("deal", 5, {"TITLE": "Edited during an outage"})
    stack.emu.faults.error_500 = 1.0
    response = await stack.api.post("/api/v1/webhooks/bitrix", data=event_form(APPLICATION_TOKEN))
    assert response.status_code == 200  # stored at once, whatever the portal is doing

    async def failed_once() -> bool:
        return bool(
            scalar(
                database_url,
                "SELECT count(*) FROM b24sync.sync_runs WHERE sync_type = 'by_ids' "
                "AND status = 'failed' AND error LIKE %s",
                "%PortalServerError%",
            )
        )

    await stack.wait_for(failed_once)
    assert scalar(database_url, "SELECT title FROM bitrix24.crm_deal WHERE id = 5") != (
        "Edited during an outage"
    )
    assert (
        scalar(
            database_url, "SELECT count(*) FROM b24sync.received_events WHERE processed_at IS NULL"
        )
        == 1
    )

    stack.emu.faults.error_500 = 0.0

    async def applied() -> bool:
        # The row is written by the by-ids run before its events are marked: wait for both.
        return (
            scalar(database_url, "SELECT title FROM bitrix24.crm_deal WHERE id = 5")
            == "Edited during an outage"
            and scalar(
                database_url,
                "SELECT count(*) FROM b24sync.received_events WHERE processed_at IS NULL",
            )
            == 0
        )

    await stack.wait_for(applied, timeout=30)


# --- registration ------------------------------------------------------------------------------


async def test_register_under_an_inbound_webhook_explains_the_ways_that_work(
    stack: Stack,
) -> None:
    response = await stack.api.post(
        "/api/v1/webhooks/register", params={"handler_base_url": "https://sync.example.com"}
    )
    assert response.status_code == 409
    assert "Outbound webhook" in response.json()["detail"]
    registered = (await stack.api.get("/api/v1/webhooks/registered")).json()
    assert registered["auth"] == "inbound_webhook" and registered["can_bind"] is False


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://sync.example.com", "https"),
        ("https://user:pw@sync.example.com", "credentials"),
        ("http://sync.example.com", "https"),
        ("https://sync.example.com/?a=1", "query"),
        ("sync.example.com", "https"),
    ],
)
async def test_unsafe_handler_urls_are_422(stack: Stack, url: str, why: str) -> None:
    response = await stack.api.post("/api/v1/webhooks/register", params={"handler_base_url": url})
    assert response.status_code == 422 and why in response.json()["detail"]
    response = await stack.api.delete(
        "/api/v1/webhooks/unregister", params={"handler_base_url": url}
    )
    assert response.status_code == 422


async def test_a_thousand_events_leave_no_error_in_the_postgresql_log(
    stack: Stack, database_url: str
) -> None:
    """Each event asks for the apply job; one waiting copy is enough, and asking for a second
    must not fail inside PostgreSQL (which logged an ERROR with its statement every time)."""
    run_id = (await stack.api.post("/api/v1/sync/start/deal", json={"sync_type": "full"})).json()[
        "run_id"
    ]
    await finished(stack, run_id)
    log_file = Path(scalar(database_url, "SHOW data_directory")) / "log"
    log_start = log_file.stat().st_size
    for n in range(1000):
        event = {
            "event": "ONCRMDEALUPDATE",
            "data[FIELDS][ID]": str(n % 120 + 1),
            "ts": str(int(time.time())),
            "auth[application_token]": APPLICATION_TOKEN,
        }
        answer = await stack.api.post("/api/v1/webhooks/bitrix", data=event)
        assert answer.status_code == 200, answer.text

    async def applied() -> bool:
        pending = scalar(
            database_url, "SELECT count(*) FROM b24sync.received_events WHERE processed_at IS NULL"
        )
        return pending == 0

    await stack.wait_for(applied)
    with log_file.open(errors="replace") as log:
        log.seek(log_start)
        errors = [line for line in log if "ERROR" in line]
    assert errors == []


async def test_the_api_documents_its_answers_and_its_bearer_scheme(stack: Stack) -> None:
    """/docs is served from the package (no CDN); the spec says what each route answers."""
    spec = (await stack.api.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearer"]["description"],
    }
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            ok = next(code for code in operation["responses"] if code[0] in "23")
            content = operation["responses"][ok].get("content", {})
            if ok == "303" or "application/json" not in content:  # a redirect, SSE, text
                assert ok == "303" or content, (method, path)
                continue
            schema = content["application/json"].get("schema", {})
            assert schema not in ({}, {"type": "object"}), (method, path, schema)
    status = spec["paths"]["/api/v1/sync/status"]["get"]
    assert status["security"] == [{"bearer": []}]
    page = await stack.api.get("/docs")
    assert "/docs-assets/swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
    assert (await stack.api.get("/docs-assets/swagger-ui-bundle.js")).status_code == 200


async def test_a_run_keeps_the_lines_it_logged(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """What a run logged (here its schema changes and a failure) is on its own page."""
    caplog.set_level(logging.INFO)  # as configure_logging() sets it in every command
    run_id = (await stack.api.post("/api/v1/sync/start/deal", json={"sync_type": "full"})).json()[
        "run_id"
    ]
    await finished(stack, run_id)
    detail = (await stack.api.get(f"/api/v1/sync/runs/{run_id}")).json()
    assert "schema deal" in detail["log"], detail
    stack.emu.faults.error_500 = 1.0
    failed_id = (
        await stack.api.post("/api/v1/sync/start/lead", json={"sync_type": "full"})
    ).json()["run_id"]
    failed = await finished(stack, failed_id)
    stack.emu.faults.error_500 = 0.0
    assert failed["status"] == "failed"
    lines = (await stack.api.get(f"/api/v1/sync/runs/{failed_id}")).json()["log"]
    assert "warning sync lead full failed" in lines and TOKEN not in lines
    assert (await stack.api.get("/api/v1/sync/runs/999999")).status_code == 404
    page = await stack.api.get(f"/runs/{failed_id}", headers={"Accept-Language": "en"})
    assert "What the run logged" in page.text
