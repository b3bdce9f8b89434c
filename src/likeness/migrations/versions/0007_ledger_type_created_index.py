"""An index on the ledger's ``(event_type, created_at)``: the public reports' daily quota reads
the last day's ``case.opened`` events, and without it every report read them all, ever.

Revision ID: 0007_ledger_type_created_index
Revises: 0006_public_results
"""

from alembic import op

revision = "0007_ledger_type_created_index"
down_revision = "0006_public_results"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ledger_type_created", "ledger", ["event_type", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_ledger_type_created", table_name="ledger")
