"""The content detector: NudeNet's model with our pre- and post-processing, checked against
NudeNet's own ``NudeDetector`` on the package portraits, and the box decoding on known arrays."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from likeness.errors import ModelError
from likeness.media.synthetic import grace_hopper
from likeness.render.content import ContentDetector, decode_detections, letterbox_blob


@pytest.fixture(scope="module")
def detectors():
    from nudenet import NudeDetector

    return ContentDetector(), NudeDetector()


def _portraits() -> dict[str, np.ndarray]:
    from skimage import data

    astronaut, hopper = data.astronaut(), grace_hopper()
    return {
        "astronaut": astronaut,
        "grace_hopper": hopper,
        "wide 1280x720": cv2.resize(astronaut, (1280, 720)),
        "tall 405x720": cv2.resize(hopper, (405, 720)),
        "odd 333x517": cv2.resize(hopper, (333, 517)),
    }


def _best_per_class(detections: list[dict]) -> dict[str, float]:
    best: dict[str, float] = {}
    for d in detections:
        best[d["class"]] = max(best.get(d["class"], 0.0), float(d["score"]))
    return best


@pytest.mark.parametrize("name", list(_portraits()))
def test_detections_match_nudenets_own_detector(detectors, name: str) -> None:
    ours, reference = detectors
    rgb = _portraits()[name]
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)  # NudeNet wants RGBA arrays
    got, expected = ours.detect(rgb), reference.detect(rgba)
    assert expected, "the reference finds the face in every portrait"
    got_best, expected_best = _best_per_class(got), _best_per_class(expected)
    assert set(got_best) == set(expected_best)
    for label, score in expected_best.items():
        assert got_best[label] == pytest.approx(score, abs=0.01), label
    top = max(expected, key=lambda d: d["score"])
    mine = max((d for d in got if d["class"] == top["class"]), key=lambda d: d["score"])
    assert np.abs(np.subtract(mine["box"], top["box"])).max() <= 0.02 * max(rgb.shape[:2]) + 2


def test_letterbox_scales_the_long_side_and_pads_black() -> None:
    rgb = np.full((90, 160, 3), 255, np.uint8)
    blob, side = letterbox_blob(rgb, 320)
    assert side == 160 and blob.shape == (1, 3, 320, 320) and blob.dtype == np.float32
    assert np.allclose(blob[0, :, :180, :], 1.0) and not blob[0, :, 180:, :].any()


def test_decoding_maps_boxes_to_the_frame_clips_them_and_suppresses_overlaps() -> None:
    labels = ("A_EXPOSED", "B_COVERED")
    columns = []

    def candidate(cx, cy, w, h, a, b):
        columns.append([cx, cy, w, h, a, b])

    candidate(100, 50, 40, 20, 0.9, 0.1)  # class A, box (80, 40, 40, 20) model px
    candidate(101, 50, 40, 20, 0.8, 0.1)  # same object, lower score: suppressed
    candidate(310, 10, 40, 40, 0.1, 0.6)  # class B, runs past the frame's right edge
    candidate(200, 200, 40, 40, 0.15, 0.1)  # below the candidate floor
    output = np.array(columns, np.float32).T  # the model's (4 + classes, candidates) layout
    found = decode_detections(
        output, labels, frame_size=(640, 360), scale=2.0, min_score=0.2, nms_score=0.25, nms_iou=0.45
    )
    by_class = {d["class"]: d for d in found}
    assert len(found) == 2 and set(by_class) == set(labels)
    assert by_class["A_EXPOSED"]["score"] == pytest.approx(0.9)
    assert by_class["A_EXPOSED"]["box"] == [160, 80, 80, 40]  # frame pixels: twice the model's
    # Clipped as NudeNet clips: the right edge trims the width; a top above the frame moves to 0.
    assert by_class["B_COVERED"]["box"] == [580, 0, 60, 80]
    assert (
        decode_detections(
            output[:, 3:], labels, frame_size=(640, 360), scale=2.0, min_score=0.2, nms_score=0.25, nms_iou=0.45
        )
        == []
    )
    with pytest.raises(ModelError, match="expected"):
        decode_detections(
            output[:5], labels, frame_size=(640, 360), scale=2.0, min_score=0.2, nms_score=0.25, nms_iou=0.45
        )
