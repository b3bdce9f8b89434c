"""Identity embeddings and matching, and the IoU face tracker."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from likeness.errors import FaceError
from likeness.faces import (
    IDENTITY_THRESHOLD,
    FaceDetector,
    FaceEmbedder,
    FaceTracker,
    five_point_shape,
    identity_distance,
    match_identity,
)
from likeness.media.synthetic import grace_hopper


@pytest.fixture(scope="module")
def detector():
    with FaceDetector(max_faces=2) as face_detector:
        yield face_detector


@pytest.fixture(scope="module")
def embedder():
    return FaceEmbedder()


def embed_single(detector, embedder, rgb: np.ndarray) -> np.ndarray:
    faces = detector.detect(rgb)
    assert len(faces) == 1
    return embedder.embed(rgb, faces[0].landmarks)


def astronaut_variants() -> dict[str, np.ndarray]:
    portrait = skimage.data.astronaut()
    rotated = cv2.warpAffine(
        portrait,
        cv2.getRotationMatrix2D((225.0, 125.0), 20.0, 1.0),
        (512, 512),
        borderMode=cv2.BORDER_REFLECT,
    )
    resized = cv2.resize(portrait, (300, 300), interpolation=cv2.INTER_AREA)
    darker = np.clip(portrait.astype(np.float32) * 0.6, 0, 255).astype(np.uint8)
    brighter = np.clip(portrait.astype(np.float32) * 1.2 + 20, 0, 255).astype(np.uint8)
    return {"rotated": rotated, "resized": resized, "darker": darker, "brighter": brighter}


def test_embedding_shape_and_determinism(detector, embedder):
    portrait = skimage.data.astronaut()
    first = embed_single(detector, embedder, portrait)
    assert first.shape == (128,) and first.dtype == np.float32
    assert 0.5 < float(np.linalg.norm(first)) < 1.5
    assert identity_distance(first, embed_single(detector, embedder, portrait)) < 1e-5


@pytest.mark.parametrize("variant", ["rotated", "resized", "darker", "brighter"])
def test_astronaut_matches_transformed_self(detector, embedder, variant):
    reference = embed_single(detector, embedder, skimage.data.astronaut())
    probe = embed_single(detector, embedder, astronaut_variants()[variant])
    distance, same = match_identity(probe, reference[None, :])
    assert same, distance
    assert distance < 0.6 * IDENTITY_THRESHOLD


def test_astronaut_does_not_match_grace_hopper(detector, embedder):
    astronaut = embed_single(detector, embedder, skimage.data.astronaut())
    hopper = embed_single(detector, embedder, grace_hopper())
    distance, same = match_identity(hopper, astronaut[None, :])
    assert not same
    assert distance > IDENTITY_THRESHOLD + 0.05
    assert identity_distance(astronaut, hopper) == pytest.approx(distance)


def test_embed_many_matches_single_embeddings(detector, embedder):
    left = skimage.data.astronaut()[:, :400]
    right = cv2.resize(grace_hopper(), (437, 512))
    group = np.ascontiguousarray(np.hstack([left, right]))
    faces = sorted(detector.detect(group), key=lambda f: f.bbox[0])
    batch = embedder.embed_many(group, [f.landmarks for f in faces])
    assert batch.shape == (2, 128)
    for row, face in zip(batch, faces):
        np.testing.assert_allclose(row, embedder.embed(group, face.landmarks), atol=1e-5)
    assert embedder.embed_many(group, []).shape == (0, 128)


def test_dlib_five_point_mode_agrees_with_mediapipe_mapping(detector):
    portrait = skimage.data.astronaut()
    landmarks = detector.detect(portrait)[0].landmarks
    mapped = FaceEmbedder().embed(portrait, landmarks)
    predicted = FaceEmbedder(shape="dlib5").embed(portrait, landmarks)
    assert identity_distance(mapped, predicted) < 0.15
    shape = five_point_shape(landmarks)
    # dlib order: image-right eye (outer, inner), image-left eye (outer, inner), nose base.
    assert shape[0, 0] > shape[1, 0] > shape[3, 0] > shape[2, 0]
    assert shape[4, 1] > shape[:4, 1].max()


def test_match_identity_methods_and_errors():
    rng = np.random.default_rng(2)
    probe = rng.normal(size=128).astype(np.float32)
    near = probe + 0.01
    references = np.stack([near, probe + 1.0, probe + 2.0])
    distance, same = match_identity(probe, references)
    assert same and distance == pytest.approx(np.linalg.norm(near - probe), rel=1e-6)
    mean_distance, mean_same = match_identity(probe, references, method="mean_of_k", k=2)
    assert mean_distance > distance and not mean_same
    assert match_identity(probe, references, threshold=0.0)[1] is False
    with pytest.raises(FaceError, match="references"):
        match_identity(probe, np.zeros((0, 128)))
    with pytest.raises(FaceError, match="embedding"):
        match_identity(np.zeros(64), references)
    with pytest.raises(FaceError, match="method"):
        match_identity(probe, references, method="median")


def test_tracker_keeps_ids_for_moving_boxes_and_gives_new_boxes_new_ids():
    tracker = FaceTracker(iou_threshold=0.3, max_missed=2)
    assert tracker.update([(0, 0, 100, 100), (300, 0, 400, 100)]) == [0, 1]
    # Both faces move a little; input order swapped; a third face appears.
    assert tracker.update([(310, 5, 410, 105), (500, 500, 560, 560), (10, 5, 110, 105)]) == [1, 2, 0]
    assert tracker.update([(20, 10, 120, 110)]) == [0]
    assert tracker.update([(30, 10, 130, 110)]) == [0]
    assert tracker.update([(30, 10, 130, 110)]) == [0]
    # Face 1 was missed three frames in a row (> max_missed): it comes back with a new id.
    assert tracker.update([(30, 10, 130, 110), (310, 5, 410, 105)]) == [0, 3]
    assert sorted(tracker.active_ids) == [0, 3]
    assert tracker.update([]) == []
    tracker.reset()
    assert tracker.update([(30, 10, 130, 110)]) == [4]


def test_tracker_matches_greedily_by_best_overlap():
    tracker = FaceTracker(iou_threshold=0.1)
    tracker.update([(0, 0, 100, 100)])
    # Two candidates overlap the track; the better overlap keeps the id.
    assert tracker.update([(40, 0, 140, 100), (5, 0, 105, 100)]) == [1, 0]
    with pytest.raises(FaceError, match="iou_threshold"):
        FaceTracker(iou_threshold=0.0)
