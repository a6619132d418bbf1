"""The API of a running `b24sync serve` under random sequences of calls, valid and not.

The OpenAPI document has no links (its responses are untyped objects) and schemathesis infers no
transitions from it, so the sequences come from a Hypothesis state machine instead: schedule
changes, sync starts, status and run-log reads, events (right and wrong token) and the webhook
routes, interleaved with what the process's own worker and scheduler do meanwhile. After every
step the status endpoint must agree with what the machine has done and seen: the schedules it
set, the runs it started, the rows the portal holds. No call may answer 5xx.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from b24emu.server import free_port
from b24sync.streams import STREAMS
from tests.portal import (
    API_KEY,
    APPLICATION_TOKEN,
    running_portal,
    service_env,
    wait_healthy,
)

EXAMPLES = int(os.environ.get("B24SYNC_STATEFUL_EXAMPLES", "40"))
STEPS = 25
PORTAL = {"deal": 80, "contact": 40, "lead": 30, "company": 15}
AUTH = {"Authorization": f"Bearer {API_KEY}"}
NAMES = list(STREAMS)
NOT_ENTITIES = ["invoice", "DEAL", "deal ", "%00", "d%C3%A9al", "1"]
RUN_STATUSES = ["queued", "running", "success", "failed", "interrupted", "skipped"]
STATES = {"running", "queued", "idle", "disabled"}

entities = st.sampled_from(NAMES)
anything: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=6,
)
patches = st.fixed_dictionaries(
    {},
    optional={
        "enabled": st.booleans(),
        "interval_minutes": st.integers(1, 10080),
        "webhook_enabled": st.booleans(),
    },
)
hostile_patches = st.fixed_dictionaries(
    {},
    optional={
        "enabled": anything,
        "interval_minutes": st.one_of(st.integers(-(2**70), 2**70), anything),
        "webhook_enabled": anything,
        "every": anything,
    },
)


@dataclass
class Seen:
    """What earlier steps (of any example: the process lives through them all) established."""

    run_ids: dict[str, set[int]] = field(default_factory=lambda: {n: set() for n in NAMES})
    last_run_id: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    fully_synced: set[str] = field(default_factory=set)
    events_accepted: int = 0
    last_event: str | None = None
    calls: int = 0


class ServiceMachine(RuleBasedStateMachine):
    def __init__(self, base: str, database_url: str, seen: Seen) -> None:
        super().__init__()
        # Connections of its own: uvicorn drops a connection after an unhandled exception
        # (without saying so), and a replayed example must not inherit it.
        self.http = httpx.Client(base_url=base, timeout=10)
        self.database_url = database_url
        self.seen = seen
        self.schedules: dict[str, dict[str, Any]] = {}

    def call(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        sent = (AUTH if auth else {}) | (headers or {})
        response = self.http.request(method, path, headers=sent, **kwargs)
        self.seen.calls += 1
        assert response.status_code < 500, (method, path, kwargs, response.text)
        return response

    def teardown(self) -> None:
        self.http.close()

    @initialize()
    def read_schedules(self) -> None:
        response = self.call("GET", "/api/v1/sync/config")
        assert response.status_code == 200
        self.schedules = response.json()

    @initialize(name=st.sampled_from(list(PORTAL)), action=st.sampled_from(["ADD", "UPDATE"]))
    def post_a_valid_event(self, name: str, action: str) -> None:
        """Every example starts with one event the service must accept: with twenty streams'
        rules to choose from, a random run could go without one (seen once in 1,833 calls), and
        the inbox checks below would then prove nothing."""
        self.post_event(name, action, "1", APPLICATION_TOKEN)

    # --- schedules ---------------------------------------------------------------------------

    @rule(changes=st.dictionaries(entities, patches, max_size=4))
    def change_schedules(self, changes: dict[str, dict[str, Any]]) -> None:
        response = self.call("PUT", "/api/v1/sync/config", json=changes)
        assert response.status_code == 200, response.text
        for name, patch in changes.items():
            self.schedules[name] = self.schedules[name] | patch
        assert response.json() == self.schedules

    @rule(name=entities, patch=patches)
    def change_one_schedule_in_the_flat_form(self, name: str, patch: dict[str, Any]) -> None:
        flat = {
            "sync_interval_minutes" if k == "interval_minutes" else k: v for k, v in patch.items()
        }
        response = self.call("PUT", "/api/v1/sync/config", json={"entity_type": name} | flat)
        assert response.status_code == 200, response.text
        self.schedules[name] = self.schedules[name] | patch
        schedule = self.schedules[name]
        assert response.json() == {
            "entity_type": name,
            "enabled": schedule["enabled"],
            "sync_interval_minutes": schedule["interval_minutes"],
            "webhook_enabled": schedule["webhook_enabled"],
        }

    @rule(
        body=st.one_of(
            st.dictionaries(st.sampled_from(NAMES + NOT_ENTITIES), hostile_patches, max_size=3),
            st.fixed_dictionaries(
                {"entity_type": st.sampled_from(NAMES + NOT_ENTITIES) | anything},
                optional={
                    "enabled": anything,
                    "sync_interval_minutes": st.integers(-(2**70), 2**70) | anything,
                    "interval_minutes": anything,
                },
            ),
            anything,
        )
    )
    def change_schedules_with_anything(self, body: Any) -> None:
        response = self.call("PUT", "/api/v1/sync/config", json=body)
        assert response.status_code in (200, 422), response.text
        if response.status_code == 200:  # pydantic's lax mode reads "true", 1.0, "15"...
            self.read_schedules()
            for schedule in self.schedules.values():
                assert 1 <= schedule["interval_minutes"] <= 10080
                assert isinstance(schedule["enabled"], bool)
                assert isinstance(schedule["webhook_enabled"], bool)

    @rule(
        route=st.sampled_from(
            [("PUT", "/api/v1/sync/config"), ("POST", "/api/v1/sync/start/deal")]
        ),
        body=st.one_of(
            st.sampled_from(
                [b"", b"{", b"[]", b"null", b'{"deal": {}}x', b'{"sync_type": "\xff"}']
            ),
            st.binary(max_size=20).map(lambda tail: b"\xff" + tail),  # not UTF-8
        ),
        content_type=st.sampled_from(
            ["application/json", "text/plain", "application/octet-stream", None]
        ),
    )
    def send_a_broken_body(
        self, route: tuple[str, str], body: bytes, content_type: str | None
    ) -> None:
        method, path = route
        headers = {} if content_type is None else {"Content-Type": content_type}
        response = self.call(method, path, content=body, headers=headers)
        assert response.status_code in (400, 422), response.text

    # --- syncs -------------------------------------------------------------------------------

    @rule(name=entities, sync_type=st.sampled_from(["full", "incremental", None]))
    def start_sync(self, name: str, sync_type: str | None) -> None:
        body = {} if sync_type is None else {"sync_type": sync_type}
        response = self.call("POST", f"/api/v1/sync/start/{name}", json=body)
        assert response.status_code in (202, 409), response.text
        if response.status_code == 202:
            run = response.json()
            assert run["entity"] == name and run["status"] == "queued"
            assert run["sync_type"] == (sync_type or "incremental")
            self.seen.run_ids[name].add(run["run_id"])

    @rule(
        name=st.one_of(entities, st.sampled_from(NOT_ENTITIES)),
        body=st.one_of(
            st.fixed_dictionaries({"sync_type": st.one_of(st.text(max_size=12), anything)}),
            anything,
        ),
    )
    def start_sync_with_anything(self, name: str, body: Any) -> None:
        response = self.call("POST", f"/api/v1/sync/start/{name}", json=body)
        valid = name in NAMES and (
            body == {}
            or (isinstance(body, dict) and body.get("sync_type") in ("full", "incremental"))
        )
        assert response.status_code in ((202, 409) if valid else (404, 422)), response.text
        if response.status_code == 202:
            self.seen.run_ids[name].add(response.json()["run_id"])

    # --- run log -----------------------------------------------------------------------------

    @rule(
        limit=st.integers(1, 500),
        offset=st.integers(0, 40),
        name=st.none() | entities,
        status=st.none() | st.sampled_from(RUN_STATUSES),
    )
    def read_runs(self, limit: int, offset: int, name: str | None, status: str | None) -> None:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        params |= {k: v for k, v in (("entity", name), ("status", status)) if v is not None}
        response = self.call("GET", "/api/v1/sync/runs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        runs = page["runs"]
        assert len(runs) <= limit and (page["limit"], page["offset"]) == (limit, offset)
        assert [r["id"] for r in runs] == sorted((r["id"] for r in runs), reverse=True)
        assert all(name in (None, r["entity"]) for r in runs)
        assert all(status in (None, r["status"]) for r in runs)
        if runs and status is None:  # the log only grows; the total is counted after the page
            assert page["total"] >= offset + len(runs)

    @rule(
        params=st.dictionaries(
            st.sampled_from(["limit", "offset", "entity", "status"]),
            st.one_of(
                st.integers(-(2**70), 2**70).map(str),
                st.sampled_from(["0", "501", "-1", "1.5", "", "x", "\x00", "done", "invoice"]),
                st.text(max_size=10),
            ),
            min_size=1,
        )
    )
    def read_runs_with_anything(self, params: dict[str, str]) -> None:
        response = self.call("GET", "/api/v1/sync/runs", params=params)
        assert response.status_code in (200, 422), response.text

    @rule(name=entities)
    def started_runs_are_logged(self, name: str) -> None:
        response = self.call("GET", "/api/v1/sync/runs", params={"entity": name, "limit": 500})
        assert response.status_code == 200
        listed = {r["id"]: r for r in response.json()["runs"]}
        mine = self.seen.run_ids[name]
        if len(mine) < 500:
            assert mine <= set(listed), mine - set(listed)
        assert all(r["entity"] == name and r["status"] in RUN_STATUSES for r in listed.values())

    # --- events ------------------------------------------------------------------------------

    @rule(
        name=st.sampled_from(list(PORTAL)),  # the streams that have events
        action=st.sampled_from(["ADD", "UPDATE", "DELETE"]),
        record_id=st.one_of(
            st.integers(1, max(PORTAL.values())),
            st.integers(1, 2**63 - 1),
            st.integers(-5, 0),
            st.sampled_from([2**63, 10**30]),
        ).map(str)
        | st.sampled_from(["²", "①", "٥", "", "1\x00"]),
        token=st.sampled_from(
            [APPLICATION_TOKEN, APPLICATION_TOKEN, APPLICATION_TOKEN + "x", "", None]
        ),
    )
    def post_event(self, name: str, action: str, record_id: str, token: str | None) -> None:
        event = f"ONCRM{name.upper()}{action}"
        form = {"event": event, "data[FIELDS][ID]": record_id, "ts": str(int(time.time()))}
        if token is not None:
            form["auth[application_token]"] = token
        response = self.call("POST", "/api/v1/webhooks/bitrix", auth=False, data=form)
        valid_id = record_id.isascii() and record_id.isdigit() and 0 < int(record_id) < 2**63
        if token != APPLICATION_TOKEN:
            assert response.status_code == 403, response.text
        elif not valid_id:
            assert response.status_code == 400, response.text
        else:
            assert response.status_code == 200, response.text
            self.seen.events_accepted += 1
            self.seen.last_event = event

    @rule(handler=st.none() | st.text(max_size=40), offline=st.booleans(), bind=st.booleans())
    def bind_events(self, handler: str | None, offline: bool, bind: bool) -> None:
        """An inbound webhook cannot bind events: 409 with the steps, or 422 for a bad URL."""
        params: dict[str, Any] = {"offline": offline}
        if handler is not None:
            params["handler_base_url"] = handler
        if bind:
            response = self.call("POST", "/api/v1/webhooks/register", params=params)
        else:
            response = self.call("DELETE", "/api/v1/webhooks/unregister", params=params)
        assert response.status_code in (409, 422), response.text

    @rule()
    def events_overview(self) -> None:
        response = self.call("GET", "/api/v1/webhooks/registered")
        assert response.status_code == 200
        overview = response.json()
        assert overview["can_bind"] is False and overview["bindings"] == []
        assert 0 <= overview["events_pending"] <= self.seen.events_accepted
        assert overview["last_event_name"] == self.seen.last_event
        with psycopg.connect(self.database_url) as conn:
            stored = conn.execute("SELECT count(*) FROM b24sync.received_events").fetchone()
        assert stored == (self.seen.events_accepted,)

    # --- auth --------------------------------------------------------------------------------

    @rule(
        route=st.sampled_from(
            [
                ("GET", "/api/v1/sync/status"),
                ("GET", "/api/v1/sync/runs"),
                ("PUT", "/api/v1/sync/config"),
                ("POST", "/api/v1/sync/start/deal"),
                ("GET", "/api/v1/webhooks/registered"),
            ]
        ),
        authorization=st.none()
        | st.sampled_from(
            ["Bearer", API_KEY, f"Basic {API_KEY}", f"Bearer {API_KEY}x", f"Bearer {API_KEY[:-1]}"]
        )
        | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1).map(
            lambda word: f"Bearer {word}"
        ),
    )
    def without_valid_auth(self, route: tuple[str, str], authorization: str | None) -> None:
        headers = {} if authorization is None else {"Authorization": authorization}
        method, path = route
        response = self.call(method, path, auth=False, headers=headers, json={})
        assert response.status_code == 401, response.text

    # --- the status page ---------------------------------------------------------------------

    @invariant()
    def status_agrees(self) -> None:
        response = self.call("GET", "/api/v1/sync/status")
        assert response.status_code == 200, response.text
        entries = response.json()["entities"]
        assert [e["entity"] for e in entries] == NAMES
        newly_synced = set()
        for entry in entries:
            name = entry["entity"]
            assert entry["schedule"] == self.schedules[name], name
            assert entry["state"] in STATES
            if entry["state"] in ("idle", "disabled"):
                assert (entry["state"] == "idle") == entry["schedule"]["enabled"], entry
            if name in PORTAL:  # the object streams; references and links are counted elsewhere
                assert entry["rows"] + entry["deleted_rows"] <= PORTAL[name], entry
                if name in self.seen.fully_synced:
                    assert entry["rows"] == PORTAL[name], entry
            last = entry["last_run"]
            last_id = last["id"] if last else 0
            assert last_id >= self.seen.last_run_id[name], entry
            assert last_id >= max(self.seen.run_ids[name], default=0), entry
            self.seen.last_run_id[name] = last_id
            if last and last["sync_type"] == "full" and last["status"] == "success":
                newly_synced.add(name)  # the rows read above may predate its end: check later
        self.seen.fully_synced |= newly_synced


@pytest.fixture
def serve(database_url: str, tmp_path: Path) -> Iterator[str]:
    """`b24sync serve` with its log in a file: tests.portal.process reads the log through a pipe
    only at the end, and a server that writes more than the pipe holds (a few tracebacks) blocks
    on its next log line, which would turn one 500 into a hung server."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with running_portal(PORTAL) as (_, webhook), log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "b24sync.cli", "serve", "--port", str(port)],
            env=service_env(database_url, webhook),
            stdout=sink,
            stderr=sink,
            text=True,
        )
        try:
            wait_healthy(base, proc)
            yield base
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    text = log.read_text()
    assert proc.returncode == 0 and "stopped" in text, text
    if "Traceback" in text:  # the first one is enough to act on
        start = text.index("Traceback")
        raise AssertionError(text[start : text.find("\nts=", start)])


def test_api_stays_consistent_under_random_call_sequences(serve: str, database_url: str) -> None:
    seen = Seen()
    run_state_machine_as_test(
        lambda: ServiceMachine(serve, database_url, seen),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    print(f"{seen.calls} calls, {seen.events_accepted} events accepted")
    # The sequences must keep reaching the interesting states, or they prove little.
    assert any(seen.run_ids.values()) and seen.events_accepted and seen.fully_synced, seen
