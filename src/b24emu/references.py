"""A demo portal's reference lists, as the portal answers them: stages of two deal pipelines,
lead statuses, sources, types and industries (`crm.status.list`: all values strings), the
pipelines (`crm.category.list`), currencies (`crm.currency.list`), users (`user.get`, a dismissed
one included) and departments (`department.get`). Labels are Russian, as on a Russian portal.
"""

from __future__ import annotations

from typing import Any

# ENTITY_ID -> [(STATUS_ID, NAME, SEMANTICS)]; SEMANTICS S = won, F = lost (crm-status-list.md)
_STATUS_LISTS: dict[str, list[tuple[str, str, str | None]]] = {
    "DEAL_STAGE": [
        ("NEW", "Новая", None),
        ("PREPARATION", "Подготовка документов", None),
        ("PREPAYMENT_INVOICE", "Счёт на предоплату", None),
        ("EXECUTING", "В работе", None),
        ("FINAL_INVOICE", "Финальный счёт", None),
        ("WON", "Сделка успешна", "S"),
        ("LOSE", "Сделка провалена", "F"),
    ],
    "DEAL_STAGE_1": [
        ("C1:NEW", "Новая", None),
        ("C1:PREPARATION", "Переговоры", None),
        ("C1:WON", "Сделка успешна", "S"),
        ("C1:LOSE", "Сделка провалена", "F"),
    ],
    "STATUS": [
        ("NEW", "Не обработан", None),
        ("IN_PROCESS", "В работе", None),
        ("PROCESSED", "Обработан", None),
        ("CONVERTED", "Качественный лид", "S"),
        ("JUNK", "Некачественный лид", "F"),
    ],
    "SOURCE": [
        ("CALL", "Звонок", None),
        ("EMAIL", "Электронная почта", None),
        ("WEB", "Веб-сайт", None),
        ("ADVERTISING", "Реклама", None),
        ("PARTNER", "Существующий клиент", None),
        ("RECOMMENDATION", "По рекомендации", None),
        ("OTHER", "Другое", None),
    ],
    "DEAL_TYPE": [
        ("SALE", "Продажа", None),
        ("COMPLEX", "Комплексная продажа", None),
        ("GOODS", "Продажа товара", None),
        ("SERVICES", "Продажа услуги", None),
    ],
    "CONTACT_TYPE": [
        ("CLIENT", "Клиенты", None),
        ("SUPPLIER", "Поставщики", None),
        ("PARTNER", "Партнеры", None),
        ("OTHER", "Другое", None),
    ],
    "COMPANY_TYPE": [
        ("CUSTOMER", "Клиент", None),
        ("SUPPLIER", "Поставщик", None),
        ("COMPETITOR", "Конкурент", None),
        ("PARTNER", "Партнер", None),
        ("OTHER", "Другое", None),
    ],
    "INDUSTRY": [
        ("IT", "Информационные технологии", None),
        ("TELECOM", "Телекоммуникации и связь", None),
        ("MANUFACTURING", "Производство", None),
        ("BANKING", "Банковские услуги", None),
        ("CONSULTING", "Консалтинг", None),
        ("OTHER", "Другое", None),
    ],
}
_STAGE_COLORS = {None: "#39A8EF", "S": "#7BD500", "F": "#FF5752"}


def statuses() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for entity_id, values in _STATUS_LISTS.items():
        category = entity_id.rsplit("_", 1)[1] if entity_id.startswith("DEAL_STAGE_") else None
        for n, (status_id, name, semantics) in enumerate(values):
            rows.append(
                status_row(len(rows) + 1, entity_id, n, status_id, name, semantics, category)
            )
    return rows


def status_row(
    row_id: int,
    entity_id: str,
    position: int,
    status_id: str,
    name: str,
    semantics: str | None,
    category: str | None,
) -> dict[str, Any]:
    """One `crm.status.list` record (every value a string); ``position`` counts from 0."""
    stage = "STAGE" in entity_id
    return {
        "ID": str(row_id),
        "ENTITY_ID": entity_id,
        "STATUS_ID": status_id,
        "NAME": name,
        "NAME_INIT": name,
        "SORT": str((position + 1) * 10),
        "SYSTEM": "Y" if position == 0 or semantics else "N",
        "CATEGORY_ID": category,
        "COLOR": _STAGE_COLORS[semantics] if stage else None,
        "SEMANTICS": semantics,
        "EXTRA": {
            "SEMANTICS": {"S": "success", "F": "failure"}.get(semantics or "", "process"),
            "COLOR": _STAGE_COLORS[semantics],
        }
        if stage or entity_id == "STATUS"
        else None,
    }


def stage_ids(category_id: int) -> list[str]:
    entity_id = "DEAL_STAGE" if category_id == 0 else f"DEAL_STAGE_{category_id}"
    return [status_id for status_id, _, _ in _STATUS_LISTS[entity_id]]


def status_values(entity_id: str) -> list[tuple[str, str | None]]:
    """(STATUS_ID, SEMANTICS) of one list, in its sort order."""
    return [(status_id, semantics) for status_id, _, semantics in _STATUS_LISTS[entity_id]]


def stage_semantics(category_id: int, stage_id: str) -> str | None:
    entity_id = "DEAL_STAGE" if category_id == 0 else f"DEAL_STAGE_{category_id}"
    return next(s for status_id, _, s in _STATUS_LISTS[entity_id] if status_id == stage_id)


def categories() -> list[dict[str, Any]]:
    return [
        {"id": 0, "name": "Общая", "sort": 100, "entityTypeId": 2, "isDefault": "Y"},
        {"id": 1, "name": "Повторные продажи", "sort": 200, "entityTypeId": 2, "isDefault": "N"},
    ]


def currencies() -> list[dict[str, Any]]:
    return [
        {
            "CURRENCY": code,
            "AMOUNT_CNT": "1",
            "AMOUNT": amount,
            "SORT": sort,
            "BASE": "Y" if code == "RUB" else "N",
            "FULL_NAME": name,
            "LID": "ru",
        }
        for code, amount, sort, name in (
            ("RUB", "1.0000", "100", "Российский рубль"),
            ("USD", "90.0000", "200", "Доллар США"),
            ("EUR", "98.0000", "300", "Евро"),
        )
    ]


# ID, NAME, LAST_NAME, SECOND_NAME, WORK_POSITION, departments, active
_USERS = [
    ("1", "Admin", "Portal", "", "Администратор", [1], True),
    ("2", "Иван", "Петров", "Сергеевич", "Менеджер по продажам", [2], True),
    ("3", "Мария", "Смирнова", "Андреевна", "Менеджер по продажам", [2], True),
    ("4", "Алексей", "Кузнецов", "Игоревич", "Руководитель отдела продаж", [2], True),
    ("5", "Ольга", "Васильева", "Петровна", "Менеджер по продажам", [2], False),
    ("6", "Дмитрий", "Соколов", "Олегович", "Маркетолог", [3], True),
]
# The users who own demo records (the dismissed one too: records outlive their owners).
OWNER_IDS = ["2", "3", "4", "5", "6"]


def users() -> dict[int, dict[str, Any]]:
    """``user.get`` records: ID a string, ACTIVE a JSON boolean, UF_DEPARTMENT integers."""
    return {
        int(user_id): {
            "ID": user_id,
            "ACTIVE": active,
            "NAME": name,
            "LAST_NAME": last,
            "SECOND_NAME": second,
            "EMAIL": "admin@b24emu.local" if user_id == "1" else f"user{user_id}@b24emu.local",
            "WORK_POSITION": position,
            "UF_DEPARTMENT": departments,
            "ADMIN": user_id == "1",
        }
        for user_id, name, last, second, position, departments, active in _USERS
    }


def departments() -> list[dict[str, Any]]:
    """``department.get`` records: ID and PARENT strings, SORT a number."""
    return [
        {"ID": "1", "NAME": "Компания", "SORT": 500, "UF_HEAD": "1"},
        {"ID": "2", "NAME": "Отдел продаж", "SORT": 500, "PARENT": "1", "UF_HEAD": "4"},
        {"ID": "3", "NAME": "Маркетинг", "SORT": 600, "PARENT": "1", "UF_HEAD": "6"},
    ]
