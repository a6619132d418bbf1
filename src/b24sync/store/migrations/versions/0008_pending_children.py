"""Parents whose children (links, product rows) an event asked to refresh and that no call has
carried yet: event application spends its share of the request rate on the records first.

Revision ID: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE b24sync.pending_children ("
        " stream text NOT NULL,"
        " parent_id bigint NOT NULL,"
        " noted_at timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (stream, parent_id))"
    )


def downgrade() -> None:
    op.execute("DROP TABLE b24sync.pending_children")
