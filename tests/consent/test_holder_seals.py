"""``holder.created`` enrols a rights holder only when the organisation it names signed it.

Found as a database editor (no organisation key file): they inserted a rights holder row with
a key of their own and appended its ``holder.created`` naming an agency (haneul), the hash chain
valid. The ledger read haneul as the holder's onboarding organisation, so haneul enrolled a
subject under the holder, the grant request went to the editor's key, and the grant the editor
signed authorized. In a workspace of one organisation an event naming none (the shape versions
before holders were bound wrote) did the same through the "only organisation" rule. From the
``ledger.holders_sealed`` marker on, the product signs every holder event; events from before it
are read as they were."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from likeness.consent import keys
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes, now_utc, utc_iso
from likeness.consent.holder_portal import HolderPortal
from likeness.consent.integrity import LedgerConsent, consent_row_problems, ownerless_holders
from likeness.consent.registry import HOLDER_SEAL_TYPE, HOLDERS_EVENT, Registry
from likeness.consent.tables import RightsHolder
from likeness.errors import ConsentError, SubjectEnrollerRefused, SubjectNotEnrolled
from likeness.workspace import Workspace
from tests.conftest import holder_machine
from tests.consent.test_subject_enroller import signed_by, subject_event


def _editors_holder(ws: Workspace, slug: str) -> RightsHolder:
    """A rights holder row a database editor inserts, with a key of their own (on the test's
    holder machine, so the test can sign as the editor)."""
    raw = keys.public_raw_from_pem(holder_machine(ws.registry).public_key(slug))
    holder = RightsHolder(
        id=uuid.uuid4().hex,
        slug=slug,
        name=slug,
        kind="artist",
        public_key=raw.hex(),
        key_fingerprint=keys.fingerprint(raw),
        created_at=utc_iso(now_utc()),
    )
    with ws.session() as session:
        session.add(holder)
        session.commit()
        session.refresh(holder)
        session.expunge(holder)
    return holder


def _holder_event(holder: RightsHolder, org_id: str | None) -> dict[str, Any]:
    """What ``add_holder`` signs for ``holder`` (``org_id`` ``None``: the shape versions
    before holders were bound to an organisation wrote)."""
    body: dict[str, Any] = {
        "holder_id": holder.id,
        "slug": holder.slug,
        "name": holder.name,
        "kind": holder.kind,
        "key_fingerprint": holder.key_fingerprint,
        "public_key": holder.public_key,
    }
    return body if org_id is None else {**body, "type": HOLDER_SEAL_TYPE, "org_id": org_id}


def _with_own_key(ws: Workspace, body: dict[str, Any]) -> dict[str, Any]:
    editor = Ed25519PrivateKey.generate()
    body = {**body, "org_fingerprint": keys.fingerprint(keys.public_raw(editor))}
    return {**body, "signature": keys.sign(editor, canonical_bytes(body))}


UNSIGNED = "carries no organisation seal, yet was written after rights holder events were sealed"
NOT_SIGNED_BY_IT = "is not its organisation's: it is not signed with the organisation's key on the ledger"
FORGERIES: dict[str, tuple[Callable[[Workspace, dict[str, Any]], dict[str, Any]], str]] = {
    "unsigned": (lambda ws, body: body, UNSIGNED),
    "signed with a key of the editor's own": (_with_own_key, NOT_SIGNED_BY_IT),
    "signed by byeol, the other organisation": (lambda ws, body: signed_by(ws, body, "byeol"), NOT_SIGNED_BY_IT),
}


def _ask(ws: Workspace, subject: str):
    return ws.registry.request_grant(subject, "haneul", ["music_video"], valid_until=now_utc() + timedelta(days=30))


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_holder_event_its_organisation_did_not_sign_enrols_no_one(two_agencies, monkeypatch, forgery):
    ws = two_agencies
    make, why = FORGERIES[forgery]
    ghost = _editors_holder(ws, "ghost-holder")
    forged = ws.ledger.append("holder.created", make(ws, _holder_event(ghost, ws.registry.get_org("haneul").id)))
    assert ws.ledger.verify().ok
    where = f"its holder.created event (ledger row {forged.seq}) {why}"

    with ws.session() as session:
        assert LedgerConsent(session).holder_owner(ghost.id) is None
    with pytest.raises(SubjectEnrollerRefused) as refused:  # haneul's operator trusts the holder list
        ws.registry.add_subject("ghost", "Ghost", holder="ghost-holder", org="haneul")
    assert where in str(refused.value)
    named = [p.problem for p in consent_row_problems(ws) if p.record_id == ghost.id]
    assert [where in p for p in named] == [True]
    assert ownerless_holders(ws) == []  # (named as a database editor's, not as waiting for an adoption)
    assert not audit_workspace(ws).ok

    # a writer without the enroller check (an older version) enrols a subject, haneul-signed
    monkeypatch.setattr(Registry, "_refuse_enroller", lambda *args: None)
    ws.registry.add_subject("ghost", "Ghost", holder="ghost-holder", org="haneul")
    with pytest.raises(SubjectNotEnrolled, match=re.escape(f"its rights holder: {where}")):
        _ask(ws, "ghost")
    monkeypatch.setattr(Registry, "_refuse_unbacked_subject", lambda self, record: None)
    ws.registry.import_signed(holder_machine(ws.registry).sign(_ask(ws, "ghost"), "ghost-holder"))
    with pytest.raises(ConsentError) as denied:
        ws.policy.authorize("ghost", "music_video", "haneul")
    assert denied.value.reason == "holder_key_altered" and where in str(denied.value)


def test_legacy_shaped_holder_and_subject_events_after_the_markers_are_an_editors(workspace):
    """One organisation: events naming none, appended after the markers, are no longer the
    only organisation's by default."""
    ws = workspace
    ws.registry.add_org("haneul")
    ghost = _editors_holder(ws, "ghost-holder")
    created = ws.ledger.append("holder.created", _holder_event(ghost, None))
    row = _subject_row(ws, "ghost", ghost.id)
    legacy_subject = {k: v for k, v in subject_event(row, "").items() if k not in ("type", "org_id")}
    subject = ws.ledger.append("subject.created", legacy_subject)

    with pytest.raises(SubjectNotEnrolled) as refused:
        _ask(ws, "ghost")
    assert f"its rights holder: its holder.created event (ledger row {created.seq}) {UNSIGNED}" in str(refused.value)
    with ws.session() as session:
        assert LedgerConsent(session).holder_owner(ghost.id) is None
    named = " / ".join(p.problem for p in consent_row_problems(ws))
    assert f"its holder.created event (ledger row {created.seq}) {UNSIGNED}" in named
    assert f"its subject.created event (ledger row {subject.seq}) carries no organisation seal" in named


def _subject_row(ws: Workspace, slug: str, holder_id: str):
    from tests.consent.test_subject_enroller import _editors_row

    return _editors_row(ws, slug, holder_id)


def test_holders_enrolled_now_are_signed_by_their_organisation(two_agencies):
    ws = two_agencies
    pem = holder_machine(ws.registry).public_key("mina-holder")
    mina = ws.registry.add_holder("mina-holder", "Mina", kind="artist", public_key_pem=pem, org="haneul")
    sora = HolderPortal(ws).add_passkey_holder("sora-holder", "Sora", kind="artist", org="byeol")
    (marker,) = ws.ledger.find(HOLDERS_EVENT)
    with ws.session() as session:
        view = LedgerConsent(session)
        for holder, org in ((mina, "haneul"), (sora, "byeol")):
            created = view.holder_created(holder.id)
            assert created is not None and created.seq > marker.seq
            assert created.payload["org_fingerprint"] == ws.registry.get_org(org).key_fingerprint
            assert view.holder_seal_problem(holder.id) is None
            assert view.holder_owner(holder.id) == ws.registry.get_org(org).id
    assert consent_row_problems(ws) == []


def test_a_legacy_holder_enrolled_before_holder_events_were_sealed_keeps_its_organisation(
    before_subjects_sealed, workspace
):
    from tests.consent.test_holder_owner import _legacy_holder

    ws = workspace
    haneul = ws.registry.add_org("haneul")
    holder = _legacy_holder(ws, "mina-holder")
    before_subjects_sealed.undo()
    Workspace.open(ws.settings).close()  # the upgrade: its first command writes the marker
    (marker,) = ws.ledger.find(HOLDERS_EVENT)
    with ws.session() as session:
        view = LedgerConsent(session)
        assert marker.seq > view.holder_created(holder.id).seq
        assert view.holder_seal_problem(holder.id) is None
        assert view.holder_owner(holder.id) == haneul.id
