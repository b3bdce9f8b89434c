"""Ledger tampering: edits, deletions, insertions and reorderings are named by `audit verify`."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from likeness.consent.canonical import canonical_bytes
from likeness.consent.ledger import GENESIS_HASH, event_hash


def _sql(ws, statement: str, **params) -> None:
    with ws.engine.begin() as conn:
        conn.execute(text(statement), params)


def _drop_triggers(ws) -> None:
    _sql(ws, "DROP TRIGGER ledger_no_update")
    _sql(ws, "DROP TRIGGER ledger_no_delete")


def _seeded(consent_world, n: int = 6):
    ws = consent_world.workspace
    for i in range(n):
        ws.ledger.append("test.event", {"i": i})
    assert ws.ledger.verify().ok
    return ws


def test_clean_ledger_verifies(consent_world):
    ws = _seeded(consent_world)
    report = ws.ledger.verify()
    assert report.ok and report.rows == ws.ledger.count() and report.broken_seq is None


def test_triggers_refuse_update_and_delete(consent_world):
    ws = _seeded(consent_world)
    with pytest.raises(DatabaseError, match="append-only"):
        _sql(ws, "UPDATE ledger SET payload = '{}' WHERE seq = 2")
    with pytest.raises(DatabaseError, match="append-only"):
        _sql(ws, "DELETE FROM ledger WHERE seq = 2")
    assert ws.ledger.verify().ok


def test_edited_row_is_named(consent_world):
    ws = _seeded(consent_world)
    _drop_triggers(ws)
    _sql(ws, "UPDATE ledger SET payload = :p WHERE seq = 4", p=json.dumps({"i": 999}))
    report = ws.ledger.verify()
    assert not report.ok and report.broken_seq == 4 and "edited" in report.problem


def test_deleted_row_is_named(consent_world):
    ws = _seeded(consent_world)
    _drop_triggers(ws)
    _sql(ws, "DELETE FROM ledger WHERE seq = 5")
    report = ws.ledger.verify()
    assert not report.ok and report.broken_seq == 6


def test_inserted_row_is_named(consent_world):
    ws = _seeded(consent_world)
    _drop_triggers(ws)
    last = ws.ledger.count()
    # Shift the tail up by one and slip a forged row (with a self-consistent hash) into the gap.
    _sql(ws, "UPDATE ledger SET seq = seq + 1000 WHERE seq >= 3")
    _sql(ws, "UPDATE ledger SET seq = seq - 999 WHERE seq >= 1003")
    prev = ws.ledger.hash_at(2)
    forged = event_hash(
        seq=3,
        event_id="f" * 32,
        event_type="grant.issued",
        created_at="2026-01-01T00:00:00Z",
        payload_json='{"forged":true}',
        prev_hash=prev,
    )
    _sql(
        ws,
        "INSERT INTO ledger VALUES (3, :e, 'grant.issued', '2026-01-01T00:00:00Z', :j, :p, :h)",
        e="f" * 32,
        j='{"forged":true}',
        p=prev,
        h=forged,
    )
    report = ws.ledger.verify()
    assert not report.ok and report.broken_seq == 4
    assert ws.ledger.count() == last + 1


def test_a_row_claiming_to_start_the_chain_after_a_gap_is_not_intact(consent_world):
    """Rows before it deleted and the row re-hashed onto the genesis hash: a row with no row
    before it is the chain's start only at sequence number 1."""
    ws = _seeded(consent_world)
    _drop_triggers(ws)
    seq = ws.ledger.count()
    with ws.engine.connect() as conn:
        row = dict(conn.execute(text("SELECT * FROM ledger WHERE seq = :s"), {"s": seq}).mappings().one())
    _sql(ws, "DELETE FROM ledger WHERE seq < :s", s=seq)
    prev = GENESIS_HASH
    forged = event_hash(
        seq=seq,
        event_id=row["event_id"],
        event_type=row["event_type"],
        created_at=row["created_at"],
        payload_json=row["payload"],
        prev_hash=prev,
    )
    _sql(ws, "UPDATE ledger SET prev_hash = :p, hash = :h WHERE seq = :s", p=prev, h=forged, s=seq)
    assert not ws.ledger.intact(seq)
    assert not ws.ledger.verify().ok


def test_reordered_rows_are_named(consent_world):
    ws = _seeded(consent_world)
    _drop_triggers(ws)
    _sql(ws, "UPDATE ledger SET seq = -1 WHERE seq = 3")
    _sql(ws, "UPDATE ledger SET seq = 3 WHERE seq = 4")
    _sql(ws, "UPDATE ledger SET seq = 4 WHERE seq = -1")
    report = ws.ledger.verify()
    assert not report.ok and report.broken_seq == 3


def test_signed_head_detects_truncation_and_rewrite(consent_world):
    ws = _seeded(consent_world)
    head = ws.signed_head()
    assert ws.check_head(head) is None
    ws.ledger.append("test.event", {"after": "head"})
    assert ws.check_head(head) is None  # growth after the head is fine
    forged = dict(head, seq=1)
    assert "signature" in ws.check_head(forged)
    _drop_triggers(ws)
    _sql(ws, "DELETE FROM ledger WHERE seq >= :s", s=head["seq"])
    assert "truncated" in ws.check_head(head)
    assert ws.ledger.verify().ok  # a clean cut of the tail is only visible against the head


def test_find_matches_exact_members_only(consent_world):
    ledger = consent_world.workspace.ledger
    ledger.append("render.completed", {"watermark_payload": "ab12", "job_id": "j1", "n": 3})
    ledger.append("render.completed", {"watermark_payload": "ab123", "job_id": "j2", "n": 30})
    ledger.append("render.completed", {"nested": {"watermark_payload": "ab12"}, "job_id": "j3"})
    ledger.append("render.completed", {"watermark_payload": 'a%_"é', "job_id": "j4", "n": None})
    ledger.append("model.exported", {"watermark_payload": "ab12", "job_id": "j5"})

    def jobs(**match):
        return [e.payload["job_id"] for e in ledger.find("render.completed", **match)]

    assert jobs(watermark_payload="ab12") == ["j1"]  # not the longer value, the nested one or another type
    assert jobs(watermark_payload='a%_"é') == ["j4"]  # LIKE wildcards and escapes are literal
    assert jobs(watermark_payload='a__"é') == []
    assert jobs(n=3) == ["j1"] and jobs(n=None) == ["j4"]
    assert jobs(watermark_payload="ab12", n=30) == []
    assert jobs() == ["j1", "j2", "j3", "j4"]


def test_find_takes_several_event_types(consent_world):
    ledger = consent_world.workspace.ledger
    ledger.append("render.reserved", {"job_id": "j1", "grant_id": "g"})
    ledger.append("render.refunded", {"job_id": "j1", "grant_id": "g"})
    ledger.append("render.reserved", {"job_id": "j2", "grant_id": "h"})
    found = ledger.find(("render.reserved", "render.refunded"), grant_id="g")
    assert [e.event_type for e in found] == ["render.reserved", "render.refunded"]


def test_append_in_commits_or_rolls_back_with_the_callers_transaction(consent_world):
    from sqlalchemy.orm import Session

    from likeness.consent.ledger import Ledger, begin_serialized

    ws = consent_world.workspace
    before = ws.ledger.count()
    with Session(ws.engine) as session:
        begin_serialized(session, "test")
        Ledger.append_in(session, "test.event", {"kept": False})
        session.rollback()
    assert ws.ledger.count() == before
    with Session(ws.engine) as session:
        begin_serialized(session, "test")
        event = Ledger.append_in(session, "test.event", {"kept": True})
        session.commit()
    assert ws.ledger.count() == before + 1 and event.seq == before + 1
    assert ws.ledger.verify().ok


def test_parallel_appends_keep_one_chain(consent_world):
    import threading

    ws = consent_world.workspace
    barrier = threading.Barrier(16)

    def writer(i: int) -> None:
        barrier.wait()
        for j in range(5):
            ws.ledger.append("test.event", {"writer": i, "j": j})

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(ws.ledger.find("test.event")) == 80
    assert ws.ledger.verify().ok


def test_a_database_that_refuses_writes_is_named_not_called_concurrent_writing(workspace):
    # A read-only database (a workspace copied from another user, a read-only mount) was reported
    # as "too much concurrent writing" after twenty tries.
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    from likeness.consent.ledger import Ledger
    from likeness.errors import LedgerError

    database = workspace.engine.url.database
    read_only = create_engine(f"sqlite:///file:{database}?mode=ro&uri=true")
    ledger = Ledger(sessionmaker(read_only))
    for append in (lambda: ledger.append("test.event", {}), lambda: ledger.append_many([("test.event", {})])):
        with pytest.raises(
            LedgerError, match=r"the database refused the write \(attempt to write a readonly database\)"
        ):
            append()
    read_only.dispose()


def test_a_write_lock_held_past_the_busy_wait_gives_up_as_busy_not_after_twenty_waits(workspace):
    # An append meeting another connection's write lock held past SQLite's busy wait (30 s in the
    # product, 0.1 s here) retried twenty times, so a command or a request hung ten minutes and
    # then blamed "concurrent writing". It now waits out the busy timeout once more and gives up
    # with SQLite's busy error, which the command line and the service say as "try again".
    import sqlite3

    from sqlalchemy import create_engine, event
    from sqlalchemy.orm import sessionmaker

    from likeness.consent.ledger import Ledger, database_busy

    database = workspace.engine.url.database
    engine = create_engine(f"sqlite:///{database}", connect_args={"timeout": 0.1})
    begins: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_conn, _cursor, statement, *_args) -> None:
        if statement.startswith("BEGIN IMMEDIATE"):
            begins.append(statement)

    ledger = Ledger(sessionmaker(engine))
    holder = sqlite3.connect(database)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for append in (lambda: ledger.append("test.event", {}), lambda: ledger.append_many([("test.event", {})])):
            begins.clear()
            with pytest.raises(Exception) as caught:
                append()
            assert database_busy(caught.value), caught.value
            assert len(begins) == 2, begins
    finally:
        holder.rollback()
        holder.close()
    # Nothing half-made: the same append succeeds once the lock is gone.
    assert ledger.append("test.event", {"after": True}).payload == {"after": True}


def test_an_existing_workspace_gains_the_ledger_window_index_as_the_model_declares_it(settings):
    """Migration 0007: ``init`` on a workspace at 0006 adds ``ix_ledger_type_created`` (the
    report quota's index range), matching ``LedgerRow``; the downgrade drops it."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    from likeness import workspace as workspace_module
    from likeness.consent.tables import Base
    from tests.portal.test_migration import _to

    def ledger_indexes(engine) -> set[str]:
        return {index["name"] for index in inspect(engine).get_indexes("ledger")}

    settings.resolved_home.mkdir(parents=True)
    engine = workspace_module._engine(settings.resolved_database_url)
    _to(engine, "0006_public_results")
    assert "ix_ledger_type_created" not in ledger_indexes(engine)
    workspace = workspace_module.Workspace.init(settings)  # what `likeness init` does
    try:
        assert "ix_ledger_type_created" in ledger_indexes(workspace.engine)
        with workspace.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert [d for d in differences if "ix_ledger_type_created" in str(d)] == []
        _to(workspace.engine, "0006_public_results", down=True)
        assert "ix_ledger_type_created" not in ledger_indexes(workspace.engine)
    finally:
        workspace.close()
    engine.dispose()


@pytest.mark.parametrize(
    "payload",
    [
        f'{{"grant_id":"{"a" * 32}","grant_id":"{"b" * 32}"}}',  # a member named twice
        '{"grant_id":',  # not JSON
        "[" * 100_000 + "]" * 100_000,  # nested past what the reader holds
        f'["{"a" * 32}"]',  # JSON, but not an object: every reader asks it for members
        "null",
        f'{{"grant_id":"{"a" * 32}","n":NaN}}',  # JSON Python reads that canonical JSON cannot write
        f'{{"grant_id":"{"a" * 32}","n":18014398509481985}}',
        f'{{"grant_id":"{"a" * 32}","n":"\\ud800"}}',
    ],
    ids=["duplicate", "not_json", "nested", "list", "null", "nan", "past_2_53", "lone_surrogate"],
)
def test_an_appended_row_whose_payload_cannot_be_read_is_named_not_raised(consent_world, payload):
    """A database editor appends a consent row with a valid chain whose payload no reader takes.
    Before, every read of it raised (``DuplicateMemberError`` since JSON became strict, the
    decode error or ``RecursionError``; a list or null was read as its event's payload, and the
    first member asked of it raised ``AttributeError``): ``audit verify`` ended in a traceback
    instead of naming it, and the policy engine with it."""
    from likeness.consent.audit import audit_workspace
    from likeness.errors import LedgerError

    ws = consent_world.workspace
    seq, when, event_id = ws.ledger.count() + 1, "2026-01-01T00:00:00Z", "f" * 32
    prev = ws.ledger.hash_at(seq - 1)
    row_hash = event_hash(
        seq=seq, event_id=event_id, event_type="grant.revoked", created_at=when, payload_json=payload, prev_hash=prev
    )
    _sql(
        ws,
        "INSERT INTO ledger VALUES (:s, :e, 'grant.revoked', :w, :j, :p, :h)",
        s=seq,
        e=event_id,
        w=when,
        j=payload,
        p=prev,
        h=row_hash,
    )
    assert ws.ledger.verify().ok  # the chain holds: only reading the row shows it
    with pytest.raises(LedgerError, match=f"ledger row {seq}: its payload cannot be read"):
        ws.ledger.events()
    report = audit_workspace(ws)
    unreadable = [p for p in report.problems if p.kind == "ledger_unreadable"]
    assert not report.ok and [p.subject for p in unreadable] == [f"ledger row {seq}"], report.problems


def test_a_grant_event_rewritten_to_hold_nan_is_named_by_audit_not_a_traceback(consent_world):
    """A database editor rewrites the grant's ``grant.issued`` row to ``"max_renders":NaN`` (or
    an integer past 2**53) and recomputes every later hash, so the chain holds. Before, ``audit
    verify`` ended in RFC 8785's ``FloatDomainError`` traceback (hashing the event's body to
    compare it with the grant row) instead of naming the row."""
    from likeness.consent.audit import audit_workspace

    ws = consent_world.workspace
    (event,) = ws.ledger.find("grant.issued", grant_id=consent_world.grant_id)
    genuine = canonical_bytes(event.payload).decode()
    assert '"max_renders":null' in genuine
    with ws.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS ledger_no_update"))
        rows = conn.execute(
            text("SELECT seq, event_id, event_type, created_at, payload FROM ledger WHERE seq >= :s ORDER BY seq"),
            {"s": event.seq},
        ).all()
        prev = ws.ledger.hash_at(event.seq - 1)
        for row in rows:
            payload = (
                genuine.replace('"max_renders":null', '"max_renders":NaN') if row.seq == event.seq else row.payload
            )
            digest = event_hash(
                seq=row.seq,
                event_id=row.event_id,
                event_type=row.event_type,
                created_at=row.created_at,
                payload_json=payload,
                prev_hash=prev,
            )
            conn.execute(
                text("UPDATE ledger SET payload = :j, prev_hash = :p, hash = :h WHERE seq = :s"),
                {"j": payload, "p": prev, "h": digest, "s": row.seq},
            )
            prev = digest
    assert ws.ledger.verify().ok
    report = audit_workspace(ws)
    unreadable = [p for p in report.problems if p.kind == "ledger_unreadable"]
    assert [p.subject for p in unreadable] == [f"ledger row {event.seq}"], report.problems
    assert "nan is not representable" in unreadable[0].message
