"""Public verification page: may a subject be named there (its rights holder's choice).

Revision ID: 0004_public
Revises: 0003_service
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_public"
down_revision = "0003_service"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Set when the subject is enrolled and recorded in its subject.created ledger event; off
    # for every subject enrolled before (the public page then says "an artist this agency
    # represents").
    op.add_column("subjects", sa.Column("public_name", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("subjects") as batch:
        batch.drop_column("public_name")
