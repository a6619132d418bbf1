"""``b24sync.input_is_valid(text, type)``: PostgreSQL 16's ``pg_input_is_valid`` for the date
and time types on servers before 16, which the loader's casts ask whether a date-time the
grammar admits names a real instant (2024-02-30 does not). A plpgsql exception block per call
(a subtransaction): slower than the built-in, so on 16+ the loader calls the built-in instead.

Revision ID: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION b24sync.input_is_valid(value text, type_name text) RETURNS boolean
        LANGUAGE plpgsql STABLE STRICT AS $$
        BEGIN
            IF type_name = 'timestamptz' THEN
                PERFORM value::timestamptz;
            ELSIF type_name = 'timestamp' THEN
                PERFORM value::timestamp;
            ELSE
                RAISE EXCEPTION 'b24sync.input_is_valid: no check for type %', type_name;
            END IF;
            RETURN true;
        EXCEPTION WHEN data_exception THEN
            RETURN false;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION b24sync.input_is_valid(text, text)")
