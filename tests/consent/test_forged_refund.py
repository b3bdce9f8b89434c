"""A completed render always counts against the render limit, whatever refunds follow it.

Attack (finding 1): a grant allows one render; the render completes; someone who can append to
the ledger (through ``Ledger.append`` or raw SQL with a valid chain, INSERT only) adds a
``render.refunded`` event for the completed job and renders again. The slot stays in use, the
second render is refused, and ``audit verify`` names the forged refund.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from likeness.config import Settings
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes, now_utc, utc_iso
from likeness.consent.ledger import event_hash
from likeness.errors import ConsentError
from likeness.workspace import Workspace
from tests.conftest import add_subject, issue_grant


def _append_raw(ws: Workspace, event_type: str, payload: dict) -> None:
    """Append a row with plain SQL INSERT, chained to the current head as the ledger would."""
    seq, prev_hash = ws.ledger.head()
    row = {
        "seq": seq + 1,
        "event_id": uuid.uuid4().hex,
        "event_type": event_type,
        "created_at": utc_iso(now_utc()),
        "payload": canonical_bytes(payload).decode(),
        "prev_hash": prev_hash,
    }
    row["hash"] = event_hash(
        seq=row["seq"],
        event_id=row["event_id"],
        event_type=event_type,
        created_at=row["created_at"],
        payload_json=row["payload"],
        prev_hash=prev_hash,
    )
    with ws.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO ledger (seq, event_id, event_type, created_at, payload, prev_hash, hash) "
                "VALUES (:seq, :event_id, :event_type, :created_at, :payload, :prev_hash, :hash)"
            ),
            row,
        )


def _forge_refund_after_a_completed_render(ws: Workspace, via: str) -> str:
    reg = ws.registry
    reg.add_org("studio")
    add_subject(reg, "ari", "Ari", kind="artist")
    grant_id = issue_grant(
        reg, "ari", "studio", ["music_video"], max_renders=1, valid_until=now_utc() + timedelta(days=1)
    )
    authz = ws.policy.authorize("ari", "music_video", "studio")
    authz.consume_render("job-done")
    authz.record("render.completed", {"job_id": "job-done", "output_sha256": "0" * 64})
    forged = {
        "authorization_id": authz.authorization_id,
        "grant_id": grant_id,
        "subject_id": authz.subject_id,
        "org_id": authz.org_id,
        "job_id": "job-done",
        "reason": "render failed",
    }
    if via == "append":
        ws.ledger.append("render.refunded", forged)
    else:
        _append_raw(ws, "render.refunded", forged)
    assert ws.ledger.verify().ok  # the chain is valid: only the meaning is forged
    return grant_id


def _check_forged_refund_frees_nothing(ws: Workspace, via: str) -> None:
    grant_id = _forge_refund_after_a_completed_render(ws, via)
    assert ws.registry.render_count(grant_id) == 1
    assert ws.registry.grant_record(grant_id).renders_used == 1  # what consent list shows
    refused = pytest.raises(ConsentError, ws.policy.authorize, "ari", "music_video", "studio").value
    assert refused.reason == "render_limit_reached"
    report = audit_workspace(ws)
    forged = [p for p in report.problems if p.kind == "render_slot"]
    assert [p.subject for p in forged] == ["job-done"], report.problems
    assert "follows its render.completed" in forged[0].message and "forged" in forged[0].message
    assert not report.ok


@pytest.mark.parametrize("via", ["append", "sql"])
def test_forged_refund_of_a_completed_render_on_sqlite(workspace, via):
    _check_forged_refund_frees_nothing(workspace, via)


@pytest.mark.parametrize("via", ["append", "sql"])
def test_forged_refund_of_a_completed_render_on_postgresql(postgres_url, tmp_path, via):
    ws = Workspace.init(Settings(home=tmp_path / "home", database_url=postgres_url))
    try:
        _check_forged_refund_frees_nothing(ws, via)
    finally:
        ws.close()


def test_a_genuine_refund_is_not_named_and_frees_the_slot(workspace):
    reg = workspace.registry
    reg.add_org("studio")
    add_subject(reg, "ari", "Ari", kind="artist")
    grant_id = issue_grant(
        reg, "ari", "studio", ["music_video"], max_renders=1, valid_until=now_utc() + timedelta(days=1)
    )
    authz = workspace.policy.authorize("ari", "music_video", "studio")
    authz.consume_render("job-failed")
    assert authz.refund_render("job-failed", "no face swapped")
    assert workspace.registry.render_count(grant_id) == 0
    assert not [p for p in audit_workspace(workspace).problems if p.kind == "render_slot"]
    workspace.policy.authorize("ari", "music_video", "studio").consume_render("job-next")
    assert workspace.registry.render_count(grant_id) == 1
