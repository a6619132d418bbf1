"""b24emu's own speed: seeding time and list throughput served over HTTP with limits off.

The emulator must never be the bottleneck of the sync benchmarks (target >= 20k records/s).

    .venv/bin/python bench/emulator_bench.py --deals 100000
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from b24emu import Emulator, create_app, seed_portal
from b24emu.server import serving


async def served_records_per_second(
    base: str, token: str, deals: int, batches: int
) -> tuple[int, float]:
    url = f"{base}/rest/1/{token}/batch"
    records = 0
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as http:
        for n in range(batches):
            first = (n * 2500) % max(deals - 2500, 1)
            cmd = {
                f"p{i}": f"crm.deal.list?start=-1&order[ID]=ASC&filter[>ID]={first + i * 50}"
                f"&filter[<=ID]={first + (i + 1) * 50}"
                for i in range(50)
            }
            body = (await http.post(url, json={"cmd": cmd})).json()
            records += sum(len(page) for page in body["result"]["result"].values())
    return records, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deals", type=int, default=100000)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    emu = Emulator(webhook_token="benchtoken")
    started = time.perf_counter()
    seed_portal(emu.portal, {"deal": args.deals})
    print(f"seeded {args.deals} deals in {time.perf_counter() - started:.2f} s")
    with serving(create_app(emu)) as base:
        records, seconds = asyncio.run(
            served_records_per_second(base, "benchtoken", args.deals, args.batches)
        )
    print(
        f"served {records} records in {args.batches} batch calls over HTTP: {seconds:.2f} s, "
        f"{records / seconds:.0f} records/s (client and emulator share one process)"
    )


if __name__ == "__main__":
    main()
