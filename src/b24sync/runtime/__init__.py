"""Wiring: settings to objects, the procrastinate jobs, serving."""

from b24sync.runtime.wiring import portal_client, sync_engine, sync_service

__all__ = ["portal_client", "sync_engine", "sync_service"]
