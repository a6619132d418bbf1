"""Event handlers: event.bind bindings, outbound webhooks configured "in the UI", offline queue.

Docs: api-reference/events/*.md, local-integrations/local-webhooks.md. Delivery is a
form-encoded POST made in the background, with a short timeout and no retries: the docs say a
failed delivery is not repeated. The portal delivers through a queue server (seconds of delay
are normal: shared/BITRIX24_API.md, Events); the docs do not say how many POSTs it makes at a
time, so this emulator assumes a few (DELIVERIES_IN_FLIGHT), and events of one moment may
arrive in any order: a handler must not rely on it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from b24emu.fields import ENTITIES
from b24emu.smart import STORE_PREFIX

log = logging.getLogger(__name__)

# Items of every smart process share three events; ENTITY_TYPE_ID in the payload says whose
# (api-reference/crm/universal/events/index.md).
CRM_EVENTS = tuple(
    f"ONCRM{entity.upper()}{action}"
    for entity in (*ENTITIES, "DYNAMICITEM")
    for action in ("ADD", "UPDATE", "DELETE")
)

DELIVERY_TIMEOUT_SECONDS = 10.0
DELIVERIES_IN_FLIGHT = 4


@dataclass
class Binding:
    event: str
    handler: str
    application_token: str
    auth_type: int = 0
    offline: bool = False
    connector: str = ""


@dataclass
class OfflineEvent:
    id: int
    timestamp: str
    event_name: str
    data: dict[str, Any]
    message_id: str
    process_id: str | None = None
    error: bool = False


@dataclass
class EventHub:
    domain: str
    member_id: str
    bindings: list[Binding] = field(default_factory=list)
    offline: list[OfflineEvent] = field(default_factory=list)
    delivered: list[dict[str, Any]] = field(default_factory=list)
    failed_deliveries: int = 0
    transport: httpx.AsyncBaseTransport | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _handler_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _queue: asyncio.Queue[tuple[str, str]] | None = None
    _senders: list[asyncio.Task[None]] = field(default_factory=list)

    def bind(self, binding: Binding) -> None:
        if not any(
            b.event == binding.event
            and b.handler == binding.handler
            and b.offline == binding.offline
            for b in self.bindings
        ):
            self.bindings.append(binding)

    def bind_outbound(
        self, handler: str, application_token: str, events: tuple[str, ...] = CRM_EVENTS
    ) -> None:
        """An outbound webhook as a portal admin configures it in the UI."""
        for event in events:
            self.bind(Binding(event, handler, application_token))

    def unbind(self, event: str, handler: str | None, offline: bool) -> int:
        before = len(self.bindings)
        self.bindings = [
            b
            for b in self.bindings
            if not (
                b.event == event
                and (handler is None or b.handler == handler)
                and b.offline == offline
            )
        ]
        return before - len(self.bindings)

    def on_change(self, entity: str, action: str, record_id: int, now_iso: str) -> None:
        """Portal listener: fan the change out to online handlers and the offline queue."""
        name = f"ONCRM{entity.upper()}{action}"
        data: dict[str, Any] = {"FIELDS": {"ID": record_id}}
        if entity.startswith(STORE_PREFIX):
            name = f"ONCRMDYNAMICITEM{action}"
            data["FIELDS"]["ENTITY_TYPE_ID"] = int(entity.removeprefix(STORE_PREFIX))
        for binding in self.bindings:
            if binding.event != name:
                continue
            if binding.offline:
                self._log_offline(name, data, now_iso)
            else:
                self._enqueue(binding, name, data)

    def _log_offline(self, name: str, data: dict[str, Any], now_iso: str) -> None:
        """One entry per object and event: a deal changed 1000 times is one entry, stamped with
        the last change (offline-events.md). Entries already handed out stay as they are."""
        for event in self.offline:
            if event.event_name == name and event.data == data and event.process_id is None:
                event.timestamp = now_iso
                return
        event_id = next(self._ids)
        self.offline.append(OfflineEvent(event_id, now_iso, name, data, f"{event_id:032x}"))

    def payload(self, binding: Binding, name: str, data: dict[str, Any]) -> str:
        pairs: list[tuple[str, Any]] = [
            ("event", name),
            ("event_handler_id", next(self._handler_ids)),
        ]
        pairs += [(f"data[FIELDS][{k}]", v) for k, v in data["FIELDS"].items()]
        pairs += [
            ("ts", int(time.time())),
            ("auth[domain]", self.domain),
            ("auth[client_endpoint]", f"https://{self.domain}/rest/"),
            ("auth[server_endpoint]", "https://oauth.bitrix.info/rest/"),
            ("auth[member_id]", self.member_id),
            ("auth[application_token]", binding.application_token),
        ]
        return urlencode(pairs)

    def send_install(self, handler: str, auth: dict[str, Any]) -> None:
        """ONAPPINSTALL to the application's installation path, with its tokens in ``auth``
        (api-reference/common/events/on-app-install.md; serverside-local-app-with-no-ui.md)."""
        pairs: list[tuple[str, Any]] = [
            ("event", "ONAPPINSTALL"),
            ("data[VERSION]", 1),
            ("data[ACTIVE]", "Y"),
            ("data[INSTALLED]", "Y"),
            ("data[LANGUAGE_ID]", "ru"),
            ("ts", int(time.time())),
        ]
        pairs += [(f"auth[{key}]", value) for key, value in auth.items()]
        self._post_later(handler, urlencode(pairs))

    def _enqueue(self, binding: Binding, name: str, data: dict[str, Any]) -> None:
        self._post_later(binding.handler, self.payload(binding, name, data))

    def _post_later(self, handler: str, body: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous seed): nothing can be delivered, as on a portal with no queue
        if self._queue is None:
            self._queue = asyncio.Queue()
        queue = self._queue
        alive = [sender for sender in self._senders if not sender.done()]
        self._senders = alive + [
            loop.create_task(self._deliver_forever(queue))
            for _ in range(DELIVERIES_IN_FLIGHT - len(alive))
        ]
        self._queue.put_nowait((handler, body))

    async def _deliver_forever(self, queue: asyncio.Queue[tuple[str, str]]) -> None:
        async with httpx.AsyncClient(
            timeout=DELIVERY_TIMEOUT_SECONDS, transport=self.transport
        ) as client:
            while True:
                handler, body = await queue.get()
                try:
                    response = await client.post(
                        handler,
                        content=body,
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                    )
                    self.delivered.append({"handler": handler, "status": response.status_code})
                except httpx.HTTPError as exc:  # never retried, as on the real portal
                    self.failed_deliveries += 1
                    log.info("event delivery failed: %s", type(exc).__name__)
                finally:
                    queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued delivery has been attempted (for tests and the control API)."""
        if self._queue is not None:
            await self._queue.join()

    # --- offline events (api-reference/events/event-offline-get.md) ------------------------

    def offline_get(
        self, *, limit: int, clear: bool, process_id: str | None, errors: bool
    ) -> dict[str, Any]:
        pending = [
            e
            for e in self.offline
            if e.error == errors and (e.process_id is None or e.process_id == process_id)
        ]
        chosen = pending[:limit]
        new_process = process_id or f"{next(self._ids):032x}"
        if clear:
            taken = {e.id for e in chosen}
            self.offline = [e for e in self.offline if e.id not in taken]
        else:
            for event in chosen:
                event.process_id = new_process
        return {
            "process_id": None if clear else new_process,
            "events": [
                {
                    "ID": str(e.id),
                    "TIMESTAMP_X": e.timestamp,
                    "EVENT_NAME": e.event_name,
                    "EVENT_DATA": e.data,
                    "EVENT_ADDITIONAL": {"user_id": "1"},
                    "MESSAGE_ID": e.message_id,
                }
                for e in chosen
            ],
        }

    def offline_clear(self, process_id: str, ids: list[int] | None) -> None:
        self.offline = [
            e
            for e in self.offline
            if not (e.process_id == process_id and (ids is None or e.id in ids))
        ]

    def offline_error(self, process_id: str, message_ids: list[str]) -> None:
        for event in self.offline:
            if event.process_id == process_id and event.message_id in message_ids:
                event.error = True
                event.process_id = None

    def offline_list(self) -> list[dict[str, Any]]:
        return [
            {
                "ID": str(e.id),
                "TIMESTAMP_X": e.timestamp,
                "EVENT_NAME": e.event_name,
                "EVENT_DATA": e.data,
                "MESSAGE_ID": e.message_id,
                "PROCESS_ID": e.process_id or "",
                "ERROR": "1" if e.error else "0",
            }
            for e in self.offline
        ]
