"""The one verdict every drill ends with: does PostgreSQL hold exactly what the portal holds?

The portal side is read straight from the in-process emulator (no REST call, no limit spent);
the mirror side is ``bitrix24.crm_<entity>``. Per entity:

- *lost*: a portal record with no live row (missing, or soft-deleted);
- *duplicated*: an id that appears on more than one row;
- *stale*: a live row the portal no longer has, or whose ``_raw`` is not the portal's current
  record (an edit the mirror missed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from b24emu import Emulator
from b24emu.methods import UNLISTED

EXAMPLES_KEPT = 5


@dataclass
class MirrorDiff:
    records: int = 0  # on the portal, all compared entities together
    live_rows: int = 0
    lost: int = 0
    duplicated: int = 0
    stale: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return self.lost == self.duplicated == self.stale == 0

    def note(self, kind: str, entity: str, ids: Iterable[int]) -> None:
        shown = [f"{entity} {i}" for i in sorted(ids)[:EXAMPLES_KEPT]]
        if shown:
            self.examples.setdefault(kind, []).extend(shown)


def portal_records(emu: Emulator, entity: str) -> dict[int, Any]:
    """The portal's records as JSON values, the same shape as a row's ``_raw``: as
    ``crm.*.list`` returns them, without the link arrays it leaves out."""
    records = dict(emu.portal.store(entity).records)  # the emulator's thread may still write
    unlisted = UNLISTED.get(entity, frozenset())
    return {
        rid: json.loads(json.dumps({k: v for k, v in record.items() if k not in unlisted}))
        for rid, record in records.items()
    }


def _mirror_rows(conn: psycopg.Connection[Any], entity: str) -> tuple[dict[int, Any], int] | None:
    """Live rows (id -> _raw) and the number of duplicated ids; None when there is no table."""
    table = sql.Identifier("bitrix24", f"crm_{entity}")
    exists = conn.execute("SELECT to_regclass(%s)", (f"bitrix24.crm_{entity}",)).fetchone()
    if exists is None or exists[0] is None:
        return None
    live = dict(
        conn.execute(
            sql.SQL("SELECT id, _raw FROM {} WHERE _deleted_at IS NULL").format(table)
        ).fetchall()
    )
    duplicated = conn.execute(
        sql.SQL(
            "SELECT count(*) FROM (SELECT id FROM {} GROUP BY id HAVING count(*) > 1) d"
        ).format(table)
    ).fetchone()
    return live, int(duplicated[0]) if duplicated else 0


def compare_mirror(database_url: str, emu: Emulator, entities: Iterable[str]) -> MirrorDiff:
    diff = MirrorDiff()
    with psycopg.connect(database_url) as conn:
        for entity in entities:
            portal = portal_records(emu, entity)
            found = _mirror_rows(conn, entity)
            live, duplicated = found if found is not None else ({}, 0)
            lost = [rid for rid in portal if rid not in live]
            gone = [rid for rid in live if rid not in portal]
            outdated = [rid for rid, raw in live.items() if rid in portal and raw != portal[rid]]
            diff.records += len(portal)
            diff.live_rows += len(live)
            diff.lost += len(lost)
            diff.duplicated += duplicated
            diff.stale += len(gone) + len(outdated)
            diff.note("lost", entity, lost)
            diff.note("not on the portal", entity, gone)
            diff.note("outdated", entity, outdated)
    return diff


def verdict_line(drill: str, diff: MirrorDiff, figures: dict[str, object]) -> str:
    """``<drill>: PostgreSQL equals the portal: 0 lost, 0 duplicated, 0 stale (...)``."""
    verb = "equals" if diff.equal else "DIFFERS FROM"
    shown = "; ".join(f"{name.replace('_', ' ')} {value}" for name, value in figures.items())
    return (
        f"{drill}: PostgreSQL {verb} the portal: {diff.lost} lost, {diff.duplicated} duplicated, "
        f"{diff.stale} stale ({diff.records} records, {diff.live_rows} live rows; {shown})"
    )
