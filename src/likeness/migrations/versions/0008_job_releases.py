"""``jobs.releases``: how many times a job went back to the queue because its worker shut down.
The first few releases do not count the claim as an attempt; the ones after do, so a job whose
worker is stopped again and again still ends after its attempts (``JobQueue.release``).

Revision ID: 0008_job_releases
Revises: 0007_ledger_type_created_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_job_releases"
down_revision = "0007_ledger_type_created_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("releases", sa.Integer(), nullable=False, server_default=sa.text("0")))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("releases")
