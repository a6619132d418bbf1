"""Test helpers shared by several modules: a limit-free client and the whole service stack."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

from b24emu import Emulator, create_app
from b24emu.server import build_emulator, serving, webhook_url
from b24sync.api.app import create_app as create_api
from b24sync.bitrix.auth import PortalAuth, WebhookAuth
from b24sync.bitrix.client import BitrixClient, RetryPolicy
from b24sync.bitrix.limiter import BucketRule, LeakyBucket
from b24sync.config import Settings, WebhookUrl
from b24sync.runtime.jobs import build_job_app, run_worker
from b24sync.service import SyncService
from b24sync.sync.engine import SyncEngine

TOKEN = "synctesttoken1"
API_KEY = "test-api-key-0123456789"
JWT_SECRET = "super-secret-jwt-signing-key-for-tests-only"
APPLICATION_TOKEN = "apptoken0123456789abcdef"
SERVICE_BASE = "http://service"
REST_BASE = f"/rest/1/{TOKEN}/"  # the inbound webhook's path on a test portal


def query(database_url: str, text: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of one SQL statement, on a connection of its own."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(text, params or None).fetchall()


async def rest_call(portal: httpx.AsyncClient, method: str, **params: Any) -> Any:
    """The JSON answer of one REST method of a test portal, called over raw HTTP."""
    return (await portal.post(REST_BASE + method, json=params)).json()


def fast_client(
    http: httpx.AsyncClient, base: str = "http://emu", auth: PortalAuth | None = None
) -> BitrixClient:
    """A client with the portal's limits lifted and near-instant retries, for tests."""
    return BitrixClient(
        http,
        auth or WebhookAuth(WebhookUrl.parse(f"{base}/rest/1/{TOKEN}/")),
        limiter=LeakyBucket(BucketRule(rate=1000, burst=10000)),
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
    database_url: str,
    emu: Emulator,
    *,
    worker: bool = True,
    auth: PortalAuth | None = None,
    **settings: Any,
) -> AsyncIterator[Stack]:
    """Emulator -> client -> engine -> service -> API, all in-process, plus a worker task.

    The emulator delivers events to the API through an ASGI transport, as a portal would POST.
    """
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(emu)), timeout=30
    ) as http:
        portal = fast_client(http, auth=auth)
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
                    await service.close()


EMU_TOKEN = "proctoken123456"


@contextmanager
def running_portal(
    counts: dict[str, int], latency_ms: float = 0.0
) -> Iterator[tuple[Emulator, str]]:
    """b24emu over real HTTP in a thread; yields it and its inbound-webhook URL."""
    emu = build_emulator(counts=counts, rate=0, burst=50, latency_ms=latency_ms, token=EMU_TOKEN)
    with serving(create_app(emu)) as base:
        host, port = base.removeprefix("http://").split(":")
        yield emu, webhook_url(emu, host, int(port))


def service_env(database_url: str, webhook: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "BITRIX_WEBHOOK_URL": webhook,
        "API_KEYS": API_KEY,
        "BITRIX_APPLICATION_TOKEN": APPLICATION_TOKEN,
        "BITRIX_RATE": "1000",
        "BITRIX_BURST": "10000",
    }


@contextmanager
def process(*args: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A `b24sync` process, stopped with SIGTERM at the end; it must exit 0 and say so.

    Its output goes to temporary files, not pipes: a pipe nobody reads fills up after a few
    tracebacks and freezes the process mid-test. ``proc.stderr_text`` has its stderr at the end.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "b24sync.cli", *args],
            env=env,
            stdout=out,
            stderr=err,
            text=True,
        )
        proc.stderr_file = err  # type: ignore[attr-defined]
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            err.seek(0)
            proc.stderr_text = err.read()  # type: ignore[attr-defined]
    assert proc.returncode == 0, proc.stderr_text  # type: ignore[attr-defined]
    said = proc.stderr_text  # type: ignore[attr-defined]
    assert "stopped" in said and "Traceback" not in said, said[-4000:]


def _stderr_so_far(proc: subprocess.Popen[str]) -> str:
    err = proc.stderr_file  # type: ignore[attr-defined]
    err.seek(0)
    return str(err.read())


def wait_healthy(base: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, _stderr_so_far(proc)
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the service did not become healthy")
