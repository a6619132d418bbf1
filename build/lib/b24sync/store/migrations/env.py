"""Alembic environment: runs against the URL the caller put in the config."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from b24sync.store.database import migration_engine
from b24sync.store.tables import SERVICE_SCHEMA, metadata

url = context.config.get_main_option("sqlalchemy.url")
assert url, "migrate() sets sqlalchemy.url"
engine = migration_engine(url)
with engine.begin() as connection:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SERVICE_SCHEMA}"'))
    # Serialise concurrent starts of several processes on one database.
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('b24sync.migrate'))"))
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=SERVICE_SCHEMA,
    )
    context.run_migrations()
engine.dispose()
