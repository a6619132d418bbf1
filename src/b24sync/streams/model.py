"""What a stream declaration says: where its records come from and how it is refreshed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from b24sync.bitrix.export import ListMethod


class Kind(StrEnum):
    """How a stream is refreshed."""

    OBJECT = "object"  # keyset export by ID, incremental by cursor, events, reconcile
    ITEM = "item"  # as object, through crm.item.*: one stream per smart process, discovered
    LOG = "log"  # append-only by ID, rows never rewritten
    REFERENCE = "reference"  # the whole list, replaced in one transaction
    CHILD = "child"  # rows per parent record, refreshed with the parents that changed


@dataclass(frozen=True)
class Column:
    """A declared column of a reference or child table: a field and its Bitrix24 type."""

    field: str
    bitrix_type: str
    name: str = ""  # the column name; empty: the field name in lower case
    multiple: bool = False

    @property
    def column(self) -> str:
        return self.name or self.field.lower()


@dataclass(frozen=True)
class SmartProcess:
    """A smart process (crm.type.list) as the service last saw it; ``gone``: the portal no
    longer has it, and its tables are kept as they were. ``has_stages`` (``isStagesEnabled``)
    gives it a stage history, ``links_products`` (``isLinkWithProductsEnabled``) product rows
    (crm/data-types.md, type)."""

    entity_type_id: int
    title: str
    gone: bool = False
    has_stages: bool = False
    links_products: bool = False


@dataclass(frozen=True)
class Stream:
    """One Bitrix24 dataset mirrored into one table.

    Object streams take their columns from the ``fields_method`` metadata; reference, log and
    child streams declare theirs (``columns``), keyed by ``key``. A declared column whose field
    is a fixed parameter (``entityTypeId`` of a log) takes the parameter's value, so streams of
    several types can share one table. A child stream with an ``owner_key`` is read one parent
    per command (``owner_filter`` plus ``{owner_key: parent id}``); one without is read through
    its parent's list, 50 parents a command.
    """

    name: str
    table: str
    kind: Kind
    titles: Mapping[str, str]  # language -> title, for the dashboard and table comments
    list_method: str
    fields_method: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)  # fixed parameters of every call
    id_field: str = "ID"
    cursor_field: str | None = "DATE_MODIFY"
    records_at: str | None = None  # the key under `result` that holds the records
    entity_type_id: int | None = None  # crm.item.* / crm.category.list type of an object
    events: tuple[str, ...] = ()  # the portal events that change this stream's records
    columns: tuple[Column, ...] = ()
    key: tuple[str, ...] = ()  # columns that identify a row of a reference or child table
    parent: str | None = None  # a child stream's parent stream
    select: tuple[str, ...] = ()  # fixed select of reference, log and child streams
    fields_at: str | None = None  # the key under `result` that holds the fields metadata
    per_smart_process: bool = False  # a reference read again for every smart process's type
    gone: bool = False  # a smart process the portal no longer has: table kept, nothing synced
    owner_filter: Mapping[str, Any] = field(default_factory=dict)
    owner_key: str | None = None  # the filter key naming one parent (per-parent children)
    table_title: str = ""  # what the table's comment calls its rows, when the title says less

    @property
    def title(self) -> str:
        return self.titles["en"]

    @property
    def described(self) -> str:
        """What the table's comment calls the dataset."""
        if self.kind is Kind.ITEM:
            return (
                f"smart process «{self.title}» (crm.item.list, entityTypeId {self.entity_type_id})"
            )
        return self.name

    @property
    def table_comment(self) -> str:
        """The comment of a declared table (reference, log, child)."""
        return f"Bitrix24 {self.table_title or self.title} ({self.list_method}), by b24sync"

    @property
    def synced_like_objects(self) -> bool:
        """Keyset export, cursor, events, reconcile: object and item streams."""
        return self.kind in (Kind.OBJECT, Kind.ITEM)

    def select_for(self, fields: Mapping[str, Any]) -> list[str]:
        """What a full read selects, given the portal's fields.

        ``*`` and ``UF_*`` leave out multiple fields (crm-deal-list.md): each is named. The
        universal list takes only field names or ``*``, which is every field (crm-item-list.md).
        """
        if self.kind is Kind.ITEM:
            return ["*"]
        multiple = [name for name, d in fields.items() if d.get("isMultiple")]
        return ["*", "UF_*", *multiple]

    @property
    def listing(self) -> ListMethod:
        """The list method with its fixed parameters and the shape of its answer."""
        return ListMethod(self.list_method, self.params, self.id_field, self.records_at)

    @property
    def metadata_method(self) -> str:
        """The ``fields`` method of a stream that has one (object streams)."""
        if self.fields_method is None:
            raise TypeError(f"stream {self.name} has no fields method")
        return self.fields_method

    @property
    def scope(self) -> dict[str, Any]:
        """Column -> value of the columns a fixed parameter fills (the rows of this stream in a
        table it shares)."""
        return {c.column: self.params[c.field] for c in self.columns if c.field in self.params}

    @property
    def cursor(self) -> str:
        """The cursor field of a stream that is read incrementally."""
        if self.cursor_field is None:
            raise TypeError(f"stream {self.name} has no cursor field")
        return self.cursor_field
