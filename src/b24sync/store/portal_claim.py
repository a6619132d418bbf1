"""The one portal a database mirrors: the first to sync claims it, any other is refused.

Two services pointed at one database with different portals would otherwise write records of
both into the same tables, where equal IDs overwrite each other.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from psycopg import AsyncConnection

from b24sync.errors import PortalMismatch


def portal_identity(portal_url: str) -> str:
    """``host[:port]`` in lower case: the same portal by webhook or by application is one."""
    return urlsplit(portal_url).netloc.lower()


async def claim_portal(conn: AsyncConnection[Any], portal_url: str) -> None:
    """Record ``portal_url`` as this database's portal, or refuse it if another holds it."""
    wanted = portal_identity(portal_url)
    row = await (
        await conn.execute(
            "INSERT INTO b24sync.mirrored_portal AS m (portal) VALUES (%s) "
            "ON CONFLICT (singleton) DO UPDATE SET portal = m.portal RETURNING portal",
            (wanted,),
        )
    ).fetchone()
    assert row is not None
    if row[0] != wanted:
        raise PortalMismatch(
            f"this database already mirrors the portal {row[0]}, not {wanted}: point "
            "DATABASE_URL (or B24SYNC_DATA_DIR) at a database of its own for the other portal"
        )
