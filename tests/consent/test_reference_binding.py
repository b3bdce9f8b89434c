"""Reference embeddings count only when the ledger enrolled them (second review, finding 2).

Attack: INSERT INTO reference_embeddings a stranger's vector under the released performer (no
ledger event, INSERT only). Render would then find the stranger "the released performer" in a
target photo. Only references whose ``subject.reference_added`` event records the same subject,
photo digest and vector digest are used; the injected row is ignored and named by audit.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from sqlalchemy import text

from likeness.consent.integrity import consent_row_problems
from likeness.consent.registry import EMBEDDING_DIM
from likeness.errors import ConsentError, FoundingReferenceMissing


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


def _reference_problems(ws) -> list:
    return [p for p in consent_row_problems(ws) if p.kind == "reference"]


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


def test_references_enrolled_before_vector_digests_still_count_and_rebind(consent_world):
    ws = consent_world.workspace
    reg = ws.registry
    jun = reg.get_subject("jun")
    old = _vector(3)
    _insert_row(ws, jun.id, "old", old)  # as enrolled before events recorded the vector
    ws.ledger.append(
        "subject.reference_added", {"subject_id": jun.id, "source_name": "old.jpg", "source_sha256": _sha("old")}
    )

    np.testing.assert_array_equal(reg.reference_embeddings("jun"), old[None, :])
    (problem,) = _reference_problems(ws)
    assert "not bound to its vector, re-enrol" in problem.problem

    # Re-enrolling the photo (same embedding) binds the stored vector with a new event.
    assert not reg.add_reference_embedding("jun", old + 1e-6, source_name="old.jpg", source_sha256=_sha("old"))
    assert _reference_problems(ws) == []
    np.testing.assert_array_equal(reg.reference_embeddings("jun"), old[None, :])


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


def test_a_first_reference_enrolled_before_vector_digests_still_anchors(consent_world):
    ws = consent_world.workspace
    reg = ws.registry
    jun = reg.get_subject("jun")
    old = _vector(3)
    _insert_row(ws, jun.id, "old", old)
    ws.ledger.append(
        "subject.reference_added", {"subject_id": jun.id, "source_name": "old.jpg", "source_sha256": _sha("old")}
    )
    assert reg.add_reference_embedding("jun", _vector(4), source_name="jun.jpg", source_sha256=_sha("jun"))
    np.testing.assert_array_equal(reg.first_reference_embedding("jun"), old)


def test_a_subject_made_again_under_its_slug_enrols_no_reference(consent_world):
    """A database editor renames jun's row and inserts another under the slug 'jun' (no
    subject.created event, no reference event): its first photo founded it, and enrolment wrote
    the subject.reference_added event that made a stranger's face count as 'jun' in the gallery
    (trial 26). Enrolment now refuses a subject whose row is not the one the ledger enrolled."""
    ws = consent_world.workspace
    reg = ws.registry
    assert reg.add_reference_embedding("jun", _vector(1), source_name="jun.jpg", source_sha256=_sha("jun"))
    jun = reg.get_subject("jun")
    with ws.engine.begin() as conn:
        conn.execute(text("UPDATE subjects SET slug = 'jun-old' WHERE id = :i"), {"i": jun.id})
        conn.execute(
            text(
                "INSERT INTO subjects (id, slug, name, kind, holder_id, owner_org_id, created_at, public_name) "
                "SELECT :new, 'jun', name, kind, holder_id, owner_org_id, created_at, public_name FROM subjects "
                "WHERE id = :i"
            ),
            {"i": jun.id, "new": "f" * 32},
        )
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
