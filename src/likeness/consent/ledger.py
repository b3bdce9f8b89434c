"""Append-only, hash-chained event ledger.

Each row stores the previous row's hash and ``hash = sha256(JCS({seq, event_id, event_type,
created_at, payload, prev_hash}))``. Editing, deleting, inserting or reordering any row breaks
the chain at that row; rewriting the whole tail is caught by comparing against a signed head
exported earlier (``likeness audit head``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from likeness.consent.canonical import canonical_bytes, canonical_sha256, now_utc, utc_iso
from likeness.consent.tables import LedgerRow
from likeness.errors import LedgerError

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class LedgerEvent:
    seq: int
    event_id: str
    event_type: str
    created_at: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "created_at": self.created_at,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    head_hash: str
    broken_seq: int | None = None
    problem: str | None = None
    #: what broke at ``broken_seq``: ``sequence`` (a row deleted or inserted before it),
    #: ``prev_hash`` (rows deleted, inserted or reordered) or ``content`` (the row was edited)
    cause: str | None = None


def event_hash(
    *, seq: int, event_id: str, event_type: str, created_at: str, payload_json: str, prev_hash: str
) -> str:
    """Hash of one ledger row's canonical content (the payload as its stored canonical text)."""
    return canonical_sha256(
        {
            "seq": seq,
            "event_id": event_id,
            "event_type": event_type,
            "created_at": created_at,
            "payload": payload_json,
            "prev_hash": prev_hash,
        }
    )


def _event(row: LedgerRow) -> LedgerEvent:
    return LedgerEvent(
        seq=row.seq,
        event_id=row.event_id,
        event_type=row.event_type,
        created_at=row.created_at,
        payload=json.loads(row.payload),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


LEDGER_LOCK = "likeness.ledger.append"


def _advisory_key(lock_name: str) -> int:
    """A signed 64-bit PostgreSQL advisory lock key for ``lock_name``."""
    return int.from_bytes(hashlib.sha256(lock_name.encode()).digest()[:8], "big", signed=True)


def begin_serialized(session: Session, lock_name: str) -> None:
    """Open ``session``'s transaction so that it runs alone among writers taking ``lock_name``.

    SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock now (others wait on the busy
    timeout) instead of at the first write, so a count read inside is still true at the commit.
    PostgreSQL: a transaction-scoped advisory lock named by ``lock_name``; it needs no table
    privilege, so the application role, which may only SELECT and INSERT, can take it (``SELECT
    ... FOR UPDATE`` would need UPDATE). Call before any other statement of the transaction.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _advisory_key(lock_name)})


def _add_event(session: Session, event_type: str, payload_json: str) -> LedgerRow:
    """Add the next row after the current tail to ``session`` (the caller holds the tail)."""
    last = session.execute(
        select(LedgerRow.seq, LedgerRow.hash).order_by(LedgerRow.seq.desc()).limit(1)
    ).first()
    seq = (last.seq + 1) if last else 1
    prev_hash = last.hash if last else GENESIS_HASH
    row = LedgerRow(
        seq=seq, event_id=uuid.uuid4().hex, event_type=event_type, created_at=utc_iso(now_utc()),
        payload=payload_json, prev_hash=prev_hash, hash="",
    )
    row.hash = event_hash(
        seq=seq, event_id=row.event_id, event_type=event_type, created_at=row.created_at,
        payload_json=payload_json, prev_hash=prev_hash,
    )
    session.add(row)
    return row


def _payload_json(event_type: str, payload: dict[str, Any]) -> str:
    try:
        return canonical_bytes(payload).decode("utf-8")
    except Exception as exc:  # rfc8785 raises its own types for floats/NaN/unsupported
        raise LedgerError(f"ledger payload for {event_type!r} is not canonical JSON: {exc}") from None


def find_events(
    session: Session, event_types: str | Sequence[str], payload_equals: dict[str, Any]
) -> list[LedgerEvent]:
    """Events of any of ``event_types`` whose payload has all the given top-level members, in
    ledger order, read through ``session`` (so inside the caller's transaction).

    Payloads are stored as RFC 8785 canonical JSON, where a member is always written as the
    same ``"key":value`` text, so the database first narrows the rows with a substring test
    (no JSON parsing of every event); the exact comparison then drops matches inside nested
    objects.
    """
    types = (event_types,) if isinstance(event_types, str) else tuple(event_types)
    query = select(LedgerRow).where(LedgerRow.event_type.in_(types)).order_by(LedgerRow.seq)
    for key, value in payload_equals.items():
        member = canonical_bytes({key: value}).decode("utf-8")[1:-1]
        query = query.where(LedgerRow.payload.contains(member, autoescape=True))
    rows = [_event(r) for r in session.scalars(query)]
    return [e for e in rows if all(e.payload.get(k) == v for k, v in payload_equals.items())]


class Ledger:
    """The product's only writer and reader of ledger rows."""

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory

    def append(self, event_type: str, payload: dict[str, Any]) -> LedgerEvent:
        """Append one event in its own transaction; writers queue for the tail (and retry
        should one still collide on the next sequence number)."""
        payload_json = _payload_json(event_type, payload)
        for _attempt in range(20):
            with self._session_factory() as session:
                try:
                    begin_serialized(session, LEDGER_LOCK)
                    row = _add_event(session, event_type, payload_json)
                    session.commit()
                except (IntegrityError, OperationalError):
                    session.rollback()
                    continue
                return _event(row)
        raise LedgerError("could not append to the ledger: too much concurrent writing")

    @staticmethod
    def append_in(session: Session, event_type: str, payload: dict[str, Any]) -> LedgerEvent:
        """Append one event inside the caller's transaction, so it commits or rolls back with
        the caller's other writes. On SQLite the caller must have begun the transaction with
        ``begin_serialized`` (it then holds the database's write lock); on PostgreSQL the
        ledger's advisory lock is taken here."""
        payload_json = _payload_json(event_type, payload)
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _advisory_key(LEDGER_LOCK)})
        row = _add_event(session, event_type, payload_json)
        session.flush()
        return _event(row)

    def events(self, event_type: str | None = None, *, limit: int | None = None) -> list[LedgerEvent]:
        with self._session_factory() as session:
            query = select(LedgerRow).order_by(LedgerRow.seq)
            if event_type is not None:
                query = query.where(LedgerRow.event_type == event_type)
            if limit is not None:
                query = query.order_by(None).order_by(LedgerRow.seq.desc()).limit(limit)
            rows = [_event(r) for r in session.scalars(query)]
        return sorted(rows, key=lambda e: e.seq)

    def page(self, *, after: int = 0, limit: int = 100, event_type: str | None = None) -> list[LedgerEvent]:
        """Up to ``limit`` events with a sequence number above ``after``, in ledger order (the
        service pages through the ledger with it)."""
        with self._session_factory() as session:
            query = select(LedgerRow).where(LedgerRow.seq > after).order_by(LedgerRow.seq).limit(limit)
            if event_type is not None:
                query = query.where(LedgerRow.event_type == event_type)
            return [_event(r) for r in session.scalars(query)]

    def find(self, event_type: str | Sequence[str], **payload_equals: Any) -> list[LedgerEvent]:
        """Events of ``event_type`` (or any of several types) whose payload has all the given
        top-level key/value pairs, in ledger order (``find_events``: one narrowed query, e.g.
        one watermark payload among all renders)."""
        with self._session_factory() as session:
            return find_events(session, event_type, payload_equals)

    def head(self) -> tuple[int, str]:
        with self._session_factory() as session:
            last = session.execute(
                select(LedgerRow.seq, LedgerRow.hash).order_by(LedgerRow.seq.desc()).limit(1)
            ).first()
        return (last.seq, last.hash) if last else (0, GENESIS_HASH)

    def hash_at(self, seq: int) -> str | None:
        with self._session_factory() as session:
            return session.scalar(select(LedgerRow.hash).where(LedgerRow.seq == seq))

    def rows_through(self, seq: int) -> int:
        """How many rows have a sequence number up to ``seq`` (``seq`` on an intact ledger)."""
        with self._session_factory() as session:
            return session.scalar(select(func.count()).select_from(LedgerRow).where(LedgerRow.seq <= seq)) or 0

    def count(self) -> int:
        with self._session_factory() as session:
            return session.scalar(select(func.count()).select_from(LedgerRow)) or 0

    def row_hashes(self, seq: int) -> tuple[str, str] | None:
        """``(stored hash, hash recomputed from the row's content)`` of ledger row ``seq``;
        ``None`` when there is no such row. They differ when the row was edited in place."""
        with self._session_factory() as session:
            row = session.get(LedgerRow, seq)
            return (row.hash, _recomputed(row)) if row is not None else None

    def verify(self, *, through: int | None = None) -> ChainReport:
        """Recompute the chain from the first row (up to row ``through`` when given); report
        the first row that breaks it. Costs one hash per row (docs/consent.md gives rows/s)."""
        expected_prev = GENESIS_HASH
        expected_seq = 1
        rows = 0
        with self._session_factory() as session:
            query = select(LedgerRow).order_by(LedgerRow.seq)
            if through is not None:
                query = query.where(LedgerRow.seq <= through)
            for row in session.scalars(query.execution_options(yield_per=2000)):
                rows += 1
                if row.seq != expected_seq:
                    return ChainReport(
                        False, rows, expected_prev, row.seq,
                        f"row {row.seq}: expected sequence number {expected_seq} "
                        f"(a row was deleted or inserted before it)", "sequence",
                    )
                if row.prev_hash != expected_prev:
                    return ChainReport(
                        False, rows, expected_prev, row.seq,
                        f"row {row.seq}: its previous-hash does not match row {row.seq - 1} "
                        f"(rows were deleted, inserted or reordered)", "prev_hash",
                    )
                if _recomputed(row) != row.hash:
                    return ChainReport(
                        False, rows, expected_prev, row.seq,
                        f"row {row.seq}: content does not match its hash (the row was edited)", "content",
                    )
                expected_prev = row.hash
                expected_seq += 1
        return ChainReport(True, rows, expected_prev)


def _recomputed(row: LedgerRow) -> str:
    """The hash a ledger row should have, from its own content."""
    return event_hash(
        seq=row.seq, event_id=row.event_id, event_type=row.event_type, created_at=row.created_at,
        payload_json=row.payload, prev_hash=row.prev_hash,
    )
