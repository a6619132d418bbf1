"""Deal ↔ contact links of a whole portal, two documented ways, on b24emu with the real limits:

- ours: ``crm.item.list`` (entityTypeId 2, ``id`` + ``contactIds``) by ID ranges, 50 deals a
  command, 50 commands a call: the ``deal_contact`` stream;
- ``crm.deal.contact.items.get``: one deal per command, 50 commands a call (the per-deal method
  the deal's docs point to). It is run on ``--sample-deals`` deals and projected to all of them,
  since at 2 requests/s the whole portal would take ``deals / 50 / 2`` seconds.

    .venv/bin/python bench/links_bench.py --deals 100000 --contacts 30000
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from pathlib import Path

import httpx

from b24sync.bitrix.auth import WebhookAuth
from b24sync.bitrix.client import BitrixClient
from b24sync.bitrix.encoding import encode_params
from b24sync.bitrix.limiter import BucketRule
from b24sync.config import WebhookUrl
from b24sync.store.embedded import EmbeddedPostgres
from b24sync.store.migrate import migrate
from b24sync.store.rate_bucket import SharedBucket
from b24sync.streams import STREAMS
from b24sync.sync.engine import SyncEngine
from emulator_process import emulator_process


async def with_client(url: str, db_url: str, use):  # type: ignore[no-untyped-def]
    webhook = WebhookUrl.parse(url)
    bucket = SharedBucket(db_url, webhook.portal, BucketRule(rate=2, burst=50))
    try:
        async with httpx.AsyncClient(timeout=120) as http:
            return await use(BitrixClient(http, WebhookAuth(webhook), limiter=bucket))
    finally:
        await bucket.close()


async def ours(url: str, db_url: str) -> tuple[int, float, int, int]:
    async def run(client: BitrixClient) -> tuple[int, float, int, int]:
        started = time.perf_counter()
        summary = await SyncEngine(client, db_url).full(STREAMS["deal_contact"])
        assert summary.status == "success", summary.error
        return summary.api_calls, time.perf_counter() - started, summary.fetched, summary.upserted

    return await with_client(url, db_url, run)  # type: ignore[no-any-return]


async def per_deal(url: str, db_url: str, deals: int) -> tuple[int, float, int]:
    async def run(client: BitrixClient) -> tuple[int, float, int]:
        started = time.perf_counter()
        links = 0
        for first in range(1, deals + 1, 50):
            batch = await client.batch(
                {
                    f"d{i}": "crm.deal.contact.items.get?" + encode_params({"id": i})
                    for i in range(first, min(first + 50, deals + 1))
                }
            )
            links += sum(len(r or []) for r in batch.result.values())
        return client.counters.http_calls, time.perf_counter() - started, links

    return await with_client(url, db_url, run)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deals", type=int, default=100000)
    parser.add_argument("--contacts", type=int, default=30000)
    parser.add_argument("--sample-deals", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per HTTP call")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        emulator_process(
            deals=args.deals,
            contacts=args.contacts,
            latency_ms=args.latency_ms,
            per_record_ms=0.2,
        ) as url,
    ):
        pg = EmbeddedPostgres(Path(tmp))
        db_url = pg.start()
        migrate(db_url)
        calls, seconds, parents, links = asyncio.run(ours(url, db_url))
        minimum = 1 + math.ceil(args.deals / 2500)
        print(
            f"crm.item.list (deal_contact stream): {parents} deals, {links} links, {calls} API "
            f"calls (minimum {minimum}: probe + one per 2,500 deals), {seconds:.1f} s"
        )
        sample_calls, sample_seconds, sample_links = asyncio.run(
            per_deal(url, db_url, args.sample_deals)
        )
        projected_calls = math.ceil(args.deals / 50)
        # at least what the portal's bucket allows (2 a second after a burst of 50)
        projected_seconds = max(
            sample_seconds * projected_calls / max(sample_calls, 1), (projected_calls - 50) / 2
        )
        print(
            f"crm.deal.contact.items.get: {args.sample_deals} deals, {sample_links} links, "
            f"{sample_calls} API calls, {sample_seconds:.1f} s; for {args.deals} deals: "
            f"{projected_calls} calls, about {projected_seconds:.0f} s"
        )
        print(
            f"chosen: crm.item.list, {projected_calls / calls:.0f}x fewer calls "
            f"and {projected_seconds / seconds:.0f}x less time"
        )
        pg.stop()


if __name__ == "__main__":
    main()
