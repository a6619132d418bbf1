"""Product rows of deals, leads and smart processes (api-reference/crm/universal/product-rows/*):
camelCase fields, numbers as JSON numbers, kept per owner so that reading one owner's rows costs
nothing but the rows."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from b24emu.fields import FieldDef

# ownerType short codes (crm data-types.md, object_type) -> the entity; a smart process's is
# T<hex> (b24emu.smart.owner_type), when the type links products
OWNER_TYPES = {"D": "deal", "L": "lead"}
# contacts and companies have none: the list answers empty (product-rows/index.md)
WITHOUT_ROWS = ("C", "CO")

# crm.item.productrow.fields (crm-item-productrow-fields.md): name, type, title, read-only
_SPEC = [
    ("id", "integer", "ID", True),
    ("ownerId", "integer", "Owner ID", False),
    ("ownerType", "string", "Owner Type", False),
    ("productId", "integer", "Product", False),
    ("productName", "string", "Product Name", False),
    ("price", "double", "Price", False),
    ("priceExclusive", "double", "Discounted price excluding tax", True),
    ("priceNetto", "double", "PRICE_NETTO", True),
    ("priceBrutto", "double", "PRICE_BRUTTO", True),
    ("quantity", "double", "Quantity", False),
    ("discountTypeId", "integer", "Discount Type", False),
    ("discountRate", "double", "Discount Amount", False),
    ("discountSum", "double", "Discount Total", False),
    ("taxRate", "double", "Tax", False),
    ("taxName", "string", "TAX_NAME", False),
    ("taxIncluded", "char", "Tax included in price", False),
    ("customized", "char", "Modified", False),
    ("measureCode", "integer", "Unit of Measure Code", False),
    ("measureName", "string", "Unit of Measure", False),
    ("sort", "integer", "Sorting", False),
    ("type", "integer", "TYPE", True),
    ("storeId", "integer", "STORE_ID", True),
]
FIELDS: dict[str, FieldDef] = {
    name: {
        "type": ftype,
        "isRequired": name in ("ownerId", "ownerType", "productId"),
        "isReadOnly": read_only,
        "isImmutable": name in ("ownerId", "ownerType"),
        "isMultiple": False,
        "isDynamic": False,
        "title": title,
    }
    for name, ftype, title, read_only in _SPEC
}
# the filter keys the method accepts with comparison prefixes (crm-item-productrow-list.md)
FILTERABLE = {"ID": FIELDS["id"], "PRODUCTID": FIELDS["productId"]}


def product_row(
    owner_type: str, owner_id: int, given: dict[str, Any], sort: int, row_id: int
) -> dict[str, Any]:
    """A row as the portal stores it: ``price`` is the final price (discount and tax in), the
    price before the discount is computed from it, numbers are typed."""
    price = float(given.get("price") or 0)
    quantity = float(given.get("quantity") if given.get("quantity") is not None else 1)
    rate = float(given.get("discountRate") or 0)
    before_discount = round(price / (1 - rate / 100), 2) if rate < 100 else price
    return {
        "id": row_id,
        "ownerId": owner_id,
        "ownerType": owner_type,
        "productId": int(given.get("productId") or 0),
        "productName": str(given.get("productName") or ""),
        "price": price,
        "priceAccount": price,
        "priceExclusive": price,
        "priceNetto": before_discount,
        "priceBrutto": before_discount,
        "quantity": quantity,
        "discountTypeId": int(given.get("discountTypeId") or 2),
        "discountRate": rate,
        "discountSum": round(before_discount - price, 2),
        "taxRate": given.get("taxRate"),
        "taxIncluded": "Y" if str(given.get("taxIncluded", "Y")).upper() == "Y" else "N",
        "taxName": str(given.get("taxName") or ""),
        "customized": "Y",
        "measureCode": int(given.get("measureCode") or 796),
        "measureName": str(given.get("measureName") or "шт"),
        "sort": int(given.get("sort") or sort),
        "xmlId": f"sale_basket_{row_id}",
        "type": 1,
        "storeId": None,
    }


@dataclass
class ProductRows:
    """Every owner's rows, in the order of their ``sort``."""

    by_owner: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def rows(self, owner_type: str, owner_id: int) -> list[dict[str, Any]]:
        return self.by_owner.get((owner_type, owner_id), [])

    def replace(
        self, owner_type: str, owner_id: int, given: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The owner's rows become ``given`` (crm.item.productrow.set); new IDs for all."""
        rows = [
            product_row(owner_type, owner_id, item, (n + 1) * 10, next(self.ids))
            for n, item in enumerate(given)
        ]
        if rows:
            self.by_owner[(owner_type, owner_id)] = rows
        else:
            self.by_owner.pop((owner_type, owner_id), None)
        return rows

    def drop(self, owner_type: str, owner_id: int) -> None:
        self.by_owner.pop((owner_type, owner_id), None)

    def count(self) -> int:
        return sum(len(rows) for rows in self.by_owner.values())
