"""Public verification page: shared results (permalinks), kept until they expire.

Revision ID: 0006_public_results
Revises: 0005_portal
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_public_results"
down_revision = "0005_portal"
branch_labels = None
depends_on = None

WHEN = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "public_results",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("verifier", sa.String(64), primary_key=True),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
    )
    op.create_index("ix_public_results_expires_at", "public_results", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_public_results_expires_at", table_name="public_results")
    op.drop_table("public_results")
