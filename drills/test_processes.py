"""Several processes at once, and processes that die: concurrent starts, workers killed mid-sync,
a sync killed near its end, a second portal pointed at the same database."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

import httpx

from b24sync.errors import SyncAlreadyRunning
from b24sync.service import SyncService
from b24sync.streams import STREAMS, Kind, streams_of
from drills.harness import (
    Drill,
    Processes,
    api,
    drill_env,
    event_jobs,
    finished_runs,
    inbox,
    portal,
    reconcile,
    run_log,
    scalar,
    sync_lock_holder,
    synced_service,
    wait_until,
    with_service,
)

KILLS = 10


def test_ten_concurrent_sync_starts(drill: Drill, database_url: str, processes: Processes) -> None:
    """Ten POST /api/v1/sync/start/deal at the same moment: one run, the rest 409 or skipped."""
    with portal({"deal": 3000}) as p:
        _, base = synced_service(processes, database_url, p)
        with api(base) as client:  # no scheduled run in the way: the ten starts are the test
            client.put("/api/v1/sync/config", json={"deal": {"enabled": False}}).raise_for_status()
        wait_until(finished_runs(database_url, "deal", 1), "the scheduled runs end", 60)
        scheduled = [r["sync_type"] + " " + r["status"] for r in run_log(database_url, "deal")]
        runs_before = len(scheduled)
        for record_id in range(1, 301):
            p.edit("deal", record_id, {"TITLE": f"before the starts {record_id}"})
        # Applying these events holds the deal sync lock, and a start meanwhile is refused too.
        wait_until(
            lambda: (
                inbox(database_url) == (300, 0) and sync_lock_holder(database_url, "deal") is None
            ),
            "the edits' events applied",
            60,
        )
        p.faults(latency_ms=300)  # the accepted run is still going when the others arrive
        gate = threading.Barrier(10)

        def start(client: httpx.Client) -> httpx.Response:
            gate.wait()
            return client.post("/api/v1/sync/start/deal", json={"sync_type": "full"})

        with api(base) as client, ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(start, [client] * 10))
        codes = sorted(a.status_code for a in answers)
        assert set(codes) <= {202, 409}, [a.text for a in answers]
        accepted = {a.json()["run_id"] for a in answers if a.status_code == 202}
        wait_until(finished_runs(database_url, "deal", runs_before + len(accepted)), "runs end", 60)
        p.faults(latency_ms=0)
        outcome = {
            r["id"]: r["status"] for r in run_log(database_url, "deal") if r["id"] in accepted
        }
        assert sorted(outcome.values()).count("success") == 1, (outcome, [a.text for a in answers])
        assert set(outcome.values()) <= {"success", "skipped"}, outcome
        drill.verdict(
            database_url,
            p,
            answers=" ".join(map(str, codes)),
            runs=" ".join(sorted(outcome.values())),
            scheduled_before=", ".join(scheduled),
        )


def test_worker_killed_at_ten_points_of_a_full_sync(
    drill: Drill, database_url: str, processes: Processes
) -> None:
    """Two `b24sync worker` processes share the queue; ten times, at a random moment of a full
    sync, one of them gets kill -9 (four times the one running the sync) and is started again.
    The workers finish the job by themselves and the mirror equals the portal."""
    rng = random.Random(10)
    holder_kills = set(rng.sample(range(KILLS), 4))
    with portal({"deal": 20000}, latency_ms=150) as p:
        env = drill_env(database_url, p)
        with_service(database_url, p, _schedules_off)  # only the syncs this drill asks for
        workers = {
            name: processes.start("worker", env=env | {"PGAPPNAME": name})
            for name in ("drill-worker-a", "drill-worker-b")
        }
        requested: list[int] = []
        kinds: list[str] = []

        def sync_under_way() -> bool:
            """A worker holds the deal sync; another full sync is asked for once one ends."""
            if not _deal_sync_pending(database_url):
                with suppress(SyncAlreadyRunning):
                    requested.append(with_service(database_url, p, _full_deal_sync))
            return sync_lock_holder(database_url, "deal") is not None

        for kill in range(KILLS):
            wait_until(sync_under_way, "a worker running the deal sync", 90, 0.05)
            time.sleep(rng.uniform(0.2, 2.0))
            holder = sync_lock_holder(database_url, "deal")
            if kill in holder_kills and holder is not None:
                victim, kinds = holder, [*kinds, "holder"]
            else:
                victim = next(n for n in workers if n != holder)
                kinds.append("bystander")
            processes.kill9(workers[victim])
            workers[victim] = processes.restart(workers[victim])
        wait_until(
            lambda: (
                not _deal_sync_pending(database_url)
                and run_log(database_url, "deal")[-1]["status"] == "success"
            ),
            "the workers finish the deal sync by themselves",
            180,
            0.5,
        )
        statuses = [r["status"] for r in run_log(database_url, "deal")]
        drill.verdict(
            database_url,
            p,
            kills=f"{kinds.count('holder')} of the sync's worker, {kinds.count('bystander')} of the other",
            requested_runs=len(requested),
            run_log=" ".join(statuses),
        )


async def _schedules_off(service: SyncService) -> None:
    await service.update_schedules({name: {"enabled": False} for name in STREAMS})


async def _full_deal_sync(service: SyncService) -> int:
    return await service.request_sync("deal", "full")


def _deal_sync_pending(database_url: str) -> bool:
    """A deal sync job waiting or running in the queue."""
    waiting = scalar(
        database_url,
        "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'sync_entity' "
        "AND status IN ('todo', 'doing')",
    )
    return int(waiting) > 0


def test_sync_killed_at_ninety_percent_then_resumed(
    drill: Drill, database_url: str, processes: Processes
) -> None:
    """`sync deal --full` gets kill -9 at ~90 % of 50,000 deals; deals are deleted on the
    portal; the rerun resumes for fewer API calls than a fresh full run and marks the deletions
    in the part it reads. Deletions in the part read before the kill are what any full run
    misses when a record goes after its range was read: the reconcile (daily, or an event)
    marks them, and it is run here."""
    total = 50000
    with portal({"deal": total}) as p:
        env = drill_env(database_url, p)
        fresh = processes.sync("deal", "full", env=env, timeout=180).summary()
        assert fresh["status"] == "success", fresh
        p.faults(latency_ms=300)
        run = processes.start("sync", "deal", "--full", "--json", env=env)

        def fetched() -> int:  # by the killed run, not by the fresh one before it
            log = run_log(database_url, "deal")
            return int(log[-1]["fetched"] or 0) if len(log) > 1 else 0

        wait_until(
            lambda: fetched() >= 0.9 * total or not run.running(),
            "90 % fetched",
            180,
            0.02,
        )
        assert run.running(), "the run ended before the kill: " + run.output()[-2000:]
        processes.kill9(run)
        killed_at = fetched()
        p.faults(latency_ms=0)
        checkpoint = scalar(
            database_url,
            "SELECT (full_checkpoint->>'last_id')::bigint FROM b24sync.sync_state WHERE entity = 'deal'",
        )
        assert checkpoint, "no resume checkpoint after the kill"
        below = random.Random(3).sample(range(1, int(checkpoint)), 300)
        above = list(range(int(checkpoint) + 1, min(int(checkpoint) + 31, total + 1)))
        p.delete("deal", below + above)
        resumed = processes.sync("deal", "full", env=env, timeout=180).summary()
        assert resumed["status"] == "success", resumed
        assert resumed["api_calls"] < fresh["api_calls"], (resumed, fresh)
        assert resumed["deleted"] >= len(above), resumed
        checked = reconcile(database_url, p, "deal")
        assert checked.status == "success" and checked.deleted == len(below), checked
        drill.verdict(
            database_url,
            p,
            killed_at=f"{killed_at} fetched",
            deleted_before_resume=len(below) + len(above),
            fresh_full_calls=fresh["api_calls"],
            resumed_calls=resumed["api_calls"],
            resumed_deleted=resumed["deleted"],
            reconcile_deleted=checked.deleted,
            reconcile_calls=checked.api_calls,
        )


def test_second_portal_on_the_same_database(
    drill: Drill, database_url: str, processes: Processes
) -> None:
    """A database mirrors one portal: `sync` and `serve` configured with another portal are
    refused ("already mirrors") and nothing of the second portal lands in the mirror."""
    with portal({"deal": 300}) as first, portal({"deal": 500}) as second:
        for record_id in range(1, 501):
            second.edit("deal", record_id, {"TITLE": f"the other portal {record_id}"})
        for stream in streams_of(Kind.OBJECT):  # the seed hangs activities off the deals
            synced = processes.sync(stream.name, "full", env=drill_env(database_url, first))
            assert synced.summary()["status"] == "success", stream.name
        other = drill_env(database_url, second)
        refused = processes.sync("deal", "full", env=other)
        assert refused.returncode != 0 and "already mirrors" in refused.stderr, (
            refused.returncode,
            refused.stderr[-2000:],
        )
        serve = processes.start("serve", "--port", "0", env=other)
        try:
            serve.popen.wait(timeout=45)
        finally:
            processes.stop(serve)
        assert serve.popen.returncode != 0 and "already mirrors" in serve.output(), serve.output()[
            -2000:
        ]
        drill.verdict(
            database_url,
            first,
            tuple(s.name for s in streams_of(Kind.OBJECT)),
            sync_exit=refused.returncode,
            serve_exit=serve.popen.returncode,
            second_portal_calls=second.calls(),
        )


def test_sync_start_during_an_event_stream(
    drill: Drill, database_url: str, processes: Processes
) -> None:
    """(Beyond the brief.) While the portal's events keep coming, a full sync asked for through
    the API is accepted and runs: applying events must not lock syncs out for good."""
    with portal({"deal": 2000}) as p:
        _, base = synced_service(processes, database_url, p)
        p.faults(latency_ms=200)
        stop = threading.Event()

        def edit_continuously() -> None:
            edits = 0
            while not stop.is_set():
                edits += 1
                p.edit("deal", 1 + edits % 2000, {"TITLE": f"streamed edit {edits}"})
                time.sleep(0.02)

        streamer = threading.Thread(target=edit_continuously)
        streamer.start()
        try:
            time.sleep(3)
            with api(base) as client:
                answers = []
                for _ in range(5):
                    answers.append(
                        client.post("/api/v1/sync/start/deal", json={"sync_type": "full"})
                    )
                    if answers[-1].status_code == 202:
                        break
                    time.sleep(1)
            codes = [a.status_code for a in answers]
            assert codes[-1] == 202, f"every start refused while events were applied: {codes}"
            run_id = answers[-1].json()["run_id"]
            wait_until(
                lambda: (
                    next(r for r in run_log(database_url, "deal") if r["id"] == run_id)["status"]
                    not in ("queued", "running")
                ),
                "the requested run ends",
                60,
            )
        finally:
            stop.set()
            streamer.join()
        p.faults(latency_ms=0)
        final = next(r for r in run_log(database_url, "deal") if r["id"] == run_id)
        assert final["status"] == "success", final
        wait_until(
            lambda: inbox(database_url)[1] == 0,
            "the streamed events applied",
            60,
            0.5,
            explain=lambda: event_jobs(database_url),
        )
        drill.verdict(database_url, p, start_answers=" ".join(map(str, codes)), run=final["status"])
