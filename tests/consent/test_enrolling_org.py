"""Every subject has exactly one enrolling organisation, the only one that seals its references.

Found as an operator in a workspace of two agencies (haneul, byeol): a subject enrolled for an
existing rights holder with no organisation named was enrolled naming none, and then no
organisation could ever seal its reference photos, so it could never be recognised."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from likeness.config import Settings
from likeness.consent import keys
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes, now_utc, utc_iso
from likeness.consent.integrity import LedgerConsent
from likeness.consent.registry import EMBEDDING_DIM, SEALING_EVENT, first_sealing_marker, sealing_marker
from likeness.consent.tables import Subject
from likeness.errors import EnrollingOrgUnnamed, ReferenceSealerRefused
from likeness.workspace import Workspace
from tests.conftest import holder_machine
from tests.consent.test_holder_owner import _cli, _cli_two_agencies, _legacy_holder
from tests.consent.test_org_key_pins import _invented_org

SUBJECT_REFUSED = (
    "subject 'mina': this workspace has several organisations (byeol, haneul) and none was named: name the one "
    "enrolling it with --org (only it may seal its reference photos, without which it is never recognised)"
)


def _no_subject(ws: Workspace) -> None:
    with ws.session() as session:
        assert session.scalars(select(Subject)).all() == []
    assert ws.ledger.find("subject.created") == []


def _reference(ws: Workspace, subject: str, org: str | None) -> bool:
    vector = np.random.default_rng(7).standard_normal(EMBEDDING_DIM).astype("<f4")
    digest = hashlib.sha256(subject.encode()).hexdigest()
    return ws.registry.add_reference_embedding(
        subject, vector / np.linalg.norm(vector), source_name=f"{subject}.jpg", source_sha256=digest, org=org
    )


def test_a_subject_of_an_enrolled_holder_among_several_organisations_without_naming_one_is_refused(two_agencies):
    ws = two_agencies
    pem = holder_machine(ws.registry).public_key("mina-holder")
    ws.registry.add_holder("mina-holder", "Mina", kind="artist", public_key_pem=pem, org="haneul")
    with pytest.raises(EnrollingOrgUnnamed) as refused:
        ws.registry.add_subject("mina", "Mina", holder="mina-holder")
    assert str(refused.value) == SUBJECT_REFUSED
    assert (refused.value.slug, refused.value.what, refused.value.orgs) == ("mina", "subject", ("byeol", "haneul"))
    _no_subject(ws)

    ws.registry.add_subject("mina", "Mina", holder="mina-holder", org="haneul")
    (created,) = ws.ledger.find("subject.created")
    assert created.payload["org_id"] == ws.registry.get_org("haneul").id
    with pytest.raises(ReferenceSealerRefused, match="organisation 'byeol' did not enrol the subject"):
        _reference(ws, "mina", "byeol")
    assert _reference(ws, "mina", "haneul")


def test_a_subject_in_a_workspace_without_an_organisation_is_refused(workspace):
    """Only a holder enrolled before holders named their organisation can be here without one."""
    _legacy_holder(workspace, "mina-holder")
    with pytest.raises(EnrollingOrgUnnamed, match="subject 'mina': this workspace has no organisation yet"):
        workspace.registry.add_subject("mina", "Mina", holder="mina-holder")
    _no_subject(workspace)


def test_subject_add_for_an_enrolled_holder_among_several_organisations_exits_1_in_one_line(tmp_path):
    home, pem = _cli_two_agencies(tmp_path)
    assert _cli(home, "subject", "add", "jun", "--holder-public-key", pem, "--org", "haneul").exit_code == 0

    refused = _cli(home, "subject", "add", "mina", "--holder", "jun-holder")
    assert refused.exit_code == 1, refused.output
    assert refused.output == f"error: {SUBJECT_REFUSED}\n"
    assert not isinstance(refused.exception, EnrollingOrgUnnamed)
    # the configured organisation names one (the holder's own: haneul onboarded them)
    enrolled = _cli(home, "subject", "add", "mina", "--holder", "jun-holder", env={"LIKENESS_ORG": "haneul"})
    assert enrolled.exit_code == 0, enrolled.output
    ws = Workspace.open(Settings(home=home))
    try:
        mina = ws.registry.get_subject("mina")
        (created,) = [e for e in ws.ledger.find("subject.created") if e.payload["subject_id"] == mina.id]
        assert created.payload["org_id"] == ws.registry.get_org("haneul").id
    finally:
        ws.close()


def test_a_virtual_idol_owned_by_another_organisation_than_the_one_enrolling_it_is_refused(tmp_path):
    """Byeol enrolled an idol "owned by" haneul: it was listed in haneul's console, read in
    haneul's ledger scope and its cases routed to haneul, as if haneul had enrolled it."""
    home, pem = _cli_two_agencies(tmp_path)
    args = ("subject", "add", "idol", "--virtual", "--holder-public-key", pem, "--owner-org", "haneul")
    refused = _cli(home, *args, "--org", "byeol")
    assert refused.exit_code == 1, refused.output
    assert " ".join(refused.output.split()) == (
        "error: subject 'idol': owned by organisation 'haneul' but enrolled by 'byeol': a subject's owner is the "
        "organisation that enrols it"
    )
    ws = Workspace.open(Settings(home=home))
    try:
        _no_subject(ws)
    finally:
        ws.close()
    assert _cli(home, *args, "--org", "haneul").exit_code == 0


# --- audit names a sealing marker that does not verify -------------------------------------------


def _marker(org_id: str, key: Ed25519PrivateKey, *, signature: str | None = None) -> dict:
    body = sealing_marker(org_id, keys.fingerprint(keys.public_raw(key)), utc_iso(now_utc()))
    return {**body, "signature": signature or keys.sign(key, canonical_bytes(body))}


def test_audit_names_a_sealing_marker_whose_signature_does_not_verify(consent_world):
    ws = consent_world.workspace
    (valid,) = ws.ledger.find(SEALING_EVENT)
    studio = ws.registry.get_org("studio")
    studio_key = keys.load_private_key(ws.registry.org_key_path("studio"))
    forged = _marker(studio.id, studio_key, signature=keys.sign(Ed25519PrivateKey.generate(), b"x"))
    ws.ledger.append(SEALING_EVENT, forged)  # a database editor's: studio's name, not its signature
    evil_id, evil_key = _invented_org(ws)
    ws.ledger.append(SEALING_EVENT, _marker(evil_id, evil_key))  # signed by a key the workspace does not pin
    forged_seq, unpinned_seq = (e.seq for e in ws.ledger.find(SEALING_EVENT)[1:])

    report = audit_workspace(ws)
    named = {p.subject: p.message for p in report.problems if p.kind == "sealing_marker"}
    assert named == {
        f"ledger row {forged_seq}": (
            "ledger.references_sealed is not a valid sealing marker: its organisation signature does not verify; "
            "it is ignored"
        ),
        f"ledger row {unpinned_seq}": (
            f"ledger.references_sealed is not a valid sealing marker: it is signed by organisation {evil_id!r}, "
            "which is not on the ledger or whose key this workspace does not pin; it is ignored"
        ),
    }
    with ws.session() as session:  # reading still skips them
        assert first_sealing_marker(session, LedgerConsent(session).org_key) == valid.seq
