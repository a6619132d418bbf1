"""Bitrix24 CRM events as the portal POSTs them: parsed, verified, reduced to (entity, id).

The body is form-encoded with PHP-style keys: ``event=ONCRMDEALUPDATE``,
``data[FIELDS][ID]=42``, ``ts=...``, ``auth[application_token]=...``, ``auth[member_id]=...``
(api-reference/events/index.md, safe-event-handlers.md).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from b24sync.entities import ENTITIES
from b24sync.errors import ForbiddenEvent, MalformedEvent

_EVENT_NAME = re.compile(
    r"^ONCRM(?P<entity>DEAL|CONTACT|LEAD|COMPANY)(?P<action>ADD|UPDATE|DELETE)$"
)

CRM_EVENT_NAMES = tuple(
    f"ONCRM{entity.upper()}{action}"
    for entity in ENTITIES
    for action in ("ADD", "UPDATE", "DELETE")
)


@dataclass(frozen=True)
class CrmEvent:
    name: str
    entity: str
    action: str
    record_id: int
    member_id: str
    ts: int | None
    application_token: str = field(repr=False)

    def stored_payload(self) -> dict[str, object]:
        """What the inbox keeps: everything but the token."""
        return {
            "event": self.name,
            "id": self.record_id,
            "member_id": self.member_id,
            "ts": self.ts,
        }


def parse_event(form: Mapping[str, str]) -> CrmEvent:
    name = (form.get("event") or "").strip().upper()
    if not name:
        raise MalformedEvent("no 'event' field: this is not a Bitrix24 event")
    match = _EVENT_NAME.match(name)
    if match is None:
        raise MalformedEvent(
            f"event {name[:60]!r} is not one b24sync handles; bind only: {', '.join(CRM_EVENT_NAMES)}"
        )
    raw_id = form.get("data[FIELDS][ID]", "")
    if not raw_id.isdigit() or int(raw_id) <= 0:
        raise MalformedEvent("data[FIELDS][ID] must be a positive integer record id")
    raw_ts = form.get("ts", "")
    return CrmEvent(
        name=name,
        entity=match.group("entity").lower(),
        action=match.group("action").lower(),
        record_id=int(raw_id),
        member_id=form.get("auth[member_id]", "")[:64],
        ts=int(raw_ts) if raw_ts.isdigit() else None,
        application_token=form.get("auth[application_token]", ""),
    )


def offline_event(row: Mapping[str, object]) -> CrmEvent:
    """One record of ``event.offline.get``: pulled with our own auth, so no token to verify."""
    data = row.get("EVENT_DATA")
    fields = data.get("FIELDS") if isinstance(data, Mapping) else None
    record_id = fields.get("ID") if isinstance(fields, Mapping) else None
    return parse_event(
        {"event": str(row.get("EVENT_NAME") or ""), "data[FIELDS][ID]": str(record_id)}
    )


def verify_token(event: CrmEvent, expected: str | None) -> None:
    """Constant-time comparison with BITRIX_APPLICATION_TOKEN; missing or wrong is refused."""
    if not expected:
        raise ForbiddenEvent(
            "BITRIX_APPLICATION_TOKEN is not set, so no event can be verified: set it to the "
            "application token the portal shows for your outbound webhook or local app"
        )
    if not event.application_token:
        raise ForbiddenEvent("auth[application_token] is missing")
    if not hmac.compare_digest(event.application_token.encode(), expected.encode()):
        raise ForbiddenEvent("auth[application_token] does not match")
