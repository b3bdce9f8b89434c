"""Reference enrollment: one face per photo, of the subject, stored as a 128-D embedding."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from likeness.digests import sha256_file
from likeness.faceset import enroll_reference_photos
from likeness.faceset.reference_faces import (
    REFERENCE_FACE_SIDE,
    load_reference_face,
    reference_faces_dir,
    save_reference_face,
)
from likeness.media import read_image, synthetic, write_image


def test_enrollment_keeps_single_face_photos_and_explains_the_rest(
    consent_world, tmp_path: Path, astronaut, grace_hopper
) -> None:
    ws = consent_world.workspace
    rng = np.random.default_rng(0)
    photos = {
        "front": write_image(tmp_path / "front.png", astronaut),
        "mirrored": write_image(tmp_path / "mirrored.jpg", np.ascontiguousarray(astronaut[:, ::-1])),
        "group": write_image(
            tmp_path / "group.png", synthetic.compose_group([astronaut, grace_hopper], size=(1024, 512))
        ),
        "noise": write_image(tmp_path / "noise.png", rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)),
        "someone_else": write_image(tmp_path / "someone_else.png", grace_hopper),
        "empty": tmp_path / "empty.jpg",
    }
    photos["empty"].write_bytes(b"")
    report = enroll_reference_photos(ws, "mina", list(photos.values()))
    assert report.added == 2 and report.ok
    reasons = {Path(p).stem: reason for p, reason in report.skipped}
    assert set(reasons) == {"group", "noise", "someone_else", "empty"}
    assert "2 faces found" in reasons["group"]
    assert reasons["noise"] == "no face found"
    assert "does not match mina" in reasons["someone_else"]
    assert reasons["empty"].startswith("empty file")
    references = ws.registry.reference_embeddings("mina")
    assert references.shape == (2, 128) and references.dtype == np.float32
    # each event sealed with the key of mina's owner, the workspace's organisation
    studio = ws.registry.get_org("studio")
    events = ws.ledger.find("subject.reference_added")
    assert [(e.payload["org_id"], e.payload["key_fingerprint"]) for e in events] == [
        (studio.id, studio.key_fingerprint)
    ] * 2
    assert all(e.payload["signature"] for e in events)

    again = enroll_reference_photos(ws, "mina", [photos["front"]])
    assert again.added == 0 and again.already_enrolled == [str(photos["front"])]
    assert ws.registry.reference_embeddings("mina").shape == (2, 128)

    # One upright picture per enrolled photo (for evidence pages), none for the skipped ones.
    folder = reference_faces_dir(ws.home, ws.registry.get_subject("mina").id)
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == sorted(f"{sha256_file(photos[name])}.png" for name in ("front", "mirrored"))
    picture = read_image(folder / kept[0])
    assert picture.shape == (REFERENCE_FACE_SIDE, REFERENCE_FACE_SIDE, 3) and picture.std() > 20


def test_reference_faces_round_trip_and_tolerate_damage(tmp_path: Path, astronaut) -> None:
    from likeness.faces import FaceDetector

    with FaceDetector(mode="image") as detector:
        landmarks = detector.detect(astronaut)[0].landmarks
    assert load_reference_face(tmp_path, "s1") is None  # nothing kept yet
    path = save_reference_face(tmp_path, "s1", "a" * 64, astronaut, landmarks)
    assert path == tmp_path / "references" / "s1" / f"{'a' * 64}.png"
    kept = load_reference_face(tmp_path, "s1")
    assert kept is not None and np.array_equal(kept, read_image(path))
    # The face fills the crop: its centre is skin, not the background of the full portrait.
    assert abs(float(kept[60:100, 60:100].mean()) - float(astronaut.mean())) > 5
    (tmp_path / "references" / "s1" / f"{'0' * 64}.png").write_bytes(b"not a png")  # sorts first
    assert np.array_equal(load_reference_face(tmp_path, "s1"), kept)
    for bad in ("../s1", "", "a/b"):
        with pytest.raises(ValueError, match="subject id"):
            reference_faces_dir(tmp_path, bad)
        assert load_reference_face(tmp_path, bad) is None  # reading never raises
    with pytest.raises(ValueError, match="photo_sha256"):
        save_reference_face(tmp_path, "s1", "../x", astronaut, landmarks)


def test_a_video_is_a_reference_source_with_the_same_identity_filter(
    consent_world, tmp_path: Path, astronaut, grace_hopper
) -> None:
    ws = consent_world.workspace
    clip = synthetic.write_clip(tmp_path / "mina_turns.mp4", astronaut, seconds=2.0, size=(480, 360), with_audio=False)
    report = enroll_reference_photos(ws, "mina", [clip])
    assert report.added >= 3 and report.ok, report.skipped
    assert all(label.startswith(f"{clip} @ ") and label.endswith(" s") for label in report.enrolled)
    assert ws.registry.reference_embeddings("mina").shape == (report.added, 128)
    # Enrolling the same clip again finds the same frames; someone else's clip is refused frame by frame.
    again = enroll_reference_photos(ws, "mina", [clip])
    assert again.added == 0 and len(again.already_enrolled) == report.added
    other = synthetic.write_clip(
        tmp_path / "someone_else.mp4", grace_hopper, seconds=1.0, size=(480, 360), with_audio=False
    )
    refused = enroll_reference_photos(ws, "mina", [other])
    assert refused.added == 0 and refused.skipped
    assert all("does not match mina" in reason for _, reason in refused.skipped)


def test_a_phone_clip_stored_upside_down_is_enrolled_upright(consent_world, tmp_path: Path, astronaut) -> None:
    """Pixels stored turned 180 degrees with a display matrix that turns them back: the sampled
    frames were read as stored, upside down, and nothing was enrolled."""
    from likeness.media import VideoEncoder

    phone = tmp_path / "mina_phone.mp4"
    with VideoEncoder(phone, width=480, height=360, fps=25, rotation=180) as encoder:
        for upright in synthetic.animate_portrait(astronaut, n_frames=50, size=(480, 360), seed=2):
            encoder.write(np.ascontiguousarray(np.rot90(upright, 2)))
    report = enroll_reference_photos(consent_world.workspace, "mina", [phone])
    assert report.added >= 1 and report.ok, report.skipped


def test_a_clip_named_as_a_photo_is_enrolled_as_the_clip_it_is(consent_world, tmp_path: Path, astronaut) -> None:
    clip = synthetic.write_clip(tmp_path / "mina_turns.mp4", astronaut, seconds=1.0, size=(480, 360), with_audio=False)
    misnamed = clip.rename(tmp_path / "mina_turns.png")
    report = enroll_reference_photos(consent_world.workspace, "mina", [misnamed])
    assert report.added >= 2 and not report.skipped, report.skipped
    assert all(label.startswith(f"{misnamed} @ ") for label in report.enrolled)


def test_a_fifo_named_as_a_photo_is_skipped_not_waited_on(consent_world, tmp_path: Path) -> None:
    """Reading a kind by content opened the file: a FIFO with no writer blocked the command
    for ever. It is skipped as not a regular file."""
    import threading

    fifo = tmp_path / "mina.png"
    os.mkfifo(fifo)
    reports: list = []
    worker = threading.Thread(
        target=lambda: reports.append(enroll_reference_photos(consent_world.workspace, "mina", [fifo])), daemon=True
    )
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "enrolling a FIFO waited for a writer"
    assert reports[0].added == 0 and reports[0].skipped == [(str(fifo), "not a regular file")]


def test_an_animated_gif_is_sampled_like_a_clip(consent_world, tmp_path: Path, astronaut) -> None:
    """Enrolment read an animation's first frame only (a title card here: "no face found"),
    while verify and extract sample it; it is now sampled as a video is, each frame a photo."""
    from PIL import Image

    title = np.full((270, 360, 3), 40, np.uint8)
    moving = synthetic.animate_portrait(astronaut, n_frames=6, size=(360, 270))
    path = tmp_path / "mina_reaction.gif"
    pictures = [Image.fromarray(rgb) for rgb in (title, *moving)]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=500, loop=0)
    report = enroll_reference_photos(consent_world.workspace, "mina", [path])
    assert report.added >= 2 and report.ok, report.skipped
    assert all(label.startswith(f"{path} @ ") for label in report.enrolled)
    assert report.skipped == [(f"{path} @ 0.0 s", "no face found")]


def _head(rgb: np.ndarray) -> np.ndarray:
    """The face in ``rgb`` upright at one place and scale, so that two people cross-fade as one face."""
    import cv2

    from likeness import faces
    from likeness.faces.align import align_face

    found = faces.FaceDetector(max_faces=1).detect(rgb)[0]
    head = align_face(rgb, np.asarray(found.landmarks, np.float32), size=256, coverage="head").image
    return cv2.copyMakeBorder(head, 64, 64, 64, 64, cv2.BORDER_REPLICATE)


def test_a_clip_that_dissolves_into_another_person_enrols_only_the_first(
    consent_world, tmp_path: Path, astronaut, grace_hopper
) -> None:
    """Each frame of a clip was checked against every reference before it, its own clip's
    frames included, so a dissolve (eight frames from one person to another, 0.11-0.29 apart
    step by step) walked the references over to the second person, who was enrolled among the
    subject's first references (the astronaut and Grace Hopper are 0.68 apart, over the 0.6
    limit), and at 0.23 from the blends recognition would have called her the subject. A clip's
    frames are now held to the references enrolled before it, or, for a subject's first, to the
    clip's first enrolled frame at recognition's own threshold (0.40)."""
    from PIL import Image

    from likeness import faces
    from likeness.faces.identity import IDENTITY_THRESHOLD

    first, second = _head(astronaut), _head(grace_hopper)
    steps = [np.clip(first * (1 - k / 7) + second * (k / 7), 0, 255).astype(np.uint8) for k in range(8)]
    path = tmp_path / "mina_dissolve.gif"
    pictures = [Image.fromarray(rgb) for rgb in steps]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=500, loop=0)

    report = enroll_reference_photos(consent_world.workspace, "mina", [path])
    assert report.ok and report.enrolled[0] == f"{path} @ 0.0 s", report.skipped
    assert f"{path} @ 3.5 s" not in report.enrolled, report.enrolled  # the second person alone
    assert (f"{path} @ 3.5 s", "face does not match") in [(label, why[:19]) for label, why in report.skipped]
    references = np.asarray(consent_world.workspace.registry.reference_embeddings("mina"), np.float32)
    spread = np.linalg.norm(references - references[0], axis=1)
    assert spread.max() <= IDENTITY_THRESHOLD, spread
    # Nor does a reference lie where recognition would call the second person the subject:
    # the blends 71% of the way (0.60 from the first frame) were 0.23 from her.
    landmarks = np.asarray(faces.FaceDetector(max_faces=1).detect(second)[0].landmarks, np.float32)
    _distance, same = faces.match_identity(
        faces.FaceEmbedder().embed(second, landmarks), references, threshold=IDENTITY_THRESHOLD
    )
    assert not same, "verify would recognise the second person as the subject"


def test_photos_enrolled_one_by_one_cannot_walk_the_references_to_another_person(
    consent_world, tmp_path: Path, astronaut, grace_hopper
) -> None:
    """Each photo was matched against the nearest reference already enrolled (0.6), so photos
    handed in one at a time, each a step of a blend from the subject to someone else, walked
    the subject's references over to that person, however far she lay from the subject (the
    astronaut and Grace Hopper are 0.68 apart), and verify would then recognise her as the
    subject. Every reference must now lie within 0.6 of the subject's first, which bounds how
    far enrolment can wander from the face it was founded on (a blend within 0.6 still gets in:
    docs/security.md)."""
    from PIL import Image

    from likeness.faceset.enroll import REFERENCE_CONSISTENCY_THRESHOLD

    first, second = _head(astronaut), _head(grace_hopper)
    paths = []
    for k in range(8):
        step = np.clip(first * (1 - k / 7) + second * (k / 7), 0, 255).astype(np.uint8)
        paths.append(tmp_path / f"mina_{k}.png")
        Image.fromarray(step).save(paths[-1])

    reports = [enroll_reference_photos(consent_world.workspace, "mina", [path]) for path in paths]
    assert reports[0].added == 1, reports[0].skipped
    assert reports[-1].added == 0, "the second person herself was enrolled as the subject"
    assert reports[-1].skipped[0][1].startswith("face does not match mina's first reference photo"), reports[-1].skipped
    references = np.asarray(consent_world.workspace.registry.reference_embeddings("mina"), np.float32)
    assert np.linalg.norm(references - references[0], axis=1).max() <= REFERENCE_CONSISTENCY_THRESHOLD


def test_enrolment_refuses_a_subject_whose_first_reference_row_was_deleted(
    consent_world, tmp_path: Path, astronaut
) -> None:
    """A database editor who deleted the first reference row moved the anchor every later
    photo is held to onto the next oldest; enrolment now stops and names the subject."""
    from sqlalchemy import text

    from likeness.errors import FoundingReferenceMissing

    ws = consent_world.workspace
    front = write_image(tmp_path / "front.png", astronaut)
    mirrored = write_image(tmp_path / "mirrored.png", np.ascontiguousarray(astronaut[:, ::-1]))
    assert enroll_reference_photos(ws, "mina", [front, mirrored]).added == 2
    with ws.engine.begin() as conn:
        conn.execute(text("DELETE FROM reference_embeddings WHERE source_sha256 = :h"), {"h": sha256_file(front)})
    again = write_image(tmp_path / "again.jpg", astronaut)
    with pytest.raises(FoundingReferenceMissing, match="subject 'mina': its first reference"):
        enroll_reference_photos(ws, "mina", [again])


def test_two_enrolments_at_once_cannot_found_the_subject_on_two_people(
    consent_world, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The subject's first reference was read once, when an enrolment began, and held nothing
    until a reference was stored: two enrolments of a subject with none (two terminals, two
    uploads) each founded it on their own face, so the astronaut and Grace Hopper (0.68 apart)
    both became mina's references. Here the second enrolment runs while the first is between
    its check and its write; the first's photo is then held to the reference just stored."""
    import likeness.faceset.enroll as enroll_module

    workspace, keep = consent_world.workspace, enroll_module.write_reference_face
    others: list = []

    def another_enrolment_meanwhile(*args, **kwargs):
        monkeypatch.setattr(enroll_module, "write_reference_face", keep)
        others.append(enroll_reference_photos(workspace, "mina", [consent_world.portrait_path("jun")]))
        return keep(*args, **kwargs)

    monkeypatch.setattr(enroll_module, "write_reference_face", another_enrolment_meanwhile)
    report = enroll_reference_photos(workspace, "mina", [consent_world.portrait_path("mina")])
    assert others[0].added == 1, others[0].skipped
    assert report.added == 0, "the subject was founded on two people"
    assert report.skipped[0][1].startswith("face does not match mina's first reference photo"), report.skipped
    assert len(workspace.registry.reference_embeddings("mina")) == 1
