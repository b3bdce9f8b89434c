"""Rights-holder portal: passkeys, invitations, grant requests, holder sessions, ceremonies.

Revision ID: 0005_portal
Revises: 0004_public
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_portal"
down_revision = "0004_public"
branch_labels = None
depends_on = None

ID = sa.String(32)
TS = sa.String(20)
HEX64 = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "holder_passkeys",
        sa.Column("id", ID, primary_key=True),
        sa.Column("holder_id", ID, sa.ForeignKey("rights_holders.id"), nullable=False),
        sa.Column("credential_id", sa.String(1400), nullable=False, unique=True),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("rp_id", sa.String(255), nullable=False),
        sa.Column("origin", sa.String(255), nullable=False),
        sa.Column("sign_count", sa.Integer, nullable=False),
        sa.Column("label", sa.String(20), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS, nullable=True),
    )
    op.create_table(
        "holder_invitations",
        sa.Column("id", ID, primary_key=True),
        sa.Column("holder_id", ID, sa.ForeignKey("rights_holders.id"), nullable=False),
        sa.Column("org_id", ID, sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("token_sha256", HEX64, nullable=False, unique=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
    )
    op.create_table(
        "grant_requests",
        sa.Column("id", ID, primary_key=True),
        sa.Column("subject_id", ID, sa.ForeignKey("subjects.id"), nullable=False),
        sa.Column("org_id", ID, sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("request_sha256", HEX64, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("grant_id", ID, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("decided_at", TS, nullable=True),
    )
    op.create_table(
        "holder_sessions",
        sa.Column("id", ID, primary_key=True),
        sa.Column("token_sha256", HEX64, nullable=False, unique=True),
        sa.Column("holder_id", ID, sa.ForeignKey("rights_holders.id"), nullable=False),
        sa.Column("credential_id", sa.String(1400), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_table(
        "passkey_challenges",
        sa.Column("id", ID, primary_key=True),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("holder_id", ID, nullable=True),
        sa.Column("invitation_id", ID, nullable=True),
        sa.Column("challenge", HEX64, nullable=False),
        sa.Column("payload", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
    )
    op.create_index("ix_grant_requests_subject_state", "grant_requests", ["subject_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_grant_requests_subject_state", table_name="grant_requests")
    for table in ("passkey_challenges", "holder_sessions", "grant_requests", "holder_invitations", "holder_passkeys"):
        op.drop_table(table)
