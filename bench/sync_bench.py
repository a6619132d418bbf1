"""Full-sync benchmark against b24emu over real sockets, with the portal's limits switched on.

Prints API calls, wall time, records/s, the emulator's theoretical lower bound and our ratio to
it, the calls the emulator refused, the same for fast_bitrix24's get_all, and the loader's rows/s
into a 100-column table.

    .venv/bin/python bench/sync_bench.py --deals 100000
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
from pathlib import Path

import httpx

from b24emu.limits import CostModel
from b24sync.bitrix.auth import WebhookAuth
from b24sync.bitrix.client import BitrixClient
from b24sync.bitrix.limiter import BucketRule
from b24sync.config import WebhookUrl
from b24sync.store.embedded import EmbeddedPostgres
from b24sync.store.migrate import migrate
from b24sync.store.rate_bucket import SharedBucket
from b24sync.streams import stream_named
from b24sync.sync.engine import SyncEngine
from cpu import server_cpu_seconds
from emulator_process import emulator_process
from loader_bench import MIXES, loader_rows_per_second


def lower_bound(
    n: int, emu_cost_base: float, per_record: float, latency: float
) -> tuple[int, float]:
    """Fewest HTTP calls (fields + probe + ceil(n/2500)) and their serial server time."""
    calls = 2 + math.ceil(n / 2500)
    commands = 2 + math.ceil(n / 50)
    return calls, calls * latency + commands * emu_cost_base + n * per_record


async def ours(url: str, db_url: str) -> tuple[int, float, int]:
    """As the service runs it: the request bucket shared through PostgreSQL."""
    webhook = WebhookUrl.parse(url)
    bucket = SharedBucket(db_url, webhook.portal, BucketRule(rate=2, burst=50))
    async with httpx.AsyncClient(timeout=120) as http:
        client = BitrixClient(http, WebhookAuth(webhook), limiter=bucket)
        started = time.perf_counter()
        summary = await SyncEngine(client, db_url).full(stream_named("deal"))
        await bucket.close()
        assert summary.status == "success", summary.error
        return summary.api_calls, time.perf_counter() - started, summary.fetched


def cpu_split(pg: EmbeddedPostgres, emulator_base: str) -> dict[str, float]:
    """CPU seconds so far of the three parts a sync keeps busy on this machine."""
    return {
        "sync process": time.process_time(),
        "PostgreSQL": server_cpu_seconds(pg.pgdata) or 0.0,
        "b24emu": httpx.get(emulator_base + "/_emulator/stats").json()["cpu_seconds"],
    }


def fast_bitrix24(url: str) -> tuple[int, float, int]:
    from fast_bitrix24 import Bitrix

    client = Bitrix(url, ssl=False, verbose=False)
    started = time.perf_counter()
    records = client.get_all("crm.deal.list", {"select": ["*", "UF_*"]})
    return 0, time.perf_counter() - started, len(records)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deals", type=int, default=100000)
    parser.add_argument(
        "--fast-bitrix24-deals",
        type=int,
        default=20000,
        help="fast_bitrix24 pays the counting cost on every page; a smaller N keeps the run short",
    )
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per HTTP call")
    parser.add_argument(
        "--per-record-ms", type=float, default=0.2, help="server time per returned record"
    )
    args = parser.parse_args()

    cost = CostModel()
    with (
        tempfile.TemporaryDirectory() as tmp,
        emulator_process(
            deals=args.deals, latency_ms=args.latency_ms, per_record_ms=args.per_record_ms
        ) as url,
    ):
        base = url.split("/rest/")[0]
        pg = EmbeddedPostgres(Path(tmp))
        db_url = pg.start()
        migrate(db_url)
        cpu_before = cpu_split(pg, base)
        calls, seconds, fetched = asyncio.run(ours(url, db_url))
        time.sleep(0.5)  # the server reaps the sync's closed backends: their CPU is counted then
        cpu = {part: spent - cpu_before[part] for part, spent in cpu_split(pg, base).items()}
        min_calls, bound = lower_bound(
            args.deals, cost.base, args.per_record_ms / 1000, args.latency_ms / 1000
        )
        print(
            f"b24sync full sync: {fetched} deals, {calls} API calls (target <= {1.05 * math.ceil(args.deals / 2500) + 5:.0f}), "
            f"{seconds:.1f} s, {fetched / seconds:.0f} records/s"
        )
        print(
            f"theoretical lower bound: {min_calls} calls, {bound:.1f} s; ratio {seconds / bound:.2f}"
        )
        total_cpu, cores = sum(cpu.values()), os.cpu_count() or 1
        print(
            "CPU: "
            + ", ".join(f"{part} {spent:.1f} s" for part, spent in cpu.items())
            + f"; {total_cpu:.1f} s in all, {total_cpu / cores:.1f} s on {cores} cores "
            f"(the wall cannot go below it here; wall / it {seconds / (total_cpu / cores):.2f})"
        )
        stats = httpx.get(base + "/_emulator/stats").json()
        print(
            f"portal: {stats['http_calls']} HTTP calls served, {stats['rate_limited']} "
            f"QUERY_LIMIT_EXCEEDED, {stats['operation_limited']} OPERATION_TIME_LIMIT"
        )

        httpx.post(base + "/_emulator/reset")
        httpx.post(base + "/_emulator/seed", json={"deal": args.fast_bitrix24_deals}, timeout=120)
        _, fb_seconds, fb_count = fast_bitrix24(url)
        fb_calls = httpx.get(base + "/_emulator/stats").json()["http_calls"]
        print(
            f"fast_bitrix24 get_all: {fb_count} deals, {fb_calls} API calls, {fb_seconds:.1f} s, "
            f"{fb_count / fb_seconds:.0f} records/s"
        )
        print(
            f"per-record time, ours / fast_bitrix24: {(seconds / fetched) / (fb_seconds / fb_count):.2f}"
        )
        inserted, _, _ = asyncio.run(loader_rows_per_second(db_url, MIXES["plain"], 50000))
        print(f"loader alone, 100-column table: {inserted} (bench/loader_bench.py)")
        pg.stop()


if __name__ == "__main__":
    main()
