"""Anchors outside the workspace catch a truncated or rewritten ledger tail; audit names it.

Each attack edits the database the way someone with the workspace's files would: drop the
append-only trigger, change rows, put the trigger back. The hash chain alone stays valid.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from likeness.config import Settings
from likeness.consent.anchor import ANCHOR_GLOB, FolderAnchors, read_anchor
from likeness.consent.audit import NO_ANCHOR_WARNING, anchor_workspace, audit_workspace
from likeness.consent.canonical import canonical_bytes
from likeness.consent.keys import fingerprint, public_raw, sign
from likeness.errors import ConfigError, LedgerError


def kinds(report) -> set[str]:
    return {p.kind for p in report.problems}


def truncate_sqlite_ledger(workspace, keep: int) -> None:
    """Delete ledger rows after ``keep``, then restore the trigger exactly as it was."""
    with workspace.engine.begin() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'ledger_no_delete'")).scalar_one()
        conn.execute(text("DROP TRIGGER ledger_no_delete"))
        conn.execute(text("DELETE FROM ledger WHERE seq > :keep"), {"keep": keep})
        conn.execute(text(sql))


@pytest.fixture
def anchors(tmp_path) -> Path:
    return tmp_path / "other-disk" / "anchors"


def test_anchor_files_accumulate_and_are_read_back(consent_world, anchors):
    ws = consent_world.workspace
    head, written = anchor_workspace(ws, folders=[anchors])
    ws.ledger.append("test.event", {"n": 1})
    head2, written2 = anchor_workspace(ws, folders=[anchors, anchors.parent / "second"])
    files = sorted(anchors.glob(ANCHOR_GLOB))
    assert [str(f) for f in files] == sorted(written + written2[:1])
    assert len(files) == 2 and not list(anchors.glob(".*"))  # no temporary files left
    assert read_anchor(Path(written[0])).head == head
    assert head2["seq"] == head["seq"] + 1 and head2["public_key"] == head["public_key"]
    report = audit_workspace(ws, anchor_dirs=[anchors])
    assert report.ok, report.problems
    assert report.anchor.seq == head2["seq"] and report.anchors_found == 2
    assert NO_ANCHOR_WARNING not in report.warnings


def test_anchor_never_overwrites_a_file(consent_world, anchors, monkeypatch):
    import likeness.consent.anchor as anchor_module

    store = FolderAnchors(anchors)
    head = consent_world.workspace.signed_head()
    first = Path(store.put(head))
    first.write_text("kept")
    monkeypatch.setattr(anchor_module, "anchor_file_name", lambda _head: first.name)  # same name again
    with pytest.raises(ConfigError, match="cannot write an anchor"):
        store.put(head)
    assert first.read_text() == "kept" and not list(anchors.glob(".*"))


def test_anchor_on_a_file_system_without_hard_links(consent_world, anchors, monkeypatch):
    import errno

    def no_links(*_args):
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    head = consent_world.workspace.signed_head()
    first = Path(FolderAnchors(anchors).put(head))
    assert read_anchor(first).head == head and not list(anchors.glob(".*"))


def test_anchor_folder_inside_the_workspace_is_refused(consent_world):
    ws = consent_world.workspace
    for inside in (ws.home, ws.home / "anchors", ws.keys_dir / ".." / "x"):
        with pytest.raises(ConfigError, match="inside the workspace"):
            anchor_workspace(ws, folders=[inside])
        with pytest.raises(ConfigError, match="inside the workspace"):
            audit_workspace(ws, anchor_dirs=[inside])
    assert not (ws.home / "anchors").exists()


def test_anchor_without_a_folder_is_refused(consent_world):
    with pytest.raises(ConfigError, match="no anchor folder"):
        anchor_workspace(consent_world.workspace)


def test_verify_without_an_anchor_warns(consent_world):
    report = audit_workspace(consent_world.workspace)
    assert report.ok and report.anchor is None
    assert NO_ANCHOR_WARNING in report.warnings


def test_anchor_folders_come_from_settings(consent_world, anchors, monkeypatch):
    ws = consent_world.workspace
    second = anchors.parent / "second"
    monkeypatch.setenv("LIKENESS_ANCHOR_DIRS", f"{anchors}{os.pathsep}{second}")
    ws.settings = Settings(home=ws.home)
    assert ws.settings.anchor_dirs == [anchors, second]
    _, written = anchor_workspace(ws)
    assert [Path(p).parent for p in written] == [anchors, second]
    assert audit_workspace(ws).anchors_found == 2


def test_truncated_tail_is_named_against_the_anchor(consent_world, anchors):
    ws = consent_world.workspace
    keep = ws.ledger.head()[0]
    for n in range(3):
        ws.ledger.append("test.event", {"n": n})
    anchor_workspace(ws, folders=[anchors])
    truncate_sqlite_ledger(ws, keep)
    assert ws.ledger.verify().ok  # the chain alone cannot see it
    report = audit_workspace(ws, anchor_dirs=[anchors])
    assert kinds(report) == {"tail_truncated"}, report.problems
    (problem,) = report.problems
    assert f"ends at row {keep}" in problem.message and problem.subject.startswith(str(anchors))
    with pytest.raises(LedgerError, match="refusing to anchor"):
        anchor_workspace(ws, folders=[anchors])


def test_rewritten_tail_is_named_even_under_a_newer_anchor(consent_world, anchors):
    ws = consent_world.workspace
    ws.ledger.append("render.completed", {"job_id": "real"})
    anchor_workspace(ws, folders=[anchors])
    seq = ws.ledger.head()[0]
    truncate_sqlite_ledger(ws, seq - 1)
    ws.ledger.append("render.completed", {"job_id": "forged"})
    assert ws.ledger.verify().ok
    assert kinds(audit_workspace(ws, anchor_dirs=[anchors])) == {"tail_rewritten"}
    # Whoever holds the workspace's org key can sign a new head over the rewrite; the older
    # anchor in the folder still names it.
    FolderAnchors(anchors).put(ws.signed_head())
    report = audit_workspace(ws, anchor_dirs=[anchors])
    assert report.anchor.seq == seq and kinds(report) == {"tail_rewritten"}, report.problems
    assert f"row {seq}" in report.problems[0].message


def _head_signed_by(key: Ed25519PrivateKey, template: dict, **changes) -> dict:
    raw = public_raw(key)
    body = {k: v for k, v in template.items() if k != "signature"}
    body.update(public_key=raw.hex(), key_fingerprint=fingerprint(raw), **changes)
    return {**body, "signature": sign(key, canonical_bytes(body))}


def test_anchor_signed_by_another_key_is_named(consent_world, anchors):
    ws = consent_world.workspace
    genuine = ws.signed_head()
    forged = _head_signed_by(Ed25519PrivateKey.generate(), genuine)
    FolderAnchors(anchors).put(forged)
    report = audit_workspace(ws, anchor_dirs=[anchors])
    assert kinds(report) == {"anchor_wrong_key"}
    assert "studio" in report.problems[0].message
    # An edited head (seq moved back, signature kept) does not verify at all.
    edited = {**genuine, "seq": 1}
    other = anchors.parent / "edited"
    FolderAnchors(other).put(edited)
    assert kinds(audit_workspace(ws, anchor_dirs=[other])) == {"anchor_signature_invalid"}


def test_head_file_option_still_works(consent_world, tmp_path):
    ws = consent_world.workspace
    head_file = tmp_path / "head.json"
    head_file.write_text(json.dumps(ws.signed_head()))
    assert audit_workspace(ws, head_files=[head_file]).ok
    assert ws.check_head(json.loads(head_file.read_text())) is None
    truncate_sqlite_ledger(ws, 2)
    report = audit_workspace(ws, head_files=[head_file])
    assert "tail_truncated" in kinds(report)
    assert "truncated" in ws.check_head(json.loads(head_file.read_text()))
    (tmp_path / "bad.json").write_text("{not json")
    assert "anchor_unreadable" in kinds(audit_workspace(ws, head_files=[tmp_path / "bad.json"]))


def test_missing_folder_and_unreadable_anchor_are_problems(consent_world, anchors):
    ws = consent_world.workspace
    assert kinds(audit_workspace(ws, anchor_dirs=[anchors])) == {"anchor_folder_missing"}
    anchor_workspace(ws, folders=[anchors])
    (anchors / "ledger-head-000000000099-x-y.json").write_text('{"type": "something else"}')
    report = audit_workspace(ws, anchor_dirs=[anchors])
    assert kinds(report) == {"anchor_unreadable"} and report.anchors_found == 1


def test_dropped_or_emptied_sqlite_triggers_are_named(consent_world):
    ws = consent_world.workspace
    assert audit_workspace(ws).ok
    with ws.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER ledger_no_delete"))
        conn.execute(text("DROP TRIGGER ledger_no_update"))
        conn.execute(text("CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger BEGIN SELECT 1; END"))
    report = audit_workspace(ws)
    assert {(p.kind, p.subject) for p in report.problems} == {
        ("trigger_missing", "ledger_no_delete"),
        ("trigger_altered", "ledger_no_update"),
    }


def test_truncated_tail_and_disabled_trigger_on_postgresql(postgres_url, tmp_path):
    from likeness.workspace import Workspace

    anchors = tmp_path / "anchors"
    ws = Workspace.init(Settings(home=tmp_path / "home", database_url=postgres_url))
    try:
        ws.registry.add_org("studio")
        keep = ws.ledger.head()[0]
        ws.ledger.append("test.event", {"n": 1})
        anchor_workspace(ws, folders=[anchors])
        with ws.engine.begin() as conn:
            conn.execute(text("ALTER TABLE ledger DISABLE TRIGGER ledger_append_only"))
            conn.execute(text("DELETE FROM ledger WHERE seq > :keep"), {"keep": keep})
        report = audit_workspace(ws, anchor_dirs=[anchors])
        assert kinds(report) == {"tail_truncated", "trigger_disabled"}, report.problems
        assert any("superuser" in w for w in report.warnings)  # the test connects as superuser
        with ws.engine.begin() as conn:
            conn.execute(text("ALTER TABLE ledger ENABLE TRIGGER ledger_append_only"))
            conn.execute(text("DROP TRIGGER ledger_append_only ON ledger"))
        assert {"tail_truncated", "trigger_missing"} <= kinds(audit_workspace(ws, anchor_dirs=[anchors]))
    finally:
        ws.close()


def test_verify_names_every_consent_row_that_disagrees_with_the_ledger(consent_world):
    ws = consent_world.workspace
    consent_world.revoke_release()
    with ws.engine.begin() as conn:
        conn.execute(text("DELETE FROM release_revocations"))
        conn.execute(text("UPDATE grants SET purpose = 'anything' WHERE id = :g"), {"g": consent_world.grant_id})
    report = audit_workspace(ws)
    assert ws.ledger.verify().ok and not report.ok
    named = {(p.kind, p.subject) for p in report.problems}
    assert ("grant", consent_world.grant_id) in named
    assert ("release_revocation", consent_world.release_id) in named
    assert all(p.message for p in report.problems)
