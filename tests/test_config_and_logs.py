"""Settings validation and secret redaction."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE

import pytest
from pydantic import ValidationError

from b24sync.config import (
    DEMO_PORTAL_FILE,
    Settings,
    WebhookUrl,
    keep_demo_portal,
    load_settings,
)
from b24sync.logs import KeyValueFormatter, RedactionFilter, RunLog
from b24sync.redaction import MASK, redact

TOKEN = "abcd1234efgh5678"
URL = f"https://portal.bitrix24.ru/rest/1/{TOKEN}/"


def test_webhook_url_prints_masked() -> None:
    hook = WebhookUrl.parse(URL)
    assert str(hook) == "https://portal.bitrix24.ru/rest/1/***/"
    assert TOKEN not in repr(hook)
    assert hook.secret_base == URL
    settings = Settings(bitrix_webhook_url=URL)
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings)


@pytest.mark.parametrize(
    "bad",
    [
        "portal.bitrix24.ru/rest/1/abc/",
        "ftp://portal/rest/1/abc/",
        "https://portal.bitrix24.ru/rest/abc/",
        "https://portal.bitrix24.ru/crm/deal/",
        "https://user:pw@portal.bitrix24.ru/rest/1/abc/",
    ],
)
def test_settings_reject_malformed_webhook_url(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(bitrix_webhook_url=bad)
    assert "BITRIX_WEBHOOK_URL" in str(info.value)


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """`.env.example` leaves secrets blank: a blank JWT secret must not become an HS256 key."""
    for name in ("SUPABASE_JWT_SECRET", "SUPABASE_URL", "API_KEYS", "BITRIX_APPLICATION_TOKEN"):
        monkeypatch.setenv(name, "")
    settings = Settings()
    assert settings.supabase_jwt_secret is None
    assert settings.supabase_url is None
    assert settings.bitrix_application_token is None
    assert settings.api_key_list == []


def test_a_local_application_needs_portal_id_and_secret_together() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(bitrix_client_id="local.1", bitrix_client_secret="s")
    assert "BITRIX_PORTAL_URL" in str(info.value)
    with pytest.raises(ValidationError):
        Settings(bitrix_portal_url="https://u:p@portal.bitrix24.ru", bitrix_client_id="a")
    settings = Settings(
        bitrix_portal_url="https://portal.bitrix24.ru/",
        bitrix_client_id="local.1",
        bitrix_client_secret="s3cr3t-value",
    )
    assert settings.application_configured and settings.portal_configured
    assert settings.bitrix_portal_url == "https://portal.bitrix24.ru"
    assert "s3cr3t-value" not in repr(settings)


def _format(message: str, *args: object) -> str:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, message, args, None)
    assert RedactionFilter().filter(record)
    return KeyValueFormatter().format(record)


def test_redaction_filter_removes_webhook_token() -> None:
    WebhookUrl.parse(URL)
    line = _format("calling %s failed", URL + "crm.deal.list")
    assert TOKEN not in line
    assert "rest/1/***/crm.deal.list" in line


def test_redaction_filter_removes_jwt_and_api_key() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlc2lnbmF0dXJl"
    settings = Settings(api_keys="k-live-0123456789,other-key-987654")
    settings.register_secrets()
    line = _format("auth %s with key %s", jwt, "other-key-987654")
    assert jwt not in line
    assert "other-key-987654" not in line


def test_redaction_masks_application_token_in_form_payload() -> None:
    line = _format("event body: %s", "event=ONCRMDEALUPDATE&auth[application_token]=s3cr3tvalue99")
    assert "s3cr3tvalue99" not in line


def test_redaction_applies_to_exception_text() -> None:
    try:
        raise RuntimeError(f"boom at {URL}")
    except RuntimeError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    RedactionFilter().filter(record)
    assert TOKEN not in KeyValueFormatter().format(record)


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://bi:s3cr%40tpass@127.0.0.1:55432/postgres",
        "host=db user=bi password=s3cr%40tpass",
        "postgresql://bi@db/x?password=s3cr%40tpass&sslmode=require",
    ],
)
def test_redaction_masks_database_passwords(text: str) -> None:
    assert "s3cr%40tpass" not in redact(text) and MASK in redact(text)


def test_the_demo_portal_of_a_process_that_died_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BITRIX_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("B24SYNC_DATA_DIR", str(tmp_path))
    url = "http://127.0.0.1:8800/rest/1/demotoken123/"
    keep_demo_portal(tmp_path, url)
    assert load_settings().bitrix_webhook_url == url  # this process serves it
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], stdout=PIPE)
    note = tmp_path / DEMO_PORTAL_FILE
    note.write_text(json.dumps({"webhook_url": url, "pid": int(gone.stdout)}))
    assert load_settings().bitrix_webhook_url is None
    assert load_settings(read_demo_portal=False).bitrix_webhook_url is None


def test_a_run_log_keeps_its_first_and_last_lines() -> None:
    run_log = RunLog(head=3, tail=2)
    for n in range(10):
        run_log.add(f"line {n}")
    assert run_log.lines() == [
        "line 0",
        "line 1",
        "line 2",
        "... 5 lines left out ...",
        "line 8",
        "line 9",
    ]
