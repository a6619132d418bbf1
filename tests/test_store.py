"""The store: migrations and the embedded server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
from alembic import command

from b24sync.store.migrate import alembic_config, migrate

SERVICE_TABLES = {
    "sync_config",
    "sync_state",
    "sync_runs",
    "received_events",
    "field_snapshots",
    "app_tokens",
    "rate_buckets",
}


def _relations(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'b24sync'"
        ).fetchall()
    return {r[0] for r in rows}


def test_migrations_create_service_tables_on_empty_database(empty_database_url: str) -> None:
    assert _relations(empty_database_url) == set()
    migrate(empty_database_url)
    assert SERVICE_TABLES | {"sync_logs", "alembic_version"} <= _relations(empty_database_url)


def test_every_revision_downgrades_and_upgrades_again(empty_database_url: str) -> None:
    migrate(empty_database_url)
    command.downgrade(alembic_config(empty_database_url), "base")
    assert _relations(empty_database_url) <= {"alembic_version"}
    with psycopg.connect(empty_database_url) as conn:
        queue = conn.execute("SELECT to_regclass('public.procrastinate_jobs')").fetchone()
    assert queue == (None,)
    migrate(empty_database_url)
    assert SERVICE_TABLES | {"sync_logs"} <= _relations(empty_database_url)


def test_migrations_are_idempotent_and_keep_data(empty_database_url: str) -> None:
    migrate(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        conn.execute(
            "INSERT INTO b24sync.sync_runs (entity, sync_type, status)"
            " VALUES ('deal', 'full', 'ok')"
        )
    migrate(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        rows = conn.execute("SELECT entity, sync_type, status FROM b24sync.sync_logs").fetchall()
    assert rows == [("deal", "full", "ok")]


def test_embedded_server_restarts_with_its_data(tmp_path: Path) -> None:
    """Two separate processes: the second start finds what the first one wrote."""
    script = (
        "import sys, psycopg\n"
        "from pathlib import Path\n"
        "from b24sync.store.embedded import EmbeddedPostgres\n"
        "pg = EmbeddedPostgres(Path(sys.argv[1]))\n"
        "url = pg.start()\n"
        "with psycopg.connect(url, autocommit=True) as c:\n"
        "    c.execute('CREATE TABLE IF NOT EXISTS kept (v text)')\n"
        "    c.execute('INSERT INTO kept VALUES (%s)', (sys.argv[2],))\n"
        "    print(','.join(r[0] for r in c.execute('SELECT v FROM kept ORDER BY v')))\n"
        "pg.stop()\n"
    )
    first = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), "a"],
        capture_output=True,
        text=True,
        check=True,
    )
    second = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), "b"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert first.stdout.strip() == "a"
    assert second.stdout.strip() == "a,b"
