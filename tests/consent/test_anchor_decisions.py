"""Consent decisions check the ledger against the latest anchor kept outside the workspace.

Attack (finding 16): a grant is revoked and the ledger anchored; someone with the database
deletes the revocation row and its ledger event and rewrites the chain after it (trigger
dropped, rows re-chained, trigger restored). The chain is valid again and the revocation is
gone; only the anchor shows it. ``authorize`` is refused with ``ledger_rewritten``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from likeness.config import Settings
from likeness.consent.anchor import AnchoredLedgerCheck
from likeness.consent.audit import anchor_workspace, audit_workspace
from likeness.consent.ledger import event_hash
from likeness.errors import ConsentError


@pytest.fixture
def anchors(tmp_path) -> Path:
    return tmp_path / "other-disk" / "anchors"


@pytest.fixture
def settings(tmp_path, anchors) -> Settings:  # the workspace fixture's settings, with anchors
    return Settings(home=tmp_path / "home", anchor_dirs=[anchors])


def refusal(call, *args) -> ConsentError:
    with pytest.raises(ConsentError) as info:
        call(*args)
    return info.value


def _without_ledger_row(ws, seq: int, *, rechain: bool) -> None:
    """Delete ledger row ``seq``; with ``rechain`` the later rows move down one place with their
    hashes recomputed (a valid chain again). The delete trigger is dropped and restored."""
    with ws.engine.begin() as conn:
        trigger = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'ledger_no_delete'")).scalar_one()
        conn.execute(text("DROP TRIGGER ledger_no_delete"))
        later = conn.execute(text(
            "SELECT event_id, event_type, created_at, payload FROM ledger WHERE seq > :seq ORDER BY seq"
        ), {"seq": seq}).all() if rechain else []
        conn.execute(text("DELETE FROM ledger WHERE seq >= :seq" if rechain else "DELETE FROM ledger WHERE seq = :seq"),
                     {"seq": seq})
        prev_hash = conn.execute(text("SELECT hash FROM ledger WHERE seq = :s"), {"s": seq - 1}).scalar_one()
        for offset, row in enumerate(later):
            new_seq = seq + offset
            digest = event_hash(seq=new_seq, event_id=row.event_id, event_type=row.event_type,
                                created_at=row.created_at, payload_json=row.payload, prev_hash=prev_hash)
            conn.execute(text(
                "INSERT INTO ledger (seq, event_id, event_type, created_at, payload, prev_hash, hash) "
                "VALUES (:seq, :event_id, :event_type, :created_at, :payload, :prev_hash, :hash)"
            ), {"seq": new_seq, "event_id": row.event_id, "event_type": row.event_type,
                "created_at": row.created_at, "payload": row.payload, "prev_hash": prev_hash, "hash": digest})
            prev_hash = digest
        conn.execute(text(trigger))


def _delete_revocation(ws, grant_id: str, *, rechain: bool) -> None:
    (event,) = ws.ledger.find("grant.revoked", grant_id=grant_id)
    with ws.engine.begin() as conn:
        conn.execute(text("DELETE FROM grant_revocations WHERE grant_id = :g"), {"g": grant_id})
    _without_ledger_row(ws, event.seq, rechain=rechain)
    assert not ws.ledger.find("grant.revoked", grant_id=grant_id)


@pytest.mark.parametrize("append_after", [False, True], ids=["truncated", "rewritten"])
def test_deleted_revocation_with_a_rewritten_chain_is_refused(consent_world, append_after):
    ws = consent_world.workspace
    assert ws.policy.ledger_check is not None
    consent_world.revoke_grant()
    assert refusal(consent_world.authorize).reason == "revoked"
    for n in range(3):  # rows after the revocation, re-chained by the attack
        ws.ledger.append("test.event", {"n": n})
    _, (anchor_path,) = anchor_workspace(ws)

    _delete_revocation(ws, consent_world.grant_id, rechain=True)
    if append_after:  # the ledger grows past the anchored row again, with other hashes
        for n in range(3):
            ws.ledger.append("test.event", {"n": f"after-{n}"})
    assert ws.ledger.verify().ok  # a valid chain: only the anchor can tell

    error = refusal(consent_world.authorize, "music_video")
    assert error.reason == "ledger_rewritten"
    message = str(error)
    assert anchor_path in message
    assert ("tail_rewritten" in message) if append_after else ("tail_truncated" in message)
    assert "ledger row" in message
    assert refusal(consent_world.authorize_release).reason == "ledger_rewritten"
    assert ws.ledger.find("authorization.refused", reason="ledger_rewritten")
    assert {p.kind for p in audit_workspace(ws).problems} & {"tail_truncated", "tail_rewritten"}


def test_deleted_rows_left_out_of_the_chain_are_refused(consent_world):
    ws = consent_world.workspace
    consent_world.revoke_grant()
    ws.ledger.append("test.event", {"n": 1})
    anchor_workspace(ws)
    _delete_revocation(ws, consent_world.grant_id, rechain=False)
    error = refusal(consent_world.authorize, "music_video")
    assert error.reason == "ledger_rewritten" and "rows_deleted" in str(error)


def test_a_recheck_is_refused_once_the_ledger_loses_its_anchor(consent_world):
    ws = consent_world.workspace
    authz = consent_world.authorize("music_video")
    release = consent_world.authorize_release()
    for n in range(3):
        ws.ledger.append("test.event", {"n": n})
    anchor_workspace(ws)
    keep = ws.ledger.head()[0] - 3
    with ws.engine.begin() as conn:  # cut the tail, restore the trigger
        trigger = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'ledger_no_delete'")).scalar_one()
        conn.execute(text("DROP TRIGGER ledger_no_delete"))
        conn.execute(text("DELETE FROM ledger WHERE seq > :keep"), {"keep": keep})
        conn.execute(text(trigger))
    ws.policy.ledger_check.max_age_s = 0  # no cached answer from before the cut
    assert refusal(authz.recheck).reason == "ledger_rewritten"
    assert refusal(release.recheck).reason == "ledger_rewritten"
    assert refusal(authz.consume_render, "job-1").reason == "ledger_rewritten"


def test_an_anchor_that_does_not_verify_refuses_decisions(consent_world, anchors):
    ws = consent_world.workspace
    _, (path,) = anchor_workspace(ws)
    head = Path(path).read_text()
    Path(path).write_text(head.replace('"org": "studio"', '"org": "other"'))  # signature no longer verifies
    error = refusal(consent_world.authorize, "training")
    assert error.reason == "ledger_rewritten" and "anchor_signature_invalid" in str(error)


def test_an_intact_ledger_and_an_empty_folder_change_nothing(consent_world, anchors):
    ws = consent_world.workspace
    anchors.mkdir(parents=True)
    consent_world.authorize("music_video").recheck()  # no anchor yet
    anchor_workspace(ws)
    ws.ledger.append("test.event", {"n": 1})  # growing past the anchor is what ledgers do
    authz = consent_world.authorize("music_video")
    authz.recheck()
    consent_world.authorize_release().recheck()


def test_rechecks_reuse_a_recent_answer(consent_world, anchors):
    ws = consent_world.workspace
    anchor_workspace(ws)
    now = [100.0]
    check = AnchoredLedgerCheck([anchors], ws.ledger, max_age_s=5, clock=lambda: now[0])
    calls = []
    real = check._check
    check._check = lambda: calls.append(1) or real()
    assert check(fresh=True) is None and check() is None and len(calls) == 1
    now[0] += 6
    assert check() is None and len(calls) == 2
    assert check(fresh=True) is None and len(calls) == 3


def test_without_anchor_folders_there_is_no_check(tmp_path):
    from likeness.workspace import Workspace

    ws = Workspace.init(Settings(home=tmp_path / "plain"))
    try:
        assert ws.policy.ledger_check is None
    finally:
        ws.close()
    inside = Workspace.init(Settings(home=tmp_path / "in", anchor_dirs=[tmp_path / "in" / "anchors"]))
    try:
        assert inside.policy.ledger_check is None  # a folder inside the workspace proves nothing
    finally:
        inside.close()
