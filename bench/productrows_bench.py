"""Product rows of a whole portal (the ``deal_productrow`` stream) on b24emu with the real limits:
``crm.item.productrow.list`` takes one deal per command, so a full sync is one batch call per 50
deals plus the deals' IDs (a probe and one call per 2,500). Then an incremental run after
``--edited`` deals changed, which reads the rows of those deals only.

    .venv/bin/python bench/productrows_bench.py --deals 100000
    .venv/bin/python bench/productrows_bench.py --deals 5000 --rate 0   # no rate limit
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from b24sync.bitrix.auth import WebhookAuth
from b24sync.bitrix.client import BitrixClient
from b24sync.bitrix.limiter import BucketRule
from b24sync.config import WebhookUrl
from b24sync.store.embedded import EmbeddedPostgres
from b24sync.store.migrate import migrate
from b24sync.store.rate_bucket import SharedBucket
from b24sync.streams import STREAMS
from b24sync.sync.engine import SyncEngine, SyncSummary
from b24sync.sync.per_parent import predicted_full_calls
from emulator_process import emulator_process


async def measure(url: str, db_url: str, rate: float, deals: int, edited: int) -> list[SyncSummary]:
    webhook = WebhookUrl.parse(url)
    rule = BucketRule(rate=rate, burst=50) if rate > 0 else BucketRule(rate=10000, burst=10000)
    bucket = SharedBucket(db_url, webhook.portal, rule)
    base = url.split("/rest/")[0]
    stream = STREAMS["deal_productrow"]
    try:
        async with httpx.AsyncClient(timeout=120) as http:
            engine = SyncEngine(BitrixClient(http, WebhookAuth(webhook), limiter=bucket), db_url)
            full = await engine.full(stream)
            await http.post(base + "/_emulator/clock", json={"advance_seconds": 600})
            step = max(1, deals // max(edited, 1))
            for deal in range(1, deals + 1, step)[:edited]:  # in the portal's UI: no REST calls
                await http.patch(f"{base}/_emulator/records/deal/{deal}", json={"TITLE": "x"})
            incremental = await engine.incremental(stream)
            return [full, incremental]
    finally:
        await bucket.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deals", type=int, default=100000)
    parser.add_argument(
        "--edited", type=int, default=100, help="deals changed before the incremental"
    )
    parser.add_argument("--rate", type=float, default=2.0, help="requests/s; 0: unlimited")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per HTTP call")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        emulator_process(
            deals=args.deals,
            latency_ms=args.latency_ms,
            per_record_ms=0.2,
            rate=args.rate if args.rate > 0 else 0,
        ) as url,
    ):
        pg = EmbeddedPostgres(Path(tmp))
        db_url = pg.start()
        migrate(db_url)
        started = time.perf_counter()
        full, incremental = asyncio.run(measure(url, db_url, args.rate, args.deals, args.edited))
        assert full.status == incremental.status == "success", (full.error, incremental.error)
        print(
            f"full: {args.deals} deals, {full.fetched} product rows, {full.api_calls} API calls "
            f"(predicted {predicted_full_calls(args.deals)}), {full.seconds:.1f} s"
        )
        print(
            f"incremental after {args.edited} deals changed: {incremental.fetched} product rows, "
            f"{incremental.api_calls} API calls, {incremental.seconds:.1f} s"
        )
        print(
            f"rate {args.rate or 'unlimited'} requests/s; wall {time.perf_counter() - started:.0f} s"
        )
        pg.stop()


if __name__ == "__main__":
    main()
