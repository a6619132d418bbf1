"""The service's own tables in schema ``b24sync``, as revision 0001 created them.

Later revisions alter them in place: 0002 adds ``sync_runs.estimated_total``.
"""

from __future__ import annotations

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

SERVICE_SCHEMA = "b24sync"
metadata = MetaData(schema=SERVICE_SCHEMA)

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
