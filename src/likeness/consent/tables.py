"""SQLAlchemy models of the consent registry and the ledger.

Timestamps are stored as the ISO-8601 UTC strings that get signed, so a row rebuilds exactly the
canonical payload its signature covers on SQLite and PostgreSQL alike. Schema changes go through
Alembic migrations in ``likeness/migrations``.
"""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(32)
TS = String(20)
HEX64 = String(64)


class Base(DeclarativeBase):
    pass


class Organisation(Base):
    __tablename__ = "organisations"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[str] = mapped_column(HEX64)
    key_fingerprint: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[str] = mapped_column(TS)


class RightsHolder(Base):
    __tablename__ = "rights_holders"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    # The key the holder enrolled with (as in its holder.created event). Rows are never edited:
    # a later key is a holder.key_rotated / holder.key_recovered ledger event.
    public_key: Mapped[str] = mapped_column(HEX64)
    key_fingerprint: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[str] = mapped_column(TS)


class Subject(Base):
    __tablename__ = "subjects"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    holder_id: Mapped[str] = mapped_column(ForeignKey("rights_holders.id"))
    owner_org_id: Mapped[str | None] = mapped_column(ForeignKey("organisations.id"), nullable=True)
    created_at: Mapped[str] = mapped_column(TS)
    #: The rights holder allows the public verification page to name this subject.
    public_name: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ReferenceEmbedding(Base):
    __tablename__ = "reference_embeddings"
    __table_args__ = (UniqueConstraint("subject_id", "source_sha256"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"))
    source_name: Mapped[str] = mapped_column(String(300))
    source_sha256: Mapped[str] = mapped_column(HEX64)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32 little-endian (128,)
    created_at: Mapped[str] = mapped_column(TS)


class Grant(Base):
    __tablename__ = "grants"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    holder_id: Mapped[str] = mapped_column(ForeignKey("rights_holders.id"))
    uses: Mapped[str] = mapped_column(Text)  # JSON list, sorted
    valid_from: Mapped[str] = mapped_column(TS)
    valid_until: Mapped[str] = mapped_column(TS)
    max_renders: Mapped[int | None] = mapped_column(Integer, nullable=True)
    allow_unlabelled: Mapped[bool] = mapped_column(Boolean)
    purpose: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[str] = mapped_column(TS)
    payload_sha256: Mapped[str] = mapped_column(HEX64)
    signature: Mapped[str] = mapped_column(String(128))


class GrantRevocation(Base):
    __tablename__ = "grant_revocations"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.id"), unique=True)
    revoked_at: Mapped[str] = mapped_column(TS)
    reason: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(128))


class Release(Base):
    __tablename__ = "releases"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    performer_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    holder_id: Mapped[str] = mapped_column(ForeignKey("rights_holders.id"))
    valid_from: Mapped[str] = mapped_column(TS)
    valid_until: Mapped[str] = mapped_column(TS)
    purpose: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[str] = mapped_column(TS)
    payload_sha256: Mapped[str] = mapped_column(HEX64)
    signature: Mapped[str] = mapped_column(String(128))


class ReleaseRevocation(Base):
    __tablename__ = "release_revocations"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id"), unique=True)
    revoked_at: Mapped[str] = mapped_column(TS)
    reason: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(128))


class AuthorizationRow(Base):
    __tablename__ = "authorizations"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # grant | release
    grant_id: Mapped[str | None] = mapped_column(ForeignKey("grants.id"), nullable=True)
    release_id: Mapped[str | None] = mapped_column(ForeignKey("releases.id"), nullable=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"))
    use: Mapped[str | None] = mapped_column(String(40), nullable=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    issued_at: Mapped[str] = mapped_column(TS)


class RenderConsumption(Base):
    __tablename__ = "render_consumptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.id"))
    authorization_id: Mapped[str] = mapped_column(ForeignKey("authorizations.id"))
    job_id: Mapped[str] = mapped_column(String(64), unique=True)
    consumed_at: Mapped[str] = mapped_column(TS)


class LedgerRow(Base):
    __tablename__ = "ledger"
    #: Windowed reads (``Ledger.find(..., created_after=...)``: the public reports' daily quota)
    #: cost the window, not the history.
    __table_args__ = (Index("ix_ledger_type_created", "event_type", "created_at"),)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(ID, unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(TS)
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(HEX64)
    hash: Mapped[str] = mapped_column(HEX64)


class WatermarkIndexRow(Base):
    """One ledger event that carries a watermark payload (``render.completed``,
    ``preview.written``), so a payload read from a file is found in O(log n) instead of by a
    scan of every event. Written in the same transaction as its event; the event stays the
    truth (a lookup re-reads it, ``audit verify`` compares the two). No foreign key: a ledger
    row removed by a database editor must not take its index row with it unseen."""

    __tablename__ = "ledger_watermark_index"
    __table_args__ = (Index("ix_ledger_watermark_index_payload", "watermark_payload"),)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    watermark_payload: Mapped[str] = mapped_column(String(64))  # hex, as in the event
    event_type: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(ID)


# --- the rights-holder portal (passkeys) ------------------------------------------------------
# Operational state: what is evidence (an invitation, a registered passkey, a request, a signed
# grant or revocation with its assertion) is on the ledger, and the ledger decides.


class HolderPasskey(Base):
    """A passkey a rights holder registered (its ``holder.passkey_registered`` event decides);
    ``sign_count``: the highest signature counter seen, to refuse a cloned authenticator."""

    __tablename__ = "holder_passkeys"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    holder_id: Mapped[str] = mapped_column(ForeignKey("rights_holders.id"))
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)  # base64url
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE
    rp_id: Mapped[str] = mapped_column(String(255))
    origin: Mapped[str] = mapped_column(String(255))
    sign_count: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(20))  # primary | recovery
    created_at: Mapped[str] = mapped_column(TS)
    last_used_at: Mapped[str | None] = mapped_column(TS, nullable=True)


class HolderInvitation(Base):
    """A one-time, expiring link to register a holder's first passkey (the token's digest only)."""

    __tablename__ = "holder_invitations"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    holder_id: Mapped[str] = mapped_column(ForeignKey("rights_holders.id"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    token_sha256: Mapped[str] = mapped_column(HEX64, unique=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[str] = mapped_column(TS)
    expires_at: Mapped[str] = mapped_column(TS)
    used_at: Mapped[str | None] = mapped_column(TS, nullable=True)


class GrantRequestRow(Base):
    """A grant request an organisation drafted (``payload``: ``grant_requests.request_payload`` as
    canonical JSON); ``state``: pending, signed or declined."""

    __tablename__ = "grant_requests"
    __table_args__ = (Index("ix_grant_requests_subject_state", "subject_id", "state"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    payload: Mapped[str] = mapped_column(Text)
    request_sha256: Mapped[str] = mapped_column(HEX64)
    state: Mapped[str] = mapped_column(String(20))
    grant_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[str] = mapped_column(TS)
    decided_at: Mapped[str | None] = mapped_column(TS, nullable=True)


class HolderSession(Base):
    """A rights holder's portal session (their own cookie; not a service user's)."""

    __tablename__ = "holder_sessions"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(HEX64, unique=True)
    holder_id: Mapped[str] = mapped_column(ForeignKey("rights_holders.id"))
    credential_id: Mapped[str] = mapped_column(String(1400))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(TS)
    expires_at: Mapped[str] = mapped_column(TS)
    revoked_at: Mapped[str | None] = mapped_column(TS, nullable=True)


class PasskeyChallenge(Base):
    """A pending WebAuthn ceremony: its challenge and, for signing, the exact payload the
    challenge is the digest of (so the signed bytes are the stored bytes). Used once."""

    __tablename__ = "passkey_challenges"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(20))  # register | sign_in | grant | revoke | add_passkey
    holder_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    invitation_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    challenge: Mapped[str] = mapped_column(HEX64)
    payload: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[str] = mapped_column(TS)
    expires_at: Mapped[str] = mapped_column(TS)
    used_at: Mapped[str | None] = mapped_column(TS, nullable=True)
