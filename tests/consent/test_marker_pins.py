"""Where sealing began is pinned outside the database.

Found as a database editor (no key file) in a workspace of two agencies: byeol signed an
invitation for haneul's legacy rights holder and appended it (ignored: written after the sealing
marker, among several organisations). The editor then deleted the sealing markers and
recomputed the hash chain; the next command wrote fresh markers at the tail, so the invitation
read as written before sealing and made byeol the holder's organisation: byeol recovered the
holder's key to one of its own and signed a grant, and ``audit verify`` was clean."""

from __future__ import annotations

import shutil
import stat

import pytest

from likeness.config import Settings
from likeness.consent.audit import audit_workspace
from likeness.consent.integrity import LedgerConsent, consent_row_problems
from likeness.consent.marker_pins import MarkerPin, marker_pins_file, pins_of
from likeness.consent.registry import SEALING_EVENT, SEALING_MARKERS
from likeness.errors import RegistryError, SubjectNotEnrolled
from likeness.workspace import Workspace
from tests.consent.test_anchor_decisions import _without_ledger_row
from tests.consent.test_holder_adoption import _append_byeol_invitation, _mina, _takeover
from tests.consent.test_holder_owner import _owner


def _markers(ws: Workspace) -> list[MarkerPin]:
    return [
        MarkerPin(e.event_type, e.seq, e.hash, e.prev_hash)
        for e in ws.ledger.events()
        if e.event_type in SEALING_MARKERS
    ]


def _pins(ws: Workspace) -> dict[str, MarkerPin]:
    return pins_of(marker_pins_file(ws.keys_dir).read_bytes())


def _delete_markers(ws: Workspace) -> None:
    """What the editor does: delete every sealing marker, the later rows renumbered and the
    chain recomputed (a valid chain again)."""
    for pin in sorted(_markers(ws), key=lambda p: p.seq, reverse=True):
        _without_ledger_row(ws, pin.seq, rechain=True)
    assert ws.ledger.verify().ok and _markers(ws) == []


def _marker_problems(ws: Workspace) -> list[str]:
    return [p.problem for p in consent_row_problems(ws) if p.kind == "sealing_marker"]


def test_the_first_organisation_pins_the_sealing_markers_it_writes(two_agencies):
    ws = two_agencies
    pin_file = marker_pins_file(ws.keys_dir)
    assert stat.S_IMODE(pin_file.stat().st_mode) == 0o600
    assert _pins(ws) == {pin.event_type: pin for pin in _markers(ws)}
    assert set(_pins(ws)) == set(SEALING_MARKERS)
    assert _marker_problems(ws) == []


@pytest.mark.usefixtures("before_subjects_sealed")  # (the legacy artist's subject event is unsigned)
def test_deleted_sealing_markers_do_not_make_an_ignored_invitation_count(two_agencies, tmp_path):
    ws = two_agencies
    holder = _mina(ws)
    _append_byeol_invitation(ws, holder.id)
    pinned = _pins(ws)
    first = pinned[SEALING_EVENT].seq
    _delete_markers(ws)

    reopened = Workspace.open(ws.settings)  # the next command writes fresh markers at the tail
    (fresh,) = reopened.ledger.find(SEALING_EVENT)
    (invitation,) = reopened.ledger.find("holder.invited")
    assert fresh.seq > invitation.seq
    assert _pins(reopened) == pinned  # the earliest pin of each kind stays
    with reopened.session() as session:
        assert LedgerConsent(session).sealing_marker() == first
    assert _owner(reopened, holder.id) is None
    with pytest.raises(RegistryError, match="no organisation that onboarded"):
        _takeover(reopened, tmp_path)
    named = _marker_problems(reopened)
    assert f"sealing marker pinned at row {first} is not on the ledger ({SEALING_EVENT}: the row there is now" in (
        named[0] if named else ""
    )
    assert len(named) == len(pinned)
    assert not audit_workspace(reopened).ok
    reopened.close()


@pytest.mark.usefixtures("before_subjects_sealed")
def test_a_copy_without_private_keys_reads_the_pins(two_agencies, tmp_path):
    ws = two_agencies
    holder = _mina(ws)
    _append_byeol_invitation(ws, holder.id)
    first = _pins(ws)[SEALING_EVENT].seq
    _delete_markers(ws)
    ws.registry.mark_reference_sealing()  # (fresh markers at the tail, as the next command writes them)
    copy = tmp_path / "auditor"
    shutil.copytree(ws.home, copy)
    for private in (copy / "keys" / "orgs").glob("*.pem"):
        private.unlink()

    audited = Workspace.open(Settings(home=copy), read_only=True)
    with audited.session() as session:
        assert LedgerConsent(session).sealing_marker() == first
    assert _owner(audited, holder.id) is None
    assert any(f"pinned at row {first} is not on the ledger" in p for p in _marker_problems(audited))
    audited.close()


def test_a_workspace_made_before_pins_pins_the_markers_at_its_next_command(two_agencies):
    ws = two_agencies
    pin_file = marker_pins_file(ws.keys_dir)
    pin_file.unlink()
    Workspace.open(ws.settings).close()
    assert _pins(ws) == {pin.event_type: pin for pin in _markers(ws)}


def test_a_pin_file_the_workspace_did_not_write_is_named(two_agencies):
    ws = two_agencies
    pin_file = marker_pins_file(ws.keys_dir)
    pin_file.write_text("{}")
    (named,) = _marker_problems(ws)
    assert named.startswith(f"{pin_file}: sealing marker pin file is not used: not a likeness.sealing-marker-pins")
    assert named.endswith("; no sealing marker is pinned")
    assert Workspace.open(ws.settings).registry.pin_sealing_markers() == []  # left for a person to look at
    assert pin_file.read_text() == "{}"


def test_events_written_after_the_markers_stay_after_them_when_deleting_the_markers_moves_them_up(workspace):
    """The markers' deletion renumbers the later rows: a database editor's holder and subject
    events, appended after the markers (naming no organisation, the old shape), move to rows
    before the pinned ones. The rows before the pins changed, so every event reads as written
    after sealing began."""
    from tests.consent.test_holder_seals import _ask, _editors_holder, _holder_event, _subject_row
    from tests.consent.test_subject_enroller import subject_event

    ws = workspace
    ws.registry.add_org("haneul")
    ghost = _editors_holder(ws, "ghost-holder")
    ws.ledger.append("holder.created", _holder_event(ghost, None))
    row = _subject_row(ws, "ghost", ghost.id)
    ws.ledger.append(
        "subject.created", {k: v for k, v in subject_event(row, "").items() if k not in ("type", "org_id")}
    )
    pinned = _pins(ws)
    _delete_markers(ws)
    created = ws.ledger.find("holder.created", holder_id=ghost.id)[0]
    assert created.seq < min(pin.seq for pin in pinned.values() if pin.event_type != SEALING_EVENT)

    reopened = Workspace.open(ws.settings)  # fresh markers at the tail
    with pytest.raises(SubjectNotEnrolled, match="carries no organisation seal, yet was written after"):
        _ask(reopened, "ghost")
    named = _marker_problems(reopened)
    assert any("the rows before it changed too, so every event is read as written after it" in p for p in named)
    reopened.close()
