"""Deterministic demo data: Russian names, companies, phones, stages, sums, user-field values.

Faker builds small pools once; records combine pool entries with a seeded RNG, so 100k deals
take seconds and the same seed always gives the same portal.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from faker import Faker

from b24emu import references, smart
from b24emu.fields import MULTIFIELDS
from b24emu.portal import PORTAL_TZ, Portal
from b24emu.references import OWNER_IDS
from b24emu.seed_related import seed_related

DEAL_STAGES = [
    "NEW",
    "PREPARATION",
    "PREPAYMENT_INVOICE",
    "EXECUTING",
    "FINAL_INVOICE",
    "WON",
    "LOSE",
]
LEAD_STATUSES = ["NEW", "IN_PROCESS", "PROCESSED", "CONVERTED", "JUNK"]
SOURCES = ["CALL", "EMAIL", "WEB", "ADVERTISING", "PARTNER", "RECOMMENDATION", "OTHER"]
REGIONS = ["Москва", "Санкт-Петербург", "Новосибирск", "Екатеринбург", "Казань"]

# name, type, label, multiple: the user fields a demo portal has, one of each documented kind.
USER_FIELDS: dict[str, list[tuple[str, str, str, bool]]] = {
    "deal": [
        ("UF_CRM_1700000001", "string", "Канал продаж", False),
        ("UF_CRM_1700000002", "integer", "Количество мест", False),
        ("UF_CRM_1700000003", "double", "Скидка, %", False),
        ("UF_CRM_1700000004", "boolean", "Повторная сделка", False),
        ("UF_CRM_1700000005", "date", "Дата договора", False),
        ("UF_CRM_1700000006", "datetime", "Время звонка", False),
        ("UF_CRM_1700000007", "enumeration", "Регион", False),
        ("UF_CRM_1700000008", "money", "Бюджет клиента", False),
        ("UF_CRM_1700000009", "string", "Теги", True),
        ("UF_CRM_1700000010", "crm", "Связанный элемент", False),
        ("UF_CRM_1700000011", "file", "Договор", False),
    ],
    "contact": [
        ("UF_CRM_1700000101", "string", "Любимый канал связи", False),
        ("UF_CRM_1700000102", "date", "Дата первой покупки", False),
    ],
    "company": [
        ("UF_CRM_1700000201", "string", "ИНН", False),
        ("UF_CRM_1700000202", "enumeration", "Сегмент", False),
    ],
    "lead": [
        ("UF_CRM_1700000301", "integer", "Оценка лида", False),
        ("UF_CRM_1700000302", "employee", "Куратор", True),
    ],
}
ENUM_ITEMS = {"UF_CRM_1700000007": REGIONS, "UF_CRM_1700000202": ["Малый", "Средний", "Крупный"]}

Stages = list[tuple[str, str, str | None]]


@dataclass(frozen=True)
class DemoSmartProcess:
    """A smart process of the demo portal: its pipelines (name, stages) and user fields
    (code, type, label, enumeration items); user fields are named UF_CRM_<type id>_<code>."""

    entity_type_id: int
    title: str
    flags: dict[str, str]
    pipelines: list[tuple[str, Stages]]
    user_fields: list[tuple[str, str, str, list[str]]]


SMART_PROCESSES = [
    DemoSmartProcess(
        1032,
        "Договоры",
        {
            "isCategoriesEnabled": "Y",
            "isStagesEnabled": "Y",
            "isClientEnabled": "Y",
            "isLinkWithProductsEnabled": "Y",
        },
        [
            (
                "Договоры продажи",
                [
                    ("NEW", "Черновик", None),
                    ("PREPARATION", "Согласование", None),
                    ("CLIENT", "Подписание", None),
                    ("SUCCESS", "Подписан", "S"),
                    ("FAIL", "Отклонён", "F"),
                ],
            ),
            (
                "Договоры поставки",
                [
                    ("NEW", "Черновик", None),
                    ("PREPARATION", "Проверка юристом", None),
                    ("SUCCESS", "Подписан", "S"),
                    ("FAIL", "Отклонён", "F"),
                ],
            ),
        ],
        [
            ("1700000501", "string", "Номер договора", []),
            ("1700000502", "enumeration", "Вид договора", ["Разовый", "Рамочный", "Абонентский"]),
            ("1700000503", "date", "Действует до", []),
        ],
    ),
    DemoSmartProcess(
        1036,
        "Заявки на доставку",
        {"isStagesEnabled": "Y", "isClientEnabled": "Y"},
        [
            (
                "Общая",
                [
                    ("NEW", "Новая", None),
                    ("PREPARATION", "Собирается", None),
                    ("CLIENT", "В пути", None),
                    ("SUCCESS", "Доставлена", "S"),
                    ("FAIL", "Отменена", "F"),
                ],
            )
        ],
        [
            ("1700000601", "string", "Адрес доставки", []),
            ("1700000602", "double", "Вес, кг", []),
        ],
    ),
]


class DemoData:
    def __init__(self, seed: int) -> None:
        fake = Faker("ru_RU")
        fake.seed_instance(seed)
        self.rng = random.Random(seed)
        # Owners, pipelines and extra links draw from their own generator, so the records the
        # main one makes stay what they were before these were added.
        self.spread = random.Random(seed + 1_000_003)
        self.male = [
            (fake.last_name_male(), fake.first_name_male(), fake.middle_name_male())
            for _ in range(300)
        ]
        self.female = [
            (fake.last_name_female(), fake.first_name_female(), fake.middle_name_female())
            for _ in range(300)
        ]
        self.companies = [fake.company() for _ in range(400)]
        self.phones = [f"+7{self.rng.randint(9000000000, 9999999999)}" for _ in range(2000)]
        self.words = [fake.word() for _ in range(200)]
        self.cities = [fake.city_name() for _ in range(60)]
        self.base = datetime(2024, 1, 1, 9, 0, tzinfo=PORTAL_TZ)

    def person(self) -> tuple[str, str, str]:
        return self.rng.choice(self.male if self.rng.random() < 0.5 else self.female)

    def moment(self, spread_days: int = 600) -> datetime:
        return self.base + timedelta(seconds=self.rng.randint(0, spread_days * 86400))


def ensure_user_fields(portal: Portal) -> None:
    for entity, specs in USER_FIELDS.items():
        for name, utype, label, multiple in specs:
            if name not in portal.store(entity).fields:
                portal.add_user_field(
                    entity, name, utype, label, multiple=multiple, items=ENUM_ITEMS.get(name)
                )


def _enum_ids(portal: Portal, entity: str, name: str) -> list[str]:
    return [i["ID"] for i in portal.store(entity).fields[name].get("items", [])]


def seed_portal(portal: Portal, counts: dict[str, int], seed: int = 1) -> dict[str, int]:
    """Add ``counts`` records per entity (companies first, so that links point somewhere);
    ``item``: that many items of each demo smart process (created when missing); then what
    hangs off them: stage history, activities, product rows."""
    ensure_user_fields(portal)
    data = DemoData(seed)
    created: dict[str, int] = {}
    new_ids: dict[str, list[int]] = {}
    for entity in ("company", "contact", "lead", "deal"):
        number = int(counts.get(entity, 0))
        store = portal.store(entity)
        template = {
            name: ([] if d["isMultiple"] and name not in MULTIFIELDS else None)
            for name, d in store.fields.items()
            if name not in MULTIFIELDS
        }
        for name, d in store.fields.items():
            if d["type"] == "char":
                template[name] = "N"
        maker = _MAKERS[entity]
        for _ in range(number):
            record = dict(template)
            created_at = data.moment()
            modified_at = created_at + timedelta(seconds=data.rng.randint(0, 30 * 86400))
            record.update(
                {
                    "DATE_CREATE": created_at.isoformat(),
                    "DATE_MODIFY": modified_at.isoformat(),
                    "CREATED_BY_ID": data.spread.choice(OWNER_IDS),
                    "MODIFY_BY_ID": "1",
                    "ASSIGNED_BY_ID": data.spread.choice(OWNER_IDS),
                    "OPENED": "Y",
                }
            )
            if "SOURCE_ID" in store.fields:
                record["SOURCE_ID"] = data.rng.choice(SOURCES)
            maker(portal, data, record)
            new_ids.setdefault(entity, []).append(store.insert(record))
        created[entity] = number
    if int(counts.get("item", 0)):
        created["item"] = _seed_items(portal, int(counts["item"]), seed, new_ids)
    seed_related(portal, new_ids, seed)
    return created


def ensure_smart_processes(portal: Portal) -> None:
    for demo in SMART_PROCESSES:
        if demo.entity_type_id in portal.types:
            continue
        kind = portal.add_type(
            demo.title, demo.flags, entity_type_id=demo.entity_type_id, pipelines=demo.pipelines
        )
        for code, utype, label, items in demo.user_fields:
            portal.add_user_field(
                smart.store_name(kind.entity_type_id),
                f"UF_CRM_{kind.id}_{code}",
                utype,
                label,
                items=items,
            )


def _seed_items(portal: Portal, number: int, seed: int, new_ids: dict[str, list[int]]) -> int:
    """``number`` items of each demo smart process, from a generator of their own (the other
    records stay as they were before smart processes were seeded); their IDs go to
    ``new_ids`` under each process's store."""
    ensure_smart_processes(portal)
    rng = random.Random(seed + 2_000_003)
    base = datetime(2024, 1, 1, 9, 0, tzinfo=PORTAL_TZ)
    companies, contacts = portal.store("company").ids, portal.store("contact").ids
    for demo in SMART_PROCESSES:
        store = portal.store(smart.store_name(demo.entity_type_id))
        pipelines = [
            int(c["id"]) for c in portal.categories if c["entityTypeId"] == demo.entity_type_id
        ]
        for n in range(number):
            created_at = base + timedelta(seconds=rng.randint(0, 600 * 86400))
            updated_at = created_at + timedelta(seconds=rng.randint(0, 30 * 86400))
            category = rng.choice(pipelines)
            stage = rng.choice(portal.stages_of(demo.entity_type_id, category))["STATUS_ID"]
            contact = str(rng.choice(contacts)) if contacts else None
            record: dict[str, Any] = {name: None for name in store.fields} | {
                "TITLE": f"{demo.title} №{n + 1}",
                "CREATED_TIME": created_at.isoformat(),
                "UPDATED_TIME": updated_at.isoformat(),
                "CREATED_BY": rng.choice(OWNER_IDS),
                "UPDATED_BY": "1",
                "ASSIGNED_BY_ID": rng.choice(OWNER_IDS),
                "OPENED": "Y",
                "CATEGORY_ID": str(category),
                "STAGE_ID": stage,
                "MOVED_TIME": updated_at.isoformat(),
                "MOVED_BY": rng.choice(OWNER_IDS),
                "COMPANY_ID": str(rng.choice(companies)) if companies else None,
                "CONTACT_ID": contact,
                "CONTACT_IDS": [contact] if contact else [],
                "OBSERVERS": [],
                "OPPORTUNITY": f"{rng.randint(1, 400) * 2500:.2f}",
                "IS_MANUAL_OPPORTUNITY": "N",
                "CURRENCY_ID": "RUB",
            }
            for name, definition in store.fields.items():
                if name.startswith("UF_"):
                    record[name] = _user_field_value(rng, definition, created_at, n)
            new_ids.setdefault(store.name, []).append(store.insert(record))
    return number


def _user_field_value(
    rng: random.Random, definition: dict[str, Any], moment: datetime, n: int
) -> str | None:
    kind = definition["type"]
    if kind == "enumeration":
        return str(rng.choice(definition["items"])["ID"])
    if kind == "date":
        later = moment + timedelta(days=rng.randint(30, 720))
        return later.replace(hour=0, minute=0, second=0).isoformat()
    if kind == "double":
        return f"{rng.randint(1, 5000) / 10:.2f}"
    if definition["listLabel"] == "Адрес доставки":
        return f"{rng.choice(REGIONS)}, ул. Ленина, {rng.randint(1, 200)}"
    return f"Д-{moment:%Y}-{n + 1:05d}"


def _multifields(portal: Portal, data: DemoData, record: dict[str, Any], last: str) -> None:
    record["PHONE"] = [
        {
            "ID": str(next(portal.multifield_ids)),
            "VALUE_TYPE": "WORK",
            "VALUE": data.rng.choice(data.phones),
            "TYPE_ID": "PHONE",
        }
    ]
    record["EMAIL"] = [
        {
            "ID": str(next(portal.multifield_ids)),
            "VALUE_TYPE": "WORK",
            "VALUE": f"{_latin(last)}{data.rng.randint(1, 999)}@example.ru",
            "TYPE_ID": "EMAIL",
        }
    ]
    record["WEB"] = []
    record["IM"] = []
    record["HAS_PHONE"] = record["HAS_EMAIL"] = "Y"
    record["HAS_IMOL"] = "N"


def _latin(text: str) -> str:
    table = str.maketrans("абвгдеёжзийклмнопрстуфхцчшщъыьэюя", "abvgdeejziyklmnoprstufhccss_y_eua")
    return "".join(c for c in text.lower().translate(table) if c.isalnum()) or "user"


def _company(portal: Portal, data: DemoData, record: dict[str, Any]) -> None:
    title = data.rng.choice(data.companies)
    record.update(
        {
            "TITLE": title,
            "COMPANY_TYPE": data.rng.choice(["CUSTOMER", "PARTNER", "SUPPLIER"]),
            "INDUSTRY": data.rng.choice(["IT", "MANUFACTURING", "TELECOM", "DELIVERY"]),
            "CURRENCY_ID": "RUB",
            "REVENUE": f"{data.rng.randint(1, 500) * 100000:.2f}",
            "ADDRESS_CITY": data.rng.choice(data.cities),
            "UF_CRM_1700000201": str(data.rng.randint(10**9, 10**10 - 1)),
            "UF_CRM_1700000202": data.rng.choice(_enum_ids(portal, "company", "UF_CRM_1700000202")),
        }
    )
    _multifields(portal, data, record, data.rng.choice(data.words))


def _contact(portal: Portal, data: DemoData, record: dict[str, Any]) -> None:
    last, first, middle = data.person()
    companies = portal.store("company").ids
    company = str(data.rng.choice(companies)) if companies and data.rng.random() < 0.8 else None
    record.update(
        {
            "NAME": first,
            "SECOND_NAME": middle,
            "LAST_NAME": last,
            "TYPE_ID": "CLIENT",
            "POST": data.rng.choice(["Директор", "Менеджер", "Бухгалтер", "Инженер"]),
            "COMPANY_ID": company,
            "COMPANY_IDS": _more(data, [company], companies) if company else [],
            "BIRTHDATE": (data.base - timedelta(days=data.rng.randint(7000, 22000)))
            .replace(hour=0)
            .isoformat(),
            "EXPORT": "Y",
            "UF_CRM_1700000101": data.rng.choice(["Телефон", "Почта", "Telegram"]),
            "UF_CRM_1700000102": data.moment().replace(hour=0, minute=0, second=0).isoformat(),
        }
    )
    _multifields(portal, data, record, last)


def _lead(portal: Portal, data: DemoData, record: dict[str, Any]) -> None:
    last, first, middle = data.person()
    status = data.rng.choice(LEAD_STATUSES)
    record.update(
        {
            "TITLE": f"Заявка: {data.rng.choice(data.words)}",
            "NAME": first,
            "SECOND_NAME": middle,
            "LAST_NAME": last,
            "STATUS_ID": status,
            "STATUS_SEMANTIC_ID": "S"
            if status == "CONVERTED"
            else "F"
            if status == "JUNK"
            else "P",
            "COMPANY_TITLE": data.rng.choice(data.companies),
            "CURRENCY_ID": "RUB",
            "OPPORTUNITY": f"{data.rng.randint(0, 300) * 1000:.2f}",
            "UF_CRM_1700000301": str(data.rng.randint(1, 10)),
            "UF_CRM_1700000302": ["1"],
        }
    )
    _multifields(portal, data, record, last)


def _deal(portal: Portal, data: DemoData, record: dict[str, Any]) -> None:
    rng = data.rng
    stage = rng.choice(DEAL_STAGES)
    category = 1 if data.spread.random() < 0.25 else 0
    if category:  # the second pipeline's stages (C1:...)
        stage = data.spread.choice(references.stage_ids(category))
    companies, contacts = portal.store("company").ids, portal.store("contact").ids
    contact_ids = _more(data, [str(rng.choice(contacts))], contacts) if contacts else []
    begin = data.moment()
    record.update(
        {
            "TITLE": f"Сделка: {rng.choice(data.words)} {rng.randint(1, 9999)}",
            "TYPE_ID": "SALE",
            "CATEGORY_ID": str(category),
            "STAGE_ID": stage,
            "STAGE_SEMANTIC_ID": references.stage_semantics(category, stage) or "P",
            "CLOSED": "Y" if references.stage_semantics(category, stage) else "N",
            "IS_NEW": "Y" if stage.endswith("NEW") else "N",
            "PROBABILITY": str(rng.randint(0, 100)),
            "CURRENCY_ID": "RUB",
            "OPPORTUNITY": f"{rng.randint(1, 2000) * 500:.2f}",
            "TAX_VALUE": "0.00",
            "COMPANY_ID": str(rng.choice(companies)) if companies else None,
            "CONTACT_ID": contact_ids[0] if contact_ids else None,
            "CONTACT_IDS": contact_ids,
            "BEGINDATE": begin.replace(hour=0, minute=0, second=0).isoformat(),
            "CLOSEDATE": (begin + timedelta(days=rng.randint(1, 90)))
            .replace(hour=0, minute=0, second=0)
            .isoformat(),
            "COMMENTS": rng.choice(["", "Перезвонить", "Ждём оплату", "Отправить КП"]),
            "UF_CRM_1700000001": rng.choice(["Сайт", "Звонок", "Выставка"]),
            "UF_CRM_1700000002": str(rng.randint(1, 50)),
            "UF_CRM_1700000003": f"{rng.randint(0, 30)}.5",
            "UF_CRM_1700000004": rng.choice(["1", "0"]),
            "UF_CRM_1700000005": begin.replace(hour=0, minute=0, second=0).isoformat(),
            "UF_CRM_1700000006": begin.isoformat(),
            "UF_CRM_1700000007": rng.choice(_enum_ids(portal, "deal", "UF_CRM_1700000007")),
            "UF_CRM_1700000008": f"{rng.randint(10, 900) * 1000}.00|RUB",
            "UF_CRM_1700000009": rng.sample(data.words, 2),
            "UF_CRM_1700000010": f"C_{contact_ids[0]}" if contact_ids else None,
            "UF_CRM_1700000011": None,
        }
    )


def _more(data: DemoData, first: list[str], pool: list[int]) -> list[str]:
    """``first`` and, for about a third of records, one or two more distinct links."""
    linked = list(first)
    for _ in range(data.spread.choice((0, 0, 0, 0, 1, 2))):
        candidate = str(data.spread.choice(pool))
        if candidate not in linked:
            linked.append(candidate)
    return linked


_MAKERS = {"company": _company, "contact": _contact, "lead": _lead, "deal": _deal}
