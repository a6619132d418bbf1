"""The CLI as a user runs it: a separate process, a real portal URL, a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg

from b24emu import Emulator, create_app, seed_portal
from b24emu.server import serving, webhook_url
from b24sync.streams import EVENT_NAMES
from tests.portal import process


def b24sync(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "b24sync.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **env},
        timeout=120,
    )


@contextmanager
def portal_env(emu: Emulator, database_url: str) -> Iterator[dict[str, str]]:
    """``emu`` served over HTTP, and the environment that points the CLI at it."""
    with serving(create_app(emu)) as base:
        host, port = base.removeprefix("http://").split(":")
        yield {
            "DATABASE_URL": database_url,
            "BITRIX_WEBHOOK_URL": webhook_url(emu, host, int(port)),
        }


def title(database_url: str, deal_id: int) -> str | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT title FROM bitrix24.crm_deal WHERE id = %s", (deal_id,))
        found = row.fetchone()
    return found[0] if found else None


def test_sync_json_status_and_schema(database_url: str) -> None:
    emu = Emulator(webhook_token="clitoken12345")
    seed_portal(emu.portal, {"company": 120})
    with serving(create_app(emu)) as base:
        port = int(base.rsplit(":", 1)[1])
        env = {
            "DATABASE_URL": database_url,
            "BITRIX_WEBHOOK_URL": webhook_url(emu, "127.0.0.1", port),
        }
        done = b24sync("sync", "company", "--full", "--json", env=env)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        assert {k: summary[k] for k in ("entity", "mode", "fetched", "upserted", "deleted")} == {
            "entity": "company",
            "mode": "full",
            "fetched": 120,
            "upserted": 120,
            "deleted": 0,
        }
        assert summary["api_calls"] == 3 and summary["seconds"] > 0
        assert "clitoken12345" not in done.stdout + done.stderr
        status = json.loads(b24sync("status", "--json", env=env).stdout)
        assert {r["entity"]: r["rows"] for r in status}["company"] == 120
        schema = b24sync("schema", "company", env=env)
        assert "uf_crm_1700000201" in schema.stdout and "ИНН" in schema.stdout


def test_unknown_entity_and_missing_mode_are_clear_errors(database_url: str) -> None:
    env = {"DATABASE_URL": database_url}
    wrong = b24sync("sync", "invoice", "--full", env=env)
    assert wrong.returncode == 2 and "unknown stream 'invoice'" in wrong.stderr
    neither = b24sync("sync", "deal", env=env)
    assert neither.returncode == 2 and "--full or --incremental" in neither.stderr


def test_malformed_webhook_url_is_refused_without_traceback() -> None:
    result = b24sync("status", env={"BITRIX_WEBHOOK_URL": "https://portal/rest/abc/"})
    assert result.returncode == 2
    assert "BITRIX_WEBHOOK_URL" in result.stderr and "Traceback" not in result.stderr


def test_seed_create_and_clear_and_webhooks(database_url: str) -> None:
    emu = Emulator(webhook_token="clitoken12345")
    with portal_env(emu, database_url) as env:
        created = b24sync("seed", "create", "--companies", "30", "--contacts", "45", env=env)
        assert created.returncode == 0, created.stderr
        assert "30 companies, 45 contacts, 2 API calls" in created.stderr
        assert len(emu.portal.store("contact").records) == 45
        cleared = b24sync("seed", "clear", env=env)
        assert cleared.returncode == 0 and "30 companies, 45 contacts" in cleared.stderr
        assert not emu.portal.store("contact").records
        listed = b24sync("webhooks", "list", env=env)
        assert listed.returncode == 0 and json.loads(listed.stdout)["auth"] == "inbound_webhook"
        register = b24sync("webhooks", "register", "https://sync.example.com", env=env)
        assert register.returncode == 2 and "Outbound webhook" in register.stderr
        assert "clitoken12345" not in created.stderr + listed.stdout + register.stderr


def test_a_local_application_syncs_and_binds_offline_events(database_url: str) -> None:
    """OAuth from the environment: BITRIX_REFRESH_TOKEN is spent once, the pair is stored."""
    emu = Emulator()
    seed_portal(emu.portal, {"deal": 70})
    app = emu.install_app()
    bootstrap = app.refresh_token
    with serving(create_app(emu)) as base:
        env = {
            "DATABASE_URL": database_url,
            "BITRIX_PORTAL_URL": base,
            "BITRIX_OAUTH_URL": base,
            "BITRIX_CLIENT_ID": app.client_id,
            "BITRIX_CLIENT_SECRET": app.client_secret,
            "BITRIX_REFRESH_TOKEN": bootstrap,
        }
        done = b24sync("sync", "deal", "--full", "--json", env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1])["fetched"] == 70
        # A second process reuses the stored pair: the spent bootstrap token is not asked again.
        register = b24sync("webhooks", "register", "--offline", env=env)
        assert register.returncode == 0, register.stderr
        assert len(json.loads(register.stdout)["events"]) == len(EVENT_NAMES)
        assert {b.offline for b in emu.events.bindings} == {True}
        listed = json.loads(b24sync("webhooks", "list", env=env).stdout)
        assert listed["auth"] == "application" and len(listed["bindings"]) == len(EVENT_NAMES)

        # A worker's periodic drain brings an edit made in the portal into the row.
        httpx.patch(f"{base}/_emulator/records/deal/5", json={"TITLE": "offline edit"})
        with process("worker", env={**os.environ, **env}) as worker:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and title(database_url, 5) != "offline edit":
                assert worker.poll() is None
                time.sleep(0.5)
        assert title(database_url, 5) == "offline edit"
        assert emu.events.offline == []
        output = done.stdout + done.stderr + register.stdout + register.stderr
        for secret in (app.client_secret, bootstrap, app.access_token, app.refresh_token):
            assert secret not in output


def test_exit_codes_say_failed_usage_or_busy_and_json_says_why(database_url: str) -> None:
    """1 failed, 2 usage or configuration, 3 busy; with --json the last line says which."""
    unconfigured = b24sync("sync", "deal", "--full", "--json", env={"DATABASE_URL": database_url})
    assert unconfigured.returncode == 2, unconfigured.stderr
    line = json.loads(unconfigured.stdout.splitlines()[-1])
    assert line["status"] == "refused" and "portal" in line["error"]
    emu = Emulator(webhook_token="clitoken12345")
    with portal_env(emu, database_url) as env:
        with psycopg.connect(database_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(hashtext('b24sync.service.testdata'))")
            busy = b24sync("seed", "create", "--companies", "1", "--contacts", "1", env=env)
        assert busy.returncode == 3 and "Сервис занят" in busy.stderr, busy.stderr
        assert not emu.portal.store("company").records
        wrong_token = env["BITRIX_WEBHOOK_URL"].replace("clitoken12345", "wrongtoken999")
        failed = b24sync(
            "sync", "deal", "--full", "--json", env={**env, "BITRIX_WEBHOOK_URL": wrong_token}
        )
    assert failed.returncode == 1, failed.stderr
    line = json.loads(failed.stdout.splitlines()[-1])
    assert line["status"] == "failed" and line["error"]
    assert "wrongtoken999" not in failed.stdout + failed.stderr
