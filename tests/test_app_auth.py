"""A local application (OAuth): token refresh and rotation, shared tokens, event.bind, offline events.

b24emu plays the portal and its OAuth server (``/oauth/token/``, settings/oauth/auto-renewal.md);
the token pair lives in PostgreSQL as in the service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from b24emu import Emulator, create_app, seed_portal
from b24sync.bitrix.auth import AppAuth
from b24sync.errors import OAuthRefused
from b24sync.store import app_tokens
from b24sync.store.app_tokens import PgTokenStore
from b24sync.streams import EVENT_NAMES, stream_named
from tests.portal import API_KEY, TOKEN, Stack, fast_client, service_stack

PORTAL = "http://emu"
# The emulator delivers through an ASGI transport, so any host reaches the app; a loopback one
# passes the handler check in development.
HANDLER_BASE = "http://127.0.0.1:8000"


@pytest.fixture
def emu() -> Emulator:
    emulator = Emulator(webhook_token=TOKEN)
    seed_portal(emulator.portal, {"company": 5, "contact": 5, "lead": 5, "deal": 60})
    emulator.install_app()
    return emulator


def app_auth(emu: Emulator, database_url: str, bootstrap: str | None = None) -> AppAuth:
    assert emu.app is not None
    return AppAuth(
        portal_url=PORTAL,
        client_id=emu.app.client_id,
        client_secret=emu.app.client_secret,
        store=PgTokenStore(database_url, PORTAL),
        oauth_url=PORTAL,
        bootstrap_refresh_token=bootstrap if bootstrap is not None else emu.app.refresh_token,
    )


@pytest.fixture
async def http(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(emu))) as client:
        yield client


def stored_tokens(database_url: str) -> tuple[str, str] | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT access_token, refresh_token FROM b24sync.app_tokens").fetchone()
    return (row[0], row[1]) if row else None


async def test_first_call_spends_the_bootstrap_token_and_stores_the_pair(
    emu: Emulator, http: httpx.AsyncClient, database_url: str
) -> None:
    bootstrap = emu.app.refresh_token if emu.app else ""
    client = fast_client(http, auth=app_auth(emu, database_url))
    deals = await client.call("crm.deal.list", {"select": ["ID"]})
    assert deals["total"] == 60
    assert emu.app is not None
    assert stored_tokens(database_url) == (emu.app.access_token, emu.app.refresh_token)
    assert emu.app.refresh_token != bootstrap  # rotated: the bootstrap token is spent


async def test_an_expired_access_token_is_renewed_once_and_the_call_repeated(
    emu: Emulator, http: httpx.AsyncClient, database_url: str
) -> None:
    client = fast_client(http, auth=app_auth(emu, database_url))
    await client.call("profile")
    first = stored_tokens(database_url)
    assert emu.app is not None
    emu.app.expires_at = time.time() - 1  # the hour is over
    before = client.counters.http_calls
    result = await client.batch({"a": "crm.deal.list?select[0]=ID", "b": "crm.lead.list"})
    assert len(result.result["a"]) == 50 and len(result.result["b"]) == 5
    assert client.counters.http_calls - before == 2  # refused once, then the repeat
    assert stored_tokens(database_url) not in (None, first)


async def test_processes_sharing_the_pair_refresh_it_once(
    emu: Emulator, http: httpx.AsyncClient, database_url: str
) -> None:
    """Refresh tokens rotate: a second refresh with the spent token would be invalid_grant."""
    first = fast_client(http, auth=app_auth(emu, database_url))
    await first.call("profile")
    others = [fast_client(http, auth=app_auth(emu, database_url)) for _ in range(4)]
    for client in others:
        await client.call("profile")  # each adopts the stored pair
    assert emu.app is not None
    emu.app.expires_at = time.time() - 1
    refreshes = 0
    original = emu.exchange

    def counting_refresh(*args: str) -> Any:
        nonlocal refreshes
        refreshes += 1
        return original(*args)

    emu.exchange = counting_refresh  # type: ignore[method-assign]
    results = await asyncio.gather(*(c.call("crm.deal.list") for c in [first, *others]))
    assert all(r["total"] == 60 for r in results)
    assert refreshes == 1


async def test_a_refused_refresh_token_says_what_to_do_without_leaking_it(
    emu: Emulator, http: httpx.AsyncClient, database_url: str
) -> None:
    client = fast_client(http, auth=app_auth(emu, database_url, bootstrap="spent-token-123"))
    with pytest.raises(OAuthRefused) as info:
        await client.call("profile")
    assert "BITRIX_REFRESH_TOKEN" in str(info.value) and "invalid_grant" in str(info.value)
    assert "spent-token-123" not in str(info.value)
    assert stored_tokens(database_url) is None


# --- events under application auth -------------------------------------------------------------


@pytest.fixture
async def app_stack(emu: Emulator, database_url: str) -> AsyncIterator[Stack]:
    async with service_stack(
        database_url,
        emu,
        auth=app_auth(emu, database_url),
        bitrix_application_token=emu.app_application_token,
        debug=True,  # plain http on loopback is accepted while developing
    ) as stack:
        summary = await stack.service.engine.full(stream_named("deal"))
        assert summary.status == "success" and summary.fetched == 60
        yield stack


def title_of(database_url: str, record_id: int) -> str | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT title FROM bitrix24.crm_deal WHERE id = %s", (record_id,))
        found = row.fetchone()
    return found[0] if found else None


async def test_register_binds_every_event_and_they_reach_the_rows(
    app_stack: Stack, database_url: str
) -> None:
    response = await app_stack.api.post(
        "/api/v1/webhooks/register", params={"handler_base_url": HANDLER_BASE}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["events"]) == len(EVENT_NAMES) and body["failed"] == {}
    registered = (await app_stack.api.get("/api/v1/webhooks/registered")).json()
    assert registered["auth"] == "application" and registered["can_bind"] is True
    handlers = {b["handler"] for b in registered["bindings"]}
    assert handlers == {f"{HANDLER_BASE}/api/v1/webhooks/bitrix"}
    assert len(registered["bindings"]) == len(EVENT_NAMES)

    await app_stack.portal.call("crm.deal.update", {"id": 3, "fields": {"TITLE": "Via event.bind"}})

    async def applied() -> bool:
        return title_of(database_url, 3) == "Via event.bind"

    await app_stack.wait_for(applied)

    # The dashboard's Events page in application mode: the bindings and the authorize link.
    app_stack.api.cookies.set("b24sync_token", API_KEY)
    page = await app_stack.api.get("/events")
    assert page.status_code == 200
    assert f'id="bindings">{len(EVENT_NAMES)}' in page.text and 'id="connect-app"' in page.text
    assert "Outbound webhook" not in page.text  # those steps are for an inbound webhook

    response = await app_stack.api.delete(
        "/api/v1/webhooks/unregister", params={"handler_base_url": HANDLER_BASE}
    )
    assert response.status_code == 200
    assert (await app_stack.api.get("/api/v1/webhooks/registered")).json()["bindings"] == []


async def test_offline_events_are_drained_into_the_inbox_and_applied(
    app_stack: Stack, database_url: str
) -> None:
    response = await app_stack.api.post("/api/v1/webhooks/register", params={"offline": "true"})
    assert response.status_code == 200 and response.json()["mode"] == "offline"
    for record_id in (2, 4):
        await app_stack.portal.call(
            "crm.deal.update", {"id": record_id, "fields": {"TITLE": f"Offline {record_id}"}}
        )
    await app_stack.portal.call("crm.deal.delete", {"id": 6})
    assert len(app_stack.emu.events.offline) == 3  # queued on the portal, nothing delivered

    assert await app_stack.service.events.drain_offline() == 3
    assert app_stack.emu.events.offline == []  # cleared only after they were stored

    async def applied() -> bool:
        with psycopg.connect(database_url) as conn:
            deleted = conn.execute(
                "SELECT _deleted_at IS NOT NULL FROM bitrix24.crm_deal WHERE id = 6"
            ).fetchone()
        return (
            title_of(database_url, 2) == "Offline 2"
            and title_of(database_url, 4) == "Offline 4"
            and deleted == (True,)
        )

    await app_stack.wait_for(applied)
    assert await app_stack.service.events.drain_offline() == 0

    # Unbound: the drain stops spending calls on polling.
    await app_stack.api.delete("/api/v1/webhooks/unregister", params={"offline": "true"})
    calls = app_stack.emu.stats.http_calls
    assert await app_stack.service.events.drain_offline() == 0
    assert app_stack.emu.stats.http_calls == calls


async def test_offline_events_stored_but_not_cleared_are_cleared_by_the_next_drain(
    app_stack: Stack, database_url: str
) -> None:
    """A crash between the inbox commit and event.offline.clear leaves them hidden on the portal
    under a process id; the drain noted that id with the events and clears it next time."""
    await app_stack.api.post("/api/v1/webhooks/register", params={"offline": "true"})
    await app_stack.portal.call("crm.deal.update", {"id": 8, "fields": {"TITLE": "hidden"}})
    taken = await app_stack.portal.call("event.offline.get", {"clear": 0})
    process_id = taken["result"]["process_id"]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await app_tokens.note_offline_process(conn, PORTAL, process_id)  # as the crashed drain did
    assert [e.process_id for e in app_stack.emu.events.offline] == [process_id]

    assert await app_stack.service.events.drain_offline() == 0  # nothing new to store
    assert app_stack.emu.events.offline == []
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        assert (await app_tokens.offline_state(conn, PORTAL)).uncleared_process_id is None


async def test_online_register_without_the_application_token_is_refused(
    emu: Emulator, database_url: str
) -> None:
    async with service_stack(
        database_url,
        emu,
        worker=False,
        auth=app_auth(emu, database_url),
        bitrix_application_token=None,
        debug=True,
    ) as stack:
        response = await stack.api.post(
            "/api/v1/webhooks/register", params={"handler_base_url": HANDLER_BASE}
        )
        assert response.status_code == 409
        assert "BITRIX_APPLICATION_TOKEN" in response.json()["detail"]
        assert stack.emu.events.bindings == []
        missing = await stack.api.post("/api/v1/webhooks/register")
        assert missing.status_code == 422 and "handler_base_url" in missing.json()["detail"]


async def test_an_installation_posts_tokens_that_are_kept_and_sign_events(
    emu: Emulator, database_url: str
) -> None:
    """The local app's installation path: ONAPPINSTALL with the tokens, as the portal sends it."""
    async with service_stack(
        database_url, emu, worker=False, bitrix_portal_url=PORTAL, bitrix_application_token=None
    ) as stack:
        install_path = f"{HANDLER_BASE}/api/v1/app/install"
        installed = (
            await stack.portal.http.post(
                f"{PORTAL}/_emulator/app", json={"install_handler": install_path}
            )
        ).json()
        await stack.portal.http.post(f"{PORTAL}/_emulator/events/drain")
        assert stored_tokens(database_url) == (
            installed["access_token"],
            installed["refresh_token"],
        )
        # The stored application token now verifies events (BITRIX_APPLICATION_TOKEN is unset).
        stack.api.headers.pop("Authorization")
        event = {
            "event": "ONCRMDEALUPDATE",
            "data[FIELDS][ID]": "3",
            "auth[application_token]": installed["application_token"],
        }
        assert (await stack.api.post("/api/v1/webhooks/bitrix", data=event)).status_code == 200
        forged = event | {"auth[application_token]": "someone-else"}
        assert (await stack.api.post("/api/v1/webhooks/bitrix", data=forged)).status_code == 403

        # Tokens the portal does not accept are not kept; nor is a form without tokens.
        fake = {"event": "ONAPPINSTALL", "auth[access_token]": "x" * 32, "auth[refresh_token]": "y"}
        refused = await stack.api.post("/api/v1/app/install", data=fake)
        assert refused.status_code == 403 and "did not accept" in refused.json()["detail"]
        empty = await stack.api.post("/api/v1/app/install", data={"event": "ONAPPINSTALL"})
        assert empty.status_code == 400
        assert stored_tokens(database_url) == (
            installed["access_token"],
            installed["refresh_token"],
        )
        # Each attempt costs a portal call, so a flood of forged installs is cut off.
        calls = stack.emu.stats.http_calls
        statuses = [
            (await stack.api.post("/api/v1/app/install", data=fake)).status_code for _ in range(15)
        ]
        assert statuses == [403] * 8 + [429] * 7  # 2 attempts above: 10 a minute in all
        assert stack.emu.stats.http_calls - calls == 8

    # A process configured with the application's id and secret uses the kept pair.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(emu))) as http:
        auth = AppAuth(
            portal_url=PORTAL,
            client_id=installed["client_id"],
            client_secret=installed["client_secret"],
            store=PgTokenStore(database_url, PORTAL),
            oauth_url=PORTAL,
        )
        assert (await fast_client(http, auth=auth).call("crm.deal.list"))["total"] == 60


async def test_the_authorization_code_flow_needs_no_public_address(
    emu: Emulator, database_url: str
) -> None:
    """settings/oauth/index.md: the browser goes to the portal's consent page and comes back to
    the application's address with a code; that address may be localhost."""
    assert emu.app is not None
    emu.app.redirect_uri = f"{HANDLER_BASE}/api/v1/app/oauth"
    auth = app_auth(emu, database_url, bootstrap="")
    async with service_stack(
        database_url, emu, worker=False, auth=auth, bitrix_portal_url=PORTAL
    ) as stack:
        calls = emu.stats.http_calls
        assert await stack.service.events.drain_offline() == 0  # not installed: no call at all
        assert emu.stats.http_calls == calls and stored_tokens(database_url) is None
        go = await stack.api.get("/api/v1/app/connect")
        assert go.status_code == 303
        consent = go.headers["location"]
        assert consent.startswith(f"{PORTAL}/oauth/authorize/?client_id={emu.app.client_id}")
        back = await stack.portal.http.get(consent)  # the person agrees at the portal
        assert back.status_code == 302
        returned = back.headers["location"].removeprefix(HANDLER_BASE)
        stack.api.headers.pop("Authorization")  # the browser returns without our bearer token

        expired = returned.replace("state=", "state=1700000000.x.", 1)
        tampered = returned.replace("state=", "state=9", 1)  # a fresh time, but not our signature
        for forged in (expired, tampered, returned.split("&state=")[0] + "&state=none"):
            refused = await stack.api.get(forged)
            assert refused.status_code == 403 and "state" in refused.json()["detail"]
        done = await stack.api.get(returned)
        assert done.status_code == 303 and done.headers["location"] == "/events"
        assert stored_tokens(database_url) == (emu.app.access_token, emu.app.refresh_token)
        assert (await stack.portal.call("crm.deal.list"))["total"] == 60
        replay = await stack.api.get(returned)  # a code is spent once
        assert replay.status_code == 502 and "invalid_grant" in replay.json()["detail"]


async def test_connecting_under_an_inbound_webhook_says_what_is_missing(
    emu: Emulator, database_url: str
) -> None:
    async with service_stack(database_url, emu, worker=False) as stack:
        response = await stack.api.get("/api/v1/app/connect")
        assert response.status_code == 409 and "BITRIX_CLIENT_ID" in response.json()["detail"]
