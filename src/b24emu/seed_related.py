"""Demo data that hangs off the seeded records: each deal's, lead's and smart-process item's way
through its stages (stage history ending at the stage the record is in), activities bound to
deals, contacts, companies and leads, and product rows of some deals, leads and items (of the
smart processes that link products).

One generator of its own, seeded from the portal's seed and walking the new records in ID
order: the same seed gives the same portal, and the records themselves stay what they were.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from b24emu import history, references, smart
from b24emu.fields import MULTIFIELDS
from b24emu.portal import Portal

# (TYPE_ID, PROVIDER_ID, PROVIDER_TYPE_ID, subject) as crm.activity.list returns them
ACTIVITY_KINDS = [
    ("1", "CRM_MEETING", "MEETING", "Встреча с клиентом"),
    ("2", "VOXIMPLANT_CALL", "CALL", "Звонок клиенту"),
    ("2", "VOXIMPLANT_CALL", "CALL", "Входящий звонок"),
    ("3", "CRM_TASKS_TASK", "TASK", "Подготовить коммерческое предложение"),
    ("4", "CRM_EMAIL", "EMAIL", "Письмо клиенту"),
]
# (name, price) of the demo catalogue; productId is the position + 1
PRODUCTS = [
    ("Ноутбук", 85000.0),
    ('Монитор 27"', 23000.0),
    ("Лицензия 1С:Предприятие", 12000.0),
    ("Внедрение CRM", 150000.0),
    ("Техподдержка, месяц", 9000.0),
    ("Обучение сотрудников", 30000.0),
]
# owner entity -> (OWNER_TYPE_ID, how many activities a record gets, drawn evenly)
ACTIVITY_OWNERS: dict[str, tuple[int, tuple[int, ...]]] = {
    "lead": (1, (0, 1)),
    "deal": (2, (0, 1, 1, 2)),
    "contact": (3, (0, 0, 1)),
    "company": (4, (0, 0, 1)),
}
PRODUCT_SHARE = {"D": ("deal", 0.6), "L": ("lead", 0.2)}
SMART_PRODUCT_SHARE = 0.5  # of the items of a smart process that links products


def seed_related(portal: Portal, new_ids: Mapping[str, Sequence[int]], seed: int) -> None:
    rng = random.Random(seed + 2_000_003)
    for type_id, spec in history.STAGED.items():
        for record_id in new_ids.get(spec.entity, ()):
            _stage_path(portal, rng, type_id, spec, portal.store(spec.entity).records[record_id])
    for entity, (owner_type_id, choices) in ACTIVITY_OWNERS.items():
        for record_id in new_ids.get(entity, ()):
            record = portal.store(entity).records[record_id]
            for _ in range(rng.choice(choices)):
                _activity(portal, rng, owner_type_id, record)
    for owner_type, (entity, share) in PRODUCT_SHARE.items():
        for record_id in new_ids.get(entity, ()):
            if rng.random() < share:
                portal.product_rows.replace(owner_type, record_id, _basket(rng))
    # a generator of their own: the deals' and leads' related data stay what they were
    _seed_smart_related(portal, new_ids, random.Random(seed + 3_000_017))


def _seed_smart_related(
    portal: Portal, new_ids: Mapping[str, Sequence[int]], rng: random.Random
) -> None:
    """Each new item of a smart process: its way through the stages when the type has stages,
    and product rows for a share of them when it links products."""
    for kind in portal.types.values():
        entity = smart.store_name(kind.entity_type_id)
        staged = portal.staged(entity)
        owner = portal.product_owner(smart.owner_type(kind.entity_type_id))
        for record_id in new_ids.get(entity, ()):
            if staged is not None:
                record = portal.store(entity).records[record_id]
                _stage_path(portal, rng, *staged, record)
            if owner is not None and rng.random() < SMART_PRODUCT_SHARE:
                portal.product_rows.replace(owner[0], record_id, _basket(rng))


def _stage_values(
    portal: Portal, type_id: int, spec: history.StageFields, record: dict[str, Any]
) -> list[tuple[str, str | None]]:
    """(stage, semantics) of the stages of the record's pipeline, in their order."""
    if spec.category is None:
        return references.status_values("STATUS")
    category = str(record.get(spec.category) or "0")
    if type_id in history.STAGED:
        return references.status_values(
            "DEAL_STAGE" if category == "0" else f"DEAL_STAGE_{category}"
        )
    return [(s["STATUS_ID"], s["SEMANTICS"]) for s in portal.stages_of(type_id, int(category))]


def _path(
    values: list[tuple[str, str | None]],
    spec: history.StageFields,
    record: dict[str, Any],
    rng: random.Random,
) -> list[tuple[str, str | None]]:
    """(stage, semantics) of the stages a record went through to reach its current one."""
    working = [value for value in values if value[1] is None]
    current = str(record.get(spec.stage))
    stages = [stage for stage, _ in working]
    if current in stages:
        return working[: stages.index(current) + 1]
    reached = len(working) if record.get(spec.semantic) == "S" else rng.randint(1, len(working))
    return [*working[:reached], (current, record.get(spec.semantic))]


def _stage_path(
    portal: Portal,
    rng: random.Random,
    type_id: int,
    spec: history.StageFields,
    record: dict[str, Any],
) -> None:
    audit = portal.store(spec.entity).audit
    created = datetime.fromisoformat(record[audit.created_at])
    modified = datetime.fromisoformat(record[audit.modified_at])
    view = portal.stage_view(spec.entity, record)
    stages = _path(_stage_values(portal, type_id, spec, record), spec, view, rng)
    span = max(1, int((modified - created).total_seconds()))
    later = sorted(created + timedelta(seconds=rng.randint(1, span)) for _ in stages[1:])
    moments = [created, *later]
    store = portal.history_store(type_id)
    if store is None:
        raise ValueError(f"entity type {type_id} has no stage history")
    for n, ((stage, semantics), moment) in enumerate(zip(stages, moments, strict=True)):
        step = view | {spec.stage: stage, spec.semantic: semantics or "P"}
        kind = history.CREATED if n == 0 else history.FINAL if semantics else history.INTERMEDIATE
        row = history.history_row(spec, step, kind, moment.isoformat())
        row["ID"] = store.insert(row)
    if spec.category is not None:
        record["MOVED_TIME"] = moments[-1].isoformat()


def _activity(
    portal: Portal, rng: random.Random, owner_type_id: int, owner: dict[str, Any]
) -> None:
    store = portal.store("activity")
    type_id, provider, provider_type, subject = rng.choice(ACTIVITY_KINDS)
    begin = datetime.fromisoformat(owner["DATE_CREATE"])
    start = begin + timedelta(minutes=rng.randint(30, 60 * 24 * 20))
    created = start - timedelta(minutes=rng.randint(5, 60 * 24))
    updated = created + timedelta(minutes=rng.randint(0, 60 * 24 * 30))
    completed = rng.random() < 0.7
    phones = owner.get("PHONE") or []
    contact = owner.get("CONTACT_ID") if owner_type_id == 2 else None
    bindings = [{"OWNER_ID": owner["ID"], "OWNER_TYPE_ID": str(owner_type_id)}]
    if contact:
        bindings.append({"OWNER_ID": str(contact), "OWNER_TYPE_ID": "3"})
    record: dict[str, Any] = {
        name: ([] if d["isMultiple"] else "N" if d["type"] == "char" else None)
        for name, d in store.fields.items()
        if name not in MULTIFIELDS
    }
    record.update(
        {
            "OWNER_ID": owner["ID"],
            "OWNER_TYPE_ID": str(owner_type_id),
            "TYPE_ID": type_id,
            "PROVIDER_ID": provider,
            "PROVIDER_TYPE_ID": provider_type,
            "ASSOCIATED_ENTITY_ID": "0",
            "SUBJECT": subject,
            "START_TIME": start.isoformat(),
            "END_TIME": (start + timedelta(minutes=30)).isoformat(),
            "DEADLINE": (start + timedelta(minutes=30) if type_id == "3" else start).isoformat(),
            "COMPLETED": "Y" if completed else "N",
            "STATUS": "2" if completed else "1",
            "RESPONSIBLE_ID": owner.get("ASSIGNED_BY_ID") or "1",
            "PRIORITY": str(rng.choice((1, 2, 2, 3))),
            "NOTIFY_TYPE": "1",
            "NOTIFY_VALUE": "15",
            "DESCRIPTION": "",
            "DESCRIPTION_TYPE": "1",
            "DIRECTION": rng.choice(("1", "2")) if type_id in ("2", "4") else "0",
            "LOCATION": "",
            "CREATED": created.isoformat(),
            "AUTHOR_ID": owner.get("ASSIGNED_BY_ID") or "1",
            "LAST_UPDATED": updated.isoformat(),
            "EDITOR_ID": owner.get("ASSIGNED_BY_ID") or "1",
            "SETTINGS": [],
            "PROVIDER_PARAMS": [],
            "RESULT_MARK": "0",
            "RESULT_STATUS": "0",
            "RESULT_STREAM": "0",
            "AUTOCOMPLETE_RULE": "0",
            "BINDINGS": bindings,
            "COMMUNICATIONS": [
                {
                    "TYPE": "PHONE",
                    "VALUE": phones[0]["VALUE"],
                    "ENTITY_ID": owner["ID"],
                    "ENTITY_TYPE_ID": str(owner_type_id),
                }
            ]
            if phones
            else [],
        }
    )
    store.insert(record)


def _basket(rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for n in rng.sample(range(len(PRODUCTS)), rng.choice((1, 1, 2, 3))):
        name, price = PRODUCTS[n]
        rows.append(
            {
                "productId": n + 1,
                "productName": name,
                "price": price,
                "quantity": rng.randint(1, 5),
                "discountRate": rng.choice((0, 0, 5, 10)),
            }
        )
    return rows
