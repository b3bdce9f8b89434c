"""A face enrolled for one rights holder's subject is not enrolled for another holder's subject.

Otherwise a second agency enrols the artist's photo as a new subject under a holder key it made
itself, signs its own grant and extracts the artist's face (attack report, finding 3)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import update

from likeness.consent.tables import ReferenceEmbedding, Subject
from likeness.errors import FaceOfAnotherHolder
from likeness.faces.identity import SINGLE_REFERENCE_THRESHOLD
from likeness.faceset import enroll_reference_photos
from likeness.faceset.enrolled_faces import EnrolledFaces
from likeness.faceset.reference_faces import reference_faces_dir
from likeness.media.synthetic import astronaut
from tests.conftest import ConsentWorld, add_subject


@pytest.fixture
def mina_enrolled(consent_world: ConsentWorld) -> ConsentWorld:
    """mina (studio's, the astronaut) with her reference; a second agency, byeol."""
    report = enroll_reference_photos(consent_world.workspace, "mina", [consent_world.portrait_path("mina")])
    assert report.added == 1, report
    consent_world.workspace.registry.add_org("byeol", "Byeol Entertainment")
    return consent_world


def _another_photo_of_mina(folder: Path) -> Path:
    """Not the enrolled file: the astronaut cropped, scaled down and saved as JPEG."""
    rgb = astronaut()[20:400, 60:440]
    path = folder / "mina_from_a_fan_site.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(cv2.resize(rgb, (300, 300)), cv2.COLOR_RGB2BGR))
    return path


def test_mina_s_face_is_not_enrolled_under_another_agency_s_holder(mina_enrolled: ConsentWorld) -> None:
    world = mina_enrolled
    workspace, registry = world.workspace, world.workspace.registry
    jiwoo = add_subject(registry, "jiwoo", "Jiwoo", org="byeol")  # under a holder key byeol made
    photo = _another_photo_of_mina(world.tmp)
    ledger_before = workspace.ledger.count()

    with pytest.raises(FaceOfAnotherHolder) as refused:
        enroll_reference_photos(workspace, "jiwoo", [world.portrait_path("jun"), photo], org="byeol")

    error = refused.value
    assert (error.source, error.subject, error.matched, error.org) == (str(photo), "jiwoo", "mina", "studio")
    assert error.threshold == SINGLE_REFERENCE_THRESHOLD and error.distance <= error.threshold
    assert 0.5 <= error.similarity <= 1.0
    message = str(error)
    for part in (photo.name, "mina's", "'studio'", f"similarity {error.similarity:.2f}", f"{error.threshold:.2f}"):
        assert part in message
    # Nothing of either photo is written: no reference row, no ledger event, no picture.
    assert workspace.ledger.count() == ledger_before
    assert len(registry.reference_embeddings("jiwoo")) == 0
    assert not reference_faces_dir(workspace.home, jiwoo.id).exists()


def test_the_registry_refuses_the_face_to_a_direct_caller(mina_enrolled: ConsentWorld) -> None:
    """``Registry.add_reference_embedding`` is public Python API: called directly with mina's
    vector, it refuses too, and writes nothing."""
    workspace, registry = mina_enrolled.workspace, mina_enrolled.workspace.registry
    add_subject(registry, "jiwoo", "Jiwoo", org="byeol")
    (mina,) = registry.reference_embeddings("mina")
    ledger_before = workspace.ledger.count()
    with pytest.raises(FaceOfAnotherHolder) as refused:
        registry.add_reference_embedding("jiwoo", mina, source_name="mina.png", source_sha256="0" * 64, org="byeol")
    assert (refused.value.matched, refused.value.org) == ("mina", "studio")
    assert workspace.ledger.count() == ledger_before and len(registry.reference_embeddings("jiwoo")) == 0


def test_the_same_holder_s_second_subject_may_have_the_face(mina_enrolled: ConsentWorld) -> None:
    """The same person, twice (a solo act and a unit, say): one holder signs for both."""
    registry = mina_enrolled.workspace.registry
    add_subject(registry, "mina-solo", "Mina Solo", holder="mina-holder", org="studio")
    photo = _another_photo_of_mina(mina_enrolled.tmp)
    assert enroll_reference_photos(mina_enrolled.workspace, "mina-solo", [photo], org="studio").added == 1


def test_another_person_is_enrolled_under_another_agency_s_holder(mina_enrolled: ConsentWorld) -> None:
    registry = mina_enrolled.workspace.registry
    add_subject(registry, "jiwoo", "Jiwoo", org="byeol")
    report = enroll_reference_photos(
        mina_enrolled.workspace, "jiwoo", [mina_enrolled.portrait_path("jun")], org="byeol"
    )
    assert report.added == 1, report.skipped


def test_a_face_is_matched_at_its_subject_s_own_threshold() -> None:
    """One matrix product for every new face; each subject at the gallery's threshold for it,
    the closest subject within its own threshold is the match."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 128)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = np.zeros((4, 128), np.float32)
    spread[1, 0] = spread[2, 1] = spread[3, 2] = 0.3
    enrolled = EnrolledFaces.of(
        [("one", "a", centres[:1]), ("wide", "b", centres[1] + spread), ("far", "c", centres[2:])], cap=0.40
    )
    # wide: the mean of its references' pairwise distances, three of 0.3 and three of 0.3 * sqrt(2)
    assert enrolled.thresholds.tolist() == pytest.approx([0.38, 0.15 + 0.15 * np.sqrt(2), 0.38])
    step = np.zeros(128, np.float32)
    step[5] = 0.37
    matches = enrolled.closest_matches(np.stack([centres[0] + step, centres[0] + 1.1 * step, centres[1], -centres[2]]))
    assert [m.slug if m else None for m in matches] == ["one", None, "wide", None]
    assert matches[2] is not None and matches[2].similarity == 1.0


def test_a_face_enrolled_after_the_last_check_is_held_against_the_next(consent_world: ConsentWorld) -> None:
    """Whoever enrolled a face first holds it: here byeol's hana, so mina's own agency is
    refused and must take it up with byeol (docs/consent.md)."""
    workspace, registry = consent_world.workspace, consent_world.workspace.registry
    registry.add_org("byeol", "Byeol Entertainment")
    add_subject(registry, "jiwoo", "Jiwoo", org="byeol")
    add_subject(registry, "hana", "Hana", org="byeol")
    assert enroll_reference_photos(workspace, "jiwoo", [consent_world.portrait_path("jun")], org="byeol").added == 1
    assert enroll_reference_photos(workspace, "hana", [consent_world.portrait_path("mina")], org="byeol").added == 1
    with pytest.raises(FaceOfAnotherHolder) as refused:
        enroll_reference_photos(workspace, "mina", [_another_photo_of_mina(consent_world.tmp)])
    assert (refused.value.matched, refused.value.org) == ("hana", "byeol")


def test_the_matched_subject_is_named_as_the_ledger_enrolled_it(mina_enrolled: ConsentWorld) -> None:
    """A database editor renames mina's row: the refusal names her as her enrolment did."""
    workspace, registry = mina_enrolled.workspace, mina_enrolled.workspace.registry
    add_subject(registry, "jiwoo", "Jiwoo", org="byeol")
    with workspace.session() as session:
        session.execute(update(Subject).where(Subject.slug == "mina").values(slug="zzz", name="Zzz"))
        session.commit()
    with pytest.raises(FaceOfAnotherHolder) as refused:
        enroll_reference_photos(workspace, "jiwoo", [_another_photo_of_mina(mina_enrolled.tmp)], org="byeol")
    assert (refused.value.matched, refused.value.org) == ("mina", "studio")


def test_a_reference_row_no_sealed_event_binds_refuses_nothing(consent_world: ConsentWorld) -> None:
    """A database editor copies jiwoo's reference under jun without an event: the row binds
    nothing (recognition ignores it), so jiwoo's holder's second subject is still enrolled."""
    workspace, registry = consent_world.workspace, consent_world.workspace.registry
    registry.add_org("byeol", "Byeol Entertainment")
    add_subject(registry, "jiwoo", "Jiwoo", org="byeol")
    add_subject(registry, "jiwoo-solo", "Jiwoo Solo", holder="jiwoo-holder", org="byeol")
    photo = consent_world.portrait_path("mina")
    assert enroll_reference_photos(workspace, "jiwoo", [photo], org="byeol").added == 1
    (vector,) = registry.reference_embeddings("jiwoo")
    jun = registry.get_subject("jun").id
    with workspace.session() as session:
        copied = vector.astype("<f4").tobytes()
        stamp = "2026-12-08T00:00:00Z"
        session.add(
            ReferenceEmbedding(
                subject_id=jun, source_name="x.png", source_sha256="f" * 64, vector=copied, created_at=stamp
            )
        )
        session.commit()
    assert enroll_reference_photos(workspace, "jiwoo-solo", [photo], org="byeol").added == 1
