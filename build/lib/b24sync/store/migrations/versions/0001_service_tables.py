"""Service tables: config, state, runs (+ sync_logs view), event inbox, field snapshots.

Revision ID: 0001
"""

from __future__ import annotations

from alembic import op

from b24sync.store.tables import (
    field_snapshots,
    received_events,
    sync_config,
    sync_runs,
    sync_state,
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
