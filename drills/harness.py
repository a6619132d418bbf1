"""What every drill drives: a portal over real HTTP, `b24sync` processes, the database, a clock.

Nothing here patches b24sync: the drills run its CLI as users do and look at PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import psycopg
from tests.portal import (
    API_KEY,
    APPLICATION_TOKEN,
    running_portal,
    service_env,
    service_settings,
)

from b24emu import Emulator
from b24emu.server import free_port
from b24sync.runtime import sync_service
from b24sync.service import SyncService
from b24sync.streams import stream_named
from b24sync.sync.engine import SyncSummary
from drills.compare import compare_mirror, verdict_line

T = TypeVar("T")
STOP_TIMEOUT_SECONDS = 30
RECEIVER_PATH = "/api/v1/webhooks/bitrix"


# --- the portal -----------------------------------------------------------------------------


@dataclass
class Portal:
    """b24emu in a thread over real HTTP: its REST URL, its control API, the object itself."""

    emu: Emulator
    webhook: str  # http://127.0.0.1:PORT/rest/1/TOKEN/
    http: httpx.Client

    @property
    def base(self) -> str:
        return self.webhook.split("/rest/", 1)[0]

    def faults(self, **shares: float) -> dict[str, float]:
        """PUT /_emulator/faults, e.g. ``faults(error_503=0.3, latency_ms=50)``."""
        response = self.http.put(f"{self.base}/_emulator/faults", json=shares)
        response.raise_for_status()
        result: dict[str, float] = response.json()
        return result

    def edit(self, entity: str, record_id: int, fields: dict[str, Any]) -> None:
        """A person edits a record in the portal's UI: events fire, no REST budget spent."""
        response = self.http.patch(
            f"{self.base}/_emulator/records/{entity}/{record_id}", json=fields
        )
        response.raise_for_status()

    def rest(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """A REST call through the inbound webhook, as another integration would make it."""
        response = self.http.post(f"{self.webhook}{method}", json=params)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def batch(self, commands: list[str]) -> None:
        """REST commands in batch calls of 50 (the portal's limit); any failure fails the drill."""
        for start in range(0, len(commands), 50):
            chunk = commands[start : start + 50]
            result = self.rest(
                "batch", {"halt": 0, "cmd": {f"c{n}": c for n, c in enumerate(chunk)}}
            )
            assert not result["result"]["result_error"], result["result"]["result_error"]

    def delete(self, entity: str, ids: list[int]) -> None:
        self.batch([f"crm.{entity}.delete?id={i}" for i in ids])

    def add(self, entity: str, titles: list[str]) -> None:
        self.batch([f"crm.{entity}.add?" + urlencode({"fields[TITLE]": t}) for t in titles])

    def send_events_to(self, service_base: str) -> None:
        """An outbound webhook (configured "in the UI") delivering every CRM event."""
        response = self.http.post(
            f"{self.base}/_emulator/outbound-webhooks",
            json={"handler": service_base + RECEIVER_PATH, "application_token": APPLICATION_TOKEN},
        )
        response.raise_for_status()

    def seed(self, **counts: int) -> None:
        """More demo records (POST /_emulator/seed), another seed than the first ones'."""
        response = self.http.post(f"{self.base}/_emulator/seed", json=counts | {"seed": 2})
        response.raise_for_status()

    def add_user_field(self, entity: str, name: str, label: str) -> None:
        response = self.http.post(
            f"{self.base}/_emulator/userfields/{entity}",
            json={"name": name, "type": "string", "label": label},
        )
        response.raise_for_status()

    def calls(self) -> int:
        return self.emu.stats.http_calls


@contextmanager
def portal(counts: dict[str, int], latency_ms: float = 0.0) -> Iterator[Portal]:
    with running_portal(counts, latency_ms) as (emu, webhook), httpx.Client(timeout=60) as http:
        yield Portal(emu, webhook, http)


# --- b24sync processes ----------------------------------------------------------------------


def _command(args: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "b24sync.cli", *args]


@dataclass
class Proc:
    args: tuple[str, ...]
    env: dict[str, str]
    popen: subprocess.Popen[bytes]
    logs: Path  # <logs>.out and <logs>.err

    def stdout(self) -> str:
        return self.logs.with_suffix(".out").read_text(errors="replace")

    def stderr(self) -> str:
        return self.logs.with_suffix(".err").read_text(errors="replace")

    def output(self) -> str:
        return self.stdout() + self.stderr()

    def running(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The `--json` line a sync prints last."""
        lines = [line for line in self.stdout.splitlines() if line.startswith("{")]
        assert lines, f"no JSON summary; exit {self.returncode}; stderr: {self.stderr[-2000:]}"
        result: dict[str, Any] = json.loads(lines[-1])
        return result


@dataclass
class Processes:
    """The drill's `b24sync` processes; whatever is still running at the end is stopped."""

    workdir: Path
    started: list[Proc] = field(default_factory=list)

    def start(self, *args: str, env: dict[str, str]) -> Proc:
        logs = self.workdir / f"{len(self.started):02d}-{args[0]}"
        with logs.with_suffix(".out").open("wb") as out, logs.with_suffix(".err").open("wb") as err:
            popen = subprocess.Popen(_command(args), env=env, stdout=out, stderr=err)
        proc = Proc(args, env, popen, logs)
        self.started.append(proc)
        return proc

    def run(self, *args: str, env: dict[str, str], timeout: float = 120) -> Finished:
        """Run a command to its end (bounded), with stdout and stderr apart."""
        started = time.monotonic()
        done = subprocess.run(
            _command(args), env=env, capture_output=True, text=True, timeout=timeout
        )
        return Finished(done.returncode, done.stdout, done.stderr, time.monotonic() - started)

    def sync(
        self, entity: str, mode: str, *, env: dict[str, str], timeout: float = 120
    ) -> Finished:
        """`b24sync sync ENTITY --MODE --json` to its end."""
        return self.run("sync", entity, f"--{mode}", "--json", env=env, timeout=timeout)

    def kill9(self, proc: Proc) -> None:
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(timeout=STOP_TIMEOUT_SECONDS)

    def stop(self, proc: Proc) -> int:
        """SIGTERM, as Ctrl-C or a container stop; SIGKILL if it does not go in time."""
        if proc.running():
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        return proc.popen.returncode

    def stop_all(self) -> None:
        for proc in self.started:
            self.stop(proc)

    def restart(self, proc: Proc) -> Proc:
        """The same command again (after a crash, as systemd or Docker would restart it)."""
        return self.start(*proc.args, env=proc.env)

    def serve(self, env: dict[str, str], port: int | None = None) -> tuple[Proc, str]:
        """`b24sync serve` on a loopback port (a free one by default), healthy; returns it and
        its base URL."""
        port = port or free_port()
        proc = self.start("serve", "--port", str(port), env=env)
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert proc.running(), proc.output()[-3000:]
            try:
                return httpx.get(f"{base}/health", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, "serve answers /health with 200", 60)
        return proc, base


def drill_env(database_url: str, portal_: Portal, **settings: str) -> dict[str, str]:
    """The service's environment for this portal and database (limits lifted client-side)."""
    return service_env(database_url, portal_.webhook) | settings


def synced_service(
    processes: Processes, database_url: str, portal_: Portal, **settings: str
) -> tuple[Proc, str]:
    """`b24sync serve` after its first scheduled deal sync, receiving the portal's events."""
    proc, base = processes.serve(drill_env(database_url, portal_, **settings))
    wait_until(
        lambda: any(r["status"] == "success" for r in run_log(database_url, "deal")),
        "the first scheduled deal sync",
        timeout=120,
    )
    portal_.send_events_to(base)
    return proc, base


def application_env(database_url: str, portal_: Portal) -> dict[str, str]:
    """The environment of a local application (OAuth) on this portal, installed just now."""
    response = portal_.http.post(f"{portal_.base}/_emulator/app", json={})
    response.raise_for_status()
    app = response.json()
    inherited = {
        k: v for k, v in drill_env(database_url, portal_).items() if k != "BITRIX_WEBHOOK_URL"
    }
    return inherited | {
        "BITRIX_PORTAL_URL": portal_.base,
        "BITRIX_OAUTH_URL": portal_.base,
        "BITRIX_CLIENT_ID": app["client_id"],
        "BITRIX_CLIENT_SECRET": app["client_secret"],
        "BITRIX_REFRESH_TOKEN": app["refresh_token"],
    }


def with_service(
    database_url: str, portal_: Portal, use: Callable[[SyncService], Awaitable[T]]
) -> T:
    """Call the service in-process (its queue is the database's), as the API would."""
    settings = service_settings(database_url, bitrix_webhook_url=portal_.webhook)

    async def go() -> T:
        async with sync_service(settings, database_url) as service:
            return await use(service)

    return asyncio.run(go())


def reconcile(database_url: str, portal_: Portal, entity: str) -> SyncSummary:
    """A reconcile run (IDs only, finds deletions): the scheduler's, since the CLI has none."""
    return with_service(
        database_url, portal_, lambda service: service.engine.reconcile(stream_named(entity))
    )


def sync_lock_holder(database_url: str, entity: str) -> str | None:
    """The application_name (PGAPPNAME) of the session holding the entity's sync lock."""
    found: str | None = scalar(
        database_url,
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.objid::bigint = (hashtext(%s)::bigint & 4294967295)",
        (f"b24sync.sync.{entity}",),
    )
    return found


def api(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)


# --- the database ---------------------------------------------------------------------------


def query(database_url: str, text: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cur = conn.execute(text, params)
        return cur.fetchall() if cur.description else []


def scalar(database_url: str, text: str, params: tuple[Any, ...] = ()) -> Any:
    rows = query(database_url, text, params)
    return rows[0][0] if rows else None


def inbox(database_url: str) -> tuple[int, int]:
    """Events received, and those not applied yet."""
    row = query(
        database_url,
        "SELECT count(*), count(*) FILTER (WHERE processed_at IS NULL) FROM b24sync.received_events",
    )[0]
    return int(row[0]), int(row[1])


RUN_FIELDS = ("id", "entity", "sync_type", "status", "fetched", "api_calls", "error")


def run_log(database_url: str, entity: str | None = None) -> list[dict[str, Any]]:
    """b24sync.sync_runs, oldest first."""
    rows = query(
        database_url,
        f"SELECT {', '.join(RUN_FIELDS)} FROM b24sync.sync_runs "
        "WHERE %s::text IS NULL OR entity = %s ORDER BY id",
        (entity, entity),
    )
    return [dict(zip(RUN_FIELDS, row, strict=True)) for row in rows]


def wait_until(
    condition: Callable[[], bool],
    what: str,
    timeout: float = 60,
    every: float = 0.1,
    explain: Callable[[], object] | None = None,
) -> float:
    """Poll until ``condition`` holds; returns the seconds it took, fails after ``timeout``
    (with what ``explain`` says about the state then)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            state = f"; {explain()}" if explain is not None else ""
            raise AssertionError(f"not reached in {timeout:.0f} s: {what}{state}")
        time.sleep(every)
    return time.monotonic() - started


def event_jobs(database_url: str) -> str:
    """The inbox and the apply_events jobs, for a failure message."""
    jobs = query(
        database_url,
        "SELECT id, status, attempts FROM procrastinate_jobs "
        "WHERE task_name = 'apply_events' ORDER BY id",
    )
    received, pending = inbox(database_url)
    return (
        f"{pending} of {received} events pending; apply_events jobs (id, status, attempts): {jobs}"
    )


def finished_runs(database_url: str, entity: str, at_least: int) -> Callable[[], bool]:
    """A condition: the entity has at least ``at_least`` runs, none queued or running."""

    def check() -> bool:
        log = run_log(database_url, entity)
        return len(log) >= at_least and all(r["status"] not in ("queued", "running") for r in log)

    return check


# --- the verdict ----------------------------------------------------------------------------


@dataclass
class Drill:
    """One drill's name and clock; :meth:`verdict` is how every drill ends."""

    name: str
    started: float = field(default_factory=time.monotonic)

    def verdict(
        self,
        database_url: str,
        portal_: Portal,
        entities: tuple[str, ...] = ("deal",),
        **figures: object,
    ) -> None:
        diff = compare_mirror(database_url, portal_.emu, entities)
        figures = figures | {
            "portal calls": portal_.calls(),
            "seconds": f"{time.monotonic() - self.started:.1f}",
        }
        print("\n" + verdict_line(self.name, diff, figures), flush=True)
        assert diff.equal, diff.examples
