"""A full sync of every stream of the demo CRM (the `run` command's portal, smart processes
included) on b24emu over real sockets with the portal's limits on: the calls each stream spent
against its minimum from the record counts, and the totals.

Minimum per kind: an object or item stream needs its fields, the probe (first page and highest
ID) and one batch call per 2,500 records; a reference list one call, or one per 2,500 records
when it is paged; a link stream the probe and one batch call per 2,500 parents; a per-parent
child stream (product rows) what ``predicted_full_calls`` says for its parent's records; a log
(stage history) the probe and one batch call per 2,500 rows.

    .venv/bin/python bench/crm_bench.py
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from pathlib import Path

import httpx
from psycopg import AsyncConnection

from b24emu.app import create_app
from b24emu.server import build_emulator, serving, webhook_url
from b24sync.bitrix.auth import WebhookAuth
from b24sync.bitrix.client import BitrixClient
from b24sync.bitrix.limiter import BucketRule
from b24sync.cli import DEMO_COUNTS
from b24sync.config import WebhookUrl
from b24sync.store.database import libpq_url
from b24sync.store.embedded import EmbeddedPostgres
from b24sync.store.migrate import migrate
from b24sync.store.rate_bucket import SharedBucket
from b24sync.streams import STREAMS, Kind, Stream
from b24sync.sync import discovery
from b24sync.sync.engine import SyncEngine, SyncSummary
from b24sync.sync.per_parent import predicted_full_calls

PER_CALL = 2500  # 50 commands of 50 records


def minimum(stream: Stream, summary: SyncSummary, fetched: dict[str, int]) -> int | None:
    """``fetched``: the records each stream synced before this one (its parent's among them)."""
    n = summary.fetched
    if stream.kind in (Kind.OBJECT, Kind.ITEM):
        return 2 + math.ceil(n / PER_CALL)
    if stream.kind is Kind.REFERENCE:
        return max(1, math.ceil(n / PER_CALL))
    if stream.kind is Kind.CHILD and stream.owner_key:
        return predicted_full_calls(fetched[stream.parent or ""])
    if stream.kind in (Kind.CHILD, Kind.LOG):
        return 1 + math.ceil(n / PER_CALL)
    return None  # a kind this benchmark has no rule for yet


async def bench(url: str, db_url: str) -> None:
    webhook = WebhookUrl.parse(url)
    bucket = SharedBucket(db_url, webhook.portal, BucketRule(rate=2, burst=50))
    try:
        async with httpx.AsyncClient(timeout=120) as http:
            client = BitrixClient(http, WebhookAuth(webhook), limiter=bucket)
            started = time.perf_counter()
            async with await AsyncConnection.connect(libpq_url(db_url), autocommit=True) as conn:
                streams = await discovery.discover(client, conn)
            print(f"discovery: crm.type.list, 1 call: {', '.join(s.name for s in streams)}")
            spent, floor, unknown = 1, 1, []
            print(f"{'stream':<26}{'kind':<11}{'records':>9}{'calls':>7}{'minimum':>9}")
            engine = SyncEngine(client, db_url)
            fetched: dict[str, int] = {}
            for stream in STREAMS.live():
                summary = await engine.full(stream)
                assert summary.status == "success", (stream.name, summary.error)
                least = minimum(stream, summary, fetched)
                fetched[stream.name] = summary.fetched
                spent += summary.api_calls
                if least is None:
                    unknown.append(stream.name)
                else:
                    floor += least
                print(
                    f"{stream.name:<26}{stream.kind:<11}{summary.fetched:>9,}"
                    f"{summary.api_calls:>7}{least if least is not None else '?':>9}"
                )
            print(
                f"total: {spent} calls, minimum {floor}"
                + (f" (+ {', '.join(unknown)}, no rule)" if unknown else "")
                + f", {time.perf_counter() - started:.1f} s"
            )
    finally:
        await bucket.close()


def main() -> None:
    emu = build_emulator(counts=DEMO_COUNTS, rate=2, burst=50, latency_ms=0)
    data = Path(tempfile.mkdtemp(prefix="b24sync-bench-"))
    server = EmbeddedPostgres(data)
    db_url = server.start()
    try:
        migrate(db_url)
        with serving(create_app(emu)) as base:
            port = int(base.rsplit(":", 1)[1])
            asyncio.run(bench(webhook_url(emu, "127.0.0.1", port), db_url))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
