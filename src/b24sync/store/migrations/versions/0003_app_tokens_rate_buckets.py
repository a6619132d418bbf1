"""Shared by every process: a local application's tokens, and each portal's request bucket.

Revision ID: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE b24sync.app_tokens (
            portal text PRIMARY KEY,
            access_token text NOT NULL,
            refresh_token text NOT NULL,
            expires_at timestamptz,
            member_id text NOT NULL DEFAULT '',
            application_token text NOT NULL DEFAULT '',
            offline_process_id text,
            offline_bound boolean NOT NULL DEFAULT false,
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE b24sync.rate_buckets (
            portal text PRIMARY KEY,
            level double precision NOT NULL DEFAULT 0,
            stamp timestamptz NOT NULL DEFAULT clock_timestamp()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE b24sync.rate_buckets")
    op.execute("DROP TABLE b24sync.app_tokens")
