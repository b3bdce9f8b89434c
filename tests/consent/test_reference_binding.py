"""Reference embeddings count only when the ledger enrolled them (second review, finding 2).

Attack: INSERT INTO reference_embeddings a stranger's vector under the released performer (no
ledger event, INSERT only). Render would then find the stranger "the released performer" in a
target photo. Only references whose ``subject.reference_added`` event records the same subject,
photo digest and vector digest, sealed with the organisation's key, are used; the injected row
is ignored and named by audit. An event appended without that key (anchor 28) binds nothing.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sqlalchemy import text

from likeness.consent.integrity import consent_row_problems
from likeness.consent.registry import EMBEDDING_DIM, Registry
from likeness.errors import (
    ConsentError,
    FoundingReferenceMissing,
    ReferenceSealerRefused,
    ReferenceUnsealed,
    RegistryError,
)
from likeness.workspace import Workspace
from tests.conftest import ConsentWorld, build_consent_world


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(EMBEDDING_DIM).astype("<f4")
    return v / np.linalg.norm(v)


def _sha(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


def _insert_row(ws, subject_id: str, source: str, vector: np.ndarray) -> None:
    with ws.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO reference_embeddings (subject_id, source_name, source_sha256, vector, created_at) "
                "VALUES (:s, :n, :h, :v, '2025-01-01T00:00:00Z')"
            ),
            {"s": subject_id, "n": f"{source}.jpg", "h": _sha(source), "v": vector.astype("<f4").tobytes()},
        )


def _all_rows(ws) -> list:
    with ws.engine.begin() as conn:
        return list(conn.execute(text("SELECT id, subject_id, source_name FROM reference_embeddings ORDER BY id")))


def _reference_problems(ws) -> list:
    return [p for p in consent_row_problems(ws) if p.kind == "reference"]


def _make_again_under_its_slug(ws, slug: str, new_id: str = "f" * 32) -> None:
    """A database editor's work: subject ``slug``'s row renamed to '<slug>-old' and a copy of it
    inserted as ``new_id`` under ``slug`` (no ``subject.created`` event for it)."""
    with ws.engine.begin() as conn:
        conn.execute(text("UPDATE subjects SET slug = :old WHERE slug = :s"), {"s": slug, "old": f"{slug}-old"})
        conn.execute(
            text(
                "INSERT INTO subjects (id, slug, name, kind, holder_id, owner_org_id, created_at, public_name) "
                "SELECT :new, :s, name, kind, holder_id, owner_org_id, created_at, public_name FROM subjects "
                "WHERE slug = :old"
            ),
            {"s": slug, "old": f"{slug}-old", "new": new_id},
        )


def _stranger_reference(ws, subject_id: str, *, org_id: str, key_fingerprint: str) -> dict:
    """A stranger's reference row stored under ``subject_id`` and the unsigned body of a
    ``subject.reference_added`` event naming it for organisation ``org_id``: what a database
    editor seals with some key of their own."""
    from likeness.consent.registry import reference_event

    stranger = _vector(2)
    _insert_row(ws, subject_id, "stranger", stranger)
    return reference_event(
        subject_id, "stranger.jpg", _sha("stranger"), stranger.tobytes(), org_id=org_id, key_fingerprint=key_fingerprint
    )


def test_an_injected_reference_row_is_not_used_and_is_named(consent_world):
    ws = consent_world.workspace
    reg = ws.registry
    jun = reg.get_subject("jun")
    genuine = _vector(1)
    assert reg.add_reference_embedding("jun", genuine, source_name="jun.jpg", source_sha256=_sha("jun"))
    (event,) = ws.ledger.find("subject.reference_added", subject_id=jun.id)
    assert event.payload["vector_sha256"] == hashlib.sha256(genuine.astype("<f4").tobytes()).hexdigest()
    assert _reference_problems(ws) == []

    _insert_row(ws, jun.id, "stranger", _vector(2))

    np.testing.assert_array_equal(reg.reference_embeddings("jun"), genuine[None, :])
    assert [(sid, len(emb)) for sid, _, _, emb in reg.all_reference_embeddings()] == [(jun.id, 1)]
    assert [sid for _, sid, _ in reg.reference_rows()] == [jun.id]
    (problem,) = _reference_problems(ws)
    assert problem.record_id == jun.id
    assert "'stranger.jpg'" in problem.problem and "no subject.reference_added event" in problem.problem


def test_a_replaced_vector_is_not_used_and_is_named(consent_world):
    ws = consent_world.workspace
    reg = ws.registry
    assert reg.add_reference_embedding("jun", _vector(1), source_name="jun.jpg", source_sha256=_sha("jun"))
    with ws.engine.begin() as conn:
        conn.execute(text("UPDATE reference_embeddings SET vector = :v"), {"v": _vector(2).tobytes()})
    assert reg.reference_embeddings("jun").shape == (0, EMBEDDING_DIM)
    replaced, founding = _reference_problems(ws)
    assert "its vector is not the one" in replaced.problem
    assert "its first reference (photo 'jun.jpg'" in founding.problem  # and enrolment stops


def _append_legacy_event(ws, subject_id: str, source: str, vector: np.ndarray | None = None) -> None:
    """A ``subject.reference_added`` event as written before reference events were sealed
    (before vector digests too when ``vector`` is None)."""
    payload = {"subject_id": subject_id, "source_name": f"{source}.jpg", "source_sha256": _sha(source)}
    if vector is not None:
        payload["vector_sha256"] = hashlib.sha256(vector.astype("<f4").tobytes()).hexdigest()
    ws.ledger.append("subject.reference_added", payload)


@pytest.fixture
def before_the_marker(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Versions before the sealing marker: nothing on the ledger marks where sealing began.
    ``monkeypatch.undo()`` is the upgrade; the next ``Workspace.open`` writes the marker."""
    monkeypatch.setattr(Registry, "mark_reference_sealing", lambda self: False, raising=False)
    return monkeypatch


@pytest.fixture
def legacy_world(before_the_marker, workspace, tmp_path) -> ConsentWorld:
    """``consent_world`` as a version before the sealing marker made it."""
    return build_consent_world(workspace, tmp_path)


def _upgraded(ws, before_the_marker: pytest.MonkeyPatch) -> None:
    """Run this version on the workspace: its first command opens it."""
    before_the_marker.undo()
    Workspace.open(ws.settings).close()


def test_references_enrolled_before_seals_are_not_used_until_attested(legacy_world, before_the_marker):
    """An unsigned event may be a database editor's: the reference it binds is not used, audit
    names it, re-enrolling the photo does not vouch for the stored vector, and an operator's
    attestation, sealed with the organisation's key, binds it."""
    ws = legacy_world.workspace
    reg = ws.registry
    jun = reg.get_subject("jun")
    old = _vector(3)
    _insert_row(ws, jun.id, "old", old)  # as enrolled before events recorded the vector
    _append_legacy_event(ws, jun.id, "old")
    _upgraded(ws, before_the_marker)

    assert reg.reference_embeddings("jun").shape == (0, EMBEDDING_DIM)
    unsigned, founding = _reference_problems(ws)
    assert "is unsigned" in unsigned.problem and "written before reference events were sealed" in unsigned.problem
    assert "likeness subject photos attest jun" in unsigned.problem
    assert "subject 'jun': its first reference (photo 'old.jpg'" in founding.problem
    assert not reg.add_reference_embedding("jun", old + 1e-6, source_name="old.jpg", source_sha256=_sha("old"))
    assert reg.reference_embeddings("jun").shape == (0, EMBEDDING_DIM)

    (status,) = reg.unsigned_references("jun")
    assert reg.attest_references("jun", [status.row_id]) == 1
    assert _reference_problems(ws) == []
    np.testing.assert_array_equal(reg.reference_embeddings("jun"), old[None, :])
    np.testing.assert_array_equal(reg.first_reference_embedding("jun"), old)
    assert reg.unsigned_references("jun") == []


def test_a_first_reference_enrolled_before_seals_anchors_once_attested(legacy_world, before_the_marker):
    ws = legacy_world.workspace
    reg = ws.registry
    jun = reg.get_subject("jun")
    old = _vector(3)
    _insert_row(ws, jun.id, "old", old)
    _append_legacy_event(ws, jun.id, "old", old)
    _upgraded(ws, before_the_marker)
    with pytest.raises(ReferenceUnsealed, match=r"subject 'jun': its first reference \(photo 'old.jpg'") as err:
        reg.add_reference_embedding("jun", _vector(4), source_name="jun.jpg", source_sha256=_sha("jun"), within_first=9)
    assert err.value.attestable and "likeness subject photos attest jun" in str(err.value)

    (status,) = reg.unsigned_references("jun")
    reg.attest_references("jun", [status.row_id])
    assert reg.add_reference_embedding(
        "jun", _vector(4), source_name="jun.jpg", source_sha256=_sha("jun"), within_first=9
    )
    np.testing.assert_array_equal(reg.first_reference_embedding("jun"), old)


def test_an_editors_unsigned_reference_is_refused_at_enrolment_and_named_by_audit(consent_world):
    """A database editor inserts a row with another face's vector and appends its
    ``subject.reference_added`` event with a valid chain (the ledger's own append recomputes
    it, as the editor would). Before seals, that reference was the subject's: recognition and
    the extraction filter took the stranger for jun, and for a subject with no reference yet it
    became the face every later photo is held to."""
    ws = consent_world.workspace
    reg = ws.registry
    jun, mina = reg.get_subject("jun"), reg.get_subject("mina")
    genuine, stranger = _vector(1), _vector(2)
    assert reg.add_reference_embedding("jun", genuine, source_name="jun.jpg", source_sha256=_sha("jun"))

    _insert_row(ws, jun.id, "stranger", stranger)
    _append_legacy_event(ws, jun.id, "stranger", stranger)
    _insert_row(ws, mina.id, "stranger", stranger)  # mina had no reference: it would found her
    _append_legacy_event(ws, mina.id, "stranger", stranger)

    np.testing.assert_array_equal(reg.reference_embeddings("jun"), genuine[None, :])
    assert reg.reference_embeddings("mina").shape == (0, EMBEDDING_DIM)
    assert [sid for _, sid, _ in reg.reference_rows()] == [jun.id]
    with pytest.raises(
        ReferenceUnsealed, match=r"subject 'mina': its first reference \(photo 'stranger.jpg', ledger row"
    ) as err:
        reg.first_reference_embedding("mina")
    assert not err.value.attestable and "written after reference events were sealed" in str(err.value)
    assert reg.unsigned_references("jun") == []  # not attestable: the product wrote no unsigned event then
    with pytest.raises(RegistryError, match="nothing attested"):
        reg.attest_references("jun", [row for row, sid, _ in _all_rows(ws) if sid == jun.id][1:])

    problems = _reference_problems(ws)
    assert sorted(p.record_id for p in problems) == sorted([jun.id, mina.id, mina.id])
    assert all("'stranger.jpg'" in p.problem for p in problems)
    assert sum("a database editor's; it is not used" in p.problem for p in problems) == 2


def test_a_reference_event_sealed_with_another_key_is_not_used(consent_world, tmp_path):
    """A seal made with a key of the editor's own under the organisation's id, or an
    organisation's genuine seal of another vector, does not bind the stored vector."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from likeness.consent import keys
    from likeness.consent.canonical import canonical_bytes

    ws = consent_world.workspace
    reg = ws.registry
    jun = reg.get_subject("jun")
    studio = reg.get_org("studio")
    assert reg.add_reference_embedding("jun", _vector(1), source_name="jun.jpg", source_sha256=_sha("jun"))
    body = _stranger_reference(ws, jun.id, org_id=studio.id, key_fingerprint=studio.key_fingerprint)
    forged = keys.sign(Ed25519PrivateKey.generate(), canonical_bytes(body))
    ws.ledger.append("subject.reference_added", {**body, "signature": forged})

    assert len(reg.reference_embeddings("jun")) == 1
    (problem,) = _reference_problems(ws)
    assert "is wrongly sealed" in problem.problem and "its organisation signature does not verify" in problem.problem


def test_deleting_the_first_reference_row_refuses_enrolment_rather_than_moving_the_anchor(consent_world):
    """Every new reference is held to the subject's first (faceset.enroll). The first was the
    oldest usable row, so deleting it made the second the face new references are held to:
    the anchor is now the row of the first ``subject.reference_added`` event, and without it
    enrolment is refused and audit names the subject."""
    ws = consent_world.workspace
    reg = ws.registry
    jun = reg.get_subject("jun")
    first, second = _vector(1), _vector(2)
    assert reg.first_reference_embedding("jun") is None
    assert reg.add_reference_embedding("jun", first, source_name="jun.jpg", source_sha256=_sha("jun"))
    assert reg.add_reference_embedding("jun", second, source_name="jun2.jpg", source_sha256=_sha("jun2"))
    np.testing.assert_array_equal(reg.first_reference_embedding("jun"), first)
    assert _reference_problems(ws) == []

    with ws.engine.begin() as conn:
        conn.execute(text("DELETE FROM reference_embeddings WHERE source_sha256 = :h"), {"h": _sha("jun")})

    with pytest.raises(FoundingReferenceMissing, match=r"subject 'jun': its first reference \(photo 'jun.jpg'") as err:
        reg.first_reference_embedding("jun")
    assert err.value.subject == "jun"
    (problem,) = _reference_problems(ws)
    assert problem.record_id == jun.id and "subject 'jun': its first reference" in problem.problem


def test_replacing_the_first_reference_vector_refuses_enrolment(consent_world):
    ws = consent_world.workspace
    reg = ws.registry
    assert reg.add_reference_embedding("jun", _vector(1), source_name="jun.jpg", source_sha256=_sha("jun"))
    assert reg.add_reference_embedding("jun", _vector(2), source_name="jun2.jpg", source_sha256=_sha("jun2"))
    with ws.engine.begin() as conn:
        conn.execute(
            text("UPDATE reference_embeddings SET vector = :v WHERE source_sha256 = :h"),
            {"v": _vector(3).tobytes(), "h": _sha("jun")},
        )
    with pytest.raises(FoundingReferenceMissing, match="subject 'jun'"):
        reg.first_reference_embedding("jun")


def test_a_reference_seal_counts_only_with_its_organisations_key_as_the_ledger_records_it():
    """``reference_seal_problem`` is pure: the organisation's fingerprint and public key come
    from its ``org.created`` event (here a lookup), never from the event being checked."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from likeness.consent import keys
    from likeness.consent.canonical import canonical_bytes
    from likeness.consent.registry import UNSIGNED, reference_event, reference_seal_problem

    def enrolled_by_studio(subject_id, org_id):
        return None if org_id == "studio-id" else "another organisation enrolled it"

    org, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    fingerprint = keys.fingerprint(keys.public_raw(org))
    ledger = {"studio-id": (fingerprint, keys.public_raw(org).hex())}
    body = reference_event(
        "jun-id", "jun.jpg", _sha("jun"), _vector(1).tobytes(), org_id="studio-id", key_fingerprint=fingerprint
    )

    def sealed(payload, key=org):
        return {**payload, "signature": keys.sign(key, canonical_bytes(payload))}

    assert reference_seal_problem(sealed(body), ledger.get, enrolled_by_studio) is None
    assert reference_seal_problem(body, ledger.get, enrolled_by_studio) == UNSIGNED
    assert "does not verify" in reference_seal_problem(sealed(body, other), ledger.get, enrolled_by_studio)
    assert "does not verify" in reference_seal_problem(
        {**sealed(body), "subject_id": "mina-id"}, ledger.get, enrolled_by_studio
    )
    assert "not on the ledger" in reference_seal_problem(
        sealed({**body, "org_id": "rival-id"}), ledger.get, enrolled_by_studio
    )
    other_fp = keys.fingerprint(keys.public_raw(other))
    assert "organisation's key as the ledger records it" in reference_seal_problem(
        sealed({**body, "key_fingerprint": other_fp}, other), ledger.get, enrolled_by_studio
    )
    assert "malformed" in reference_seal_problem(
        sealed({**body, "type": "likeness.model-card.v1"}), ledger.get, enrolled_by_studio
    )
    assert "malformed" in reference_seal_problem(sealed({**body, "attests_seq": "12"}), ledger.get, enrolled_by_studio)
    assert (
        reference_seal_problem(sealed(body), ledger.get, lambda s, o: "not the enrolling one")
        == "not the enrolling one"
    )


def test_a_subject_made_again_under_its_slug_enrols_no_reference(consent_world):
    """A database editor renames jun's row and inserts another under the slug 'jun' (no
    subject.created event, no reference event): its first photo founded it, and enrolment wrote
    the subject.reference_added event that made a stranger's face count as 'jun' in the gallery
    (trial 26). Enrolment now refuses a subject whose row is not the one the ledger enrolled."""
    ws = consent_world.workspace
    reg = ws.registry
    assert reg.add_reference_embedding("jun", _vector(1), source_name="jun.jpg", source_sha256=_sha("jun"))
    _make_again_under_its_slug(ws, "jun")
    with pytest.raises(ConsentError, match="subject 'jun': subject row f{32} has no subject.created event") as err:
        reg.add_reference_embedding(
            "jun", _vector(2), source_name="stranger.jpg", source_sha256=_sha("stranger"), within_first=0.6
        )
    assert err.value.reason == "subject_altered"
    with pytest.raises(ConsentError, match="subject_altered|no subject.created event"):
        reg.first_reference_embedding("jun")  # what enrol_reference_photos asks first, before any photo
    assert ws.ledger.find("subject.reference_added", subject_id="f" * 32) == []
    assert reg.all_reference_embeddings() == []  # the renamed row is left out too (below)


def test_a_subject_row_renamed_in_the_database_is_not_recognised_under_its_new_name(consent_world):
    """A database editor gives jun's row another slug and name: recognition (the gallery verify,
    scans and the public page read) named jun's face by the edited row, so a verdict and its
    evidence named someone else (trial 26). A subject whose row is not what its subject.created
    event recorded is left out of the gallery until the workspace is restored; audit names it."""
    ws = consent_world.workspace
    reg = ws.registry
    assert reg.add_reference_embedding("jun", _vector(1), source_name="jun.jpg", source_sha256=_sha("jun"))
    jun = reg.get_subject("jun")
    assert [(sid, slug) for sid, slug, _, _ in reg.all_reference_embeddings()] == [(jun.id, "jun")]
    with ws.engine.begin() as conn:
        conn.execute(text("UPDATE subjects SET slug = 'sora', name = 'Sora' WHERE id = :i"), {"i": jun.id})
    assert reg.all_reference_embeddings() == []
    assert any(p.kind == "subject" and p.record_id == jun.id for p in consent_row_problems(ws))


def test_references_of_a_subject_made_again_under_its_slug_are_not_attested(legacy_world, before_the_marker):
    """A database editor makes a row under the slug 'jun' with a stranger's reference and an
    unsigned event in a workspace from before seals (so it reads as written before them):
    attesting it sealed the stranger's face as jun's, what enrolment itself refuses
    (``subject_altered``, trial 26)."""
    ws = legacy_world.workspace
    reg = ws.registry
    _make_again_under_its_slug(ws, "jun")
    _insert_row(ws, "f" * 32, "stranger", _vector(2))
    _append_legacy_event(ws, "f" * 32, "stranger", _vector(2))
    _upgraded(ws, before_the_marker)
    (row_id,) = [row.id for row in _all_rows(ws) if row.subject_id == "f" * 32]

    # refused when listed (what `subject photos attest` shows before it asks) and when sealed
    for attempt in (lambda: reg.unsigned_references("jun"), lambda: reg.attest_references("jun", [row_id])):
        with pytest.raises(ConsentError, match="subject 'jun': subject row f{32} has no subject.created event") as err:
            attempt()
        assert err.value.reason == "subject_altered"
    assert [e.payload.get("signature") for e in ws.ledger.find("subject.reference_added", subject_id="f" * 32)] == [
        None
    ]


def _sealed_by(ws, org_slug: str, body: dict) -> dict:
    """``body`` sealed with organisation ``org_slug``'s own key file: what that organisation's
    operator can write whatever the product's writer refuses."""
    from likeness.consent import keys
    from likeness.consent.canonical import canonical_bytes

    key = keys.load_private_key(ws.registry.org_key_path(org_slug))
    return {**body, "signature": keys.sign(key, canonical_bytes(body))}


def test_another_organisation_of_the_workspace_cannot_seal_a_subjects_reference(consent_world):
    """Studio enrolled mina and jun; byeol, another agency of the workspace with its key
    genuinely pinned, sealed a stranger's face as their reference, and it counted for
    enrolment, extraction, render targets and recognition. Only the organisation that enrolled
    a subject seals its references: the writer refuses byeol up front, and a seal byeol writes
    anyway binds nothing and is named by audit."""
    ws = consent_world.workspace
    reg = ws.registry
    byeol = reg.add_org("byeol", "Byeol Agency")
    mina, jun = reg.get_subject("mina"), reg.get_subject("jun")
    genuine, stranger = _vector(1), _vector(2)
    assert reg.add_reference_embedding("mina", genuine, source_name="mina.jpg", source_sha256=_sha("mina"))
    for refused in (
        lambda: reg.add_reference_embedding(
            "mina", stranger, source_name="stranger.jpg", source_sha256=_sha("stranger"), org="byeol"
        ),
        lambda: reg.attest_references("jun", [], org="byeol"),
    ):
        with pytest.raises(
            ReferenceSealerRefused, match="organisation 'byeol' did not enrol the subject; only 'studio', which did"
        ):
            refused()
    assert len(ws.ledger.find("subject.reference_added")) == 1

    for subject in (mina, jun):  # as byeol's operator writes it with byeol's key
        body = _stranger_reference(ws, subject.id, org_id=byeol.id, key_fingerprint=byeol.key_fingerprint)
        ws.ledger.append("subject.reference_added", _sealed_by(ws, "byeol", body))

    np.testing.assert_array_equal(reg.reference_embeddings("mina"), genuine[None, :])
    assert reg.reference_embeddings("jun").shape == (0, EMBEDDING_DIM)
    assert [(sid, len(emb)) for sid, _, _, emb in reg.all_reference_embeddings()] == [(mina.id, 1)]
    assert [sid for _, sid, _ in reg.reference_rows()] == [mina.id]
    with pytest.raises(ReferenceUnsealed, match="subject 'jun': .*organisation 'byeol' did not enrol") as err:
        reg.first_reference_embedding("jun")
    assert not err.value.attestable
    problems = [p.problem for p in _reference_problems(ws)]
    assert (
        sum("is wrongly sealed" in p and "organisation 'byeol' did not enrol the subject" in p for p in problems) == 2
    )


def test_an_unsigned_reference_appended_after_the_upgrade_is_not_attested(legacy_world, before_the_marker):
    """A workspace from before seals, upgraded, in which no reference has been sealed yet: an
    unsigned event a database editor appends after the upgrade was listed as attestable with
    the genuinely old ones (nothing on the ledger marked the upgrade). The first command after
    the upgrade marks the ledger (organisation-signed); only unsigned events before the mark
    are attestable."""
    from likeness.consent.registry import SEALING_EVENT

    ws = legacy_world.workspace
    reg = ws.registry
    jun = reg.get_subject("jun")
    old, stranger = _vector(3), _vector(2)
    _insert_row(ws, jun.id, "old", old)
    _append_legacy_event(ws, jun.id, "old", old)
    _upgraded(ws, before_the_marker)
    (marker,) = ws.ledger.find(SEALING_EVENT)
    assert marker.payload["org_id"] == reg.get_org("studio").id and marker.payload["signature"]

    _insert_row(ws, jun.id, "stranger", stranger)  # the editor, after the upgrade
    _append_legacy_event(ws, jun.id, "stranger", stranger)
    Workspace.open(ws.settings).close()  # later commands mark nothing again
    assert len(ws.ledger.find(SEALING_EVENT)) == 1

    assert [s.source_name for s in reg.unsigned_references("jun")] == ["old.jpg"]
    stranger_row = max(row.id for row in _all_rows(ws))
    with pytest.raises(RegistryError, match=f"reference row\\(s\\) {stranger_row} are not unsigned references"):
        reg.attest_references("jun", [stranger_row])
    problems = [p.problem for p in _reference_problems(ws)]
    assert any(
        "'stranger.jpg'" in p and f"written after reference events were sealed (ledger row {marker.seq})" in p
        for p in problems
    ), problems
    assert any("'old.jpg'" in p and "written before reference events were sealed" in p for p in problems)


def test_a_new_workspace_is_marked_with_its_first_organisation_and_a_copy_without_keys_reads_it(
    consent_world, tmp_path
):
    """No user action: the first organisation marks the ledger before any subject exists, so
    every unsigned reference event of a new workspace is a database editor's. A copy without
    the private keys (an auditor's) writes nothing and checks the mark with the public pins."""
    import shutil

    from likeness.config import Settings
    from likeness.consent.registry import SEALING_EVENT, first_sealing_marker

    ws = consent_world.workspace
    (org_created,) = ws.ledger.find("org.created")
    (marker,) = ws.ledger.find(SEALING_EVENT)
    assert marker.seq == org_created.seq + 1
    jun = ws.registry.get_subject("jun")
    _insert_row(ws, jun.id, "stranger", _vector(2))
    _append_legacy_event(ws, jun.id, "stranger", _vector(2))
    assert ws.registry.unsigned_references("jun") == []

    copy = tmp_path / "audit-copy"
    shutil.copytree(ws.settings.resolved_home, copy)
    for private in (copy / "keys" / "orgs").glob("*.pem"):
        private.unlink()
    for read_only in (False, True):
        opened = Workspace.open(Settings(home=copy), read_only=read_only)
        try:
            assert opened.ledger.count() == ws.ledger.count()
            with opened.session() as session:
                from likeness.consent.integrity import LedgerConsent

                assert first_sealing_marker(session, LedgerConsent(session).org_key) == marker.seq
            assert opened.registry.unsigned_references("jun") == []
        finally:
            opened.close()


def _legacy_subject(ws, slug: str):
    """A subject and its holder as workspaces enrolled them before ``subject.created`` and
    ``holder.created`` named an organisation (enrolment now refuses to name none). Unsigned: once
    organisations are on the ledger, only under ``before_subjects_sealed``."""
    import uuid

    from likeness.consent.canonical import now_utc, utc_iso
    from likeness.consent.tables import Subject
    from tests.consent.test_holder_owner import _legacy_holder

    holder = _legacy_holder(ws, f"{slug}-holder")
    subject = Subject(
        id=uuid.uuid4().hex,
        slug=slug,
        name=slug.title(),
        kind="artist",
        holder_id=holder.id,
        owner_org_id=None,
        created_at=utc_iso(now_utc()),
        public_name=False,
    )
    created = {"subject_id": subject.id, "slug": slug, "name": subject.name, "kind": "artist", "holder_id": holder.id}
    with ws.session() as session:
        session.add(subject)
        session.commit()
    ws.ledger.append("subject.created", {**created, "owner_org_id": None, "public_name": False})
    return holder


def test_a_subject_enrolled_naming_no_organisation_is_sealed_by_the_first_or_by_none(before_subjects_sealed, workspace):
    """Subjects whose ``subject.created`` names no organisation (enrolled before it recorded
    one): sealed by the workspace's first organisation when no other was on the ledger at their
    enrolment, else by none (the ledger cannot say whose they are)."""
    reg = workspace.registry
    _legacy_subject(workspace, "ari")  # before any organisation
    reg.add_org("studio", "Studio Haneul")
    reg.add_org("byeol", "Byeol Agency")
    _legacy_subject(workspace, "bo")  # two organisations, none named
    ari, bo = reg.get_subject("ari"), reg.get_subject("bo")

    assert reg.reference_signer(None, ari).slug == "studio"
    with pytest.raises(ReferenceSealerRefused, match="organisation 'byeol' did not enrol the subject"):
        reg.reference_signer("byeol", ari)
    for org in (None, "studio", "byeol"):
        with pytest.raises(
            ReferenceSealerRefused, match="subject 'bo': the ledger names no organisation that enrolled"
        ):
            reg.add_reference_embedding("bo", _vector(1), source_name="bo.jpg", source_sha256=_sha("bo"), org=org)
    assert reg.add_reference_embedding("ari", _vector(1), source_name="ari.jpg", source_sha256=_sha("ari"))
    assert len(reg.reference_embeddings("ari")) == 1
    assert bo.id not in {e.payload["subject_id"] for e in workspace.ledger.find("subject.reference_added")}


def _sealed_reference(ws, org: str, subject_id: str, source: str, vector: np.ndarray) -> None:
    """A reference row and its ``subject.reference_added`` event sealed with ``org``'s own key,
    as the writer sealed with any organisation of the workspace before it checked who enrolled
    the subject."""
    from likeness.consent.registry import REFERENCE_EVENT, reference_event

    _insert_row(ws, subject_id, source, vector)
    sealer = ws.registry.get_org(org)
    body = reference_event(
        subject_id,
        f"{source}.jpg",
        _sha(source),
        vector.tobytes(),
        org_id=sealer.id,
        key_fingerprint=sealer.key_fingerprint,
    )
    ws.ledger.append(REFERENCE_EVENT, _sealed_by(ws, org, body))


def test_a_reference_another_organisation_sealed_before_sealers_were_checked_is_attested_by_the_enrolling_one(
    legacy_world, before_the_marker
):
    """Before the writer checked who enrolled the subject, any organisation of the workspace
    sealed its references; from then on such a reference was neither used nor attestable, and a
    subject founded on one was refused for good. The enrolling organisation attests it (its own
    seal, on the ledger); one sealed by another organisation after the marker stays refused."""
    from likeness.consent.registry import SEALERS_EVENT

    ws = legacy_world.workspace
    reg = ws.registry
    reg.add_org("byeol", "Byeol Agency")
    jun = reg.get_subject("jun")  # enrolled by studio
    old, late = _vector(3), _vector(4)
    _sealed_reference(ws, "byeol", jun.id, "old", old)  # jun's first reference, sealed by byeol
    _upgraded(ws, before_the_marker)
    (marker,) = ws.ledger.find(SEALERS_EVENT)
    assert marker.payload["org_id"] == reg.get_org("studio").id
    _sealed_reference(ws, "byeol", jun.id, "late", late)  # byeol's key, after the marker

    with pytest.raises(ReferenceUnsealed, match="organisation 'byeol' did not enrol the subject") as err:
        reg.add_reference_embedding("jun", _vector(5), source_name="jun.jpg", source_sha256=_sha("jun"), within_first=9)
    assert err.value.attestable and "likeness subject photos attest jun" in str(err.value)
    problems = [p.problem for p in _reference_problems(ws)]
    assert any("'old.jpg'" in p and "is sealed by another organisation" in p and "attest jun" in p for p in problems)
    assert any("'late.jpg'" in p and "is wrongly sealed" in p for p in problems), problems
    (status,) = reg.unsigned_references("jun")
    assert (status.source_name, status.state) == ("old.jpg", "resealable")
    late_row = max(row.id for row in _all_rows(ws))
    with pytest.raises(RegistryError, match=f"reference row\\(s\\) {late_row} are not unsigned references"):
        reg.attest_references("jun", [late_row])
    with pytest.raises(ReferenceSealerRefused, match="organisation 'byeol' did not enrol the subject"):
        reg.attest_references("jun", [status.row_id], org="byeol")

    assert reg.attest_references("jun", [status.row_id]) == 1  # as studio
    np.testing.assert_array_equal(reg.first_reference_embedding("jun"), old)
    np.testing.assert_array_equal(reg.reference_embeddings("jun"), old[None, :])
    (attested,) = [e for e in ws.ledger.find("subject.reference_added") if e.payload.get("attests_seq")]
    assert attested.payload["org_id"] == reg.get_org("studio").id
    assert [p for p in _reference_problems(ws) if "'old.jpg'" in p.problem] == []
