"""The IDs a full sync has read so far (so a resumed run marks deletions without a second
export), and the one portal this database mirrors (so a second portal is refused, not mixed in).

Revision ID: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE b24sync.full_sync_seen (
            entity text NOT NULL,
            id bigint NOT NULL,
            PRIMARY KEY (entity, id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE b24sync.mirrored_portal (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            portal text NOT NULL,
            claimed_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE b24sync.mirrored_portal")
    op.execute("DROP TABLE b24sync.full_sync_seen")
