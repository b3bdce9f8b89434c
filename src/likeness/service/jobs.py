"""Durable jobs in the workspace database: enqueue, claim, heartbeat, finish, cancel.

Why a table and not a queue library: jobs must live in the same database as the consent ledger
(one backup, one transaction story, no broker to run), on SQLite for a laptop and PostgreSQL
for an agency; docs/service.md says more.

Claiming:

- PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` picks the oldest claimable job without
  waiting on rows another worker is claiming; a transaction-scoped advisory lock per
  organisation then serialises the count of its running jobs, so the per-organisation limit
  holds with any number of workers.
- SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock, and the claim is one
  ``UPDATE ... WHERE id = :id AND state = 'queued'`` (or a running job whose lease ran out)
  whose row count says whether this worker got it.

A claimed job holds a lease (``Settings.job_lease_s``) that the worker's heartbeat extends.
A worker that dies (kill -9, a lost machine) stops extending it; once it has run out the job is
claimable again, up to ``max_attempts`` claims, then it fails with the reason. A worker that
shuts down puts its job back in the queue (``release``); the first ``FREE_RELEASES`` releases of
a job do not count its claim as an attempt, the ones after do.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, case, func, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from likeness import strict_json
from likeness.consent.ledger import begin_serialized
from likeness.errors import StopRequested
from likeness.service.accounts import utc_stamp
from likeness.service.errors import Conflict, InvalidField, NotFound
from likeness.service.tables import Job

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
CLAIM_LOCK = "likeness.jobs.claim"
#: Releases of a job (its worker shut down) whose claim is not counted as an attempt. Past them
#: each release counts: a job that gets its worker stopped, or an operator restarting workers in
#: a loop, would otherwise put it back in the queue for ever, never reaching ``max_attempts``.
FREE_RELEASES = 3
#: The most releases ``jobs.releases`` counts: its 32-bit limit on PostgreSQL, where one more is
#: "integer out of range" and the release fails; SQLite stops there too, so both say the same.
MAX_RELEASES = 2**31 - 1


class JobCancelled(Exception):
    """Raised inside a running job when its cancellation was asked for."""


class LeaseLost(Exception):
    """Raised inside a running job when another worker took it over (our lease ran out)."""


class WorkerStopping(StopRequested):
    """Raised inside a running job when its worker is shutting down: the job goes back to the
    queue (``JobQueue.release``), after a training job has saved a checkpoint to resume from."""


def _changed(session: Session, statement: Any) -> int:
    """Rows an UPDATE changed: how a guarded claim or transition knows it won."""
    return int(cast("CursorResult[Any]", session.execute(statement)).rowcount)


@dataclass(frozen=True)
class JobView:
    id: str
    org_id: str
    kind: str
    params: dict[str, Any]
    state: str
    progress: float
    message: str
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    releases: int  # times a worker shutting down put it back in the queue (FREE_RELEASES free)
    cancel_requested: bool
    created_by: str | None
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None
    lease_owner: str | None
    lease_expires_at: str | None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def as_dict(self) -> dict[str, Any]:
        """The API's view (params shown without server paths)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "progress": round(self.progress, 4),
            "message": self.message,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "releases": self.releases,
            "cancel_requested": self.cancel_requested,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "params": {k: v for k, v in self.params.items() if not k.startswith("_")},
            "result": self.result,
            "error": self.error,
        }


def _view(row: Job) -> JobView:
    return JobView(
        id=row.id,
        org_id=row.org_id,
        kind=row.kind,
        params=strict_json.loads(row.params),
        state=row.state,
        progress=row.progress,
        message=row.message,
        result=strict_json.loads(row.result) if row.result else None,
        error=row.error,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        releases=row.releases,
        cancel_requested=row.cancel_requested,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
    )


CURSOR_SEPARATOR = "~"


def page_cursor(job: JobView) -> str:
    """Where the page after ``job`` starts: its (created_at, id) keyset, because jobs enqueued
    in the same microsecond share a created_at and paging by that alone skips or repeats them."""
    return f"{job.created_at}{CURSOR_SEPARATOR}{job.id}"


#: A ``page_cursor``: ``utc_stamp``'s fixed-width created_at, then ``~`` and a job id, or the
#: created_at alone. Anything else is refused: compared as text, garbage would page silently
#: ("garbage" sorts after every date: the first page again; "'" before all: an empty list).
_CURSOR = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)(?:~([\w-]{1,64}))?", re.ASCII)


def _parse_cursor(cursor: str) -> tuple[str, str]:
    """A ``page_cursor``; a bare created_at means every job older than that instant (no id
    sorts below the empty one)."""
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        raise InvalidField(
            f"before {cursor[:40]!r}: not a page cursor; pass a page's next_before "
            f"(CREATED_AT~ID, such as 2026-12-01T09:00:00.000000Z~{'0' * 32}) or leave it out"
        )
    return match.group(1), match.group(2) or ""


def _org_lock_key(org_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{CLAIM_LOCK}:{org_id}".encode()).digest()[:8], "big", signed=True)


class JobQueue:
    """The product's only reader and writer of job rows."""

    def __init__(
        self,
        engine: Any,
        *,
        lease_s: float = 30.0,
        per_org_limit: int = 2,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.lease_s = float(lease_s)
        self.per_org_limit = int(per_org_limit)
        self._clock = clock

    @classmethod
    def for_workspace(cls, workspace: Any, **overrides: Any) -> JobQueue:
        settings = workspace.settings
        options = {"lease_s": settings.job_lease_s, "per_org_limit": settings.jobs_per_org, **overrides}
        return cls(workspace.engine, **options)

    def _now(self) -> str:
        return utc_stamp(self._clock())

    def _lease_until(self) -> str:
        return utc_stamp(self._clock() + timedelta(seconds=self.lease_s))

    # --- producers -----------------------------------------------------------------------
    def enqueue(
        self,
        kind: str,
        params: dict[str, Any],
        *,
        org_id: str,
        created_by: str | None = None,
        job_id: str | None = None,
        max_attempts: int = 3,
    ) -> JobView:
        now = self._now()
        row = Job(
            id=job_id or uuid.uuid4().hex,
            org_id=org_id,
            kind=kind,
            params=json.dumps(params, sort_keys=True),
            state=QUEUED,
            progress=0.0,
            message="queued",
            result=None,
            error=None,
            attempts=0,
            max_attempts=max_attempts,
            releases=0,
            cancel_requested=False,
            created_by=created_by,
            created_at=now,
            updated_at=now,
            started_at=None,
            finished_at=None,
            lease_owner=None,
            lease_expires_at=None,
            heartbeat_at=None,
        )
        with self._sessions() as session:
            session.add(row)
            session.commit()
        return _view(row)

    def get(self, job_id: str, *, org_id: str | None = None) -> JobView:
        with self._sessions() as session:
            row = session.get(Job, job_id)
            if row is None or (org_id is not None and row.org_id != org_id):
                raise NotFound(f"no job {job_id}")
            return _view(row)

    def list(
        self,
        *,
        org_id: str | None = None,
        state: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> list[JobView]:
        """Newest first; ``before`` (a page's ``page_cursor`` of its last job) pages back."""
        with self._sessions() as session:
            query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
            if org_id is not None:
                query = query.where(Job.org_id == org_id)
            if state is not None:
                query = query.where(Job.state == state)
            if kind is not None:
                query = query.where(Job.kind == kind)
            if before is not None:
                created_at, job_id = _parse_cursor(before)
                query = query.where(
                    or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id))
                )
            return [_view(row) for row in session.scalars(query)]

    def cancel(self, job_id: str, *, org_id: str | None = None) -> JobView:
        """Cancel a queued job at once; ask a running one to stop (its worker sees it at the
        next progress report or heartbeat). A finished job cannot be cancelled (Conflict)."""
        now = self._now()
        with self._sessions() as session:
            row = session.get(Job, job_id)
            if row is None or (org_id is not None and row.org_id != org_id):
                raise NotFound(f"no job {job_id}")
            done = _changed(
                session,
                update(Job)
                .where(Job.id == job_id, Job.state == QUEUED)
                .values(
                    state=CANCELLED,
                    cancel_requested=True,
                    finished_at=now,
                    updated_at=now,
                    message="cancelled before it started",
                ),
            )
            if not done:
                asked = _changed(
                    session,
                    update(Job)
                    .where(Job.id == job_id, Job.state == RUNNING)
                    .values(cancel_requested=True, updated_at=now, message="cancelling"),
                )
                if not asked:
                    session.rollback()
                    raise Conflict(f"job {job_id} has already finished ({row.state})")
            session.commit()
        return self.get(job_id)

    # --- workers -------------------------------------------------------------------------
    def _claimable(self, now: str):
        return or_(Job.state == QUEUED, and_(Job.state == RUNNING, Job.lease_expires_at < now))

    def _running_in_org(self, session: Session, org_id: str, now: str) -> int:
        return (
            session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.org_id == org_id, Job.state == RUNNING, Job.lease_expires_at >= now)
            )
            or 0
        )

    def claim(self, worker_id: str, *, kinds: tuple[str, ...] | None = None) -> JobView | None:
        """Claim the oldest claimable job of an organisation under its limit; ``None`` when
        there is none. Jobs past ``max_attempts`` claims are failed here instead."""
        self.fail_exhausted()
        for _ in range(8):  # a candidate whose organisation is at its limit: look again
            claimed, retry = self._claim_once(worker_id, kinds)
            if claimed is not None or not retry:
                return claimed
        return None

    def _claim_once(self, worker_id: str, kinds: tuple[str, ...] | None) -> tuple[JobView | None, bool]:
        now = self._now()
        with self._sessions() as session:
            dialect = session.get_bind().dialect.name
            if dialect == "sqlite":
                begin_serialized(session, CLAIM_LOCK)
            full = (
                select(Job.org_id)
                .where(Job.state == RUNNING, Job.lease_expires_at >= now)
                .group_by(Job.org_id)
                .having(func.count() >= self.per_org_limit)
            )
            query = (
                select(Job.id, Job.org_id, Job.state)
                .where(self._claimable(now), Job.org_id.not_in(full))
                .order_by(Job.created_at, Job.id)
                .limit(1)
            )
            if kinds:
                query = query.where(Job.kind.in_(kinds))
            if dialect == "postgresql":
                query = query.with_for_update(skip_locked=True, of=Job)
            candidate = session.execute(query).first()
            if candidate is None:
                session.rollback()
                return None, False
            if dialect == "postgresql":
                # Serialise the count of this organisation's running jobs among claimers.
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _org_lock_key(candidate.org_id)})
            if self._running_in_org(session, candidate.org_id, now) >= self.per_org_limit:
                session.rollback()
                return None, True
            claimed = _changed(
                session,
                update(Job)
                .where(Job.id == candidate.id, self._claimable(now))
                .values(
                    state=RUNNING,
                    lease_owner=worker_id,
                    lease_expires_at=self._lease_until(),
                    heartbeat_at=now,
                    attempts=Job.attempts + 1,
                    started_at=func.coalesce(Job.started_at, now),
                    updated_at=now,
                    message="running" if candidate.state == QUEUED else "taken over after its worker stopped",
                ),
            )
            if claimed != 1:
                session.rollback()
                return None, True
            session.commit()
        return self.get(candidate.id), False

    def fail_exhausted(self) -> int:
        """Fail running jobs whose lease ran out after their last allowed attempt."""
        now = self._now()
        with self._sessions() as session:
            count = _changed(
                session,
                update(Job)
                .where(Job.state == RUNNING, Job.lease_expires_at < now, Job.attempts >= Job.max_attempts)
                .values(
                    state=FAILED,
                    finished_at=now,
                    updated_at=now,
                    lease_owner=None,
                    error="its worker stopped while running it on every attempt",
                    message="failed",
                ),
            )
            session.commit()
        return count

    def heartbeat(
        self, job_id: str, worker_id: str, *, progress: float | None = None, message: str | None = None
    ) -> bool:
        """Extend the lease (and record progress). Returns whether a cancellation was asked
        for; raises ``LeaseLost`` when the job is no longer this worker's."""
        now = self._now()
        values: dict[str, Any] = {"lease_expires_at": self._lease_until(), "heartbeat_at": now, "updated_at": now}
        if progress is not None:
            values["progress"] = max(0.0, min(1.0, float(progress)))
        if message is not None:
            values["message"] = message[:500]
        with self._sessions() as session:
            held = _changed(
                session,
                update(Job)
                .where(Job.id == job_id, Job.state == RUNNING, Job.lease_owner == worker_id)
                .values(**values),
            )
            cancel = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
            session.commit()
        if not held:
            raise LeaseLost(f"job {job_id} is no longer held by {worker_id}")
        return bool(cancel)

    def finish(
        self,
        job_id: str,
        worker_id: str,
        *,
        state: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        message: str | None = None,
    ) -> bool:
        """Record the end of a job this worker holds; ``False`` when it no longer holds it."""
        if state not in TERMINAL:
            raise ValueError(f"not a final state: {state}")
        now = self._now()
        values: dict[str, Any] = {
            "state": state,
            "finished_at": now,
            "updated_at": now,
            "lease_owner": None,
            "lease_expires_at": None,
            "message": message or state,
            "error": error,
            "result": json.dumps(result, ensure_ascii=False) if result is not None else None,
        }
        if state == SUCCEEDED:
            values["progress"] = 1.0
        with self._sessions() as session:
            done = _changed(
                session,
                update(Job)
                .where(Job.id == job_id, Job.state == RUNNING, Job.lease_owner == worker_id)
                .values(**values),
            )
            session.commit()
        return bool(done)

    def release(self, job_id: str, worker_id: str) -> bool:
        """Put a job this worker holds back in the queue (its worker shut down; nothing went
        wrong with the job): its claim is not counted as an attempt for its first
        ``FREE_RELEASES`` releases, and is after them; a release that spends its last attempt
        fails it. ``False`` when this worker no longer holds it."""
        now = self._now()
        counted = Job.releases >= FREE_RELEASES  # (SET expressions read the row as it was)
        with self._sessions() as session:
            released = _changed(
                session,
                update(Job)
                .where(Job.id == job_id, Job.state == RUNNING, Job.lease_owner == worker_id)
                .values(
                    state=QUEUED,
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=case((counted, Job.attempts), else_=Job.attempts - 1),
                    # CASE, not LEAST(releases + 1, ...): the sum itself overflows on PostgreSQL
                    releases=case((Job.releases >= MAX_RELEASES, Job.releases), else_=Job.releases + 1),
                    updated_at=now,
                    message="back in the queue: its worker shut down; it resumes where it was saved",
                ),
            )
            if released:
                _changed(
                    session,
                    update(Job)
                    .where(Job.id == job_id, Job.state == QUEUED, Job.attempts >= Job.max_attempts)
                    .values(
                        state=FAILED,
                        finished_at=now,
                        message="failed",
                        error=(
                            f"its worker was shut down while running it again and again: past {FREE_RELEASES} "
                            "times each counts as an attempt, and its attempts are spent"
                        ),
                    ),
                )
            session.commit()
        return bool(released)
