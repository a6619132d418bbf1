"""Event-to-row latency: portal edits -> outbound webhook -> `b24sync serve` -> PostgreSQL row.

b24emu runs in its own process with the portal's limits on (2 req/s, burst 50); `b24sync serve`
in another, on an embedded PostgreSQL, with every other stream off (``--children``: the deal's
contacts and product rows on too). After a first full sync, people "edit" deals
in the portal's UI (the emulator's control API: no REST spent) at --rate edits per second,
each a different deal; the portal POSTs an ONCRMDEALUPDATE per edit to the service
(``--stream item_1032``: the items of a demo smart process, ONCRMDYNAMICITEMUPDATE; ``--stream
activity``: activities, their subject). Latency of
one edit = the row's `_synced_at` (set when the fetched record is written) - the edit's time.
Prints p50/p95/max, the API calls the service spent applying the events, the share of the
portal's request budget that used, and how long a by-ids run took and how far apart they began
(at EVENTS_BUDGET_SHARE 0.5 of 2 req/s, a call a second: an event waits up to that second).

    .venv/bin/python bench/event_latency.py --rate 100 --seconds 20
    .venv/bin/python bench/event_latency.py --rate 20 --seconds 10 --children
    .venv/bin/python bench/event_latency.py --rate 100 --seconds 20 --stream item_1032
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from b24emu.seed import SMART_PROCESSES
from b24emu.server import free_port
from b24sync.store.embedded import EmbeddedPostgres
from b24sync.store.migrate import migrate
from b24sync.streams import STREAMS, children_of
from b24sync.streams.kinds import smart_process_streams
from b24sync.streams.model import SmartProcess
from emulator_process import emulator_process

API_KEY = secrets.token_urlsafe(24)
APPLICATION_TOKEN = secrets.token_hex(16)


@dataclass(frozen=True)
class Plan:
    rate: float
    burst: int


PLANS = {"standard": Plan(2, 50), "enterprise": Plan(5, 250)}  # limits.md
SMART_PROCESS_ITEMS = 5000  # of each demo smart process, when a smart process is measured


@dataclass(frozen=True)
class Target:
    """What is edited: a stream, its records in the emulator, its table, its update event, and
    the text field an edit changes."""

    stream: str
    store: str
    table: str
    event: str
    text_field: str = "TITLE"

    @property
    def children(self) -> list[str]:
        """Its child streams (links, product rows), as declared."""
        known = STREAMS.get(self.stream)
        return [child.name for child in children_of(known)] if known else []

    @classmethod
    def of(cls, stream: str) -> Target:
        if stream.startswith("item_"):  # a demo smart process, e.g. item_1032
            type_id = stream.removeprefix("item_")
            return cls(
                stream, f"dynamic_{type_id}", f"crm_item_{type_id}", "ONCRMDYNAMICITEMUPDATE"
            )
        text_field = "SUBJECT" if stream == "activity" else "TITLE"
        return cls(stream, stream, f"crm_{stream}", f"ONCRM{stream.upper()}UPDATE", text_field)


def start_service(
    db_url: str, webhook: str, data_dir: Path, port: int, plan: Plan
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "BITRIX_WEBHOOK_URL": webhook,
        "API_KEYS": API_KEY,
        "BITRIX_APPLICATION_TOKEN": APPLICATION_TOKEN,
        "BITRIX_RATE": str(plan.rate),
        "BITRIX_BURST": str(plan.burst),
        "B24SYNC_DATA_DIR": str(data_dir),
        "SYNC_DEFAULT_INTERVAL_MINUTES": "1440",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "b24sync.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the service did not become healthy")


def only_these_streams(db_url: str, streams: list[str]) -> None:
    """Every other stream switched off before the service starts: a sync of something else
    (the first scheduler tick queues every stream never synced, product rows included: a call
    per 50 deals) would spend the request budget the events are measured against."""
    demo = [  # every stream a demo smart process can have: items, stage history, product rows
        stream.name
        for p in SMART_PROCESSES
        for stream in smart_process_streams(
            SmartProcess(p.entity_type_id, p.title, has_stages=True, links_products=True)
        )
    ]
    others = [name for name in [*STREAMS, *demo] if name not in streams]
    with psycopg.connect(db_url) as conn:
        for name in others:
            conn.execute(
                "INSERT INTO b24sync.sync_config (entity, enabled) VALUES (%s, false)", (name,)
            )


def full_sync(api: httpx.Client, stream: str) -> None:
    started = api.post(f"/api/v1/sync/start/{stream}", json={"sync_type": "full"})
    if started.status_code == 409:  # the scheduler's first tick queued it already
        runs = api.get("/api/v1/sync/runs", params={"entity": stream}).json()["runs"]
        run_id = runs[0]["id"]
    else:
        run_id = started.json()["run_id"]
    while True:
        runs = api.get("/api/v1/sync/runs", params={"entity": stream}).json()["runs"]
        run = next(r for r in runs if r["id"] == run_id)
        if run["status"] not in ("queued", "running"):
            if run["status"] != "success":
                raise SystemExit(f"first full sync ended {run['status']}: {run['error']}")
            return
        time.sleep(0.5)


async def edit_records(target: Target, base: str, rate: float, count: int) -> dict[int, float]:
    """Edit records 1..count at ``rate`` per second; returns record id -> wall time of the edit."""
    sent: dict[int, float] = {}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def edit(record_id: int) -> None:
            sent[record_id] = time.time()
            response = await client.patch(
                f"/_emulator/records/{target.store}/{record_id}",
                json={target.text_field: f"edited {record_id}"},
            )
            response.raise_for_status()

        started = time.perf_counter()
        tasks = []
        for index in range(count):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(edit(index + 1)))
        await asyncio.gather(*tasks)
    return sent


def synced_times(db_url: str, target: Target, count: int) -> dict[int, datetime]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT id, _synced_at FROM {} WHERE id <= %s AND {} = 'edited ' || id").format(
                sql.Identifier("bitrix24", target.table), sql.Identifier(target.text_field.lower())
            ),
            (count,),
        ).fetchall()
    return {int(r[0]): r[1] for r in rows}


@dataclass(frozen=True)
class Applied:
    runs: int
    calls: int
    seconds_per_run: float  # a by-ids run's own time: claim, fetch, load
    seconds_between: float  # from one run's start to the next: the pace, or the run itself


def by_ids_runs(db_url: str, since: datetime | None = None) -> Applied:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(api_calls), 0), "
            "coalesce(avg(extract(epoch FROM finished_at - started_at)), 0), "
            "coalesce(extract(epoch FROM max(started_at) - min(started_at)) "
            "/ nullif(count(*) - 1, 0), 0) "
            "FROM b24sync.sync_runs WHERE sync_type = 'by_ids' AND started_at >= %s",
            (since or datetime.fromtimestamp(0, UTC),),
        ).fetchone()
    assert row is not None
    return Applied(int(row[0]), int(row[1]), float(row[2]), float(row[3]))


def other_runs(db_url: str, since: datetime) -> list[str]:
    """The syncs that spent calls beside the events' (they share the portal's budget)."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT entity, sync_type, api_calls FROM b24sync.sync_runs "
            "WHERE sync_type <> 'by_ids' AND coalesce(finished_at, now()) >= %s ORDER BY id",
            (since,),
        ).fetchall()
    return [f"{entity} {mode} ({calls} calls)" for entity, mode, calls in rows]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=100.0, help="edits (events) per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to keep editing")
    parser.add_argument("--deals", type=int, default=5000, help="deals in the portal")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per portal HTTP call")
    parser.add_argument(
        "--stream",
        default="deal",
        help="deal, activity, or a demo smart process: item_1032, item_1036",
    )
    parser.add_argument(
        "--children",
        action="store_true",
        help="keep the stream's children on (a deal's contacts and product rows): they ride "
        "in the same calls as the records",
    )
    parser.add_argument(
        "--plan",
        choices=list(PLANS),
        default="standard",
        help="the portal's request limit: standard 2 req/s (burst 50), enterprise 5 (250)",
    )
    args = parser.parse_args()
    plan = PLANS[args.plan]
    target = Target.of(args.stream)
    count = int(args.rate * args.seconds)
    records = SMART_PROCESS_ITEMS if target.stream.startswith("item_") else args.deals
    if count > records:
        raise SystemExit(f"--rate x --seconds must not exceed {records} (one edit per record)")

    with (
        tempfile.TemporaryDirectory() as tmp,
        emulator_process(
            deals=args.deals,
            latency_ms=args.latency_ms,
            rate=plan.rate,
            burst=plan.burst,
            per_record_ms=0.2,
            items=0 if target.stream == "deal" else SMART_PROCESS_ITEMS,
        ) as url,
    ):
        emulator_base = url.split("/rest/")[0]
        pg = EmbeddedPostgres(Path(tmp))
        db_url = pg.start()
        migrate(db_url)
        streams = [target.stream, *target.children] if args.children else [target.stream]
        only_these_streams(db_url, streams)
        port = free_port()
        service = start_service(db_url, url, Path(tmp), port, plan)
        try:
            api = httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=30,
            )
            for stream in streams:
                full_sync(api, stream)
            httpx.post(
                emulator_base + "/_emulator/outbound-webhooks",
                json={
                    "handler": f"http://127.0.0.1:{port}/api/v1/webhooks/bitrix",
                    "application_token": APPLICATION_TOKEN,
                    "events": [target.event],
                },
            ).raise_for_status()
            editing_started = time.time()
            sent = asyncio.run(edit_records(target, emulator_base, args.rate, count))
            deadline = time.time() + 120
            synced = synced_times(db_url, target, count)
            while len(synced) < count and time.time() < deadline:
                time.sleep(0.2)
                synced = synced_times(db_url, target, count)
            window = time.time() - editing_started
            applied = by_ids_runs(db_url, datetime.fromtimestamp(editing_started, UTC))
            others = other_runs(db_url, datetime.fromtimestamp(editing_started, UTC))
        finally:
            service.terminate()
            service.wait(timeout=30)
            pg.stop()

    latencies = [(synced[i].timestamp() - sent[i]) for i in synced]
    calls = applied.calls
    print(
        f"{count} edits at {args.rate:g}/s over {args.seconds:g} s; "
        f"{len(synced)} rows caught up ({count - len(synced)} missing)"
    )
    if latencies:
        print(
            f"event-to-row latency: p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms, "
            f"max {max(latencies) * 1000:.0f} ms"
        )
    print(
        f"applied in {applied.runs} by-ids runs, {calls} API calls "
        f"({calls / window:.2f} calls/s of the portal's {plan.rate:g}/s; fewest possible for the data: "
        f"{-(-count // 2500)} list calls)"
    )
    print(f"other syncs meanwhile: {', '.join(others) or 'none'}")
    print(
        f"a by-ids run took {applied.seconds_per_run * 1000:.0f} ms on average; "
        f"runs started {applied.seconds_between * 1000:.0f} ms apart"
    )


if __name__ == "__main__":
    main()
