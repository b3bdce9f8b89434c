"""``likeness detector unregister``: a subject's detector can be withdrawn (verify, ``detector
list`` and ``audit verify`` then treat the subject as having none), registered again, and a
withdrawal cannot be undone in silence by deleting or editing its ledger row."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from likeness.cli import app
from likeness.consent.ledger import event_hash
from likeness.detector.evaluation import evaluate_detector
from likeness.detector.registered import (
    UNREGISTERED_EVENT,
    WITHDRAWN_FILE,
    NotRegistered,
    WorkspaceDetectors,
    check_registered,
    detector_folder,
    register_detector,
    registered_detectors,
    unregister_detector,
    withdrawn_detectors,
)
from likeness.detector.train import CARD_FILE, MODEL_FILE
from likeness.verify.pipeline import verify_path

from .handmade import GateMedia, write_detector

pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")

REASON = "flags authentic stage footage under blue light"


@pytest.fixture
def evaluated(media: GateMedia, tmp_path: Path, mina) -> Path:
    """A detector that separates real from fake, evaluated for mina (it passes every gate)."""
    folder = write_detector(tmp_path / "chroma", "chroma", media.calibration)
    assert evaluate_detector(folder, media.real, media.fake, subject=mina)["passed"]
    return folder


@pytest.fixture
def registered(evaluated: Path, workspace, mina):
    return register_detector(workspace, evaluated, "mina")


def cli(settings, *args: str):
    return CliRunner().invoke(app, ["--home", str(settings.home), "detector", *args])


def unregister(settings, subject: str = "mina", reason: str = REASON):
    return cli(settings, "unregister", "--subject", subject, "--reason", reason)


def audit_problems(workspace) -> list:
    from likeness.consent.audit import audit_workspace

    return [p for p in audit_workspace(workspace).problems if p.kind == "detector_altered"]


def test_unregister_then_verify_says_not_analysed_because_withdrawn(
    registered, media: GateMedia, workspace, settings, mina
) -> None:
    fake = media.fake[0] / "frame0.png"
    assert verify_path(workspace, fake).manipulation.analysed  # mina's detector scores it

    result = unregister(settings)
    assert result.exit_code == 0, result.output
    assert f"withdrew test.handmade-chroma (onnx {registered.onnx_sha256[:16]}" in result.output

    [event] = workspace.ledger.events(UNREGISTERED_EVENT)
    assert event.payload == {
        "subject_id": mina.subject_id,
        "subject_slug": "mina",
        "reason": REASON,
        "by": pwd.getpwuid(os.getuid()).pw_name,
        "withdraws_seq": registered.ledger_seq,
        "withdrawn_model": "test.handmade-chroma",
        "withdrawn_onnx_sha256": registered.onnx_sha256,
        "withdrawn_card_sha256": registered.card_sha256,
    }
    # the files are gone; a note of the withdrawal stays in their place
    folder = detector_folder(workspace.home, mina.subject_id)
    assert sorted(p.name for p in folder.iterdir()) == [WITHDRAWN_FILE]
    assert json.loads((folder / WITHDRAWN_FILE).read_text())["withdrawn_seq"] == event.seq

    verified = verify_path(workspace, fake)
    m = verified.to_dict()["manipulation"]
    assert m["status"] == "not analysed" and "score" not in m
    assert f"its detector was withdrawn on {event.created_at} (ledger #{event.seq}): {REASON}" in m["reason"]
    assert verified.verdict.code == "enrolled-artist-unlabelled"
    assert registered_detectors(workspace) == []
    assert audit_problems(workspace) == []  # the subject has no detector: nothing to name


def test_list_shows_a_withdrawn_detector_with_when_and_why(registered, workspace, settings) -> None:
    before = cli(settings, "list")
    assert before.exit_code == 0 and "used by verify" in before.output and "withdrawn" not in before.output
    assert unregister(settings).exit_code == 0
    [withdrawn] = withdrawn_detectors(workspace)
    listed = cli(settings, "list")
    assert listed.exit_code == 0, listed.output
    line = " ".join(listed.output.split())
    assert f"mina withdrawn by {pwd.getpwuid(os.getuid()).pw_name}: test.handmade-chroma" in line
    assert f"NOT used by verify: its detector was withdrawn on {withdrawn.withdrawn_at}" in line
    assert f"(ledger #{withdrawn.ledger_seq}): {REASON}" in line
    assert "used by verify" not in line.replace("NOT used by verify", "")


def test_register_again_after_unregister_is_used_again(
    registered, evaluated: Path, media: GateMedia, workspace, settings, mina
) -> None:
    assert unregister(settings).exit_code == 0
    again = register_detector(workspace, evaluated, "mina")
    assert again.ledger_seq > registered.ledger_seq
    assert workspace.ledger.events("detector.registered")[-1].payload["replaces_seq"] is None  # nothing was in force
    found = WorkspaceDetectors(workspace).for_subject(mina.subject_id)
    assert not isinstance(found, str) and found is not None and found[0].ledger_seq == again.ledger_seq
    assert not (again.folder / WITHDRAWN_FILE).exists() and (again.folder / MODEL_FILE).is_file()
    assert withdrawn_detectors(workspace) == []
    listed = cli(settings, "list")
    assert "NOT used" not in listed.output and "withdrawn" not in listed.output
    assert verify_path(workspace, media.fake[0] / "frame0.png").manipulation.analysed
    # and it can be withdrawn again
    assert unregister(settings, reason="second withdrawal").exit_code == 0
    assert [w.reason for w in withdrawn_detectors(workspace)] == ["second withdrawal"]


def _delete_withdrawal(conn, seq: int) -> None:
    conn.execute(text("DROP TRIGGER ledger_no_delete"))
    conn.execute(text("DELETE FROM ledger WHERE seq = :s"), {"s": seq})


def _retype_withdrawal(event_type: str):
    """Rename the withdrawal row's event type and recompute its hash: at the ledger's tail the
    chain still verifies (only an anchor kept outside the workspace shows it)."""

    def edit(conn, seq: int) -> None:
        conn.execute(text("DROP TRIGGER ledger_no_update"))
        row = conn.execute(text("SELECT * FROM ledger WHERE seq = :s"), {"s": seq}).mappings().one()
        rehashed = event_hash(
            seq=seq,
            event_id=row["event_id"],
            event_type=event_type,
            created_at=row["created_at"],
            payload_json=row["payload"],
            prev_hash=row["prev_hash"],
        )
        conn.execute(
            text("UPDATE ledger SET event_type = :t, hash = :h WHERE seq = :s"),
            {"t": event_type, "h": rehashed, "s": seq},
        )

    return edit


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (_delete_withdrawal, "the ledger no longer holds that withdrawal: the row was deleted or edited"),
        (_retype_withdrawal("detector.noted"), "the ledger no longer holds that withdrawal"),
        (_retype_withdrawal("detector.registered"), "is malformed"),
    ],
    ids=["deleted", "retyped-and-rehashed", "turned-into-a-registration"],
)
def test_removing_the_withdrawal_row_does_not_bring_the_detector_back(
    registered, media: GateMedia, workspace, settings, mina, edit, named
) -> None:
    """A database editor deletes the ``detector.unregistered`` row (the last one, so the hash
    chain still verifies without an anchor) or edits it away: the registration before it is the
    subject's latest event again, but its files were removed and a note left in their place."""
    assert unregister(settings).exit_code == 0
    [withdrawal] = workspace.ledger.events(UNREGISTERED_EVENT)
    with workspace.engine.begin() as conn:
        edit(conn, withdrawal.seq)
    assert workspace.ledger.events(UNREGISTERED_EVENT) == []

    found = WorkspaceDetectors(workspace).for_subject(mina.subject_id)
    assert isinstance(found, str) and named in found, found
    m = verify_path(workspace, media.fake[0] / "frame0.png").to_dict()["manipulation"]
    assert m["status"] == "not analysed" and named in m["reason"]
    [problem] = audit_problems(workspace)
    assert problem.subject == "detector of mina" and named in problem.message
    listed = cli(settings, "list")
    assert listed.exit_code == 0 and "NOT used by verify" in listed.output, listed.output


def test_the_withdrawal_note_removed_too_leaves_a_registration_without_files(
    registered, workspace, settings, mina
) -> None:
    """With the row deleted *and* the note removed, the registration still has no files: named, not used."""
    assert unregister(settings).exit_code == 0
    [withdrawal] = workspace.ledger.events(UNREGISTERED_EVENT)
    with workspace.engine.begin() as conn:
        _delete_withdrawal(conn, withdrawal.seq)
    (detector_folder(workspace.home, mina.subject_id) / WITHDRAWN_FILE).unlink()
    [current] = registered_detectors(workspace)
    why = check_registered(workspace, current)
    assert isinstance(why, str) and "cannot be read" in why, why
    assert len(audit_problems(workspace)) == 1


def test_an_edited_withdrawal_row_stays_withdrawn_and_is_named(registered, workspace, settings, mina) -> None:
    """Editing the withdrawal's reason in place breaks its row; the subject stays withdrawn."""
    assert unregister(settings).exit_code == 0
    [withdrawal] = workspace.ledger.events(UNREGISTERED_EVENT)
    with workspace.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER ledger_no_update"))
        payload = conn.execute(text("SELECT payload FROM ledger WHERE seq = :s"), {"s": withdrawal.seq}).scalar_one()
        conn.execute(
            text("UPDATE ledger SET payload = :p WHERE seq = :s"),
            {"p": payload.replace("blue light", "red light"), "s": withdrawal.seq},
        )
    found = WorkspaceDetectors(workspace).for_subject(mina.subject_id)
    assert isinstance(found, str) and "withdrawn" in found and "does not verify: edited" in found
    [problem] = audit_problems(workspace)
    assert "does not verify: edited" in problem.message
    assert "does not verify: edited" in " ".join(cli(settings, "list").output.split())


def test_unregister_with_no_registration_is_a_clear_error(workspace, settings, mina) -> None:
    result = unregister(settings)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "error: mina has no registered detector to unregister" in result.output
    with pytest.raises(NotRegistered):
        unregister_detector(workspace, "mina", REASON)
    unknown = unregister(settings, subject="nobody")
    assert unknown.exit_code == 1 and "no subject 'nobody'" in unknown.output
    assert workspace.ledger.events(UNREGISTERED_EVENT) == []


def test_unregister_twice_or_without_a_reason_is_refused(registered, workspace, settings) -> None:
    blank = unregister(settings, reason="   ")
    assert blank.exit_code == 1 and "unregister needs a reason" in blank.output
    assert (registered.folder / CARD_FILE).is_file()  # nothing withdrawn
    assert unregister(settings).exit_code == 0
    twice = unregister(settings)
    assert twice.exit_code == 1
    [withdrawal] = workspace.ledger.events(UNREGISTERED_EVENT)
    assert f"no registered detector to unregister (withdrawn already, ledger #{withdrawal.seq})" in twice.output
