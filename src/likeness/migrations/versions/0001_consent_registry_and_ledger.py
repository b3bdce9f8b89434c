"""Consent registry and hash-chained ledger.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(32)
TS = sa.String(20)
HEX64 = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", ID, primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("public_key", HEX64, nullable=False),
        sa.Column("key_fingerprint", sa.String(80), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "rights_holders",
        sa.Column("id", ID, primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("public_key", HEX64, nullable=False),
        sa.Column("key_fingerprint", sa.String(80), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "subjects",
        sa.Column("id", ID, primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("holder_id", ID, sa.ForeignKey("rights_holders.id"), nullable=False),
        sa.Column("owner_org_id", ID, sa.ForeignKey("organisations.id"), nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "reference_embeddings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subject_id", ID, sa.ForeignKey("subjects.id"), nullable=False),
        sa.Column("source_name", sa.String(300), nullable=False),
        sa.Column("source_sha256", HEX64, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("subject_id", "source_sha256"),
    )
    op.create_table(
        "grants",
        sa.Column("id", ID, primary_key=True),
        sa.Column("subject_id", ID, sa.ForeignKey("subjects.id"), nullable=False),
        sa.Column("org_id", ID, sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("holder_id", ID, sa.ForeignKey("rights_holders.id"), nullable=False),
        sa.Column("uses", sa.Text, nullable=False),
        sa.Column("valid_from", TS, nullable=False),
        sa.Column("valid_until", TS, nullable=False),
        sa.Column("max_renders", sa.Integer, nullable=True),
        sa.Column("allow_unlabelled", sa.Boolean, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("payload_sha256", HEX64, nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_table(
        "grant_revocations",
        sa.Column("id", ID, primary_key=True),
        sa.Column("grant_id", ID, sa.ForeignKey("grants.id"), nullable=False, unique=True),
        sa.Column("revoked_at", TS, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_table(
        "releases",
        sa.Column("id", ID, primary_key=True),
        sa.Column("performer_id", ID, sa.ForeignKey("subjects.id"), nullable=False),
        sa.Column("org_id", ID, sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("holder_id", ID, sa.ForeignKey("rights_holders.id"), nullable=False),
        sa.Column("valid_from", TS, nullable=False),
        sa.Column("valid_until", TS, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("payload_sha256", HEX64, nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_table(
        "release_revocations",
        sa.Column("id", ID, primary_key=True),
        sa.Column("release_id", ID, sa.ForeignKey("releases.id"), nullable=False, unique=True),
        sa.Column("revoked_at", TS, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_table(
        "authorizations",
        sa.Column("id", ID, primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("grant_id", ID, sa.ForeignKey("grants.id"), nullable=True),
        sa.Column("release_id", ID, sa.ForeignKey("releases.id"), nullable=True),
        sa.Column("subject_id", ID, sa.ForeignKey("subjects.id"), nullable=False),
        sa.Column("use", sa.String(40), nullable=True),
        sa.Column("org_id", ID, sa.ForeignKey("organisations.id"), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
    )
    op.create_table(
        "render_consumptions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("grant_id", ID, sa.ForeignKey("grants.id"), nullable=False),
        sa.Column("authorization_id", ID, sa.ForeignKey("authorizations.id"), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False, unique=True),
        sa.Column("consumed_at", TS, nullable=False),
    )
    op.create_table(
        "ledger",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("event_id", ID, nullable=False, unique=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("prev_hash", HEX64, nullable=False),
        sa.Column("hash", HEX64, nullable=False),
    )
    _protect_ledger()


def _protect_ledger() -> None:
    """The ledger is append-only at the database level too."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ledger_no_{action.lower()} BEFORE {action} ON ledger "
                f"BEGIN SELECT RAISE(ABORT, 'ledger is append-only: {action} refused'); END;"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION ledger_append_only() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'ledger is append-only: % refused', TG_OP; END; $$ LANGUAGE plpgsql;"
        )
        op.execute(
            "CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();"
        )


def downgrade() -> None:
    raise RuntimeError("the ledger is append-only; downgrading would destroy evidence")
