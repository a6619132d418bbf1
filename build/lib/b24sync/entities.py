"""The mirrored entities, as data: one engine walks any of them."""

from __future__ import annotations

from dataclasses import dataclass

from b24sync.errors import UnknownEntity


@dataclass(frozen=True)
class Entity:
    name: str
    table: str
    method_prefix: str
    cursor_field: str = "DATE_MODIFY"

    @property
    def list_method(self) -> str:
        return f"{self.method_prefix}.list"

    @property
    def fields_method(self) -> str:
        return f"{self.method_prefix}.fields"


ENTITIES: dict[str, Entity] = {
    "deal": Entity("deal", "crm_deal", "crm.deal"),
    "contact": Entity("contact", "crm_contact", "crm.contact"),
    "lead": Entity("lead", "crm_lead", "crm.lead"),
    "company": Entity("company", "crm_company", "crm.company"),
}


def entity_named(name: str) -> Entity:
    try:
        return ENTITIES[name.lower()]
    except KeyError:
        raise UnknownEntity(f"unknown entity {name!r}: use one of {', '.join(ENTITIES)}") from None
