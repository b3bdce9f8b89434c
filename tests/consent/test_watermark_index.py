"""The ledger's watermark-payload index: written with its event, used by lookups, checked by audit.

An index row is written in the same transaction as the ``render.completed`` / ``preview.written``
event that carries a payload; ``Ledger.find_watermark`` seeks it and re-reads the event it points
to; ``audit verify`` names a row missing, extra or altered; migration 0002 backfills workspaces
whose ledger predates the table.
"""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes, now_utc, utc_iso
from likeness.consent.ledger import GENESIS_HASH, Ledger, begin_serialized, event_hash
from likeness.workspace import Workspace


def _render(ws, payload_hex: str, **extra):
    return ws.ledger.append(
        "render.completed",
        {
            "job_id": uuid.uuid4().hex,
            "watermark_payload": payload_hex,
            "output_sha256": "ab" * 32,
            **extra,
        },
    )


def _index(ws) -> list[tuple]:
    with ws.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text("SELECT seq, watermark_payload, event_type, event_id FROM ledger_watermark_index ORDER BY seq")
            )
        ]


def _index_problems(ws) -> list:
    return [p for p in audit_workspace(ws).problems if p.kind.startswith("watermark_index")]


def _sql(ws, statement: str, **params) -> None:
    with ws.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_watermark_events_get_index_rows_and_resolve(workspace):
    ws = workspace
    ws.ledger.append("note", {"watermark_payload": "00" * 8})  # not a watermark event
    first = _render(ws, "11" * 8)
    preview = ws.ledger.append("preview.written", {"job_id": "p1", "watermark_payload": "22" * 8})
    ws.ledger.append("verification.completed", {"sha256": "cd" * 32, "watermark_payload": "11" * 8})
    again = _render(ws, "11" * 8)
    assert _index(ws) == [
        (first.seq, "11" * 8, "render.completed", first.event_id),
        (preview.seq, "22" * 8, "preview.written", preview.event_id),
        (again.seq, "11" * 8, "render.completed", again.event_id),
    ]
    assert [e.seq for e in ws.ledger.find_watermark("11" * 8)] == [first.seq, again.seq]
    assert ws.ledger.find_watermark("11" * 8) == ws.ledger.find("render.completed", watermark_payload="11" * 8)
    assert ws.ledger.find_watermark("22" * 8, "render.completed") == []
    assert [e.seq for e in ws.ledger.find_watermark("22" * 8)] == [preview.seq]
    assert ws.ledger.find_watermark("00" * 8) == []
    assert _index_problems(ws) == [] and audit_workspace(ws).chain.ok


def test_an_event_rolled_back_leaves_no_index_row(workspace):
    ws = workspace
    with Session(ws.engine) as session:
        begin_serialized(session, "likeness.ledger.append")
        Ledger.append_in(session, "render.completed", {"job_id": "j", "watermark_payload": "33" * 8})
        session.rollback()
    assert _index(ws) == [] and ws.ledger.count() == 0
    with Session(ws.engine) as session:
        begin_serialized(session, "likeness.ledger.append")
        event = Ledger.append_in(session, "render.completed", {"job_id": "j", "watermark_payload": "33" * 8})
        session.commit()
    assert _index(ws) == [(event.seq, "33" * 8, "render.completed", event.event_id)]


def test_audit_names_a_missing_an_extra_and_an_altered_index_row(workspace):
    ws = workspace
    a, b, c = (_render(ws, f"{i:02x}" * 8) for i in (1, 2, 3))
    _sql(ws, "DELETE FROM ledger_watermark_index WHERE seq = :s", s=a.seq)
    _sql(ws, "UPDATE ledger_watermark_index SET watermark_payload = :p WHERE seq = :s", p="ff" * 8, s=b.seq)
    _sql(
        ws, "INSERT INTO ledger_watermark_index VALUES (:s, :p, 'render.completed', :e)", s=999, p="ee" * 8, e="0" * 32
    )
    problems = {(p.kind, p.subject) for p in _index_problems(ws)}
    assert problems == {
        ("watermark_index_missing", f"ledger row {a.seq}"),
        ("watermark_index_altered", f"ledger row {b.seq}"),
        ("watermark_index_extra", "ledger row 999"),
    }
    report = audit_workspace(ws)
    assert not report.ok and report.chain.ok  # the chain is intact; only the index was edited
    assert ws.ledger.find_watermark(c.payload["watermark_payload"])[0].seq == c.seq
    # the altered row resolves to nothing, neither under its new payload nor pointing at b
    assert ws.ledger.find_watermark("ff" * 8) == [] and ws.ledger.find_watermark("ee" * 8) == []


def test_an_index_row_pointed_at_another_job_does_not_resolve_to_it(workspace):
    """A database editor makes payload A point at job B's event (edit, or insert a second row):
    the lookup re-reads the event, whose own payload is B's, and finds nothing for A."""
    ws = workspace
    mine = _render(ws, "aa" * 8)
    other = _render(ws, "bb" * 8)
    _sql(ws, "DELETE FROM ledger_watermark_index WHERE seq = :s", s=mine.seq)
    _sql(ws, "UPDATE ledger_watermark_index SET watermark_payload = :p WHERE seq = :s", p="aa" * 8, s=other.seq)
    assert ws.ledger.find_watermark("aa" * 8) == []
    # an event edited in place to carry the payload (chain broken) is not taken either
    with ws.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER ledger_no_update"))
        edited = json.dumps({**other.payload, "watermark_payload": "aa" * 8})
        conn.execute(text("UPDATE ledger SET payload = :p WHERE seq = :s"), {"p": edited, "s": other.seq})
    assert ws.ledger.find_watermark("aa" * 8) == []
    kinds = {p.kind for p in audit_workspace(ws).problems}
    assert {"chain_broken", "watermark_index_missing"} <= kinds


def _raw_append(conn, seq: int, prev: str, event_type: str, payload: dict) -> str:
    payload_json = canonical_bytes(payload).decode()
    event_id, created = uuid.uuid4().hex, utc_iso(now_utc())
    digest = event_hash(
        seq=seq, event_id=event_id, event_type=event_type, created_at=created, payload_json=payload_json, prev_hash=prev
    )
    conn.execute(
        text("INSERT INTO ledger VALUES (:s, :e, :t, :c, :p, :ph, :h)"),
        {"s": seq, "e": event_id, "t": event_type, "c": created, "p": payload_json, "ph": prev, "h": digest},
    )
    return digest


def test_migration_backfills_a_ledger_written_before_the_index(settings):
    """A workspace at revision 0001 with watermark events upgrades with every one indexed."""
    from alembic import command

    from likeness.workspace import _alembic_config

    settings.resolved_home.mkdir(parents=True)
    engine = create_engine(settings.resolved_database_url)
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    events = [
        ("note", {"i": 0}),
        ("render.completed", {"job_id": "j1", "watermark_payload": "44" * 8}),
        ("preview.written", {"job_id": "p1", "watermark_payload": "55" * 8}),
        ("render.completed", {"job_id": "j2", "watermark_payload": None}),
        ("render.completed", {"job_id": "j3", "watermark_payload": "44" * 8}),
    ]
    with engine.begin() as conn:
        prev = GENESIS_HASH
        for seq, (event_type, payload) in enumerate(events, start=1):
            prev = _raw_append(conn, seq, prev, event_type, payload)
    engine.dispose()
    ws = Workspace.init(settings)  # migrates to head
    try:
        assert [(seq, p, t) for seq, p, t, _ in _index(ws)] == [
            (2, "44" * 8, "render.completed"),
            (3, "55" * 8, "preview.written"),
            (5, "44" * 8, "render.completed"),
        ]
        assert [e.payload["job_id"] for e in ws.ledger.find_watermark("44" * 8)] == ["j1", "j3"]
        assert _index_problems(ws) == []
    finally:
        ws.close()


@pytest.mark.usefixtures("postgres_server")
def test_index_on_postgresql(postgres_url, tmp_path):
    from likeness.config import Settings

    ws = Workspace.init(Settings(home=tmp_path / "home", database_url=postgres_url))
    try:
        event = _render(ws, "66" * 8)
        assert [e.seq for e in ws.ledger.find_watermark("66" * 8)] == [event.seq]
        assert _index_problems(ws) == []
        _sql(ws, "DELETE FROM ledger_watermark_index")
        assert [p.kind for p in _index_problems(ws)] == ["watermark_index_missing"]
    finally:
        ws.close()


def test_audit_verify_command_names_a_removed_index_row(workspace):
    from typer.testing import CliRunner

    from likeness.cli import app

    ws = workspace
    event = _render(ws, "77" * 8)
    runner = CliRunner()
    home = str(ws.home)
    assert runner.invoke(app, ["--home", home, "audit", "verify"]).exit_code == 0
    _sql(ws, "DELETE FROM ledger_watermark_index WHERE seq = :s", s=event.seq)
    result = runner.invoke(app, ["--home", home, "audit", "verify"])
    assert result.exit_code == 1 and "watermark_index_missing" in result.output, result.output
