"""Run b24emu over real sockets (the `b24sync emulator` command, `b24sync run`, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from b24emu.app import create_app
from b24emu.emulator import Emulator
from b24emu.seed import seed_portal


def build_emulator(
    *,
    counts: dict[str, int],
    rate: float,
    burst: int,
    latency_ms: float,
    token: str | None = None,
    seed: int = 1,
) -> Emulator:
    emulator = Emulator() if token is None else Emulator(webhook_token=token)
    emulator.bucket.rate, emulator.bucket.burst = rate, burst
    emulator.bucket.enabled = rate > 0
    emulator.faults.latency_ms = latency_ms
    if any(counts.values()):
        seed_portal(emulator.portal, counts, seed)
    return emulator


def webhook_url(emulator: Emulator, host: str, port: int) -> str:
    return f"http://{host}:{port}/rest/{emulator.webhook_user_id}/{emulator.webhook_token}/"


def serve(emulator: Emulator, host: str, port: int) -> None:
    uvicorn.run(create_app(emulator), host=host, port=port, log_level="warning")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(app: Any, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app from a background thread; yields its base URL."""
    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"could not serve on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
