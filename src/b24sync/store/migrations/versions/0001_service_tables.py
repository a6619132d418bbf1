"""Service tables: config, state, runs (+ sync_logs view), event inbox, field snapshots.

The tables are defined here, frozen as this revision made them; later revisions alter them
(0002 adds ``sync_runs.estimated_total``, 0003 adds tables of its own).

Revision ID: 0001
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(schema="b24sync")

sync_config = Table(
    "sync_config",
    metadata,
    Column("entity", Text, primary_key=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("interval_minutes", Integer, nullable=False, server_default=text("15")),
    Column("webhook_enabled", Boolean, nullable=False, server_default=text("true")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("entity", Text, primary_key=True),
    # the incremental cursor: {"field": "DATE_MODIFY", "value": iso, "overlap_seconds": n}
    Column("cursor", JSONB),
    # how far an unfinished full export got: {"run_id": n, "last_id": n}
    Column("full_checkpoint", JSONB),
    Column("last_full_sync_at", DateTime(timezone=True)),
    Column("last_incremental_sync_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("entity", Text, nullable=False),
    Column("sync_type", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True)),
    Column("fetched", BigInteger, nullable=False, server_default=text("0")),
    Column("upserted", BigInteger, nullable=False, server_default=text("0")),
    Column("deleted", BigInteger, nullable=False, server_default=text("0")),
    Column("failed_conversions", BigInteger, nullable=False, server_default=text("0")),
    Column("api_calls", BigInteger, nullable=False, server_default=text("0")),
    Column("commands", BigInteger, nullable=False, server_default=text("0")),
    Column("error", Text),
)

received_events = Table(
    "received_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("event_name", Text, nullable=False),
    Column("entity", Text),
    Column("record_id", BigInteger),
    Column("member_id", Text),
    Column("event_ts", BigInteger),
    Column("payload", JSONB, nullable=False),
    Column("processed_at", DateTime(timezone=True)),
    Column("error", Text),
)

field_snapshots = Table(
    "field_snapshots",
    metadata,
    Column("entity", Text, primary_key=True),
    Column("field_name", Text, primary_key=True),
    Column("column_name", Text, nullable=False),
    Column("bitrix_type", Text, nullable=False),
    Column("pg_type", Text, nullable=False),
    Column("is_multiple", Boolean, nullable=False, server_default=text("false")),
    Column("title", Text),
    Column("definition", JSONB, nullable=False),
    Column("first_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("removed_at", DateTime(timezone=True)),
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = (sync_config, sync_state, sync_runs, received_events, field_snapshots)


def upgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        table.create(bind)
    op.create_index(
        "received_events_pending",
        "received_events",
        ["entity", "id"],
        schema="b24sync",
        postgresql_where="processed_at IS NULL",
    )
    op.create_index(
        "sync_runs_entity_started", "sync_runs", ["entity", "started_at"], schema="b24sync"
    )
    op.execute(
        """
        CREATE VIEW b24sync.sync_logs AS
        SELECT id, entity, sync_type, status, started_at, finished_at,
               fetched AS records_fetched, upserted AS records_upserted,
               deleted AS records_deleted, failed_conversions, api_calls, commands,
               error AS error_message,
               EXTRACT(EPOCH FROM (finished_at - started_at)) AS duration_seconds
        FROM b24sync.sync_runs
        """
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS b24sync.sync_logs")
    for table in reversed(_TABLES):
        table.drop(op.get_bind())
