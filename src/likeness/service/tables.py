"""SQLAlchemy models of the service: users, browser sessions, API tokens and durable jobs.

They share ``likeness.consent.tables.Base`` (one metadata for the migrations). Unlike the
consent records these rows change (a role, a revoked token, a job's state), so the application
role may UPDATE them (``likeness.consent.privileges.TABLE_PRIVILEGES``); none of them is
evidence: what matters for evidence (logins, role changes, tokens, verifications) is on the
ledger. Times are fixed-width ISO-8601 UTC strings with microseconds, so they compare as text
on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from likeness.consent.tables import ID, Base

WHEN = String(32)


class ServiceUser(Base):
    __tablename__ = "service_users"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[str] = mapped_column(WHEN)
    updated_at: Mapped[str] = mapped_column(WHEN)


class ServiceSession(Base):
    """A browser session: the cookie holds a random token, the row only its SHA-256."""

    __tablename__ = "service_sessions"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("service_users.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(WHEN)
    expires_at: Mapped[str] = mapped_column(WHEN)
    revoked_at: Mapped[str | None] = mapped_column(WHEN, nullable=True)


class ApiToken(Base):
    """A script's bearer token, scoped to one role; stored as its SHA-256 (it is random)."""

    __tablename__ = "service_api_tokens"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("service_users.id"))
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[str] = mapped_column(WHEN)
    expires_at: Mapped[str | None] = mapped_column(WHEN, nullable=True)
    revoked_at: Mapped[str | None] = mapped_column(WHEN, nullable=True)
    last_used_at: Mapped[str | None] = mapped_column(WHEN, nullable=True)


class Job(Base):
    """A durable job. ``state``: queued, running, succeeded, failed, cancelled. A running job
    holds a lease (``lease_owner`` until ``lease_expires_at``) that its worker's heartbeat
    extends; a job whose lease ran out is claimed again (``attempts`` counts the claims; a claim
    ended by its worker shutting down counts only after ``FREE_RELEASES`` such releases)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_created", "state", "created_at"),
        Index("ix_jobs_org_state", "org_id", "state"),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    #: times it went back to the queue because its worker shut down (``JobQueue.release``)
    releases: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    cancel_requested: Mapped[bool] = mapped_column(Boolean)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("service_users.id"), nullable=True)
    created_at: Mapped[str] = mapped_column(WHEN)
    updated_at: Mapped[str] = mapped_column(WHEN)
    started_at: Mapped[str | None] = mapped_column(WHEN, nullable=True)
    finished_at: Mapped[str | None] = mapped_column(WHEN, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(120), nullable=True)
    lease_expires_at: Mapped[str | None] = mapped_column(WHEN, nullable=True)
    heartbeat_at: Mapped[str | None] = mapped_column(WHEN, nullable=True)


class PublicResult(Base):
    """A public page's answer (already withheld as the public may see it, no file name) that the
    visitor chose to share: ``/r/<sha256>`` shows it until ``expires_at``. Never the file."""

    __tablename__ = "public_results"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    verifier: Mapped[str] = mapped_column(String(64), primary_key=True)
    result: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(WHEN)
    expires_at: Mapped[str] = mapped_column(WHEN, index=True)
