"""The declarations, and the registry that adds the streams of each smart process the portal has.

Adding a stream of an existing kind is one entry here (plus its b24emu methods and tests; the
shapes are in :mod:`b24sync.streams.kinds`). Smart processes are not declared:
:meth:`StreamRegistry.use_smart_processes` turns what ``crm.type.list`` answered (kept in the
service table by :mod:`b24sync.sync.discovery`) into item streams, stage history and product rows
(:func:`smart_process_streams`), so every process (API, worker, CLI) sees the same ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from b24sync.errors import UnknownEntity
from b24sync.streams.kinds import (
    ITEM_EVENT_PREFIX,
    ITEM_EVENTS,
    PRODUCT_ROWS_SUFFIX,
    STAGE_HISTORY_SUFFIX,
    item_stream_name,
    link_stream,
    object_stream,
    product_rows,
    reference_stream,
    smart_process_streams,
    stage_history,
)
from b24sync.streams.model import Column, Kind, SmartProcess, Stream

# a smart process's streams: its items, its stage history, its product rows
ITEM_NAME_PATTERN = f"^item_([0-9]{{1,9}})({STAGE_HISTORY_SUFFIX}|{PRODUCT_ROWS_SUFFIX})?$"
_ITEM_NAME = re.compile(ITEM_NAME_PATTERN)


_STREAMS = (
    object_stream("deal", "Deals", "Сделки", 2),
    object_stream("contact", "Contacts", "Контакты", 3),
    object_stream("lead", "Leads", "Лиды", 1),
    object_stream("company", "Companies", "Компании", 4),
    # crm-activity-fields.md: an activity's last change is LAST_UPDATED; it has no pipelines
    object_stream("activity", "Activities", "Дела", None, cursor="LAST_UPDATED"),
    reference_stream(
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
    reference_stream(
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
        per_smart_process=True,
    ),
    reference_stream(
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
    reference_stream(
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
    reference_stream(
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
    link_stream("deal_contact", "deal", "contact", 2, "Deal contacts", "Контакты сделок"),
    link_stream(
        "contact_company", "contact", "company", 3, "Contact companies", "Компании контактов"
    ),
    stage_history("deal", 2, "Deal stage history", "История стадий сделок"),
    stage_history("lead", 1, "Lead status history", "История статусов лидов", lead_like=True),
    product_rows("deal", "D", "Deal product rows", "Товары сделок"),
    product_rows("lead", "L", "Lead product rows", "Товары лидов"),
)


class StreamRegistry(Mapping[str, Stream]):
    """Every stream by name: the declared ones and one per smart process in use."""

    def __init__(self, declared: Iterable[Stream]) -> None:
        self._declared = {stream.name: stream for stream in declared}
        self._streams = dict(self._declared)

    def __getitem__(self, name: str) -> Stream:
        return self._streams[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._streams))  # a snapshot: the smart processes may change meanwhile

    def __len__(self) -> int:
        return len(self._streams)

    def use_smart_processes(self, processes: Iterable[SmartProcess]) -> None:
        """Replace the smart processes' streams with those of these (gone ones stay, marked):
        each process's items, then what hangs off them."""
        ordered = sorted(processes, key=lambda p: p.entity_type_id)
        self._streams = self._declared | {
            s.name: s for process in ordered for s in smart_process_streams(process)
        }

    def current(self, stream: Stream) -> Stream:
        """This registry's stream of that name; ``stream`` itself when the registry does not
        know its smart process (named before any discovery). A stream a known smart process
        does not have (stage history without stages, product rows without products) is
        refused: reading it would only make an empty table."""
        if stream.name in self._streams:
            return self._streams[stream.name]
        if _ITEM_NAME.fullmatch(stream.name) is not None:
            items = item_stream_name(_smart_process_of(stream.name))
            if items in self._streams:
                raise UnknownEntity(
                    f"smart process «{self._streams[items].title}» has no stream "
                    f"{stream.name}: its stage history needs stages, its product rows need "
                    "products linked (crm.type.list isStagesEnabled, isLinkWithProductsEnabled)"
                )
        return stream

    def named(self, name: str) -> Stream:
        try:
            return self._streams[name.strip().lower()]
        except KeyError:
            raise UnknownEntity(
                f"unknown stream {name[:60]!r}: use one of {', '.join(self._streams)}"
            ) from None

    def of_kind(self, kind: Kind) -> list[Stream]:
        return [s for s in self._streams.values() if s.kind is kind]

    def children_of(self, parent: Stream) -> list[Stream]:
        return [s for s in self._streams.values() if s.parent == parent.name]

    def history_of(self, stream: Stream) -> Stream | None:
        """The stage history of a stream's records, when it has one."""
        return self._streams.get(f"{stream.name}{STAGE_HISTORY_SUFFIX}")

    def live(self) -> list[Stream]:
        """The streams there is something to sync for (not a smart process the portal deleted)."""
        return [s for s in self._streams.values() if not s.gone]


STREAMS = StreamRegistry(_STREAMS)
EVENT_NAMES: tuple[str, ...] = (
    *(event for s in _STREAMS for event in s.events),
    *ITEM_EVENTS,
)
_BY_EVENT = {
    event: (s.name, event.removeprefix(f"ONCRM{s.name.upper()}"))
    for s in _STREAMS
    for event in s.events
}


def stream_named(name: str) -> Stream:
    return STREAMS.named(name)


def streams_of(kind: Kind) -> list[Stream]:
    return STREAMS.of_kind(kind)


def children_of(parent: Stream) -> list[Stream]:
    return STREAMS.children_of(parent)


def history_of(stream: Stream) -> Stream | None:
    return STREAMS.history_of(stream)


def stream_or_item(name: str) -> Stream:
    """:func:`stream_named`, also for a smart process's stream (``item_<entityTypeId>``, its
    ``_stage_history``, its ``_productrow``) when this process has not loaded the smart
    processes: a run loads the stored ones and takes the title (and more) from there."""
    wanted = name.strip().lower()
    if wanted in STREAMS or _ITEM_NAME.fullmatch(wanted) is None:
        return stream_named(name)
    process = SmartProcess(_smart_process_of(wanted), name, has_stages=True, links_products=True)
    return next(s for s in smart_process_streams(process) if s.name == wanted)


def _smart_process_of(name: str) -> int:
    """The entityTypeId in the name of a smart process's stream."""
    found = _ITEM_NAME.fullmatch(name)
    if found is None:
        raise UnknownEntity(f"{name[:60]!r} is not the name of a smart process's stream")
    return int(found[1])


def is_stream_name(name: str) -> bool:
    """A declared stream, or a smart process's (which this process may not have seen yet)."""
    return name in STREAMS or _ITEM_NAME.fullmatch(name) is not None


def event_target(event: str, entity_type_id: int | None) -> tuple[str, str] | None:
    """The name of the stream an event touches and its action (``ADD``, ``UPDATE``,
    ``DELETE``); a smart process's item event names its type in ``entity_type_id``."""
    if event in ITEM_EVENTS:
        if entity_type_id is None or not 0 < entity_type_id < 10**9:
            return None
        return item_stream_name(entity_type_id), event.removeprefix(ITEM_EVENT_PREFIX)
    return _BY_EVENT.get(event)
