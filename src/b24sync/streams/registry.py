"""The declarations. Adding a stream of an existing kind is one entry here (plus its b24emu
methods and tests)."""

from __future__ import annotations

from typing import Any

from b24sync.errors import UnknownEntity
from b24sync.streams.model import Column, Kind, Stream

ACTIONS = ("ADD", "UPDATE", "DELETE")


def _object(name: str, en: str, ru: str, entity_type_id: int) -> Stream:
    """A CRM object of the classic API: ``crm.<name>.list`` / ``.fields``, events per action."""
    return Stream(
        name=name,
        table=f"crm_{name}",
        kind=Kind.OBJECT,
        titles={"en": en, "ru": ru},
        list_method=f"crm.{name}.list",
        fields_method=f"crm.{name}.fields",
        entity_type_id=entity_type_id,
        events=tuple(f"ONCRM{name.upper()}{action}" for action in ACTIONS),
    )


def _link(name: str, parent: str, linked: str, entity_type_id: int, en: str, ru: str) -> Stream:
    """Records of ``parent`` linked to many ``linked`` ones, read from the universal list: one
    command carries 50 parents with all their links (``<linked>Ids``)."""
    return Stream(
        name=name,
        table=f"crm_{name}",
        kind=Kind.CHILD,
        titles={"en": en, "ru": ru},
        list_method="crm.item.list",
        params={"entityTypeId": entity_type_id},
        id_field="id",
        cursor_field="updatedTime",
        records_at="items",
        parent=parent,
        select=("id", f"{linked}Ids"),
        columns=(
            Column("id", "integer", f"{parent}_id"),
            Column(f"{linked}Ids", "integer", f"{linked}_id"),
            Column("sort", "integer"),
            Column("isPrimary", "boolean", "is_primary"),
        ),
        key=(f"{parent}_id", f"{linked}_id"),
    )


def _reference(
    name: str,
    table: str,
    method: str,
    en: str,
    ru: str,
    columns: tuple[Column, ...],
    key: tuple[str, ...] = ("id",),
    **shape: Any,
) -> Stream:
    """A reference list: read whole (a call or a few), replaced in one transaction; ``shape``
    says where its records sit and what identifies them when the answer is not classic."""
    return Stream(
        name=name,
        table=table,
        kind=Kind.REFERENCE,
        titles={"en": en, "ru": ru},
        list_method=method,
        cursor_field=None,
        columns=columns,
        key=key,
        **shape,
    )


_STREAMS = (
    _object("deal", "Deals", "Сделки", 2),
    _object("contact", "Contacts", "Контакты", 3),
    _object("lead", "Leads", "Лиды", 1),
    _object("company", "Companies", "Компании", 4),
    _reference(
        "status",
        "crm_status",
        "crm.status.list",
        "Stages and reference lists",
        "Стадии и справочники",
        columns=(
            Column("ID", "integer"),
            Column("ENTITY_ID", "string"),
            Column("STATUS_ID", "string"),
            Column("NAME", "string"),
            Column("NAME_INIT", "string"),
            Column("SORT", "integer"),
            Column("SYSTEM", "char"),
            Column("CATEGORY_ID", "integer"),
            Column("COLOR", "string"),
            Column("SEMANTICS", "string"),
        ),
    ),
    _reference(
        "category",
        "crm_category",
        "crm.category.list",
        "Pipelines",
        "Воронки",
        columns=(
            Column("id", "integer"),
            Column("entityTypeId", "integer", "entity_type_id"),
            Column("name", "string"),
            Column("sort", "integer"),
            Column("isDefault", "char", "is_default"),
        ),
        key=("entity_type_id", "id"),
        params={"entityTypeId": 2},
        id_field="id",
        records_at="categories",
    ),
    _reference(
        "currency",
        "crm_currency",
        "crm.currency.list",
        "Currencies",
        "Валюты",
        columns=(
            Column("CURRENCY", "string"),
            Column("FULL_NAME", "string"),
            Column("BASE", "char"),
            Column("AMOUNT", "double"),
            Column("AMOUNT_CNT", "integer"),
            Column("SORT", "integer"),
        ),
        key=("currency",),
        id_field="CURRENCY",
    ),
    _reference(
        "user",
        "b24_user",
        "user.get",
        "Users",
        "Пользователи",
        columns=(
            Column("ID", "integer"),
            Column("ACTIVE", "boolean"),
            Column("NAME", "string"),
            Column("LAST_NAME", "string"),
            Column("SECOND_NAME", "string"),
            Column("EMAIL", "string"),
            Column("WORK_POSITION", "string"),
            Column("UF_DEPARTMENT", "integer", multiple=True),
        ),
    ),
    _reference(
        "department",
        "b24_department",
        "department.get",
        "Departments",
        "Подразделения",
        columns=(
            Column("ID", "integer"),
            Column("NAME", "string"),
            Column("SORT", "integer"),
            Column("PARENT", "integer"),
            Column("UF_HEAD", "integer"),
        ),
    ),
    _link("deal_contact", "deal", "contact", 2, "Deal contacts", "Контакты сделок"),
    _link("contact_company", "contact", "company", 3, "Contact companies", "Компании контактов"),
)

STREAMS: dict[str, Stream] = {stream.name: stream for stream in _STREAMS}
EVENT_NAMES: tuple[str, ...] = tuple(event for s in _STREAMS for event in s.events)
_BY_EVENT = {
    event: (s, event.removeprefix(f"ONCRM{s.name.upper()}")) for s in _STREAMS for event in s.events
}


def stream_named(name: str) -> Stream:
    try:
        return STREAMS[name.strip().lower()]
    except KeyError:
        raise UnknownEntity(
            f"unknown stream {name[:60]!r}: use one of {', '.join(STREAMS)}"
        ) from None


def streams_of(kind: Kind) -> list[Stream]:
    return [s for s in _STREAMS if s.kind is kind]


def children_of(parent: Stream) -> list[Stream]:
    return [s for s in _STREAMS if s.parent == parent.name]


def stream_for_event(event: str) -> tuple[Stream, str] | None:
    """The stream an event name touches and its action (``ADD``, ``UPDATE``, ``DELETE``)."""
    return _BY_EVENT.get(event)
