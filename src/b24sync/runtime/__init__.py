"""Wiring: settings to objects, the procrastinate jobs, serving."""

from b24sync.runtime.wiring import (
    discovered_streams,
    portal_client,
    sync_engine,
    sync_service,
)

__all__ = ["discovered_streams", "portal_client", "sync_engine", "sync_service"]
