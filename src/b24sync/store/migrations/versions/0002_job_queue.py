"""The procrastinate job queue (its own tables, in schema public), queued runs, run estimates.

Revision ID: 0002
"""

from __future__ import annotations

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The raw driver connection: procrastinate's SQL holds '%' that a paramstyle would mangle.
    driver_connection = op.get_bind().connection.driver_connection
    assert driver_connection is not None
    driver_connection.execute(SchemaManager.get_schema())
    op.execute("ALTER TABLE b24sync.sync_runs ADD COLUMN estimated_total bigint")
    op.create_index(
        "sync_runs_queued",
        "sync_runs",
        ["entity"],
        schema="b24sync",
        postgresql_where="status = 'queued'",
    )


def downgrade() -> None:
    op.drop_index("sync_runs_queued", table_name="sync_runs", schema="b24sync")
    op.execute("ALTER TABLE b24sync.sync_runs DROP COLUMN estimated_total")
    op.execute(
        "DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, "
        "procrastinate_jobs, procrastinate_workers CASCADE"
    )
    op.execute(
        """
        DO $$ DECLARE r record; BEGIN
          FOR r IN SELECT oid::regprocedure AS f FROM pg_proc WHERE proname LIKE 'procrastinate%' LOOP
            EXECUTE 'DROP FUNCTION ' || r.f || ' CASCADE';
          END LOOP;
          -- its enums and standalone composite types (procrastinate_job_to_defer_v1, ...)
          FOR r IN SELECT t.typname FROM pg_type t
                   JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE n.nspname = 'public' AND t.typname LIKE 'procrastinate%'
                     AND (t.typtype = 'e' OR EXISTS (
                          SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c'))
          LOOP
            EXECUTE 'DROP TYPE IF EXISTS public.' || quote_ident(r.typname) || ' CASCADE';
          END LOOP;
        END $$;
        """
    )
