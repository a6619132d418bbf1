"""What every route needs from the request: the service and the caller's bearer token."""

from __future__ import annotations

from fastapi import Request

from b24sync.api.auth import COOKIE_NAME
from b24sync.service import SyncService


def service_of(request: Request) -> SyncService:
    service: SyncService = request.app.state.service
    return service


def bearer_token(request: Request) -> str | None:
    """The Authorization bearer, or the dashboard's cookie (EventSource cannot send headers)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(COOKIE_NAME)
