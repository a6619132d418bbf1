"""How Bitrix24 events reach the mirror: received or drained into the inbox, then applied.

Three ways in (README, Events): an outbound webhook the portal admin configures; a local
application's online bindings (``event.bind`` to our receiver); its offline queue, drained with
``event.offline.get``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from psycopg import AsyncConnection

from b24sync.bitrix.auth import AppAuth
from b24sync.bitrix.client import MAX_BATCH, BitrixClient
from b24sync.bitrix.encoding import encode_params
from b24sync.bitrix.events import (
    CrmEvent,
    offline_event,
    parse_event,
    verify_token,
)
from b24sync.config import Settings
from b24sync.errors import (
    BitrixError,
    EventsUnavailable,
    MalformedEvent,
    SyncAlreadyRunning,
    TransientSyncFailure,
    UnsafeHandlerUrl,
)
from b24sync.service.application import LocalApplication
from b24sync.store import app_tokens, inbox, pending_children, runs, schedule
from b24sync.store.database import PooledDatabase
from b24sync.store.runs import RunMode, RunStatus
from b24sync.streams import (
    EVENT_NAMES,
    STREAMS,
    Stream,
    children_of,
    history_of,
    stream_named,
)
from b24sync.sync import discovery
from b24sync.sync.engine import SyncEngine, free_commands, parents_per_command, riding_order

log = logging.getLogger(__name__)

EVENTS_PER_APPLY = 2500  # 50 list commands x 50 IDs: one batch call
HANDLER_PATH = "/api/v1/webhooks/bitrix"
OFFLINE_EVENTS_PER_CALL = 50  # event.offline.get's default page (event-offline-get.md)

INBOUND_WEBHOOK_EVENTS_HELP = (
    "The portal binds event handlers only for applications (OAuth), not for an inbound webhook. "
    "Two ways work: (1) in the portal, Developer resources > Other > Outbound webhook: handler "
    "URL <your base URL>" + HANDLER_PATH + ", events ONCRM{DEAL,CONTACT,LEAD,COMPANY,DYNAMICITEM}"
    "{ADD,UPDATE,DELETE}; copy its application token into BITRIX_APPLICATION_TOKEN; or (2) a "
    "local application: BITRIX_PORTAL_URL, BITRIX_CLIENT_ID and BITRIX_CLIENT_SECRET, tokens "
    "through /api/v1/app/connect (handler path <your base URL>/api/v1/app/oauth) or the "
    "installation path /api/v1/app/install, after which register binds the events (online, or "
    "offline with no public URL). Until then the scheduled incremental syncs keep the copy "
    "current."
)
APPLICATION_EVENTS_HELP = (
    f"Local application: register binds the {len(EVENT_NAMES)} CRM events with event.bind. "
    "Online delivery POSTs "
    "them to <your base URL>" + HANDLER_PATH + " (needs a URL the portal can reach, and the "
    "application token from the installation or BITRIX_APPLICATION_TOKEN); offline mode "
    "(offline=true) needs no public URL: the portal queues the events and a task drains "
    "event.offline.get every 15 s."
)


@dataclass
class EventIntake:
    """The events side of the service. ``defer_apply`` queues the apply job (the job queue is
    the service's)."""

    settings: Settings
    db: PooledDatabase
    engine: SyncEngine
    app: LocalApplication
    defer_apply: Callable[[], Awaitable[None]]

    @property
    def client(self) -> BitrixClient:
        return self.engine.client

    async def receive(self, form: Mapping[str, str]) -> int:
        """Verify and store one event, then make sure an apply job is queued."""
        verify_token(form, await self.app.application_token())
        event = parse_event(form)
        async with self.db.connection() as conn:
            event_id = await self._store(conn, event)
        await self.defer_apply()
        return event_id

    async def queue_leftovers(self) -> int:
        """Queue the apply job for events stored by a process that died before queueing it
        (the event commits first, then the job is deferred), or for children whose own sync
        held them back; returns how many events are pending."""
        async with self.db.connection() as conn:
            pending = (await inbox.inbox_stats(conn)).pending
            children = await pending_children.streams(conn)
        if pending or children:
            await self.defer_apply()
        return pending

    async def _store(self, conn: AsyncConnection[Any], event: CrmEvent) -> int:
        return await inbox.store_event(
            conn,
            event_name=event.name,
            entity=event.entity,
            record_id=event.record_id,
            member_id=event.member_id,
            event_ts=event.ts,
            payload=event.stored_payload(),
        )

    async def apply(self) -> int:
        """Apply every pending event: per entity, one by-ids sync of the changed records, their
        children riding along in the same call; then the children no call had room for."""
        applied = 0
        async with self.db.connection() as conn:
            await discovery.load(conn)
            claimed = True
            while claimed:  # until a pass finds nothing it can claim (others may hold some)
                if applied:  # the next call cannot start sooner: what arrives meanwhile rides
                    await self._pace(conn)
                schedules = await self._schedules_now(conn)
                claimed = False
                for name in await inbox.pending_entities(conn):
                    count = await self._apply_entity(conn, name, schedules)
                    claimed = claimed or count > 0
                    applied += count
                if not claimed:  # the records are current: now the children left behind
                    for name in await pending_children.streams(conn):
                        claimed = await self._apply_children(conn, name, schedules) or claimed
        return applied

    async def _schedules_now(
        self, conn: AsyncConnection[Any]
    ) -> Mapping[str, schedule.EntitySchedule]:
        """Every stream's schedule as it is now (a job lingers while events come, and they may
        change meanwhile), after asking the portal about a smart process that pending events
        name and this process has not seen."""
        if any(name not in STREAMS for name in await inbox.pending_entities(conn)):
            try:
                await discovery.discover(self.client, conn)
            except BitrixError as exc:  # its events wait rather than be dropped as unknown
                raise TransientSyncFailure(f"smart processes not discovered: {exc}") from exc
        return await schedule.read_schedules(
            conn, list(STREAMS), self.settings.sync_default_interval_minutes
        )

    async def _apply_entity(
        self,
        conn: AsyncConnection[Any],
        name: str,
        schedules: Mapping[str, schedule.EntitySchedule],
    ) -> int:
        """Claim, fetch and mark one entity's pending events; returns how many were claimed."""
        known = name in schedules and not STREAMS[name].gone
        enabled = known and schedules[name].webhook_enabled
        if enabled:
            await self._pace(conn)
        async with conn.transaction():
            pending = await inbox.claim_pending(conn, name, EVENTS_PER_APPLY)
            ids = [p.id for p in pending]
            if not ids:
                return 0
            if not known:  # an item of a type the portal does not list (e.g. its new invoices)
                await inbox.mark_processed(
                    conn, ids, "ignored: no such smart process on the portal"
                )
                return 0
            if not enabled:
                await inbox.mark_processed(conn, ids, "ignored: events are off for this entity")
                return 0
            stream = stream_named(name)
            record_ids = sorted({p.record_id for p in pending})
            children = riding_order([c for c in children_of(stream) if schedules[c.name].enabled])
            for child in children:
                await pending_children.note(conn, child.name, record_ids)
            room = free_commands(len(record_ids))
            history = history_of(stream)  # a stage move appends to it: its new rows ride too
            along: list[tuple[Stream, list[int]]] = []
            if history is not None and schedules[history.name].enabled and room:
                along, room = [(history, [])], room - 1
            along += await self._claim_along(conn, children, room)
            summary = await self.engine.by_ids(stream, record_ids, along)
            if summary.status != RunStatus.SUCCESS:
                raise TransientSyncFailure(summary.error or "by-ids sync failed")
            for child, parents in along:
                if parents and child.name in summary.children:
                    await pending_children.refreshed(conn, child.name, parents)
            await inbox.mark_processed(conn, ids)
        return len(ids)

    async def _claim_along(
        self, conn: AsyncConnection[Any], children: list[Stream], room: int
    ) -> list[tuple[Stream, list[int]]]:
        """The noted parents of each child that fit in ``room`` commands (oldest first): the
        records' call is made anyway, so what rides in it costs nothing."""
        along: list[tuple[Stream, list[int]]] = []
        for child in children:
            per_command = parents_per_command(child)
            parents = await pending_children.claim(conn, child.name, room * per_command)
            if parents:
                along.append((child, parents))
                room -= math.ceil(len(parents) / per_command)
        return along

    async def _apply_children(
        self,
        conn: AsyncConnection[Any],
        name: str,
        schedules: Mapping[str, schedule.EntitySchedule],
    ) -> bool:
        """One call's worth of a child stream's noted parents; False when none could be taken
        (its own sync holds them: the next apply, or the recovery tick, comes back)."""
        child = STREAMS.get(name)
        if child is None or child.gone or name not in schedules or not schedules[name].enabled:
            await pending_children.drop(conn, name)  # nothing to refresh
            return False
        if name in await self.engine.running_entities(conn):
            return False
        await self._pace(conn)
        async with conn.transaction():
            parents = await pending_children.claim(
                conn, name, MAX_BATCH * parents_per_command(child)
            )
            if not parents:
                return False
            try:
                summary = await self.engine.by_ids(child, parents)
            except SyncAlreadyRunning:
                return False
            if summary.status != RunStatus.SUCCESS:
                raise TransientSyncFailure(summary.error or "children refresh failed")
            await pending_children.refreshed(conn, name, parents)
        return True

    async def _pace(self, conn: AsyncConnection[Any]) -> None:
        """Keep event application to EVENTS_BUDGET_SHARE of the portal's request rate.

        One by-ids call carries up to 2,500 records, so under a stream of events it is better to
        wait and carry more than to spend the whole budget one small call after another: the
        rest stays for syncs and the portal's other clients. The next call may start once the
        last application's calls are paid for at that share; waiting before the claim lets the
        events that arrive meanwhile ride along. The last start comes from the run log, so the
        pace holds across workers.
        """
        last = await runs.last_start(conn, RunMode.BY_IDS)
        if last is None:
            return
        interval = max(1, last.api_calls) / (
            self.settings.bitrix_rate * self.settings.events_budget_share
        )
        if last.seconds_ago < interval:
            await asyncio.sleep(interval - last.seconds_ago)

    @property
    def _application(self) -> bool:
        return isinstance(self.client.auth, AppAuth)

    async def mode(self) -> dict[str, Any]:
        return {
            "auth": self.client.auth.kind,
            "can_bind": self._application,
            "application_token_set": await self.app.application_token() is not None,
            "handler_path": HANDLER_PATH,
            "help": APPLICATION_EVENTS_HELP if self._application else INBOUND_WEBHOOK_EVENTS_HELP,
            "events": list(EVENT_NAMES),
        }

    async def registered(self) -> dict[str, Any]:
        async with self.db.connection() as conn:
            stats = await inbox.inbox_stats(conn)
        bindings: list[dict[str, Any]] = []
        bindings_error = None
        if self._application:
            try:
                bindings = await self._bindings()
            except BitrixError as exc:  # the page still shows the inbox; the reason is shown
                bindings_error = str(exc)
            else:  # bindings made elsewhere (another tool, the portal) count too
                await self._note_offline_bound(any(b["offline"] for b in bindings))
        return await self.mode() | {
            "bindings": bindings,
            "bindings_error": bindings_error,
            "last_event_name": stats.last_event,
            "last_event_at": stats.last_received_at.isoformat() if stats.last_received_at else None,
            "events_pending": stats.pending,
            "inbox_lag_seconds": stats.lag_seconds,
        }

    async def _bindings(self) -> list[dict[str, Any]]:
        envelope = await self.client.call("event.get")
        return [
            {
                "event": b.get("event"),
                "handler": b.get("handler") or None,
                "offline": str(b.get("offline")) == "1",
            }
            for b in envelope.get("result") or []
            if isinstance(b, dict) and b.get("event") in EVENT_NAMES
        ]

    async def register(
        self, handler_base_url: str | None, *, offline: bool = False
    ) -> dict[str, Any]:
        """Bind the CRM events: online to our receiver, or offline for the drain task."""
        params = self._binding_params(handler_base_url, offline)
        if not offline and await self.app.application_token() is None:
            raise EventsUnavailable(
                "no application token to check events with: install the application through "
                "/api/v1/app/install or set BITRIX_APPLICATION_TOKEN, else every delivered event "
                "would be refused (403). Or register with offline=true."
            )
        result = await self._bind_all("event.bind", params)
        if offline and result["events"]:
            await self._note_offline_bound(True)
        return result

    async def unregister(
        self, handler_base_url: str | None, *, offline: bool = False
    ) -> dict[str, Any]:
        result = await self._bind_all(
            "event.unbind", self._binding_params(handler_base_url, offline)
        )
        if offline:
            await self._note_offline_bound(False)
        return result

    async def _note_offline_bound(self, bound: bool) -> None:
        async with self.db.connection() as conn:
            await app_tokens.note_offline_bound(conn, self.client.auth.portal, bound)

    def _binding_params(self, handler_base_url: str | None, offline: bool) -> dict[str, str]:
        handler = None
        if handler_base_url is not None or not offline:
            handler = handler_url(handler_base_url or "", allow_http=self._loopback_portal())
        if not self._application:
            raise EventsUnavailable(INBOUND_WEBHOOK_EVENTS_HELP)
        if offline:
            return {"event_type": "offline"}
        assert handler is not None
        return {"handler": handler}

    async def _bind_all(self, method: str, params: dict[str, str]) -> dict[str, Any]:
        result = await self.client.batch(
            {name: f"{method}?{encode_params({'event': name} | params)}" for name in EVENT_NAMES}
        )
        failed = {
            name: str(error.get("error_description") or error)
            for name, error in result.errors.items()
        }
        return {
            "method": method,
            "mode": params.get("event_type", "online"),
            "handler": params.get("handler"),
            "events": [name for name in EVENT_NAMES if name not in failed],
            "failed": failed,
        }

    async def drain_offline(self) -> int:
        """Move the portal's offline-event queue into the inbox; at least once.

        Records are taken with ``clear=0`` (the portal hides them under a ``process_id``), stored
        in the inbox in one transaction with that process id, and then cleared. After a crash
        between the commit and the clear, the next drain clears the noted process first.
        """
        auth = self.client.auth
        if not isinstance(auth, AppAuth):
            return 0
        portal = auth.portal
        drained = 0
        async with self.db.connection() as conn:
            state = await app_tokens.offline_state(conn, portal)
            if state.uncleared_process_id:
                await self._clear_offline(conn, portal, state.uncleared_process_id)
            while state.bound:  # no call at all until offline events are bound
                envelope = await self.client.call(
                    "event.offline.get", {"clear": 0, "limit": OFFLINE_EVENTS_PER_CALL}
                )
                result = envelope.get("result") or {}
                rows = [r for r in result.get("events") or [] if isinstance(r, dict)]
                if not rows:
                    break
                async with conn.transaction():
                    for row in rows:
                        try:
                            event = offline_event(row)
                        except MalformedEvent as exc:
                            log.warning("offline event %s skipped: %s", row.get("ID"), exc)
                            continue
                        await self._store(conn, event)
                    await app_tokens.note_offline_process(conn, portal, result["process_id"])
                await self._clear_offline(conn, portal, str(result["process_id"]))
                drained += len(rows)
                if len(rows) < OFFLINE_EVENTS_PER_CALL:
                    break
        if drained:
            await self.defer_apply()
        return drained

    async def _clear_offline(
        self, conn: AsyncConnection[Any], portal: str, process_id: str
    ) -> None:
        await self.client.call("event.offline.clear", {"process_id": process_id})
        await app_tokens.note_offline_process(conn, portal, None)

    def _loopback_portal(self) -> bool:
        return self.settings.debug or _is_loopback(urlsplit(self.client.auth.portal).hostname)


def _is_loopback(host: str | None) -> bool:
    if host in ("localhost", None):
        return host == "localhost"
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def handler_url(base: str, *, allow_http: bool) -> str:
    """``base`` + the receiver path, after checking the portal may safely be told to call it."""
    parts = urlsplit(base.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeHandlerUrl("handler_base_url must be an absolute https:// URL")
    if parts.username or parts.password:
        raise UnsafeHandlerUrl("handler_base_url must not carry credentials")
    if parts.query or parts.fragment:
        raise UnsafeHandlerUrl("handler_base_url must not carry a query or a fragment")
    if parts.scheme == "http" and not (allow_http and _is_loopback(parts.hostname)):
        raise UnsafeHandlerUrl(
            "handler_base_url must use https (plain http is accepted only for a loopback "
            "address while developing against a local portal)"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}{HANDLER_PATH}"
