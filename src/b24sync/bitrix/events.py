"""Bitrix24 CRM events as the portal POSTs them: parsed, verified, reduced to (entity, id).

The body is form-encoded with PHP-style keys: ``event=ONCRMDEALUPDATE``,
``data[FIELDS][ID]=42`` (a smart process's item also ``data[FIELDS][ENTITY_TYPE_ID]``), ``ts=...``, ``auth[application_token]=...``, ``auth[member_id]=...``
(api-reference/events/index.md, safe-event-handlers.md).

The receiver is public, so everything here is bounded and strict: the token is checked before
anything else is read, and an ID is at most 19 ASCII digits below 2**63 (``str.isdigit`` also
accepts ``²`` and ``①``, which ``int`` refuses).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from b24sync.errors import ForbiddenEvent, MalformedEvent
from b24sync.streams import EVENT_NAMES, event_target

_RECORD_ID = re.compile(r"[0-9]{1,19}")
_MEMBER_ID = re.compile(r"[0-9A-Za-z_.-]{1,64}")
BIGINT_LIMIT = 2**63


@dataclass(frozen=True)
class CrmEvent:
    name: str
    entity: str
    action: str
    record_id: int
    member_id: str
    ts: int | None

    def stored_payload(self) -> dict[str, object]:
        """What the inbox keeps: everything but the token."""
        return {
            "event": self.name,
            "id": self.record_id,
            "member_id": self.member_id,
            "ts": self.ts,
        }


def parse_event(form: Mapping[str, str]) -> CrmEvent:
    """The event a (verified) form carries; MalformedEvent for anything else."""
    name = form.get("event", "").strip().upper()
    if not name:
        raise MalformedEvent("no 'event' field: this is not a Bitrix24 event")
    if name not in EVENT_NAMES:
        raise MalformedEvent(
            f"event {name[:60]!r} is not one b24sync handles; bind only: {', '.join(EVENT_NAMES)}"
        )
    touched = event_target(name, _bigint(form.get("data[FIELDS][ENTITY_TYPE_ID]", "")))
    if touched is None:
        raise MalformedEvent(f"{name} without data[FIELDS][ENTITY_TYPE_ID]: whose item is it?")
    entity, action = touched
    record_id = _bigint(form.get("data[FIELDS][ID]", ""))
    if record_id is None or record_id <= 0:
        raise MalformedEvent("data[FIELDS][ID] must be a positive integer record id")
    member_id = form.get("auth[member_id]", "")
    return CrmEvent(
        name=name,
        entity=entity,
        action=action.lower(),
        record_id=record_id,
        member_id=member_id if _MEMBER_ID.fullmatch(member_id) else "",
        ts=_bigint(form.get("ts", "")),
    )


def _bigint(raw: str) -> int | None:
    """``raw`` as a PostgreSQL bigint, or None when it is not one."""
    if _RECORD_ID.fullmatch(raw) is None:
        return None
    value = int(raw)
    return value if value < BIGINT_LIMIT else None


def offline_event(row: Mapping[str, object]) -> CrmEvent:
    """One record of ``event.offline.get``: pulled with our own auth, so no token to verify."""
    data = row.get("EVENT_DATA")
    fields = data.get("FIELDS") if isinstance(data, Mapping) else None
    if not isinstance(fields, Mapping):
        fields = {}
    return parse_event(
        {
            "event": str(row.get("EVENT_NAME") or ""),
            "data[FIELDS][ID]": str(fields.get("ID")),
            "data[FIELDS][ENTITY_TYPE_ID]": str(fields.get("ENTITY_TYPE_ID", "")),
        }
    )


def verify_token(form: Mapping[str, str], expected: str | None) -> None:
    """Constant-time comparison with the application token; missing or wrong is refused.

    Called on the raw form before :func:`parse_event`: a stranger learns nothing about parsing.
    """
    if not expected:
        raise ForbiddenEvent(
            "BITRIX_APPLICATION_TOKEN is not set, so no event can be verified: set it to the "
            "application token the portal shows for your outbound webhook or local app"
        )
    given = form.get("auth[application_token]", "")
    if not given:
        raise ForbiddenEvent("auth[application_token] is missing")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ForbiddenEvent("auth[application_token] does not match")
