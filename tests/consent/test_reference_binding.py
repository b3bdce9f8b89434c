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
from likeness.consent.registry import EMBEDDING_DIM
from likeness.errors import ConsentError, FoundingReferenceMissing, ReferenceUnsealed, RegistryError


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


def test_references_enrolled_before_seals_are_not_used_until_attested(consent_world):
    """An unsigned event may be a database editor's: the reference it binds is not used, audit
    names it, re-enrolling the photo does not vouch for the stored vector, and an operator's
    attestation, sealed with the organisation's key, binds it."""
    ws = consent_world.workspace
    reg = ws.registry
    jun = reg.get_subject("jun")
    old = _vector(3)
    _insert_row(ws, jun.id, "old", old)  # as enrolled before events recorded the vector
    _append_legacy_event(ws, jun.id, "old")

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


def test_a_first_reference_enrolled_before_seals_anchors_once_attested(consent_world):
    ws = consent_world.workspace
    reg = ws.registry
    jun = reg.get_subject("jun")
    old = _vector(3)
    _insert_row(ws, jun.id, "old", old)
    _append_legacy_event(ws, jun.id, "old", old)
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

    org, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    fingerprint = keys.fingerprint(keys.public_raw(org))
    ledger = {"studio-id": (fingerprint, keys.public_raw(org).hex())}
    body = reference_event(
        "jun-id", "jun.jpg", _sha("jun"), _vector(1).tobytes(), org_id="studio-id", key_fingerprint=fingerprint
    )

    def sealed(payload, key=org):
        return {**payload, "signature": keys.sign(key, canonical_bytes(payload))}

    assert reference_seal_problem(sealed(body), ledger.get) is None
    assert reference_seal_problem(body, ledger.get) == UNSIGNED
    assert "does not verify" in reference_seal_problem(sealed(body, other), ledger.get)
    assert "does not verify" in reference_seal_problem({**sealed(body), "subject_id": "mina-id"}, ledger.get)
    assert "not on the ledger" in reference_seal_problem(sealed({**body, "org_id": "rival-id"}), ledger.get)
    other_fp = keys.fingerprint(keys.public_raw(other))
    assert "organisation's key as the ledger records it" in reference_seal_problem(
        sealed({**body, "key_fingerprint": other_fp}, other), ledger.get
    )
    assert "malformed" in reference_seal_problem(sealed({**body, "type": "likeness.model-card.v1"}), ledger.get)
    assert "malformed" in reference_seal_problem(sealed({**body, "attests_seq": "12"}), ledger.get)


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


def test_references_of_a_subject_made_again_under_its_slug_are_not_attested(consent_world):
    """A database editor makes a row under the slug 'jun' with a stranger's reference and an
    unsigned event in a workspace that never sealed one (so it reads as written before seals):
    attesting it sealed the stranger's face as jun's, what enrolment itself refuses
    (``subject_altered``, trial 26)."""
    ws = consent_world.workspace
    reg = ws.registry
    _make_again_under_its_slug(ws, "jun")
    _insert_row(ws, "f" * 32, "stranger", _vector(2))
    _append_legacy_event(ws, "f" * 32, "stranger", _vector(2))
    (row_id,) = [row.id for row in _all_rows(ws) if row.subject_id == "f" * 32]

    # refused when listed (what `subject photos attest` shows before it asks) and when sealed
    for attempt in (lambda: reg.unsigned_references("jun"), lambda: reg.attest_references("jun", [row_id])):
        with pytest.raises(ConsentError, match="subject 'jun': subject row f{32} has no subject.created event") as err:
            attempt()
        assert err.value.reason == "subject_altered"
    assert [e.payload.get("signature") for e in ws.ledger.find("subject.reference_added", subject_id="f" * 32)] == [
        None
    ]
