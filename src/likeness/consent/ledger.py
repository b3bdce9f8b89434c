"""Append-only, hash-chained event ledger.

Each row stores the previous row's hash and ``hash = sha256(JCS({seq, event_id, event_type,
created_at, payload, prev_hash}))``. Editing, deleting, inserting or reordering any row breaks
the chain at that row; rewriting the whole tail is caught by comparing against a signed head
exported earlier (``likeness audit head``).
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlalchemy import ColumnElement, Row, cast, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from likeness import strict_json
from likeness.consent.canonical import canonical_bytes, canonical_sha256, now_utc, utc_iso
from likeness.consent.tables import LedgerRow, WatermarkIndexRow
from likeness.errors import LedgerError, LedgerRowUnreadable

GENESIS_HASH = "0" * 64

#: Events whose ``watermark_payload`` member names the job a watermark read from a file points
#: to; each gets a row in ``ledger_watermark_index`` in the transaction that appends it.
WATERMARK_EVENTS = ("render.completed", "preview.written")


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


def event_hash(*, seq: int, event_id: str, event_type: str, created_at: str, payload_json: str, prev_hash: str) -> str:
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


def event_of_row(row: LedgerRow) -> LedgerEvent:
    """The event a ledger row holds (its payload parsed)."""
    return _event(row)


def _event(row: LedgerRow | Row[Any]) -> LedgerEvent:
    """The event of a ledger row: an ORM object, or a plain row of the table's columns;
    ``LedgerRowUnreadable`` when its payload is not a JSON object (a hash chain holds over any
    text, and every reader of an event asks its payload for members)."""
    try:
        payload = strict_json.loads(row.payload)
    except ValueError as exc:  # (JSONDecodeError, DuplicateMemberError)
        raise LedgerRowUnreadable(row.seq, str(exc)[:200]) from None
    if not isinstance(payload, dict):
        raise LedgerRowUnreadable(row.seq, f"JSON, but {type(payload).__name__}, not an object")
    try:
        # The ledger writes only canonical JSON (_payload_json); readers hash and verify payloads
        # in that form, and NaN, an integer past 2**53 or a lone surrogate has none.
        canonical_bytes(payload)
    except ValueError as exc:
        raise LedgerRowUnreadable(row.seq, f"JSON the ledger cannot have written: {exc}") from None
    return LedgerEvent(
        seq=row.seq,
        event_id=row.event_id,
        event_type=row.event_type,
        created_at=row.created_at,
        payload=payload,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


@dataclass(frozen=True)
class UnreadableEvent:
    """A ledger row whose payload cannot be read (``LedgerRowUnreadable``), as a page shows it:
    where it sits in the chain and why, no payload."""

    seq: int
    event_id: str
    event_type: str
    created_at: str
    prev_hash: str
    hash: str
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k != "problem"},
            "payload": None,
            "unreadable": self.problem,
        }


def _event_or_unreadable(row: LedgerRow) -> LedgerEvent | UnreadableEvent:
    try:
        return _event(row)
    except LedgerRowUnreadable as unreadable:
        where = {f.name: getattr(row, f.name) for f in fields(UnreadableEvent) if f.name != "problem"}
        return UnreadableEvent(**where, problem=unreadable.problem)


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


def watermark_index_row(
    *, seq: int, event_id: str, event_type: str, payload: dict[str, Any]
) -> WatermarkIndexRow | None:
    """The index row an event should have: one for a ``WATERMARK_EVENTS`` event whose payload
    has a string ``watermark_payload``, else ``None`` (the migration's backfill, the append
    path and ``audit verify`` all decide with this one function)."""
    value = payload.get("watermark_payload") if event_type in WATERMARK_EVENTS else None
    if not isinstance(value, str):
        return None
    return WatermarkIndexRow(seq=seq, watermark_payload=value, event_type=event_type, event_id=event_id)


def _add_event(session: Session, event_type: str, payload: dict[str, Any], payload_json: str) -> LedgerRow:
    """Add the next row after the current tail to ``session`` (the caller holds the tail), and
    its watermark index row when it has one, so both commit or roll back together."""
    last = session.execute(select(LedgerRow.seq, LedgerRow.hash).order_by(LedgerRow.seq.desc()).limit(1)).first()
    seq = (last.seq + 1) if last else 1
    prev_hash = last.hash if last else GENESIS_HASH
    row = LedgerRow(
        seq=seq,
        event_id=uuid.uuid4().hex,
        event_type=event_type,
        created_at=utc_iso(now_utc()),
        payload=payload_json,
        prev_hash=prev_hash,
        hash="",
    )
    row.hash = event_hash(
        seq=seq,
        event_id=row.event_id,
        event_type=event_type,
        created_at=row.created_at,
        payload_json=payload_json,
        prev_hash=prev_hash,
    )
    session.add(row)
    indexed = watermark_index_row(seq=seq, event_id=row.event_id, event_type=event_type, payload=payload)
    if indexed is not None:
        session.add(indexed)
    return row


def _payload_json(event_type: str, payload: dict[str, Any]) -> str:
    try:
        return canonical_bytes(payload).decode("utf-8")
    except Exception as exc:  # rfc8785 raises its own types for floats/NaN/unsupported
        raise LedgerError(f"ledger payload for {event_type!r} is not canonical JSON: {exc}") from None


def find_events(
    session: Session,
    event_types: str | Sequence[str],
    payload_equals: dict[str, Any],
    *,
    created_after: str | None = None,
) -> list[LedgerEvent]:
    """Events of any of ``event_types`` whose payload has all the given top-level members, in
    ledger order, read through ``session`` (so inside the caller's transaction); with
    ``created_after`` (a ``utc_iso`` stamp) only those appended later, an index range on
    ``(event_type, created_at)`` however long the ledger's history.

    Payloads are stored as RFC 8785 canonical JSON, where a member is always written as the
    same ``"key":value`` text, so the database first narrows the rows with a substring test
    (no JSON parsing of every event); the exact comparison then drops matches inside nested
    objects.
    """
    types = (event_types,) if isinstance(event_types, str) else tuple(event_types)
    # plain rows, not ORM objects (their identity map costs more than the JSON)
    query = select(*LedgerRow.__table__.columns).where(LedgerRow.event_type.in_(types)).order_by(LedgerRow.seq)
    if created_after is not None:  # fixed-width stamps: text order is time order
        query = query.where(LedgerRow.created_at > created_after)
    for key, value in payload_equals.items():
        member = canonical_bytes({key: value}).decode("utf-8")[1:-1]
        query = query.where(LedgerRow.payload.contains(member, autoescape=True))
    rows = [_event(r) for r in session.execute(query)]
    return [e for e in rows if all(e.payload.get(k) == v for k, v in payload_equals.items())]


def payload_member_text(dialect: str, key: str) -> ColumnElement[Any]:
    """The payload's top-level member ``key`` as the database reads it from the stored JSON
    (SQLite ``json_extract``, PostgreSQL ``jsonb ->>``): a filter or sort on one member without
    reading every row into Python. A payload the database cannot parse raises ``DatabaseError``."""
    if dialect == "postgresql":
        return cast(LedgerRow.payload, JSONB)[key].astext
    return func.json_extract(LedgerRow.payload, "$." + canonical_bytes(key).decode("utf-8"))


def find_events_page(
    session: Session,
    event_types: Sequence[str],
    key: str,
    values: Sequence[str],
    *,
    offset: int,
    limit: int,
) -> tuple[list[LedgerEvent], int]:
    """One page of the events of ``event_types`` whose top-level ``key`` is one of ``values``,
    newest first, and how many there are in all: the database filters, counts and pages
    (``ORDER BY seq DESC LIMIT/OFFSET``), so a page reads its own rows, not the whole history.
    Each row read is checked as ``find_events`` checks it (an exact member, a readable payload).
    """
    if not values:
        return [], 0
    member = payload_member_text(session.get_bind().dialect.name, key)
    where = (LedgerRow.event_type.in_(tuple(event_types)), member.in_(tuple(values)))
    total = session.scalar(select(func.count()).select_from(LedgerRow).where(*where)) or 0
    query = select(*LedgerRow.__table__.columns).where(*where).order_by(LedgerRow.seq.desc())
    rows = [_event(r) for r in session.execute(query.offset(offset).limit(limit))]
    return [e for e in rows if e.payload.get(key) in values], int(total)


def find_watermark_events(
    session_factory: Callable[[], Session],
    watermark_payload: str,
    event_types: str | Sequence[str] = WATERMARK_EVENTS,
) -> list[LedgerEvent]:
    """``Ledger.find_watermark`` on a session factory."""
    types = (event_types,) if isinstance(event_types, str) else tuple(event_types)
    with session_factory() as session:
        seqs = session.scalars(
            select(WatermarkIndexRow.seq).where(WatermarkIndexRow.watermark_payload == watermark_payload)
        ).all()
        if not seqs:
            return []
        rows = session.scalars(select(LedgerRow).where(LedgerRow.seq.in_(sorted(set(seqs))))).all()
        found = []
        for row in sorted(rows, key=lambda r: r.seq):
            if row.event_type not in types or _recomputed(row) != row.hash:
                continue
            event = _event(row)
            if event.payload.get("watermark_payload") == watermark_payload:
                found.append(event)
        return found


#: Tries of an append that collides with another writer on the tail.
APPEND_TRIES = 20

#: Tries of an append that SQLite refuses as busy. Each has already waited the driver's busy
#: timeout (30 s) for the write lock, so a second wait is the last: a lock held that long is
#: another command's long transaction, and the caller says "busy, try again" instead of hanging.
BUSY_TRIES = 2


def database_busy(error: BaseException) -> bool:
    """Whether ``error`` (SQLAlchemy's, wrapping the driver's) is SQLite giving up on another
    connection's write lock after its busy timeout: nothing is wrong with the file, and the
    same write may succeed later (the command line and the service say so)."""
    original = getattr(error, "orig", None)
    code = getattr(original, "sqlite_errorcode", None)
    return (
        isinstance(original, sqlite3.OperationalError)
        and code is not None
        and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    )


def _gave_up(last: Exception | None) -> LedgerError:
    """Why ``APPEND_TRIES`` appends failed: other writers holding the tail, or what the database
    said when it refused the write for another reason (a read-only file, a full disk), which
    "too much concurrent writing" would hide."""
    reason = str(getattr(last, "orig", None) or last or "").strip().splitlines()
    if isinstance(last, IntegrityError) or not reason or any(w in reason[0] for w in ("locked", "busy")):
        return LedgerError("could not append to the ledger: too much concurrent writing")
    return LedgerError(f"could not append to the ledger: the database refused the write ({reason[0]})")


class Ledger:
    """The product's only writer and reader of ledger rows."""

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory

    def session(self) -> Session:
        """A session on the ledger's database, from the workspace's factory (so it carries what
        the workspace pins, e.g. ``keys.ORG_KEY_PINS``)."""
        return self._session_factory()

    def append(self, event_type: str, payload: dict[str, Any]) -> LedgerEvent:
        """Append one event in its own transaction; writers queue for the tail (and retry
        should one still collide on the next sequence number): ``append_many`` of one."""
        return self.append_many([(event_type, payload)])[0]

    def append_many(self, events: Sequence[tuple[str, dict[str, Any]]]) -> list[LedgerEvent]:
        """Append several events, in order, in one transaction (a scan's results: one commit
        for a batch instead of one per file). All or none are appended."""
        if not events:
            return []
        prepared = [(event_type, payload, _payload_json(event_type, payload)) for event_type, payload in events]
        last: Exception | None = None
        busy = 0
        for _attempt in range(APPEND_TRIES):
            with self._session_factory() as session:
                try:
                    begin_serialized(session, LEDGER_LOCK)
                    rows = []
                    for event_type, payload, payload_json in prepared:
                        rows.append(_add_event(session, event_type, payload, payload_json))
                        session.flush()  # the next row's seq and prev_hash come from this one
                    session.commit()
                except (IntegrityError, OperationalError) as exc:
                    session.rollback()
                    last = exc
                    busy += 1 if database_busy(exc) else 0
                    if busy >= BUSY_TRIES:
                        raise
                    continue
                return [_event(row) for row in rows]
        raise _gave_up(last)

    @staticmethod
    def append_in(session: Session, event_type: str, payload: dict[str, Any]) -> LedgerEvent:
        """Append one event inside the caller's transaction, so it commits or rolls back with
        the caller's other writes. On SQLite the caller must have begun the transaction with
        ``begin_serialized`` (it then holds the database's write lock); on PostgreSQL the
        ledger's advisory lock is taken here."""
        payload_json = _payload_json(event_type, payload)
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _advisory_key(LEDGER_LOCK)})
        row = _add_event(session, event_type, payload, payload_json)
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

    def page(
        self, *, after: int = 0, limit: int = 100, event_type: str | None = None
    ) -> list[LedgerEvent | UnreadableEvent]:
        """Up to ``limit`` events with a sequence number above ``after``, in ledger order (the
        service pages through the ledger with it). A row whose payload cannot be read comes as
        an ``UnreadableEvent`` in its place: the page is where people look for it, so one
        such row must not take the page, and every row after it, away."""
        with self._session_factory() as session:
            query = select(LedgerRow).where(LedgerRow.seq > after).order_by(LedgerRow.seq).limit(limit)
            if event_type is not None:
                query = query.where(LedgerRow.event_type == event_type)
            return [_event_or_unreadable(r) for r in session.scalars(query)]

    def find(
        self, event_type: str | Sequence[str], *, created_after: str | None = None, **payload_equals: Any
    ) -> list[LedgerEvent]:
        """Events of ``event_type`` (or any of several types) whose payload has all the given
        top-level key/value pairs, in ledger order (``find_events``: one narrowed query, e.g.
        one watermark payload among all renders); ``created_after`` keeps those appended after
        that ``utc_iso`` stamp."""
        with self._session_factory() as session:
            return find_events(session, event_type, payload_equals, created_after=created_after)

    def find_watermark(
        self, watermark_payload: str, event_types: str | Sequence[str] = WATERMARK_EVENTS
    ) -> list[LedgerEvent]:
        """Events of ``event_types`` that carry ``watermark_payload`` (hex), in ledger order,
        found through the watermark index (an index seek, then one row read per hit).

        The index only says where to look: each event it points to is re-read, its hash
        recomputed from its content and its own ``watermark_payload`` compared, so an index row
        edited or inserted to point elsewhere resolves to nothing rather than to another job.
        An index row that was removed hides its event from this lookup; ``audit verify``
        names it (``watermark_index_missing``).
        """
        return find_watermark_events(self._session_factory, watermark_payload, event_types)

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

    def intact(self, seq: int) -> bool:
        """Whether ledger row ``seq`` still hashes to its stored hash and sits in the chain: it
        links to the row before it (the genesis hash for row 1 only), and the row after it (if any)
        links to it. A row edited in place, with or without its hash recomputed, fails; rewriting
        every later row as well is what anchors catch (``audit verify --anchor``)."""
        with self._session_factory() as session:
            rows = {r.seq: r for r in session.scalars(select(LedgerRow).where(LedgerRow.seq.between(seq - 1, seq + 1)))}
        row, before, after = rows.get(seq), rows.get(seq - 1), rows.get(seq + 1)
        if row is None or _recomputed(row) != row.hash:
            return False
        # Only row 1 starts the chain: a later row with none before it lost its predecessors.
        if before is None and seq != 1:
            return False
        linked_before = row.prev_hash == (before.hash if before is not None else GENESIS_HASH)
        return linked_before and (after is None or after.prev_hash == row.hash)

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
                        False,
                        rows,
                        expected_prev,
                        row.seq,
                        f"row {row.seq}: expected sequence number {expected_seq} "
                        f"(a row was deleted or inserted before it)",
                        "sequence",
                    )
                if row.prev_hash != expected_prev:
                    return ChainReport(
                        False,
                        rows,
                        expected_prev,
                        row.seq,
                        f"row {row.seq}: its previous-hash does not match row {row.seq - 1} "
                        f"(rows were deleted, inserted or reordered)",
                        "prev_hash",
                    )
                if _recomputed(row) != row.hash:
                    return ChainReport(
                        False,
                        rows,
                        expected_prev,
                        row.seq,
                        f"row {row.seq}: content does not match its hash (the row was edited)",
                        "content",
                    )
                expected_prev = row.hash
                expected_seq += 1
        return ChainReport(True, rows, expected_prev)


@dataclass(frozen=True)
class IndexProblem:
    kind: str  # watermark_index_missing | watermark_index_extra | watermark_index_altered
    seq: int
    problem: str


def watermark_index_problems(session: Session) -> list[IndexProblem]:
    """Every difference between ``ledger_watermark_index`` and the ledger's watermark events,
    both ways: an event without its index row (``missing``: removed, so lookups miss it), an
    index row without such an event (``extra``: inserted, or its event was removed), and an index
    row whose payload, event type or event id is not its event's (``altered``). Reads every
    ``WATERMARK_EVENTS`` event once (a full pass, like the chain check)."""
    expected: dict[int, WatermarkIndexRow] = {}
    query = select(LedgerRow).where(LedgerRow.event_type.in_(WATERMARK_EVENTS)).order_by(LedgerRow.seq)
    for row in session.scalars(query.execution_options(yield_per=2000)):
        try:
            payload = strict_json.loads(row.payload)
        except ValueError:
            continue  # an unreadable payload is the audit's ledger_unreadable finding (LedgerRowUnreadable)
        indexed = watermark_index_row(
            seq=row.seq,
            event_id=row.event_id,
            event_type=row.event_type,
            payload=payload if isinstance(payload, dict) else {},
        )
        if indexed is not None:
            expected[row.seq] = indexed
    problems: list[IndexProblem] = []
    present: set[int] = set()
    for got in session.scalars(select(WatermarkIndexRow).order_by(WatermarkIndexRow.seq)):
        present.add(got.seq)
        want = expected.get(got.seq)
        if want is None:
            problems.append(
                IndexProblem(
                    "watermark_index_extra",
                    got.seq,
                    f"the watermark index names ledger row {got.seq} for payload {got.watermark_payload}, "
                    "but that row is no watermark event (inserted, or its event was removed); lookups ignore it",
                )
            )
        elif (got.watermark_payload, got.event_type, got.event_id) != (
            want.watermark_payload,
            want.event_type,
            want.event_id,
        ):
            problems.append(
                IndexProblem(
                    "watermark_index_altered",
                    got.seq,
                    f"the watermark index row for ledger row {got.seq} says payload {got.watermark_payload} "
                    f"({got.event_type}, event {got.event_id}), the event says {want.watermark_payload} "
                    f"({want.event_type}, event {want.event_id}); lookups follow the event",
                )
            )
    for seq in sorted(set(expected) - present):
        problems.append(
            IndexProblem(
                "watermark_index_missing",
                seq,
                f"ledger row {seq} ({expected[seq].event_type}, payload {expected[seq].watermark_payload}) "
                "has no watermark index row (removed): verify cannot find its render by the payload",
            )
        )
    return sorted(problems, key=lambda p: p.seq)


def _recomputed(row: LedgerRow) -> str:
    """The hash a ledger row should have, from its own content."""
    return event_hash(
        seq=row.seq,
        event_id=row.event_id,
        event_type=row.event_type,
        created_at=row.created_at,
        payload_json=row.payload,
        prev_hash=row.prev_hash,
    )
