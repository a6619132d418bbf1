"""Builds the long-lived parts from settings: the portal client, the engine, the service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from b24sync.bitrix.client import BitrixClient
from b24sync.bitrix.limiter import LeakyBucket
from b24sync.config import Settings
from b24sync.errors import ConfigurationError
from b24sync.jobs import build_job_app
from b24sync.service import SyncService
from b24sync.sync.engine import ProgressCallback, SyncEngine

HTTP_TIMEOUT = httpx.Timeout(90.0, connect=10.0)  # a 50-page batch may run for tens of seconds


@asynccontextmanager
async def portal_client(settings: Settings) -> AsyncIterator[BitrixClient]:
    if settings.webhook is None:
        raise ConfigurationError(
            "BITRIX_WEBHOOK_URL is not set: point it at your portal's inbound webhook "
            "(or run `b24sync emulator` and use the URL it prints)"
        )
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        yield BitrixClient(
            http,
            settings.webhook,
            limiter=LeakyBucket(rate=settings.bitrix_rate, burst=settings.bitrix_burst),
        )


@asynccontextmanager
async def sync_engine(
    settings: Settings, database_url: str, on_progress: ProgressCallback | None = None
) -> AsyncIterator[SyncEngine]:
    async with portal_client(settings) as client:
        yield SyncEngine(
            client,
            database_url,
            commands_per_call=settings.sync_batch_size,
            on_progress=on_progress,
        )


@asynccontextmanager
async def sync_service(settings: Settings, database_url: str) -> AsyncIterator[SyncService]:
    """The service with its own portal client and an opened job queue."""
    async with sync_engine(settings, database_url) as engine:
        service = SyncService(settings, database_url, engine)
        async with build_job_app(service).open_async():
            yield service
