"""Long-running processes: the API with an in-process worker, or workers alone.

Signals belong to us, not to uvicorn: SIGINT/SIGTERM stop the API and the worker together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn

from b24sync.api.app import create_app
from b24sync.config import Settings
from b24sync.runtime import sync_service
from b24sync.runtime.jobs import run_worker
from b24sync.service import SyncService

log = logging.getLogger(__name__)


class PortTaken(OSError):
    """The API's port is in use."""


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind before starting, so a taken port is a clear error rather than uvicorn's exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only for that proto, and
    # without it Nagle plus delayed ACKs hold every response about 40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortTaken(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the process's signal handlers stop the server (see serve_forever)


async def serve_forever(
    settings: Settings,
    database_url: str,
    *,
    host: str | None,
    port: int,
    on_ready: Callable[[SyncService], None] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM: the worker, and the HTTP API when ``host`` is given."""
    sock = listening_socket(host, port) if host is not None else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with sync_service(settings, database_url) as service:
        assert service.jobs is not None
        worker = asyncio.create_task(run_worker(service.jobs))
        server = api = None
        if sock is not None:
            config = uvicorn.Config(
                create_app(service), log_config=None, access_log=False, lifespan="off"
            )
            server = _Server(config)
            api = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not api.done():
                await asyncio.sleep(0.05)
        if on_ready is not None:
            on_ready(service)
        await stop.wait()
        if server is not None and api is not None:
            server.should_exit = True
            await api
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
