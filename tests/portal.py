"""Test helpers shared by several modules: a limit-free client and the whole service stack."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from b24emu import Emulator, create_app
from b24sync.api.app import create_app as create_api
from b24sync.bitrix.client import BitrixClient, RetryPolicy
from b24sync.bitrix.limiter import LeakyBucket
from b24sync.config import Settings, WebhookUrl
from b24sync.jobs import build_job_app, run_worker
from b24sync.service import SyncService
from b24sync.sync.engine import SyncEngine

TOKEN = "synctesttoken1"
API_KEY = "test-api-key-0123456789"
JWT_SECRET = "super-secret-jwt-signing-key-for-tests-only"
APPLICATION_TOKEN = "apptoken0123456789abcdef"
SERVICE_BASE = "http://service"


def fast_client(http: httpx.AsyncClient, base: str = "http://emu") -> BitrixClient:
    """A client with the portal's limits lifted and near-instant retries, for tests."""
    return BitrixClient(
        http,
        WebhookUrl.parse(f"{base}/rest/1/{TOKEN}/"),
        limiter=LeakyBucket(rate=1000, burst=10000),
        retry=RetryPolicy(attempts=12, base_delay=0.001, max_delay=0.01),
    )


def service_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "bitrix_webhook_url": f"http://emu/rest/1/{TOKEN}/",
        "api_keys": API_KEY,
        "supabase_jwt_secret": JWT_SECRET,
        "bitrix_application_token": APPLICATION_TOKEN,
    }
    return Settings(**(values | overrides))


@dataclass
class Stack:
    emu: Emulator
    service: SyncService
    api: httpx.AsyncClient  # authenticated with API_KEY
    portal: BitrixClient

    async def wait_for(
        self, condition: Callable[[], Awaitable[bool]], timeout: float = 20.0
    ) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await condition():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def service_stack(
    database_url: str, emu: Emulator, *, worker: bool = True, **settings: Any
) -> AsyncIterator[Stack]:
    """Emulator -> client -> engine -> service -> API, all in-process, plus a worker task.

    The emulator delivers events to the API through an ASGI transport, as a portal would POST.
    """
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(emu)), timeout=30
    ) as http:
        portal = fast_client(http)
        service = SyncService(
            service_settings(database_url, **settings),
            database_url,
            SyncEngine(portal, database_url),
        )
        jobs = build_job_app(service, scheduler=False)  # tests call queue_due_syncs
        async with jobs.open_async():
            app = create_api(service)
            emu.events.transport = httpx.ASGITransport(app=app)
            task = asyncio.create_task(run_worker(jobs)) if worker else None
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url=SERVICE_BASE,
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=30,
            ) as api:
                try:
                    yield Stack(emu, service, api, portal)
                finally:
                    if task is not None:
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
