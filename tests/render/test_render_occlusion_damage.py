"""Occlusion damage in the render report (issue 26): the occluder pixels inside the performer's
face (what the shipped occlusion mask marks on the *input* frame) that the output changed.

A glasses frame, a hand or a microphone painted over must fail; the same occluder kept, with the
face around it swapped, must pass. Tested on a generated composite (the occluder drawn over a
package portrait, "painted over" by showing the face beneath it) and on real renders with the
renderer's occlusion mask on and off.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from likeness.faces.detect import FaceDetector
from likeness.faces.identity import FaceEmbedder
from likeness.faces.occluders import occlude
from likeness.media.synthetic import compose_group, grace_hopper
from likeness.render.frame import RefineOptions, occlusion_segmenter
from likeness.render.mask import landmark_hull
from likeness.render.pipeline import _QualityTracker, source_regions
from likeness.render.quality import OCCLUSION_DAMAGE, occluder_damage
from likeness.render.report import track_verdict_line, write_report
from likeness.render.track_quality import ShotQuality, measure_sample
from tests.render.conftest import video_report

KINDS = [("glasses", 3), ("hand", 4), ("microphone", 1)]


class _SeenBefore:
    """The face as found before the occluder came in front of it (a video's tracker carries it
    over the frames where a hand hides too much of the face for the detector)."""

    def __init__(self, faces: list) -> None:
        self.faces = faces

    def detect(self, rgb: np.ndarray) -> list:
        return self.faces


def _scene(kind: str, seed: int):
    """(clear frame, occluded frame, occluder's drawn mask, the face as detected on the clear frame)."""
    frame = compose_group([grace_hopper()], size=(512, 512))
    with FaceDetector(mode="image") as detector:
        face = detector.detect(frame)[0]
    occluded, drawn = occlude(frame, face.landmarks, np.random.default_rng(seed), kind=kind)
    return frame, occluded, drawn, face


def _crop_affine(face) -> np.ndarray:
    from likeness.faces.align import align_face

    return align_face(np.zeros((512, 512, 3), np.uint8), face.landmarks, size=64).affine


def _sample(occluded: np.ndarray, output: np.ndarray, face, frame_index: int = 0):
    """The report's sample of ``output`` against the input ``occluded`` (one 64 px crop, the
    shipped occlusion mask run on the input as the render does)."""
    affine = _crop_affine(face)
    crop = cv2.warpAffine(occluded, affine, (64, 64), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    in_crop = cv2.transform(face.landmarks[:, None, :].astype(np.float64), affine)[:, 0]
    occluder = occlusion_segmenter().occluders(crop[None], in_crop[None])[0]
    hull = landmark_hull(in_crop, size=64)
    mask = np.ones((64, 64), np.float32)
    return measure_sample(frame_index, occluded, (0, 0), output, affine, 64, mask, occluder, hull)


def _occlusion_line(*samples) -> dict:
    shot = ShotQuality(track_id=0)
    for sample in samples:
        shot.add_sample(sample)
    return shot.summary()["metrics"]["occlusion"]


@pytest.mark.parametrize(("kind", "seed"), KINDS)
def test_an_occluder_painted_over_fails_and_one_kept_passes(kind: str, seed: int) -> None:
    clear, occluded, drawn, face = _scene(kind, seed)
    # Painted over: the output shows the face where the occluder was (what a swap without the
    # occlusion mask does). Kept: the face around the occluder changed (a swap), the occluder not.
    swapped_face = (cv2.GaussianBlur(occluded, (0, 0), 3) // 2 + 60).astype(np.uint8)
    kept = np.where(drawn[..., None] > 0.01, occluded, swapped_face)
    erased, whole = _sample(occluded, clear, face), _sample(occluded, kept, face)
    # The segmenter found the occluder on the input (the same pixels for both outputs).
    assert erased.occluder_pixels > 1000 and whole.occluder_pixels == erased.occluder_pixels
    assert erased.occlusion_damage > OCCLUSION_DAMAGE.warn_at
    assert whole.occlusion_damage <= 0.05
    painted = _occlusion_line(erased)
    assert painted["verdict"] == "fail" and "of the occluder pixels" in painted["reason"], painted
    kept_line = _occlusion_line(whole)
    assert kept_line["verdict"] == "pass" and kept_line["value"] <= 0.05, kept_line


def test_one_frame_with_its_occluder_erased_is_not_a_pass_among_kept_ones() -> None:
    clear, occluded, drawn, face = _scene("hand", 4)
    kept = np.where(drawn[..., None] > 0.01, occluded, (occluded // 2 + 60).astype(np.uint8))
    samples = [_sample(occluded, kept, face, n) for n in range(11)] + [_sample(occluded, clear, face, 11)]
    line = _occlusion_line(*samples)
    assert line["value"] <= OCCLUSION_DAMAGE.pass_at  # pooled over twelve frames, one erased
    assert line["verdict"] == "warn" and line["worst_frame"]["frame_index"] == 11
    assert "frame 11: 100% of its occluder" in line["reason"]


def test_a_face_with_nothing_in_front_is_not_measured_never_a_pass() -> None:
    clear, _, _, face = _scene("hand", 4)
    sample = _sample(clear, (clear // 2).astype(np.uint8), face)
    assert sample.occluder_pixels == 0 and sample.occlusion_damage is None
    line = _occlusion_line(sample)
    assert line["verdict"] == "not_measured" and line["value"] is None and "found nothing" in line["reason"]
    # The measure itself: nothing but the occluder's pixels counts, and colour within tolerance is kept.
    before = np.full((16, 16, 3), 200, np.uint8)
    covered = np.zeros((16, 16), np.float32)
    covered[4:12, 4:12] = 1.0
    nearly = before.copy()
    nearly[4:12, 4:12] = 198  # CIEDE2000 about 0.7
    assert occluder_damage(before, nearly, covered, np.ones((16, 16))) == (64, 0)
    assert occluder_damage(before, before // 4, covered, np.ones((16, 16)), core_px=1) == (36, 36)


def _render_and_measure(world, kind: str, seed: int, *, occlusion: bool) -> dict:
    """A real render of two frames (clear, then occluded; the identity settles on the clear one)
    with the renderer's occlusion mask on or off, measured as the pipeline measures it."""
    clear, occluded, _, face = _scene(kind, seed)
    renderer = world.frame_renderer(_SeenBefore([face]), FaceEmbedder(), options=RefineOptions(occlusion=occlusion))
    quality = _QualityTracker(renderer, None, every=1, expression_every=1)
    try:
        for index, frame in enumerate((clear, occluded)):
            regions = source_regions(frame, [face])
            out, outcomes = renderer.process(frame, frame_index=index, t_s=index / 25)
            assert [o.swapped for o in outcomes] == [True]
            if index == 1:
                quality.observe(index, out, outcomes, regions)
    finally:
        quality.close()
    return quality.summaries()[0]


@pytest.mark.parametrize(("kind", "seed"), [("hand", 4), ("glasses", 3)])
def test_a_render_without_the_occlusion_mask_fails_and_with_it_passes(trained_world, kind: str, seed: int) -> None:
    painted = _render_and_measure(trained_world, kind, seed, occlusion=False)
    kept = _render_and_measure(trained_world, kind, seed, occlusion=True)
    assert painted["metrics"]["occlusion"]["verdict"] == "fail", painted["metrics"]["occlusion"]
    assert painted["verdict"] == "fail"
    assert kept["metrics"]["occlusion"]["verdict"] == "pass", kept["metrics"]["occlusion"]
    assert kept["metrics"]["occlusion"]["value"] < painted["metrics"]["occlusion"]["value"] / 5
    # The frame that shows it is among the report's before/after crops.
    assert any("occluder painted over" in f["why"] for f in painted["frames_shown"])


def test_the_report_shows_occlusion_damage_with_threshold_and_verdict(tmp_path) -> None:
    clear, occluded, _, face = _scene("microphone", 1)
    shot = ShotQuality(track_id=1)
    shot.add_sample(_sample(occluded, clear, face))
    report = video_report(tmp_path / "out.mp4", "0123456789abcdef0123456789abcdef")
    report.shots = [shot.summary()]
    write_report(report, tmp_path, "out", [], {1: shot.picked_frames()})
    line = json.loads((tmp_path / "out.render.json").read_text(encoding="utf-8"))["shots"][0]["metrics"]["occlusion"]
    assert line["verdict"] == "fail" and line["threshold"] == OCCLUSION_DAMAGE.pass_at
    assert line["tolerance_ciede2000"] == 5.0 and line["samples"] == 1
    page = (tmp_path / "out.render.html").read_text(encoding="utf-8")
    assert "occlusion damage: occluder pixels painted over" in page
    assert "≤ 10% changed by more than ΔE00 5 (warn ≤ 33%)" in page
    assert "most of the occluder painted over" in page and "occluder painted over 100%" in page
    assert "occlusion fail: the output changed 100% of the occluder pixels" in track_verdict_line(report.shots[0])
