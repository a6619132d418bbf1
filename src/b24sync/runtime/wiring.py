"""Builds the long-lived parts from settings: the portal client, the engine, the service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from psycopg import AsyncConnection

from b24sync.bitrix.auth import AppAuth, PortalAuth, WebhookAuth
from b24sync.bitrix.client import BitrixClient
from b24sync.bitrix.limiter import BucketRule
from b24sync.config import Settings
from b24sync.errors import ConfigurationError
from b24sync.runtime.jobs import build_job_app
from b24sync.service import SyncService
from b24sync.store.app_tokens import PgTokenStore
from b24sync.store.database import libpq_url
from b24sync.store.portal_claim import claim_portal
from b24sync.store.rate_bucket import SharedBucket
from b24sync.streams import STREAMS, Stream
from b24sync.sync import discovery
from b24sync.sync.engine import ProgressCallback, SyncEngine

HTTP_TIMEOUT = httpx.Timeout(90.0, connect=10.0)  # a 50-page batch may run for tens of seconds


def portal_auth(settings: Settings, database_url: str) -> PortalAuth:
    """A local application when its credentials are set, else the inbound webhook."""
    if settings.application_configured:
        assert settings.bitrix_portal_url and settings.bitrix_client_id
        assert settings.bitrix_client_secret is not None
        refresh = settings.bitrix_refresh_token
        return AppAuth(
            portal_url=settings.bitrix_portal_url,
            client_id=settings.bitrix_client_id,
            client_secret=settings.bitrix_client_secret.get_secret_value(),
            store=PgTokenStore(database_url, settings.bitrix_portal_url),
            oauth_url=settings.bitrix_oauth_url,
            bootstrap_refresh_token=refresh.get_secret_value() if refresh else None,
        )
    if settings.webhook is None:
        raise ConfigurationError(
            "no portal configured: set BITRIX_WEBHOOK_URL to your portal's inbound webhook "
            "(or run `b24sync emulator` and use the URL it prints), or a local application's "
            "BITRIX_PORTAL_URL, BITRIX_CLIENT_ID and BITRIX_CLIENT_SECRET"
        )
    return WebhookAuth(settings.webhook)


@asynccontextmanager
async def portal_client(settings: Settings, database_url: str) -> AsyncIterator[BitrixClient]:
    """A client whose request bucket is shared, through the database, by every process."""
    auth = portal_auth(settings, database_url)
    bucket = SharedBucket(
        database_url, auth.portal, BucketRule(settings.bitrix_rate, settings.bitrix_burst)
    )
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
            yield BitrixClient(http, auth, limiter=bucket)
    finally:
        await bucket.close()


@asynccontextmanager
async def sync_engine(
    settings: Settings, database_url: str, on_progress: ProgressCallback | None = None
) -> AsyncIterator[SyncEngine]:
    async with portal_client(settings, database_url) as client:
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
        try:
            async with service.db.connection() as conn:  # refuse a second portal at the start
                await claim_portal(conn, engine.client.auth.portal)
            await service.discover()
            async with build_job_app(service).open_async():
                yield service
        finally:
            await service.close()


async def discovered_streams(settings: Settings, database_url: str) -> list[Stream]:
    """Every stream there is to sync, with the smart processes the portal has right now."""
    async with (
        portal_client(settings, database_url) as client,
        await AsyncConnection.connect(libpq_url(database_url), autocommit=True) as conn,
    ):
        await discovery.discover(client, conn)
    return STREAMS.live()
