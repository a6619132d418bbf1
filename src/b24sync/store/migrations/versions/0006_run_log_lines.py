"""The log lines a run wrote (warnings, schema changes, retries), shown on its dashboard page.

Revision ID: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE b24sync.sync_runs ADD COLUMN log text")


def downgrade() -> None:
    op.execute("ALTER TABLE b24sync.sync_runs DROP COLUMN log")
