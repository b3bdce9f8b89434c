"""A grant is requested only for a subject whose enrolment the ledger backs.

Found as a database editor's subject row: a row with no ``subject.created`` event, one whose
event names an organisation that did not onboard the rights holder, or one pointed at another
holder, still had a grant request drafted for it and put before the holder."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from likeness.consent.canonical import now_utc
from likeness.consent.tables import GrantRequestRow, Subject
from likeness.errors import SubjectNotEnrolled
from likeness.workspace import Workspace
from tests.conftest import holder_machine
from tests.consent.test_holder_owner import adopt
from tests.consent.test_reference_binding import _legacy_subject
from tests.consent.test_subject_enroller import _editors_row, _editors_subject, _haneuls_mina


def _ask(ws: Workspace, subject: str):
    return ws.registry.request_grant(
        subject, "haneul", ["music_video"], valid_until=now_utc() + timedelta(days=30), purpose="music videos"
    )


def _nothing_drafted(ws: Workspace) -> bool:
    with ws.session() as session:
        rows = session.scalar(select(func.count()).select_from(GrantRequestRow))
    return rows == 0 and ws.ledger.find("grant.requested") == [] and ws.ledger.find("grant.refused") == []


def test_a_subject_row_with_no_enrolment_on_the_ledger_gets_no_grant_request(two_agencies):
    ws = two_agencies
    _haneuls_mina(ws)
    _editors_row(ws, "mina2", ws.registry.get_holder("mina-holder").id)
    with pytest.raises(SubjectNotEnrolled) as refused:
        _ask(ws, "mina2")
    subject_id = ws.registry.get_subject("mina2").id
    assert refused.value.subject == "mina2"
    assert str(refused.value) == (
        f"subject 'mina2': no grant is requested for it: subject row {subject_id} has no subject.created event on "
        "the ledger"
    )
    assert _nothing_drafted(ws)


def test_a_subject_enrolled_by_an_organisation_that_did_not_onboard_the_holder_gets_no_grant_request(two_agencies):
    ws = two_agencies
    _haneuls_mina(ws)
    _editors_subject(ws, "mina2", ws.registry.get_holder("mina-holder").id, ws.registry.get_org("byeol").id)
    with pytest.raises(SubjectNotEnrolled) as refused:
        _ask(ws, "mina2")
    assert str(refused.value) == (
        "subject 'mina2': no grant is requested for it: organisation 'byeol' is named as enrolling it, but the "
        "rights holder is onboarded by organisation 'haneul', the only one that enrols subjects under them"
    )
    assert _nothing_drafted(ws)


def test_a_subject_row_pointed_at_another_holder_gets_no_grant_request(two_agencies):
    ws = two_agencies
    _haneuls_mina(ws)
    pem = holder_machine(ws.registry).public_key("sora-holder")
    ws.registry.add_subject("sora", "Sora", holder_public_key_pem=pem, org="haneul")
    with ws.session() as session:  # the editor gives mina's subject to sora's holder, who would sign for her
        session.execute(
            update(Subject).where(Subject.slug == "mina").values(holder_id=ws.registry.get_holder("sora-holder").id)
        )
        session.commit()
    with pytest.raises(SubjectNotEnrolled, match=r"^subject 'mina': .*its rights holder is not the one its"):
        _ask(ws, "mina")
    assert _nothing_drafted(ws)
    assert _ask(ws, "sora").payload["subject_id"] == ws.registry.get_subject("sora").id  # a backed one still is


def test_a_subject_enrolled_before_events_named_an_organisation_gets_none_until_its_holder_is_adopted(
    before_subjects_sealed, two_agencies
):
    """Mina and her holder as enrolled before either event named an organisation, in a
    workspace of two: no organisation counts as enrolling her until one adopts her holder."""
    ws = two_agencies
    _legacy_subject(ws, "mina")
    with pytest.raises(SubjectNotEnrolled) as refused:
        _ask(ws, "mina")
    said = str(refused.value)
    assert said.startswith("subject 'mina': no grant is requested for it: the ledger names no organisation that")
    assert said.endswith("adopts them first, with the holder's signature (likeness consent adopt-holder)")
    assert _nothing_drafted(ws)
    adopt(ws, "mina-holder", "haneul")
    assert _ask(ws, "mina").payload["subject_id"] == ws.registry.get_subject("mina").id


def test_a_performer_row_with_no_enrolment_on_the_ledger_gets_no_release_request(two_agencies):
    """A database editor's performer row under mina's holder: a release request was drafted and
    put before her ("... asks Mina to release the footage of Dancer"), and imported."""
    ws = two_agencies
    _haneuls_mina(ws)
    row = _editors_row(ws, "dancer", ws.registry.get_holder("mina-holder").id)
    with ws.session() as session:
        session.execute(update(Subject).where(Subject.id == row.id).values(kind="performer"))
        session.commit()
    with pytest.raises(SubjectNotEnrolled) as refused:
        ws.registry.request_release("dancer", "byeol", valid_until=now_utc() + timedelta(days=30), purpose="stage")
    assert str(refused.value) == (
        f"subject 'dancer': no release is requested for it: subject row {row.id} has no subject.created event on "
        "the ledger"
    )
    assert ws.ledger.find("release.requested") == []
