"""A subject is enrolled under a rights holder only by the organisation that onboarded them.

Found as a second agency (byeol) sharing a workspace with haneul: byeol enrolled a subject of
its own under mina's rights holder, whom haneul onboarded, sealed a stranger's face as its
reference and could ask mina for consent under it. And two adoptions of one holder imported at
the same moment: the second was refused as a bad signature though its signature was good."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from likeness.consent import keys
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes, now_utc, utc_iso
from likeness.consent.holder import sign_adoption
from likeness.consent.integrity import LedgerConsent, consent_row_problems
from likeness.consent.registry import ADOPTION_EVENT, SUBJECT_SEAL_TYPE, Registry
from likeness.consent.tables import Subject
from likeness.errors import ReferenceSealerRefused, RegistryError, SubjectEnrollerRefused
from likeness.workspace import Workspace
from tests.conftest import holder_machine
from tests.consent.test_holder_owner import CHECKED, _cli, _cli_two_agencies, _legacy_holder, _owner, adopt
from tests.consent.test_reference_binding import _sha, _vector

ONBOARDED_ELSEWHERE = (
    "subject 'mina2': organisation 'byeol' may not enrol it under rights holder 'mina-holder': the rights holder "
    "is onboarded by organisation 'haneul', the only one that enrols subjects under them"
)


def _haneuls_mina(ws: Workspace) -> None:
    pem = holder_machine(ws.registry).public_key("mina-holder")
    ws.registry.add_subject("mina", "Mina", holder_public_key_pem=pem, org="haneul")


def _subject_slugs(ws: Workspace) -> list[str]:
    with ws.session() as session:
        return sorted(session.scalars(select(Subject.slug)))


def _stranger_reference(ws: Workspace, subject: str, org: str) -> bool:
    return ws.registry.add_reference_embedding(
        subject, _vector(7), source_name="stranger.jpg", source_sha256=_sha("stranger"), org=org
    )


def test_another_organisation_cannot_enrol_a_subject_under_a_holder_it_did_not_onboard(two_agencies):
    ws = two_agencies
    _haneuls_mina(ws)
    with pytest.raises(SubjectEnrollerRefused) as refused:
        ws.registry.add_subject("mina2", "Mina K", holder="mina-holder", org="byeol")
    assert str(refused.value) == ONBOARDED_ELSEWHERE
    assert (refused.value.subject, refused.value.holder, refused.value.org) == ("mina2", "mina-holder", "byeol")
    assert _subject_slugs(ws) == ["mina"] and len(ws.ledger.find("subject.created")) == 1
    with pytest.raises(RegistryError, match="no subject 'mina2'"):
        _stranger_reference(ws, "mina2", "byeol")
    assert ws.ledger.find("subject.reference_added") == []

    ws.registry.add_subject("mina2", "Mina K", holder="mina-holder", org="haneul")  # her own organisation may
    assert _stranger_reference(ws, "mina2", "haneul")


def test_a_holder_the_ledger_names_no_organisation_for_gets_no_subject_until_adopted(
    before_subjects_sealed, two_agencies
):
    ws = two_agencies
    holder = _legacy_holder(ws, "mina-holder")
    with pytest.raises(SubjectEnrollerRefused) as refused:
        ws.registry.add_subject("mina", "Mina", holder="mina-holder", org="haneul")
    said = str(refused.value)
    assert said.startswith("subject 'mina': organisation 'haneul' may not enrol it under rights holder 'mina-holder'")
    assert "the ledger names no organisation that onboarded the rights holder" in said
    assert "adopts them first, with the holder's signature (likeness consent adopt-holder)" in said
    assert _subject_slugs(ws) == [] and ws.ledger.find("subject.created") == []

    adopt(ws, "mina-holder", "haneul")
    assert _owner(ws, holder.id) == ws.registry.get_org("haneul").id
    ws.registry.add_subject("mina", "Mina", holder="mina-holder", org="haneul")
    with pytest.raises(SubjectEnrollerRefused, match="onboarded by organisation 'haneul'"):
        ws.registry.add_subject("mina2", "Mina K", holder="mina-holder", org="byeol")


def test_subject_add_for_another_organisations_holder_exits_1_in_one_line(tmp_path):
    home, pem = _cli_two_agencies(tmp_path)
    assert _cli(home, "subject", "add", "mina", "--holder-public-key", pem, "--org", "haneul").exit_code == 0
    refused = _cli(home, "subject", "add", "mina2", "--holder", "mina-holder", "--org", "byeol")
    assert refused.exit_code == 1, refused.output
    assert refused.output == f"error: {ONBOARDED_ELSEWHERE}\n"
    assert not isinstance(refused.exception, SubjectEnrollerRefused)
    configured = _cli(home, "subject", "add", "mina2", "--holder", "mina-holder", env={"LIKENESS_ORG": "byeol"})
    assert configured.exit_code == 1 and "onboarded by organisation 'haneul'" in configured.output


def _editors_row(ws: Workspace, slug: str, holder_id: str) -> Subject:
    """A subject row a database editor inserts under ``holder_id``, with no event."""
    subject = Subject(
        id=uuid.uuid4().hex,
        slug=slug,
        name=slug,
        kind="artist",
        holder_id=holder_id,
        owner_org_id=None,
        created_at=utc_iso(now_utc()),
        public_name=False,
    )
    with ws.session() as session:
        session.add(subject)
        session.commit()
        session.refresh(subject)
        session.expunge(subject)
    return subject


def subject_event(subject: Subject, org_id: str) -> dict:
    """The body of the ``subject.created`` event the product writes for ``subject``, enrolled
    by organisation ``org_id``, before its signature."""
    return {
        "type": SUBJECT_SEAL_TYPE,
        "subject_id": subject.id,
        "slug": subject.slug,
        "name": subject.name,
        "kind": subject.kind,
        "holder_id": subject.holder_id,
        "owner_org_id": subject.owner_org_id,
        "public_name": subject.public_name,
        "org_id": org_id,
    }


def signed_by(ws: Workspace, body: dict, org: str) -> dict:
    """``body`` signed with organisation ``org``'s key file, naming that key."""
    org_key = keys.load_private_key(ws.registry.org_key_path(org))
    body = {**body, "org_fingerprint": keys.fingerprint(keys.public_raw(org_key))}
    return {**body, "signature": keys.sign(org_key, canonical_bytes(body))}


def _editors_subject(ws: Workspace, slug: str, holder_id: str, org_id: str) -> None:
    """A subject row and ``subject.created`` event another organisation of the workspace writes
    with database access, signed with its own pinned key, naming itself though it did not
    onboard the holder."""
    subject = _editors_row(ws, slug, holder_id)
    org = ws.registry.get_org(org_id).slug
    ws.ledger.append("subject.created", signed_by(ws, subject_event(subject, org_id), org))


def test_a_subject_event_naming_an_organisation_that_did_not_onboard_the_holder_seals_nothing(two_agencies):
    """Byeol, with write access to the database, writes the subject itself: its seal (made with
    its own pinned key) does not count, and audit names the subject."""
    ws = two_agencies
    _haneuls_mina(ws)
    holder_id = ws.registry.get_holder("mina-holder").id
    _editors_subject(ws, "mina2", holder_id, ws.registry.get_org("byeol").id)
    with ws.session() as session:
        view = LedgerConsent(session)
        subject_id = ws.registry.get_subject("mina2").id
        assert view.subject_org(subject_id) is None
        why = view.reference_sealer_problem(subject_id, ws.registry.get_org("byeol").id)
    assert why is not None and "organisation 'byeol' is named as enrolling it" in why
    with pytest.raises(ReferenceSealerRefused, match="onboarded by organisation 'haneul'"):
        _stranger_reference(ws, "mina2", "byeol")
    assert ws.ledger.find("subject.reference_added") == []
    assert not audit_workspace(ws).ok
    named = [p.problem for p in consent_row_problems(ws) if p.problem.startswith("subject 'mina2'")]
    assert named == [
        "subject 'mina2': organisation 'byeol' is named as enrolling it, but the rights holder is onboarded by "
        "organisation 'haneul', the only one that enrols subjects under them"
    ]


def _adoption_event(ws: Workspace, holder: str, org: str) -> dict:
    """The ``holder.adopted`` event an import of ``org``'s adoption writes, signed by the holder
    and countersigned by ``org``."""
    body = ws.registry.request_adoption(holder, org=org, attestation=CHECKED)
    signed = sign_adoption(body, holder_machine(ws.registry).key(holder))
    org_key = keys.load_private_key(ws.registry.org_key_path(org))
    return {**body, "holder_signature": signed.signature, "signature": keys.sign(org_key, canonical_bytes(body))}


def test_a_second_adoption_imported_at_the_same_moment_is_refused_as_adopted_already(
    before_subjects_sealed, two_agencies, monkeypatch
):
    ws = two_agencies
    holder = _legacy_holder(ws, "mina-holder")
    body = ws.registry.request_adoption("mina-holder", org="byeol", attestation=CHECKED)
    byeols = sign_adoption(body, holder_machine(ws.registry).key("mina-holder"))
    haneuls = _adoption_event(ws, "mina-holder", "haneul")
    checked = Registry._refuse_bound

    def haneul_appends_meanwhile(self, row):  # both imports passed the check before either appended
        checked(self, row)
        ws.ledger.append(ADOPTION_EVENT, haneuls)

    monkeypatch.setattr(Registry, "_refuse_bound", haneul_appends_meanwhile)
    with pytest.raises(RegistryError) as refused:
        ws.registry.import_signed(byeols)
    first, second = (e.seq for e in ws.ledger.find(ADOPTION_EVENT))
    assert str(refused.value) == (
        "rights holder 'mina-holder': the adoption does not count on the ledger: the holder is adopted by "
        f"organisation 'haneul' already (ledger row {first})"
    )
    assert _owner(ws, holder.id) == ws.registry.get_org("haneul").id
    named = [p.problem for p in consent_row_problems(ws) if f"ledger row {second}:" in p.problem]
    assert named == [
        f"rights holder 'mina-holder': ledger row {second}: {ADOPTION_EVENT} ignored: the holder is adopted by "
        f"organisation 'haneul' already (ledger row {first})"
    ]
