"""The service as users run it: `b24sync serve` and `b24sync worker` processes over real HTTP."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from b24emu.server import free_port
from b24sync.runtime import sync_service
from b24sync.streams import STREAMS
from tests.portal import (
    API_KEY,
    process,
    running_portal,
    service_env,
    service_settings,
    wait_healthy,
)

UNFUZZED = {
    "/api/v1/sync/events": "an endless stream, checked above",
    "/bitrix/webhook/push-to-bitrix": "creates up to 5000 + 5000 records a call; tests/test_seed.py",
    "/bitrix/webhook/push-stream": "the same as a stream; tests/test_seed.py",
}


def follow_run(
    snapshots: Iterator[dict[str, Any]], which: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Read SSE snapshots until the chosen run finishes; it must pass through 'running'."""
    states = []
    for snapshot in snapshots:
        run = next((r for r in snapshot["runs"] if which(r)), None)
        if run is not None:
            states.append(run["status"])
            if run["status"] not in ("queued", "running"):
                assert run["status"] == "success", run
                return run
    raise AssertionError(f"the stream ended; states seen: {states}")


def test_serve_streams_progress_and_survives_fuzzing(database_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with (
        running_portal({"deal": 300, "company": 10}) as (_, webhook),
        process("serve", "--port", str(port), env=service_env(database_url, webhook)) as proc,
    ):
        wait_healthy(base, proc)
        with httpx.stream("GET", f"{base}/api/v1/sync/events", headers=auth, timeout=30) as sse:
            assert sse.status_code == 200
            assert sse.headers["content-type"].startswith("text/event-stream")
            snapshots = (
                json.loads(line.removeprefix("data:"))
                for line in sse.iter_lines()
                if line.startswith("data:")
            )
            # A fresh service's scheduler queues a first sync of every entity at once.
            first = follow_run(snapshots, lambda r: r["entity"] == "deal")
            assert first["fetched"] == 300
            start = httpx.post(
                f"{base}/api/v1/sync/start/deal", json={"sync_type": "full"}, headers=auth
            )
            assert start.status_code == 202
            again = follow_run(snapshots, lambda r: r["id"] == start.json()["run_id"])
            assert again["sync_type"] == "full" and again["fetched"] == 300

        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        calls = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path in UNFUZZED:
                continue

            @settings(
                max_examples=30,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            @given(case=operation.as_strategy())
            def no_server_error(case: schemathesis.Case) -> None:
                nonlocal calls
                calls += 1
                response = case.call(base_url=base, headers=auth)
                assert response.status_code < 500, (case.method, case.path, response.text)

            no_server_error()
        assert calls > 100


async def test_two_worker_processes_run_each_job_exactly_once(database_url: str) -> None:
    counts = {"deal": 400, "contact": 200, "lead": 150, "company": 50}
    with running_portal(counts) as (emu, webhook):
        env = service_env(database_url, webhook)
        settings_ = service_settings(database_url, bitrix_webhook_url=webhook)
        async with sync_service(settings_, database_url) as service:
            # only the syncs queued here: the workers' scheduler would queue first syncs too
            await service.update_schedules({name: {"enabled": False} for name in STREAMS})
            with process("worker", env=env) as first, process("worker", env=env) as second:
                run_ids = [await service.request_sync(name, "full") for name in counts]
                deadline = time.monotonic() + 60
                while True:
                    with psycopg.connect(database_url) as conn:
                        statuses = dict(
                            conn.execute(
                                "SELECT id, status FROM b24sync.sync_runs WHERE id = ANY(%s)",
                                (run_ids,),
                            ).fetchall()
                        )
                    if all(s == "success" for s in statuses.values()):
                        break
                    assert time.monotonic() < deadline, statuses
                    time.sleep(0.2)
    logs = first.stderr_text + second.stderr_text  # type: ignore[attr-defined]
    for name in counts:
        assert logs.count(f"sync {name} full: success") == 1, name
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM b24sync.sync_runs").fetchone() == (4,)
        for name, count in counts.items():
            rows = conn.execute(f"SELECT count(*) FROM bitrix24.crm_{name}").fetchone()
            assert rows == (count,)
    assert emu.stats.by_method["crm.deal.fields"] == 1


def test_run_is_the_whole_product_on_defaults(tmp_path: Any) -> None:
    """`b24sync run` with nothing configured: the embedded database (reachable over TCP with the
    printed connection string), a demo portal, a first full sync of everything, the service with
    its admin key, the demo portal's events reaching the rows, and the README's CLI examples
    working against the running demo as written."""
    port, emulator_port, db_port = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BITRIX_", "API_KEYS", "DATABASE_URL"))
        },
        "B24SYNC_DATA_DIR": str(tmp_path),
        "B24SYNC_DB_PORT": str(db_port),
    }
    args = ("run", "--port", str(port), "--emulator-port", str(emulator_port))
    with process(*args, env=env) as proc:
        wait_healthy(base, proc, timeout=120)
        summary = wait_for_output(proc, "log ")
        database_url = re.search(r"database\s+(postgresql://\S+)", summary)
        assert database_url, summary
        assert f"@127.0.0.1:{db_port}/" in database_url[1]
        key = (tmp_path / "admin_api_key").read_text().strip()
        auth = {"Authorization": f"Bearer {key}"}
        status = httpx.get(f"{base}/api/v1/sync/status", headers=auth).json()["entities"]
        rows = {e["entity"]: e["rows"] for e in status}
        assert {name: rows[name] for name in ("deal", "contact", "lead", "company")} == {
            "deal": 5000,
            "contact": 3000,
            "lead": 2000,
            "company": 1000,
        }
        # with no configuration: the reference lists, users and links too
        assert rows["status"] > 0 and rows["user"] == 6 and rows["deal_contact"] >= 5000
        # every table of the demo CRM has rows, but product rows (a call per 50 owners: the
        # service reads them after it starts, in the background)
        empty = [name for name, count in rows.items() if not count]
        assert all(name.endswith("_productrow") for name in empty), empty
        assert httpx.get(f"{base}/api/v1/sync/status").status_code == 401
        emulator = f"http://127.0.0.1:{emulator_port}"
        httpx.patch(f"{emulator}/_emulator/records/lead/9", json={"TITLE": "seen by run"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and lead_title(database_url[1], 9) != "seen by run":
            time.sleep(0.2)
        assert lead_title(database_url[1], 9) == "seen by run"
        with psycopg.connect(database_url[1]) as bi:  # what a BI tool does with the printed URL
            assert bi.execute("SELECT count(*) FROM bitrix24.crm_deal").fetchone() == (5000,)
            assert bi.execute("SELECT count(*) FROM bitrix24.v_crm_deal").fetchone() == (5000,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):  # read-only
                bi.execute("DELETE FROM bitrix24.crm_deal")
        with pytest.raises(psycopg.OperationalError):  # over TCP only the reading role
            psycopg.connect(database_url[1].replace("//bi:", "//postgres:")).close()
        for command in readme_demo_commands():
            done = subprocess.run(
                [sys.executable, "-m", "b24sync.cli", *command],
                capture_output=True,
                text=True,
                env={**env, "COLUMNS": "80"},
                timeout=120,
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr and "level=info" not in done.stderr
            if "--json" in command:
                assert json.loads(done.stdout.splitlines()[-1])["status"] == "success"
    assert key in proc.stderr_text  # type: ignore[attr-defined]  # printed for the user
    assert re.search(r"dashboard +http://127\.0\.0\.1:", proc.stderr_text)  # type: ignore[attr-defined]
    assert "level=info" not in proc.stderr_text  # type: ignore[attr-defined]  # in the log file
    assert "deal_productrow" in summary.split("in the background", 1)[1]  # after the start
    assert "level=info" in (tmp_path / "b24sync.log").read_text()  # the work is logged there
    assert not (tmp_path / "demo_portal.json").exists()  # removed with the demo portal


def readme_demo_commands() -> list[list[str]]:
    """The commands of the README's "The CLI against the demo" block, as written there."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("### The CLI against the demo", 1)[1].split("```bash", 1)[1]
    lines = block.split("```", 1)[0].strip().splitlines()
    assert len(lines) >= 5
    return [shlex.split(line.removeprefix(".venv/bin/b24sync ")) for line in lines]


def wait_for_output(proc: subprocess.Popen[str], text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        err = proc.stderr_file  # type: ignore[attr-defined]
        err.seek(0)
        output = str(err.read())
        if text in output:
            return output
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never printed")


def lead_title(database_url: str, lead_id: int) -> str | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT title FROM bitrix24.crm_lead WHERE id = %s", (lead_id,))
        found = row.fetchone()
    return found[0] if found else None
