"""The two original documents' examples, replayed against the service as docker-compose runs it.

``shared/seeds/000_*`` (the sync service's README) and ``shared/seeds/004_*`` (the test-data
tool's report) promise: every documented example works as written, with an auth header where
auth is on. Here each example runs against real processes: ``b24sync serve`` (compose's
``backend``) and ``b24sync worker`` (compose's ``worker``) over real HTTP, a real PostgreSQL
(compose's ``db``) and b24emu over real HTTP as the portal. Each test checks the documented
effect (rows, run log, portal records), not only the status code.

Auth: the documents' curl lines carry no header, but the documents' own ``.env`` turns auth on
(``JWT_SECRET``), so every call here sends ``Authorization: Bearer <a JWT signed with it>``
(or an API key where the configuration has one); that the header-less call is refused is
asserted once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest
import typer.main
import yaml

from b24emu import Emulator
from b24emu.server import free_port
from b24sync import cli
from b24sync.config import Settings
from b24sync.streams import EVENT_NAMES, STREAMS
from tests.conftest import _fresh_database
from tests.portal import API_KEY, process, running_portal, wait_healthy

REPO = Path(__file__).resolve().parent.parent
ENTITIES = ("deal", "contact", "lead", "company")
TITLE_COLUMN = {"deal": "TITLE", "contact": "NAME", "lead": "TITLE", "company": "TITLE"}
GENERATED = "b24sync-seed"  # ORIGINATOR_ID of the test-data tool's records
BUSY_WORDS = "Сервис занят, попробуйте позже"
SEED_SECRET = "seed-route-secret-42"

# The sync service's README, "Настройка переменных окружения", verbatim but for the portal.
DOCUMENT_ENV = """
# PostgreSQL
POSTGRES_PASSWORD=your_secure_password

# Supabase Auth
JWT_SECRET=your-super-secret-jwt-key-min-32-characters
SUPABASE_ANON_KEY=your-supabase-anon-key

# Bitrix24
BITRIX_WEBHOOK_URL=https://your-domain.bitrix24.ru/rest/1/your-webhook-code/

# Application
DEBUG=false
SITE_URL=http://localhost:3000
API_URL=http://localhost:8080
PUBLIC_SUPABASE_URL=http://localhost:8000
"""


def document_env(webhook: str) -> dict[str, str]:
    """The document's .env as compose's ``env_file`` passes it, pointed at the local portal."""
    values = dict(
        line.split("=", 1)
        for line in DOCUMENT_ENV.splitlines()
        if line.strip() and not line.startswith("#")
    )
    return values | {"BITRIX_WEBHOOK_URL": webhook}


def clean_environ() -> dict[str, str]:
    """This process's environment without anything the service would read as a setting."""
    names = {n.upper() for n in Settings.model_fields} | {
        "JWT_SECRET",
        "SUPABASE_KEY",
        "PUBLIC_SUPABASE_URL",
    }
    return {k: v for k, v in os.environ.items() if k.upper() not in names}


# The client-side bucket's defaults (2/s, burst 50) would only slow the test down; the
# emulator runs without limits.
HARNESS_ENV = {"BITRIX_RATE": "1000", "BITRIX_BURST": "10000"}


def signed_jwt(secret: str) -> str:
    """A Supabase access token as Supabase Auth signs it (HS256 with the project's secret)."""
    claims = {"sub": "doc-user", "aud": "authenticated", "exp": int(time.time()) + 3600}
    return jwt.encode(claims, secret, algorithm="HS256")


def rows(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, params).fetchall()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {what}")
        time.sleep(0.1)


def sse(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a Server-Sent Events response; comments (pings) skipped."""
    name, data = "message", list[str]()
    for line in response.iter_lines():
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())


@dataclass
class Deployment:
    """One compose-like deployment: the portal, the database, `backend` and `worker`."""

    emu: Emulator
    webhook: str  # the portal's inbound-webhook URL (also its REST base for the test's own edits)
    database_url: str
    base: str  # the service
    headers: dict[str, str]
    changes: list[tuple[str, str, int]] = field(default_factory=list)  # the portal's, in order

    @property
    def portal(self) -> str:
        return self.webhook.split("/rest/")[0]

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """A REST call to the portal, as a person or another integration would make it."""
        response = httpx.post(f"{self.webhook}{method}.json", json=params)
        assert response.status_code == 200, response.text
        return response.json()["result"]

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", headers=self.headers, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.base}{path}", headers=self.headers, timeout=60, **kwargs)

    def records(self, entity: str) -> list[dict[str, Any]]:
        return list(self.emu.portal.store(entity).records.values())

    def generated(self, entity: str) -> list[dict[str, Any]]:
        return [r for r in self.records(entity) if r.get("ORIGINATOR_ID") == GENERATED]

    def first_syncs_done(self) -> None:
        """Wait for the scheduler's first full sync of every entity (a fresh service queues
        them at once; a start requested meanwhile would rightly be answered 409)."""

        def done() -> bool:
            found = rows(
                self.database_url,
                "SELECT entity, bool_and(status NOT IN ('queued', 'running')), "
                "bool_or(status = 'success') FROM b24sync.sync_runs GROUP BY entity",
            )
            return len(found) == len(STREAMS) and all(idle and ok for _, idle, ok in found)

        wait_until(done, "the first sync of every stream", timeout=90)

    def finished_run(self, run_id: int) -> dict[str, Any]:
        """The run's row in the documented run log, `sync_logs`, once it has finished."""
        query = "SELECT * FROM b24sync.sync_logs WHERE id = %s"
        with psycopg.connect(self.database_url) as conn:
            deadline = time.monotonic() + 30
            while True:
                cursor = conn.execute(query, (run_id,))
                found = cursor.fetchone()
                assert cursor.description is not None
                columns = [c.name for c in cursor.description]
                conn.commit()
                if found is not None and found[columns.index("status")] not in (
                    "queued",
                    "running",
                ):
                    return dict(zip(columns, found, strict=True))
                assert time.monotonic() < deadline, f"run {run_id} did not finish"
                time.sleep(0.1)

    def mirrored(self, entity: str, record_id: int) -> tuple[Any, ...] | None:
        column = TITLE_COLUMN[entity].lower()
        found = rows(
            self.database_url,
            f"SELECT {column}, _deleted_at IS NOT NULL FROM bitrix24.crm_{entity} WHERE id = %s",
            record_id,
        )
        return found[0] if found else None


@pytest.fixture(scope="module")
def module_database(pg_server_url: str, template_database: str) -> Iterator[Callable[[], str]]:
    """Migrated databases that live as long as this module's processes (`database_url` is
    per test)."""
    made: list[Iterator[str]] = []

    def make() -> str:
        made.append(_fresh_database(pg_server_url, template_database))
        return next(made[-1])

    yield make
    for database in made:
        next(database, None)


@pytest.fixture(scope="module")
def compose(module_database: Callable[[], str]) -> Iterator[Deployment]:
    """The document's deployment: its .env (inbound webhook, JWT_SECRET) plus what compose adds
    (DATABASE_URL) and the test-data tool's optional BITRIX_WEBHOOK_SECRET."""
    database_url = module_database()
    counts = {"deal": 120, "contact": 60, "lead": 40, "company": 30}
    with running_portal(counts) as (emu, webhook):
        settings = document_env(webhook)
        env = clean_environ() | settings | HARNESS_ENV
        env |= {"DATABASE_URL": database_url, "BITRIX_WEBHOOK_SECRET": SEED_SECRET}
        port = free_port()
        with process("serve", "--port", str(port), env=env) as backend, process("worker", env=env):
            deployment = Deployment(
                emu,
                webhook,
                database_url,
                f"http://127.0.0.1:{port}",
                {"Authorization": f"Bearer {signed_jwt(settings['JWT_SECRET'])}"},
            )
            emu.portal.listeners.append(
                lambda entity, action, rid: deployment.changes.append((entity, action, rid))
            )
            wait_healthy(deployment.base, backend)
            deployment.first_syncs_done()
            yield deployment


@pytest.fixture(scope="module")
def application(module_database: Callable[[], str]) -> Iterator[Deployment]:
    """The same service with a local application (OAuth) instead of the inbound webhook: what
    the document's webhooks/register needs, since a portal binds events only for applications."""
    database_url = module_database()
    with running_portal({"deal": 20, "contact": 10, "lead": 10, "company": 10}) as (emu, webhook):
        portal = webhook.split("/rest/")[0]
        installed = httpx.post(f"{portal}/_emulator/app").json()
        env = clean_environ() | HARNESS_ENV
        env |= {
            "DATABASE_URL": database_url,
            "BITRIX_PORTAL_URL": portal,
            "BITRIX_OAUTH_URL": portal,
            "BITRIX_CLIENT_ID": installed["client_id"],
            "BITRIX_CLIENT_SECRET": installed["client_secret"],
            "BITRIX_REFRESH_TOKEN": installed["refresh_token"],
            "BITRIX_APPLICATION_TOKEN": installed["application_token"],
            "API_KEYS": API_KEY,
        }
        port = free_port()
        with process("serve", "--port", str(port), env=env) as backend, process("worker", env=env):
            deployment = Deployment(
                emu,
                webhook,
                database_url,
                f"http://127.0.0.1:{port}",
                {"Authorization": f"Bearer {API_KEY}"},
            )
            wait_healthy(deployment.base, backend)
            deployment.first_syncs_done()
            yield deployment


# --- the sync service's README (000) ---------------------------------------------------------


def test_env_example_starts_the_service_and_its_jwt_secret_signs_accepted_tokens(
    compose: Deployment,
) -> None:
    """`.env` as in "Настройка переменных окружения": every name is accepted by a starting
    service and each one it knows takes effect."""
    health = httpx.get(f"{compose.base}/health")  # `curl http://localhost:8080/health`
    assert health.status_code == 200
    report = health.json()
    assert report["status"] == "ok" and report["database"]["ok"]
    # BITRIX_WEBHOOK_URL: the portal the service talks to, its token masked
    assert report["portal"]["auth"] == "inbound_webhook"
    assert report["portal"]["url"] == f"{compose.portal}/rest/1/***/"
    # JWT_SECRET: a Supabase token signed with it is accepted; the header-less curl is not
    assert compose.get("/api/v1/sync/status").status_code == 200
    assert httpx.get(f"{compose.base}/api/v1/sync/status").status_code == 401
    forged = {"Authorization": f"Bearer {signed_jwt('another-secret-of-at-least-32-chars')}"}
    assert httpx.get(f"{compose.base}/api/v1/sync/status", headers=forged).status_code == 401
    # PUBLIC_SUPABASE_URL + SUPABASE_ANON_KEY: the login page offers Supabase email login
    login = httpx.get(f"{compose.base}/login")
    assert login.status_code == 200 and 'id="supabase-login"' in login.text


def test_env_example_and_settings_table_names_map_to_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in clean_environ().keys() ^ os.environ.keys():
        monkeypatch.delenv(name)
    for name, value in document_env("https://your-domain.bitrix24.ru/rest/1/code/").items():
        monkeypatch.setenv(name, value)
    from_env_example = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_env_example.supabase_jwt_secret is not None
    assert from_env_example.supabase_jwt_secret.get_secret_value().startswith("your-super")
    assert from_env_example.supabase_anon_key is not None
    assert from_env_example.supabase_url == "http://localhost:8000"
    assert from_env_example.debug is False
    # "Переменные окружения" table: SUPABASE_URL, SUPABASE_KEY, SUPABASE_JWT_SECRET
    for name in ("JWT_SECRET", "SUPABASE_ANON_KEY", "PUBLIC_SUPABASE_URL"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("SUPABASE_URL", "https://project.supabase.co")
    monkeypatch.setenv("SUPABASE_KEY", "anon-key")
    monkeypatch.setenv("SUPABASE_JWT_SECRET", "table-secret")
    from_table = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_table.supabase_url == "https://project.supabase.co"
    assert from_table.supabase_anon_key is not None
    assert from_table.supabase_anon_key.get_secret_value() == "anon-key"
    assert from_table.supabase_jwt_secret is not None
    assert from_table.supabase_jwt_secret.get_secret_value() == "table-secret"


def test_settings_table_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SYNC_BATCH_SIZE", "SYNC_DEFAULT_INTERVAL_MINUTES", "DEBUG"):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert defaults.sync_batch_size == 50
    assert defaults.sync_default_interval_minutes == 30
    assert defaults.debug is False


def test_compose_runs_db_backend_and_worker_with_the_api_on_8080() -> None:
    """`docker-compose up -d`, "Backend API: http://localhost:8080", `docker-compose logs
    backend`, `docker-compose exec db pg_isready`, `docker-compose exec backend alembic
    upgrade head`."""
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert {"db", "backend", "worker"} <= services.keys()
    assert any(str(p).endswith(":8080") for p in services["backend"]["ports"])
    assert any(str(p).endswith(":5432") for p in services["db"]["ports"])
    assert (REPO / ".env.example").is_file()  # `cp .env.example .env`
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert services["worker"]["command"] == ["b24sync", "worker"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "alembic.ini" in dockerfile and '"--port", "8080"' in dockerfile
    commands = typer.main.get_command(cli.app).commands  # type: ignore[attr-defined]
    for name in ("serve", "run"):
        port = next(p for p in commands[name].params if p.name == "port")
        assert port.default == 8080, name


def coming_from_the_original() -> str:
    readme = (REPO / "README.md").read_text()
    start = readme.index("## Coming from the original service")
    return readme[start : readme.index("\n## ", start + 1)]


def test_compose_serves_everything_the_quick_start_lists() -> None:
    """ "Сервисы будут доступны: Backend API :8080, Frontend :3000, Supabase API :8000,
    PostgreSQL :5432". Backend and PostgreSQL as written; the frontend is the backend's own
    dashboard and Supabase is the user's: a difference the README states."""
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    published = {
        str(port).rsplit(":", 1)[-1] for s in services.values() for port in s.get("ports", [])
    }
    assert {"8080", "5432"} <= published
    assert "the dashboard is served by the backend on :8080" in coming_from_the_original()


def test_development_server_command_of_the_original_layout() -> None:
    """ "Backend с hot-reload": `DEBUG=true uvicorn app.main:app --reload --port 8080`. Here:
    `DEBUG=true b24sync serve --port 8080`, as the README's difference table says."""
    done = subprocess.run(
        [sys.executable, "-m", "b24sync.cli", "serve", "--help"],
        cwd=REPO,
        env=clean_environ() | {"DEBUG": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "--port" in done.stdout, done.stderr
    assert "DEBUG=true b24sync serve --port 8080" in coming_from_the_original()


def test_compose_development_command_names_existing_services() -> None:
    """ "Запуск в режиме разработки": `docker-compose up -d db auth`. `db` exists; there is no
    `auth` (Supabase is the user's), which the README's difference table says."""
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert "db" in services
    assert "`docker-compose up -d db`" in coming_from_the_original()


def test_alembic_upgrade_head_creates_the_service_tables(empty_database_url: str) -> None:
    """ "Запустите миграции вручную": `alembic upgrade head` with DATABASE_URL set."""
    alembic = Path(sys.executable).parent / "alembic"
    done = subprocess.run(
        [str(alembic), "upgrade", "head"],
        cwd=REPO,
        env=clean_environ() | {"DATABASE_URL": empty_database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    found = {
        name
        for (name,) in rows(
            empty_database_url,
            "SELECT table_schema || '.' || table_name FROM information_schema.tables",
        )
    }
    for table in (
        "sync_config",
        "sync_state",
        "sync_runs",
        "sync_logs",
        "received_events",
        "field_snapshots",
        "app_tokens",
        "rate_buckets",
    ):
        assert f"b24sync.{table}" in found
    assert "public.procrastinate_jobs" in found


def test_health(compose: Deployment) -> None:
    """ "Проверка работоспособности": `curl http://localhost:8080/health` (no auth needed)."""
    response = httpx.get(f"{compose.base}/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_full_sync_of_deals_fills_crm_deal_and_logs_the_run(compose: Deployment) -> None:
    """`POST /api/v1/sync/start/deal {"sync_type": "full"}`, then "the sync_logs table"."""
    new_id = compose.call("crm.deal.add", {"fields": {"TITLE": "added before the full sync"}})
    response = compose.post("/api/v1/sync/start/deal", json={"sync_type": "full"})
    assert response.status_code == 202, response.text
    run = compose.finished_run(response.json()["run_id"])
    portal_deals = len(compose.records("deal"))
    assert run["entity"] == "deal" and run["sync_type"] == "full"
    assert run["status"] == "success" and run["error_message"] is None
    assert run["records_fetched"] == portal_deals
    assert run["finished_at"] >= run["started_at"] and run["duration_seconds"] >= 0
    for column in ("records_upserted", "records_deleted", "api_calls"):
        assert run[column] is not None
    live = rows(
        compose.database_url,
        "SELECT count(*) FROM bitrix24.crm_deal WHERE _deleted_at IS NULL",
    )
    assert live == [(portal_deals,)]
    assert compose.mirrored("deal", new_id) == ("added before the full sync", False)


def test_incremental_sync_of_contacts_brings_an_edit(compose: Deployment) -> None:
    """`POST /api/v1/sync/start/contact {"sync_type": "incremental"}`."""
    contact = compose.records("contact")[0]
    contact_id = int(contact["ID"])
    compose.call("crm.contact.update", {"id": contact_id, "fields": {"NAME": "Incremental"}})
    response = compose.post("/api/v1/sync/start/contact", json={"sync_type": "incremental"})
    assert response.status_code == 202, response.text
    run = compose.finished_run(response.json()["run_id"])
    assert (run["entity"], run["sync_type"], run["status"]) == (
        "contact",
        "incremental",
        "success",
    )
    assert run["records_fetched"] >= 1
    assert compose.mirrored("contact", contact_id) == ("Incremental", False)


@pytest.mark.parametrize("entity", ["lead", "company"])
def test_the_other_supported_entities_sync_too(compose: Deployment, entity: str) -> None:
    """ "Поддерживаемые сущности: deal, contact, lead, company"."""
    response = compose.post(f"/api/v1/sync/start/{entity}", json={"sync_type": "full"})
    assert response.status_code == 202, response.text
    run = compose.finished_run(response.json()["run_id"])
    assert run["status"] == "success"
    assert run["records_fetched"] == len(compose.records(entity))


def test_sync_status_lists_the_four_entities(compose: Deployment) -> None:
    """`curl http://localhost:8080/api/v1/sync/status`."""
    response = compose.get("/api/v1/sync/status")
    assert response.status_code == 200
    status = {e["entity"]: e for e in response.json()["entities"]}
    assert set(ENTITIES) <= set(status)  # and the other streams of the registry
    for entity in ENTITIES:
        assert status[entity]["last_run"]["status"] == "success"
    assert status["lead"]["rows"] == len(compose.records("lead"))


def test_flat_config_update_changes_the_schedule(compose: Deployment) -> None:
    """`GET /api/v1/sync/config`; `PUT /api/v1/sync/config` with the document's flat body."""
    before = compose.get("/api/v1/sync/config")
    assert before.status_code == 200
    assert before.json()["deal"]["interval_minutes"] == 30  # SYNC_DEFAULT_INTERVAL_MINUTES
    next_before = next_deal_run(compose)
    body = {
        "entity_type": "deal",
        "enabled": True,
        "sync_interval_minutes": 15,
        "webhook_enabled": True,
    }
    response = httpx.put(f"{compose.base}/api/v1/sync/config", json=body, headers=compose.headers)
    assert response.status_code == 200, response.text
    assert response.json() == body
    after = compose.get("/api/v1/sync/config").json()
    assert after["deal"] == {"enabled": True, "interval_minutes": 15, "webhook_enabled": True}
    assert after["contact"]["interval_minutes"] == 30
    # the scheduler's next deal run moved 15 minutes closer (the same last start)
    assert (next_before - next_deal_run(compose)).total_seconds() == 15 * 60


def next_deal_run(deployment: Deployment) -> datetime:
    status = deployment.get("/api/v1/sync/status").json()["entities"]
    return datetime.fromisoformat(next(e for e in status if e["entity"] == "deal")["next_run_at"])


def test_register_under_the_documents_inbound_webhook_explains_why_not(
    compose: Deployment,
) -> None:
    """`POST /api/v1/webhooks/register?handler_base_url=...` with the document's own .env (an
    inbound webhook): a portal binds events only for applications, so the answer is 409 with
    the outbound-webhook steps (a deliberate difference)."""
    response = compose.post(
        "/api/v1/webhooks/register", params={"handler_base_url": "https://your-public-url.com"}
    )
    assert response.status_code == 409
    assert "Outbound webhook" in response.json()["detail"]
    assert compose.emu.events.bindings == []


def event_form(deployment: Deployment, name: str, record_id: int, token: str) -> dict[str, Any]:
    """An event as the portal POSTs it (api-reference/events/index.md)."""
    return {
        "event": name,
        "event_handler_id": "1",
        "data[FIELDS][ID]": str(record_id),
        "ts": str(int(time.time())),
        "auth[domain]": deployment.emu.portal.domain,
        "auth[member_id]": deployment.emu.portal.member_id,
        "auth[application_token]": token,
    }


def test_each_documented_event_changes_its_row(application: Deployment) -> None:
    """`POST https://your-public-url.com/api/v1/webhooks/bitrix` with each of the 12 events."""
    assert application.emu.events.bindings == []  # only the events posted here arrive
    token = application.emu.app_application_token
    expected: dict[tuple[str, int], tuple[Any, ...]] = {}
    events: list[tuple[str, int]] = []
    for entity in ENTITIES:
        title = TITLE_COLUMN[entity]
        kept, removed = (int(r["ID"]) for r in application.records(entity)[:2])
        added = application.call(f"crm.{entity}.add", {"fields": {title: f"new {entity}"}})
        application.call(f"crm.{entity}.update", {"id": kept, "fields": {title: f"{entity}!"}})
        old_title = application.mirrored(entity, removed)
        application.call(f"crm.{entity}.delete", {"id": removed})
        assert application.mirrored(entity, added) is None  # nothing moves without the event
        prefix = f"ONCRM{entity.upper()}"
        events += [(f"{prefix}ADD", added), (f"{prefix}UPDATE", kept), (f"{prefix}DELETE", removed)]
        expected[entity, added] = (f"new {entity}", False)
        expected[entity, kept] = (f"{entity}!", False)
        assert old_title is not None
        expected[entity, removed] = (old_title[0], True)
    for name, record_id in events:
        response = httpx.post(
            f"{application.base}/api/v1/webhooks/bitrix",
            data=event_form(application, name, record_id, token),
        )
        assert response.status_code == 200, (name, response.text)
    wait_until(
        lambda: all(application.mirrored(e, i) == row for (e, i), row in expected.items()),
        "every event applied to its row",
    )


def test_register_lists_and_unregister_every_event(application: Deployment) -> None:
    """`POST /webhooks/register?handler_base_url=`, `GET /webhooks/registered`,
    `DELETE /webhooks/unregister?handler_base_url=` (a local application; a loopback handler,
    which plain http is allowed for while the portal is local too)."""
    handler_base = application.base
    handler = f"{handler_base}/api/v1/webhooks/bitrix"
    names = set(EVENT_NAMES)  # the original's twelve and those of the streams added since
    assert {f"ONCRM{e.upper()}{a}" for e in ENTITIES for a in ("ADD", "UPDATE", "DELETE")} <= names
    params = {"handler_base_url": handler_base}
    response = application.post("/api/v1/webhooks/register", params=params)
    try:
        assert response.status_code == 200, response.text
        assert set(response.json()["events"]) == names and response.json()["failed"] == {}
        bound = {(b.event, b.handler) for b in application.emu.events.bindings}
        assert bound == {(name, handler) for name in names}
        registered = application.get("/api/v1/webhooks/registered").json()
        assert {(b["event"], b["handler"]) for b in registered["bindings"]} == bound
        # the portal now delivers its own events: an edit in its UI reaches the row
        deal_id = int(application.records("deal")[-1]["ID"])
        edit = {"TITLE": "delivered by the bound event"}
        httpx.patch(f"{application.portal}/_emulator/records/deal/{deal_id}", json=edit)
        wait_until(
            lambda: application.mirrored("deal", deal_id) == (edit["TITLE"], False),
            "the bound event applied",
        )
    finally:
        removed = httpx.delete(
            f"{application.base}/api/v1/webhooks/unregister",
            params=params,
            headers=application.headers,
        )
    assert removed.status_code == 200, removed.text
    assert set(removed.json()["events"]) == names
    assert application.emu.events.bindings == []
    assert application.get("/api/v1/webhooks/registered").json()["bindings"] == []


# --- the test-data tool's report (004) --------------------------------------------------------


def contacts_are_linked_people(deployment: Deployment, companies: set[int]) -> None:
    contacts = deployment.generated("contact")
    assert len(contacts) == len(companies)
    for contact in contacts:
        assert contact["LAST_NAME"] and contact["NAME"] and contact["SECOND_NAME"]
        assert contact["PHONE"] and contact["PHONE"][0]["VALUE"].startswith("+7")
        assert int(contact["COMPANY_ID"]) in companies
    assert {int(c["COMPANY_ID"]) for c in contacts} == companies  # one contact each


def deleted_contacts_first(deployment: Deployment, since: int) -> list[str]:
    deletions = [entity for entity, action, _ in deployment.changes[since:] if action == "DELETE"]
    assert deletions == sorted(deletions, key=lambda e: e != "contact"), "contacts first"
    return deletions


def test_push_stream_creates_linked_records_and_the_tool_is_busy_meanwhile(
    compose: Deployment,
) -> None:
    """`GET /bitrix/webhook/push-stream?count=100`: `message` events with percents, then
    `done`; `GET /bitrix/status` is busy meanwhile and a second start says «Сервис занят»."""
    assert compose.generated("company") == []
    assert compose.get("/bitrix/status").json() == {"busy": False}
    slow = {"latency_ms": 300}  # so the busy window is long enough to look at
    httpx.put(f"{compose.portal}/_emulator/faults", json=slow)
    percents: list[int] = []
    try:
        with httpx.stream(
            "GET",
            f"{compose.base}/bitrix/webhook/push-stream",
            params={"count": 100},
            headers=compose.headers,
            timeout=60,
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            name, data = "", ""
            for name, data in sse(stream):
                if name != "message":
                    break
                percents.append(int(data))
                if len(percents) == 1:  # the first batch is in; three more to go
                    assert compose.get("/bitrix/status").json() == {"busy": True}
                    again = compose.get("/bitrix/webhook/push-stream", params={"count": 100})
                    assert again.status_code == 409 and BUSY_WORDS in again.json()["detail"]
                    clear = compose.post("/bitrix/clear-bitrix")
                    assert clear.status_code == 409 and BUSY_WORDS in clear.json()["detail"]
            assert name == "done", (name, data)
            report = json.loads(data)
    finally:
        httpx.put(f"{compose.portal}/_emulator/faults", json={"latency_ms": 0})
    # 1 % per 2 of the 200 operations, reported as each batch call of 50 commands returns
    assert percents == [25, 50, 75, 100]
    assert report["companies"] == 100 and report["contacts"] == 100 and report["failed"] == {}
    assert report["api_calls"] == 4
    assert compose.get("/bitrix/status").json() == {"busy": False}
    companies = {int(c["ID"]) for c in compose.generated("company")}
    assert len(companies) == 100
    contacts_are_linked_people(compose, companies)


def test_clear_stream_deletes_contacts_then_companies(compose: Deployment) -> None:
    """`GET /bitrix/clear-stream`: percents, then `done`; contacts first, then companies.
    Only the tool's own records go (the document deleted every one: a deliberate
    difference; `all=true` does that, below)."""
    created = compose.post("/bitrix/webhook/push-to-bitrix", params={"count": 10})
    assert created.status_code == 200
    generated = {e: len(compose.generated(e)) for e in ("contact", "company")}
    others = {e: len(compose.records(e)) - generated[e] for e in ("contact", "company")}
    since = len(compose.changes)
    with httpx.stream(
        "GET", f"{compose.base}/bitrix/clear-stream", headers=compose.headers, timeout=60
    ) as stream:
        assert stream.status_code == 200
        events = list(sse(stream))
    assert events[-1][0] == "done"
    percents = [int(data) for name, data in events[:-1] if name == "message"]
    assert percents == sorted(percents) and percents[-1] == 100
    report = json.loads(events[-1][1])
    assert (report["contacts"], report["companies"]) == (generated["contact"], generated["company"])
    assert report["scope"] == "generated" and "all=true" in report["note"]
    assert deleted_contacts_first(compose, since).count("contact") == generated["contact"]
    assert compose.generated("contact") == [] and compose.generated("company") == []
    assert {e: len(compose.records(e)) for e in others} == others


def test_push_to_bitrix_and_clear_bitrix(compose: Deployment) -> None:
    """`POST /bitrix/webhook/push-to-bitrix?count=100` and `POST /bitrix/clear-bitrix`."""
    before = {int(c["ID"]) for c in compose.generated("company")}
    created = compose.post("/bitrix/webhook/push-to-bitrix", params={"count": 100})
    assert created.status_code == 200, created.text
    assert (created.json()["companies"], created.json()["contacts"]) == (100, 100)
    companies = {int(c["ID"]) for c in compose.generated("company")} - before
    assert len(companies) == 100
    contacts_are_linked_people(compose, companies | before)
    since = len(compose.changes)
    cleared = compose.post("/bitrix/clear-bitrix")
    assert cleared.status_code == 200, cleared.text
    answer = cleared.json()
    assert answer["scope"] == "generated" and answer["note"]
    assert answer["contacts"] >= 100 and answer["companies"] >= 100
    deleted_contacts_first(compose, since)
    assert compose.generated("contact") == [] and compose.generated("company") == []


def test_routes_take_the_secret_parameter(compose: Deployment) -> None:
    """ "Опционально можно задать BITRIX_WEBHOOK_SECRET ... тогда все защищённые маршруты
    потребуют параметр secret" (no bearer header in these calls)."""
    base = compose.base
    assert httpx.get(f"{base}/bitrix/status", params={"secret": SEED_SECRET}).json() == {
        "busy": False
    }
    assert httpx.get(f"{base}/bitrix/status", params={"secret": "wrong"}).status_code == 401
    assert httpx.get(f"{base}/bitrix/status").status_code == 401
    with httpx.stream(
        "GET",
        f"{base}/bitrix/webhook/push-stream",
        params={"count": 2, "secret": SEED_SECRET},
        timeout=60,
    ) as stream:
        assert [name for name, _ in sse(stream)][-1] == "done"
    assert len(compose.generated("contact")) == 2
    with httpx.stream(
        "GET", f"{base}/bitrix/clear-stream", params={"secret": SEED_SECRET}, timeout=60
    ) as stream:
        assert [name for name, _ in sse(stream)][-1] == "done"
    assert compose.generated("contact") == []
    pushed = httpx.post(
        f"{base}/bitrix/webhook/push-to-bitrix", params={"count": 1, "secret": SEED_SECRET}
    )
    assert pushed.status_code == 200
    cleared = httpx.post(f"{base}/bitrix/clear-bitrix", params={"secret": SEED_SECRET})
    assert cleared.status_code == 200 and cleared.json()["contacts"] == 1


def test_profile_json_on_the_webhook_url(compose: Deployment) -> None:
    """ "Проверка: переход по `.../profile.json` должен возвращать JSON профиля"."""
    response = httpx.get(f"{compose.webhook}profile.json")
    assert response.status_code == 200
    profile = response.json()["result"]
    assert profile["ID"] and "NAME" in profile and "ADMIN" in profile


def test_root_answers_a_page(compose: Deployment) -> None:
    """`GET /` — the page (signed in: the dashboard; the tool's lists and buttons are on its
    Test data page)."""
    page = compose.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{compose.base}/").status_code == 303  # to /login: auth is on
    tool = compose.get("/testdata")
    assert tool.status_code == 200
    assert 'id="seed-create"' in tool.text and 'id="seed-clear"' in tool.text


def test_clear_all_deletes_every_contact_and_company(compose: Deployment) -> None:
    """ "Удаление всех контактов и компаний из CRM одним действием" (`all=true`). Last in this
    module: it empties the shared portal's contacts and companies."""
    since = len(compose.changes)
    existing = {e: len(compose.records(e)) for e in ("contact", "company")}
    assert existing["contact"] and existing["company"]
    cleared = compose.post("/bitrix/clear-bitrix", params={"all": "true"})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["scope"] == "all"
    assert (cleared.json()["contacts"], cleared.json()["companies"]) == (
        existing["contact"],
        existing["company"],
    )
    deleted_contacts_first(compose, since)
    assert compose.records("contact") == [] and compose.records("company") == []
