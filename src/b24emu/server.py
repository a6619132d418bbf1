"""Run b24emu over real sockets (the `b24sync emulator` command and benchmarks)."""

from __future__ import annotations

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
