"""Watermark-payload index of the ledger: one row per event that carries a watermark payload.

Verify looked a payload up by scanning every ledger event; this table (kept in step by
``likeness.consent.ledger`` in the same transaction as each event, checked by ``audit verify``)
makes it an index seek. Existing workspaces are backfilled from their ledger here, with the
same ``watermark_index_row`` rule the append path uses.

Revision ID: 0002_ledger_payload_index
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from likeness import strict_json

revision = "0002_ledger_payload_index"
down_revision = "0001"
branch_labels = None
depends_on = None

# Fixed here (not imported) so the migration keeps meaning what it meant when it was written.
WATERMARK_EVENTS = ("render.completed", "preview.written")
BATCH = 5000


def upgrade() -> None:
    index = op.create_table(
        "ledger_watermark_index",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("watermark_payload", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
    )
    op.create_index("ix_ledger_watermark_index_payload", "ledger_watermark_index", ["watermark_payload"])
    _backfill(index)


def _backfill(index: sa.Table) -> None:
    ledger = sa.table(
        "ledger",
        sa.column("seq", sa.Integer),
        sa.column("event_id", sa.String),
        sa.column("event_type", sa.String),
        sa.column("payload", sa.Text),
    )
    bind = op.get_bind()
    query = (
        sa.select(ledger.c.seq, ledger.c.event_id, ledger.c.event_type, ledger.c.payload)
        .where(ledger.c.event_type.in_(WATERMARK_EVENTS))
        .order_by(ledger.c.seq)
    )
    batch: list[dict] = []
    for seq, event_id, event_type, payload_json in bind.execute(query):
        try:
            payload = strict_json.loads(payload_json)
        except ValueError:
            continue  # an edited row: the chain check names it, the index leaves it out
        value = payload.get("watermark_payload") if isinstance(payload, dict) else None
        if not isinstance(value, str):
            continue
        batch.append({"seq": seq, "watermark_payload": value, "event_type": event_type, "event_id": event_id})
        if len(batch) >= BATCH:
            bind.execute(sa.insert(index), batch)
            batch = []
    if batch:
        bind.execute(sa.insert(index), batch)


def downgrade() -> None:
    op.drop_index("ix_ledger_watermark_index_payload", table_name="ledger_watermark_index")
    op.drop_table("ledger_watermark_index")
