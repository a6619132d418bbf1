"""A local application's OAuth token pair and application token, shared by every process.

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
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE b24sync.app_tokens")
