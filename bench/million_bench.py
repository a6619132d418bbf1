"""A million deals end to end: `b24sync sync deal --full` as its own process against b24emu in
another, with the cloud's limits on (2 req/s, burst 50, 480 s of operating time per method in
any 10 minutes, server time per call and per record).

Prints the sync's wall time, API calls, peak RSS (the child's rusage), the emulator's count of
refused calls (QUERY_LIMIT_EXCEEDED, OPERATION_TIME_LIMIT), the rows in PostgreSQL, and the
bound the portal's limits allow for the same work.

    .venv/bin/python bench/million_bench.py --deals 1000000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from b24emu.limits import CostModel, OperatingBudget
from b24sync.bitrix.export import CALLS_IN_FLIGHT
from b24sync.store.embedded import EmbeddedPostgres
from b24sync.store.migrate import migrate
from emulator_process import emulator_process
from sync_bench import lower_bound

RATE, BURST = 2.0, 50


@dataclass(frozen=True)
class PortalBound:
    """The least wall time the portal's rules allow for a full export of ``n`` records."""

    calls: int
    bucket: float  # the request bucket: `burst` at once, then `rate` a second
    operating: float  # the method's operating time: `budget` in any `window`
    serving: float  # the server time of the calls, CALLS_IN_FLIGHT at a time

    @classmethod
    def of(cls, n: int, cost: CostModel, latency: float) -> PortalBound:
        calls, serial = lower_bound(n, cost.base, cost.per_record, latency)
        budget = OperatingBudget()
        spent = math.ceil(n / 50) * cost.base + n * cost.per_record
        return cls(
            calls=calls,
            bucket=max(0, calls - BURST) / RATE,
            operating=max(0, math.ceil(spent / budget.budget) - 1) * budget.window,
            serving=serial / CALLS_IN_FLIGHT,
        )

    @property
    def seconds(self) -> float:
        return max(self.bucket, self.operating, self.serving)


def run_sync(url: str, db_url: str) -> tuple[dict[str, object], float, int]:
    """The summary line, wall seconds and peak RSS (bytes) of a `sync deal --full` process."""
    env = {
        **os.environ,
        "BITRIX_WEBHOOK_URL": url,
        "DATABASE_URL": db_url,
        "BITRIX_RATE": str(RATE),
        "BITRIX_BURST": str(BURST),
    }
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "b24sync.cli", "sync", "deal", "--full", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in output.splitlines() if line.startswith("{")]
    summary = json.loads(lines[-1]) if lines else {"status": f"exit {proc.returncode}"}
    return summary, seconds, usage.ru_maxrss * 1024  # Linux reports kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per HTTP call")
    parser.add_argument(
        "--per-record-ms", type=float, default=0.2, help="server time per returned record"
    )
    args = parser.parse_args()
    cost = CostModel(per_record=args.per_record_ms / 1000)
    bound = PortalBound.of(args.deals, cost, args.latency_ms / 1000)
    seeding = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        emulator_process(
            deals=args.deals, latency_ms=args.latency_ms, per_record_ms=args.per_record_ms
        ) as url,
    ):
        print(f"b24emu seeded {args.deals} deals in {time.perf_counter() - seeding:.0f} s")
        base = url.split("/rest/")[0]
        pg = EmbeddedPostgres(Path(tmp))
        db_url = pg.start()
        migrate(db_url)
        summary, seconds, peak_rss = run_sync(url, db_url)
        stats = httpx.get(base + "/_emulator/stats").json()
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT count(*) FROM bitrix24.crm_deal").fetchone()
        pg.stop()
    rows = row[0] if row else 0
    print(
        f"b24sync sync deal --full: {summary.get('status')}, {summary.get('fetched')} deals, "
        f"{summary.get('api_calls')} API calls (minimum {bound.calls}), {seconds:.1f} s wall, "
        f"{args.deals / seconds:.0f} records/s, peak RSS {peak_rss / 2**20:.0f} MB"
    )
    print(
        f"portal: {stats['http_calls']} HTTP calls served, {stats['rate_limited']} "
        f"QUERY_LIMIT_EXCEEDED, {stats['operation_limited']} OPERATION_TIME_LIMIT"
    )
    print(f"rows in bitrix24.crm_deal: {rows} ({'exact' if rows == args.deals else 'WRONG'})")
    print(
        f"bound of the portal's limits: {bound.seconds:.1f} s (request bucket {bound.bucket:.1f} s, "
        f"operating time {bound.operating:.1f} s, server time at {CALLS_IN_FLIGHT} calls in "
        f"flight {bound.serving:.1f} s); wall / bound {seconds / bound.seconds:.2f}"
    )


if __name__ == "__main__":
    main()
