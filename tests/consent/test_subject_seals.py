"""``subject.created`` counts only when the organisation it names signed it.

Found as a database editor (no organisation key file) appending a ``subject.created`` event,
the hash chain recomputed, for a subject row of their own under a real rights holder and naming
the holder's onboarding organisation: the ledger backed the subject, so a grant request for a
subject the agency never enrolled (name and kind the editor's) went before the holder. From the
``ledger.subjects_sealed`` marker on, the product signs every subject event; events from before
it are read as they were."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from likeness.consent import keys
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes
from likeness.consent.integrity import LedgerConsent, consent_row_problems
from likeness.consent.registry import HOLDERS_EVENT, SUBJECTS_EVENT
from likeness.consent.tables import RightsHolder, Subject
from likeness.errors import ConsentError, ReferenceSealerRefused, SubjectNotEnrolled
from likeness.workspace import Workspace
from tests.conftest import holder_machine
from tests.consent.test_grant_subject_enrolment import _ask, _nothing_drafted
from tests.consent.test_subject_enroller import (
    _editors_row,
    _haneuls_mina,
    _stranger_reference,
    signed_by,
    subject_event,
)


def _with_own_key(ws: Workspace, body: dict[str, Any]) -> dict[str, Any]:
    editor = Ed25519PrivateKey.generate()
    body = {**body, "org_fingerprint": keys.fingerprint(keys.public_raw(editor))}
    return {**body, "signature": keys.sign(editor, canonical_bytes(body))}


NOT_SIGNED_BY_IT = "is not its organisation's: it is not signed with the organisation's key on the ledger"
#: How the editor's event for a subject haneul's holder onboarded, naming haneul, is made, and
#: what the refusal says of it.
FORGERIES: dict[str, tuple[Callable[[Workspace, dict[str, Any]], dict[str, Any]], str]] = {
    "unsigned": (lambda ws, body: body, "carries no organisation seal, yet was written after subject events"),
    "signed with a key of the editor's own": (_with_own_key, NOT_SIGNED_BY_IT),
    "signed by byeol, the other organisation": (lambda ws, body: signed_by(ws, body, "byeol"), NOT_SIGNED_BY_IT),
}


def _subject_org(ws: Workspace, subject_id: str) -> str | None:
    with ws.session() as session:
        return LedgerConsent(session).subject_org(subject_id)


def _sign_and_authorize(ws: Workspace, subject: str) -> None:
    """The request for ``subject``, signed on its holder's machine, imported, and authorized."""
    request = _ask(ws, subject)
    ws.registry.import_signed(holder_machine(ws.registry).sign(request, "mina-holder"))
    ws.policy.authorize(subject, "music_video", "haneul")


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_subject_event_its_organisation_did_not_sign_backs_nothing(two_agencies, forgery):
    ws = two_agencies
    _haneuls_mina(ws)
    make, why = FORGERIES[forgery]
    row = _editors_row(ws, "mina2", ws.registry.get_holder("mina-holder").id)
    forged = ws.ledger.append("subject.created", make(ws, subject_event(row, ws.registry.get_org("haneul").id)))
    assert ws.ledger.verify().ok  # (appended: its row links into the chain)

    with pytest.raises(SubjectNotEnrolled) as refused:
        _ask(ws, "mina2")
    assert str(refused.value).startswith(
        f"subject 'mina2': no grant is requested for it: its subject.created event (ledger row {forged.seq}) {why}"
    )
    assert _nothing_drafted(ws)
    assert _subject_org(ws, row.id) is None
    with pytest.raises(ReferenceSealerRefused, match=f"ledger row {forged.seq}.*so no organisation seals its"):
        _stranger_reference(ws, "mina2", "haneul")
    assert ws.ledger.find("subject.reference_added") == []
    named = [p for p in consent_row_problems(ws) if p.record_id == row.id]
    assert [(p.kind, f"(ledger row {forged.seq}) {why}" in p.problem) for p in named] == [("subject", True)]
    assert not audit_workspace(ws).ok
    _sign_and_authorize(ws, "mina")  # haneul's own subject of the holder still is


def test_a_subject_enrolled_now_is_signed_and_works_end_to_end(two_agencies):
    ws = two_agencies
    _haneuls_mina(ws)
    mina = ws.registry.get_subject("mina")
    (marker,) = ws.ledger.find(SUBJECTS_EVENT)
    (created,) = ws.ledger.find("subject.created", subject_id=mina.id)
    assert created.seq > marker.seq
    assert created.payload["org_fingerprint"] == ws.registry.get_org("haneul").key_fingerprint
    # an unsigned later copy of her event, naming byeol, changes nothing: her first event counts
    unsigned = {k: v for k, v in created.payload.items() if k != "signature"}
    copy = ws.ledger.append("subject.created", {**unsigned, "org_id": ws.registry.get_org("byeol").id})

    _sign_and_authorize(ws, "mina")
    assert _subject_org(ws, mina.id) == ws.registry.get_org("haneul").id
    assert _stranger_reference(ws, "mina", "haneul")  # (the face is the test's; the seal is haneul's)
    assert [p.problem for p in consent_row_problems(ws)] == [
        f"a second subject.created event (ledger row {copy.seq}) is ignored"
    ]


def test_a_workspace_whose_subjects_were_enrolled_unsigned_keeps_them_after_upgrading(
    before_subjects_sealed, two_agencies
):
    ws = two_agencies
    pem = holder_machine(ws.registry).public_key("mina-holder")
    holder = ws.registry.add_holder(
        "mina-holder", "Mina (rights holder)", kind="artist", public_key_pem=pem, org="haneul"
    )
    haneul = ws.registry.get_org("haneul").id
    old = {k: v for k, v in subject_event(_editors_row(ws, "mina", holder.id), haneul).items() if k != "type"}
    legacy = ws.ledger.append("subject.created", old)  # what enrolment wrote before subject events were signed
    assert ws.ledger.find(SUBJECTS_EVENT) == []

    before_subjects_sealed.undo()
    Workspace.open(ws.settings).close()  # the upgrade: its first command
    (marker,) = ws.ledger.find(SUBJECTS_EVENT)
    assert marker.seq > legacy.seq
    _sign_and_authorize(ws, "mina")
    assert _stranger_reference(ws, "mina", "haneul")
    assert consent_row_problems(ws) == []
    # from the marker on, the same unsigned event backs nothing
    later = subject_event(_editors_row(ws, "mina2", holder.id), haneul)
    ws.ledger.append("subject.created", {k: v for k, v in later.items() if k != "type"})
    with pytest.raises(SubjectNotEnrolled, match="carries no organisation seal, yet was written after"):
        _ask(ws, "mina2")


def test_no_subject_is_enrolled_with_an_organisation_key_file_the_ledger_does_not_record(two_agencies):
    """What it signed would back nothing: refused before the holder or subject is written."""
    ws = two_agencies
    ws.registry.org_key_path("haneul").unlink()
    keys.write_private_key(ws.registry.org_key_path("haneul"), Ed25519PrivateKey.generate())
    pem = holder_machine(ws.registry).public_key("mina-holder")
    with pytest.raises(ConsentError) as refused:
        ws.registry.add_subject("mina", "Mina", holder_public_key_pem=pem, org="haneul")
    assert refused.value.reason == "signature_invalid"
    with ws.session() as session:
        assert session.scalar(select(func.count()).select_from(Subject)) == 0
        assert session.scalar(select(func.count()).select_from(RightsHolder)) == 0
    assert ws.ledger.find("subject.created") == [] and ws.ledger.find("holder.created") == []


def test_reading_every_subject_reads_the_marker_once(two_agencies, monkeypatch):
    """The seal check of N subjects costs no ledger query per subject: the marker is looked up
    once per reading (their first events come in one query already, ``_first_events``)."""
    import likeness.consent.integrity as integrity

    ws = two_agencies
    machine = holder_machine(ws.registry)
    for slug in ("mina", "sora", "jin", "ari"):
        ws.registry.add_subject(slug, slug.title(), holder_public_key_pem=machine.public_key(f"{slug}-h"), org="haneul")
    looked_up: list[str] = []
    first_marker = integrity.first_sealing_marker

    def counted(session, org_key, *, event):
        looked_up.append(event)
        return first_marker(session, org_key, event=event)

    monkeypatch.setattr(integrity, "first_sealing_marker", counted)
    with ws.session() as session:
        view = LedgerConsent(session)
        assert [view.unbacked_enrolment(row) for row in session.scalars(select(Subject))] == [None] * 4
    assert sorted(looked_up) == sorted([SUBJECTS_EVENT, HOLDERS_EVENT])  # (their holders' seals too)


def _forged_subject(ws: Workspace, slug: str, *, public_name: bool = False) -> Subject:
    """A database editor's subject row under haneul's mina-holder and its unsigned
    ``subject.created`` naming haneul, appended after subject events were sealed."""
    row = _editors_row(ws, slug, ws.registry.get_holder("mina-holder").id)
    if public_name:
        with ws.session() as session:
            session.get(Subject, row.id).public_name = True
            session.commit()
        row.public_name = True
    ws.ledger.append("subject.created", subject_event(row, ws.registry.get_org("haneul").id))
    return row


def test_a_grant_the_holder_signed_for_a_subject_no_organisation_enrolled_authorizes_nothing(two_agencies, monkeypatch):
    """The holder is asked by hand (a request drafted without the enrolment check: an older
    writer, or a file made by hand), signs, and the grant is imported: the decision itself
    reads the subject's seal, once per decision."""
    import likeness.consent.integrity as integrity
    from likeness.consent.registry import Registry

    ws = two_agencies
    _haneuls_mina(ws)
    forged = _forged_subject(ws, "mina2")
    monkeypatch.setattr(Registry, "_refuse_unbacked_subject", lambda self, record: None)
    request = _ask(ws, "mina2")
    ws.registry.import_signed(holder_machine(ws.registry).sign(request, "mina-holder"))
    looked_up: list[str] = []
    first_marker = integrity.first_sealing_marker

    def counted(session, org_key, *, event):
        looked_up.append(event)
        return first_marker(session, org_key, event=event)

    monkeypatch.setattr(integrity, "first_sealing_marker", counted)
    with pytest.raises(ConsentError) as refused:
        ws.policy.authorize("mina2", "music_video", "haneul")
    assert refused.value.reason == "subject_altered"
    assert f"subject row {forged.id}: its subject.created event" in str(refused.value)
    assert "carries no organisation seal, yet was written after subject events were sealed" in str(refused.value)
    assert looked_up.count(SUBJECTS_EVENT) == 1
    (grant,) = ws.registry.list_grants(subject="mina2")
    assert ws.registry.grant_state(grant.id) == "altered"
    _sign_and_authorize(ws, "mina")  # haneul's own subject of the holder still is


def test_the_public_card_does_not_name_a_subject_no_organisation_enrolled(two_agencies):
    from likeness.service.public import named_publicly

    ws = two_agencies
    _haneuls_mina(ws)
    forged = _forged_subject(ws, "mina2", public_name=True)
    assert ws.registry.get_subject("mina2").public_name
    assert ws.ledger.find("subject.created", subject_id=forged.id)[0].payload["public_name"] is True
    assert not named_publicly(ws, forged.id)
    pem = holder_machine(ws.registry).public_key("sora-holder")
    sora = ws.registry.add_subject("sora", "Sora", holder_public_key_pem=pem, org="haneul", public_name=True)
    assert named_publicly(ws, sora.id)
