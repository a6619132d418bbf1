"""The store: migrations and the embedded server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import psycopg
from alembic import command

from b24sync.store import pending_children
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


async def test_a_note_made_while_its_parent_is_being_refreshed_outlives_that_refresh(
    database_url: str,
) -> None:
    """Worker A has claimed deal 10's product rows and is reading them; deal 10 changes and
    worker B notes it again. A's refresh may predate the change, so B's note must survive
    A's end (a note merged into A's would be deleted with it)."""
    async with (
        await psycopg.AsyncConnection.connect(database_url) as a,
        await psycopg.AsyncConnection.connect(database_url) as b,
    ):
        await pending_children.note(a, "deal_productrow", [10])
        await a.commit()
        assert await pending_children.claim(a, "deal_productrow", 50) == [10]  # A's transaction
        noting = asyncio.create_task(pending_children.note(b, "deal_productrow", [10]))
        await asyncio.sleep(0.3)
        assert not noting.done()  # B waits for A's refresh to end
        await pending_children.refreshed(a, "deal_productrow", [10])
        await a.commit()
        await noting
        await b.commit()
        assert await pending_children.claim(a, "deal_productrow", 50) == [10]
