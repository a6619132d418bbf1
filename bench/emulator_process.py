"""b24emu in its own process for the benchmarks: no GIL shared with what is measured."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from b24emu.server import free_port


@contextmanager
def emulator_process(
    *,
    deals: int,
    latency_ms: float,
    per_record_ms: float,
    rate: float = 2,
    burst: int = 50,
    contacts: int = 0,
    items: int = 0,
) -> Iterator[str]:
    """Yields the inbound-webhook URL of a portal with the real limits switched on."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "b24sync.cli",
            "emulator",
            "--port",
            str(port),
            "--deals",
            str(deals),
            "--contacts",
            str(contacts),
            "--items",
            str(items),
            "--rate",
            str(rate),
            "--burst",
            str(burst),
            "--latency-ms",
            str(latency_ms),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip().split("=", 1)[1]
    base = url.split("/rest/")[0]
    for _ in range(200):
        try:
            httpx.get(base + "/_emulator/stats", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    httpx.put(
        base + "/_emulator/limits",
        json={"cost": {"enabled": True, "per_record": per_record_ms / 1000}},
    )
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
