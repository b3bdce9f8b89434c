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
        later = (
            conn.execute(
                text("SELECT event_id, event_type, created_at, payload FROM ledger WHERE seq > :seq ORDER BY seq"),
                {"seq": seq},
            ).all()
            if rechain
            else []
        )
        conn.execute(
            text("DELETE FROM ledger WHERE seq >= :seq" if rechain else "DELETE FROM ledger WHERE seq = :seq"),
            {"seq": seq},
        )
        prev_hash = conn.execute(text("SELECT hash FROM ledger WHERE seq = :s"), {"s": seq - 1}).scalar_one()
        for offset, row in enumerate(later):
            new_seq = seq + offset
            digest = event_hash(
                seq=new_seq,
                event_id=row.event_id,
                event_type=row.event_type,
                created_at=row.created_at,
                payload_json=row.payload,
                prev_hash=prev_hash,
            )
            conn.execute(
                text(
                    "INSERT INTO ledger (seq, event_id, event_type, created_at, payload, prev_hash, hash) "
                    "VALUES (:seq, :event_id, :event_type, :created_at, :payload, :prev_hash, :hash)"
                ),
                {
                    "seq": new_seq,
                    "event_id": row.event_id,
                    "event_type": row.event_type,
                    "created_at": row.created_at,
                    "payload": row.payload,
                    "prev_hash": prev_hash,
                    "hash": digest,
                },
            )
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


def _rewrite_ledger_row(ws, seq: int, statement: str, **params) -> None:
    """Run ``statement`` on the ledger with its guards dropped, then restore them."""
    with ws.engine.begin() as conn:
        triggers = conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'ledger'")
        ).all()
        for name, _ in triggers:
            conn.execute(text(f"DROP TRIGGER {name}"))
        conn.execute(text(statement), {"seq": seq, **params})
        for _, sql in triggers:
            conn.execute(text(sql))


def _revoke_and_anchor(consent_world, *, rows_after: int) -> tuple[int, str]:
    ws = consent_world.workspace
    consent_world.revoke_grant()
    for n in range(rows_after):
        ws.ledger.append("test.event", {"n": n})
    _, (anchor_path,) = anchor_workspace(ws)
    (event,) = ws.ledger.find("grant.revoked", grant_id=consent_world.grant_id)
    with ws.engine.begin() as conn:
        conn.execute(text("DELETE FROM grant_revocations WHERE grant_id = :g"), {"g": consent_world.grant_id})
    return event.seq, anchor_path


@pytest.mark.parametrize("rows_after", [0, 2], ids=["anchored-row", "row-before-anchor"])
def test_revocation_event_edited_in_place_keeping_its_hash_is_refused(consent_world, rows_after):
    """Finding 3: the revocation's event_type is changed in place (stored hash kept), triggers
    restored, the revocation row deleted: the grant looks unrevoked and check_anchor's stored
    hash still matches; the recomputed hash (anchored row) or the walk (earlier row) does not."""
    ws = consent_world.workspace
    seq, anchor_path = _revoke_and_anchor(consent_world, rows_after=rows_after)
    _rewrite_ledger_row(ws, seq, "UPDATE ledger SET event_type = 'grant.note' WHERE seq = :seq")
    assert not ws.ledger.find("grant.revoked", grant_id=consent_world.grant_id)
    assert ws.ledger.hash_at(ws.ledger.head()[0]) is not None

    error = refusal(consent_world.authorize, "music_video")
    assert error.reason == "ledger_rewritten"
    assert anchor_path in str(error) and f"ledger row {seq}" in str(error)
    assert ("anchored_row_edited" if rows_after == 0 else "chain_broken") in str(error)
    kinds = {p.kind for p in audit_workspace(ws).problems}
    assert "chain_broken" in kinds


def test_revocation_replaced_by_a_filler_row_with_the_old_hashes_is_refused(consent_world):
    """Finding 3 variant: the anchored revocation row is deleted and a filler row inserted at
    the same seq, reusing the old prev_hash and hash."""
    ws = consent_world.workspace
    seq, anchor_path = _revoke_and_anchor(consent_world, rows_after=0)
    with ws.engine.connect() as conn:
        old = conn.execute(text("SELECT prev_hash, hash FROM ledger WHERE seq = :s"), {"s": seq}).one()
    _rewrite_ledger_row(
        ws,
        seq,
        "DELETE FROM ledger WHERE seq = :seq",
    )
    _rewrite_ledger_row(
        ws,
        seq,
        "INSERT INTO ledger (seq, event_id, event_type, created_at, payload, prev_hash, hash) "
        "VALUES (:seq, :event_id, 'test.event', '2025-01-01T00:00:00Z', '{}', :prev_hash, :hash)",
        event_id="f" * 32,
        prev_hash=old.prev_hash,
        hash=old.hash,
    )
    assert ws.ledger.hash_at(seq) == old.hash
    error = refusal(consent_world.authorize, "music_video")
    assert error.reason == "ledger_rewritten" and f"ledger row {seq}" in str(error)
    assert anchor_path in str(error)


def test_the_walk_up_to_the_anchor_runs_once_per_anchor_and_row_count(consent_world, anchors):
    ws = consent_world.workspace
    anchor_workspace(ws)
    check = AnchoredLedgerCheck([anchors], ws.ledger)
    walks = []
    real = ws.ledger.verify
    ws.ledger.verify = lambda **kw: walks.append(kw) or real(**kw)
    try:
        assert check(fresh=True) is None and check(fresh=True) is None
        assert len(walks) == 1 and walks[0]["through"] == ws.ledger.head()[0]
        ws.ledger.append("test.event", {"n": 1})  # another row count: walk again
        assert check(fresh=True) is None and len(walks) == 2
    finally:
        del ws.ledger.verify
