"""The smart processes the portal has (or had): what ``crm.type.list`` answered at the last
discovery, so every process of the service derives the same item streams.

Revision ID: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE b24sync.smart_processes (
            entity_type_id integer PRIMARY KEY,
            title text NOT NULL,
            definition jsonb NOT NULL,
            discovered_at timestamptz NOT NULL DEFAULT now(),
            seen_at timestamptz NOT NULL DEFAULT now(),
            gone_at timestamptz
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE b24sync.smart_processes")
