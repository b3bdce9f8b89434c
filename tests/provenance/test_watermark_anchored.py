"""The anchored mark (``WatermarkEmbedder(anchored=True)``): drawn moved with the picture's
global translation, so an encoder's motion compensation carries the whole mark into P and B
frames and single frames of a camera pan read after a platform's re-encode."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from likeness.errors import ProvenanceError
from likeness.media.synthetic import astronaut, grace_hopper
from likeness.provenance import watermark as wm
from likeness.provenance.watermark import WatermarkEmbedder, extract_watermark, extract_watermark_frames
from tests.provenance.test_watermark import h264_with_types

PAYLOAD = bytes.fromhex("a11c4ed0b0a7f00d")
SIZE = (640, 360)  # (W, H)


def camera_pan(rgb: np.ndarray, *, n_frames: int, step: tuple[float, float] = (3.0, 1.2)) -> list[np.ndarray]:
    """A camera sweeping over ``rgb`` by ``step`` px a frame (x, y): the content moves the other way."""
    width, height = SIZE
    base = cv2.resize(rgb, (int(width * 1.5), int(height * 1.5)), interpolation=cv2.INTER_AREA)
    return [
        cv2.warpAffine(
            base,
            np.array([[1.0, 0.0, 10 + step[0] * t], [0.0, 1.0, 10 + step[1] * t]]),
            SIZE,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        )
        for t in range(n_frames)
    ]


def _marked(frames: list[np.ndarray], *, anchored: bool) -> list[np.ndarray]:
    embedder = WatermarkEmbedder(PAYLOAD, *SIZE, anchored=anchored)
    return [embedder.embed(rgb) for rgb in frames]


@pytest.mark.parametrize("picture", [astronaut, grace_hopper])
def test_mid_clip_p_and_b_frames_of_a_pan_read_alone_after_h264_crf30(picture) -> None:
    frames = camera_pan(picture(), n_frames=16)
    anchored = h264_with_types(_marked(frames, anchored=True), crf=30)
    fixed = h264_with_types(_marked(frames, anchored=False), crf=30)
    middle = range(6, 12)
    assert {anchored[i][1] for i in middle} >= {"P", "B"}
    # The fixed grid comes back moved with the picture plus a rounded-away residual: nothing reads.
    assert all(extract_watermark(fixed[i][0]).payload is None for i in middle)
    assert all(extract_watermark(anchored[i][0]).payload == PAYLOAD for i in middle)
    assert extract_watermark_frames([rgb for rgb, _ in anchored]).payload == PAYLOAD


def test_a_still_and_a_first_frame_are_marked_as_before() -> None:
    rng = np.random.default_rng(5)
    for width, height in [(640, 360), (854, 480), (301, 199)]:
        rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        fixed, anchored = (WatermarkEmbedder(PAYLOAD, width, height, anchored=a) for a in (False, True))
        assert np.array_equal(fixed.embed(rgb), anchored.embed(rgb))
        assert np.array_equal(
            WatermarkEmbedder(PAYLOAD, width, height).luma_offset(rgb),
            WatermarkEmbedder(PAYLOAD, width, height, anchored=True).luma_offset(rgb),
        )


def test_the_mark_moves_with_the_content_and_returns_to_the_grid_at_a_cut() -> None:
    frames = camera_pan(astronaut(), n_frames=6, step=(4.0, -2.0))
    embedder = WatermarkEmbedder(PAYLOAD, *SIZE, anchored=True)
    first = embedder.luma_offset(frames[0]).copy()
    for rgb in frames[1:]:
        embedder.luma_offset(rgb)
    assert embedder._anchor is not None
    assert np.allclose(embedder._anchor.shift, (-20.0, 10.0), atol=0.3)
    pattern_now = np.asarray(embedder._pattern)
    pattern_first = np.asarray(wm._frame_pattern(wm.watermark_tile(PAYLOAD), *SIZE, embedder.period))
    # Five frames of content moving by (-4, +2) px: the pattern is the first one moved by (-20, +10).
    assert np.allclose(pattern_now[10:-30, :-30], pattern_first[:-40, 20:-10], atol=1e-5)
    # A still shot keeps the mark where it is.
    still = WatermarkEmbedder(PAYLOAD, *SIZE, anchored=True)
    offsets = [still.luma_offset(frames[0]).copy() for _ in range(3)]
    assert all(np.array_equal(offsets[0], o) for o in offsets) and np.array_equal(offsets[0], first)
    # A cut to another picture: back to the fixed grid.
    embedder.luma_offset(grace_hopper_frame())
    assert np.array_equal(np.asarray(embedder._pattern), pattern_first)


@pytest.mark.parametrize("kind", ["rotation", "zoom"])
def test_rotation_and_zoom_leave_the_mark_on_the_grid(kind: str) -> None:
    # A turn of 1 degree or a zoom of 1 % a frame: no translation describes it to within a
    # fraction of a chip, and a turned mark would not read, so the mark stays where it is.
    width, height = SIZE
    base = cv2.resize(astronaut(), SIZE, interpolation=cv2.INTER_AREA)
    embedder = WatermarkEmbedder(PAYLOAD, *SIZE, anchored=True)
    grid = np.asarray(embedder._pattern).copy()
    for t in range(8):
        angle, scale = (1.0 * t, 1.2) if kind == "rotation" else (0.0, 1.2 + 0.01 * t)
        affine = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
        embedder.luma_offset(cv2.warpAffine(base, affine, SIZE, borderMode=cv2.BORDER_REFLECT))
        assert np.array_equal(np.asarray(embedder._pattern), grid), t


def grace_hopper_frame() -> np.ndarray:
    return cv2.resize(grace_hopper(), SIZE, interpolation=cv2.INTER_AREA)


def test_anchored_mark_keeps_the_rms_bound_and_checks_its_frames() -> None:
    frames = camera_pan(grace_hopper(), n_frames=8, step=(7.0, 2.5))
    embedder = WatermarkEmbedder(PAYLOAD, *SIZE, anchored=True)
    for rgb in frames:
        offset = embedder.embed(rgb).astype(np.float64) - rgb
        assert np.sqrt(np.mean(offset**2)) <= wm.MAX_MARK_RMS
    with pytest.raises(ProvenanceError, match="embedder was built for"):
        embedder.embed(np.zeros((200, 200, 3), np.uint8))
    # Flat and black frames: nothing to follow, no error.
    for value in (0, 0, 128):
        embedder.embed(np.full((SIZE[1], SIZE[0], 3), value, np.uint8))


def handheld_camera(rgb: np.ndarray, *, n_frames: int, seed: int) -> list[np.ndarray]:
    """A handheld camera over ``rgb``: the content sways (0.3-0.4 Hz, +-14 / +-8 px) and
    trembles (4-5 Hz, +-3 / +-2 px) with seeded phases, at 25 fps."""
    width, height = SIZE
    base = cv2.resize(rgb, (int(width * 1.3), int(height * 1.3)), interpolation=cv2.INTER_AREA)
    phases = np.random.default_rng(seed).uniform(0.0, 2.0 * np.pi, 4)
    frames = []
    for t in range(n_frames):
        seconds = t / 25.0
        dx = 40 + 14 * np.sin(2 * np.pi * 0.3 * seconds + phases[0]) + 3 * np.sin(2 * np.pi * 4 * seconds + phases[1])
        dy = 30 + 8 * np.sin(2 * np.pi * 0.4 * seconds + phases[2]) + 2 * np.sin(2 * np.pi * 5 * seconds + phases[3])
        shift = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
        frames.append(cv2.warpAffine(base, shift, SIZE, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
    return frames


@pytest.fixture(scope="module")
def shaking_half_size_copy() -> list[np.ndarray]:
    """A handheld anchored clip kept at 50 % (320x180) and re-encoded (H.264 CRF 28)."""
    frames = handheld_camera(astronaut(), n_frames=40, seed=1)
    embedder = WatermarkEmbedder(PAYLOAD, *SIZE, anchored=True)
    small = [cv2.resize(embedder.embed(rgb), (320, 180), interpolation=cv2.INTER_AREA) for rgb in frames]
    return [rgb for rgb, _ in h264_with_types(small, crf=28)]


def test_a_shaking_clip_kept_at_half_size_reads_whole_where_no_single_frame_does(
    shaking_half_size_copy: list[np.ndarray],
) -> None:
    """The anchored mark moves with the picture, so the host-cancelled first frame cancels it
    and the summed folds miss it; each frame's own phase, host-suppressed, adds up."""
    copy = shaking_half_size_copy
    assert all(extract_watermark(copy[i]).payload is None for i in (0, 10, 20, 30))
    reading = extract_watermark_frames(copy)
    assert reading.payload == PAYLOAD
    assert reading.period is not None and abs(reading.period - 64.0) < 1.0


def _counting_own_phase_folds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the host-suppressed folds (the own-phase aggregates') of the reads that follow."""
    calls: list[int] = []
    original = wm._fold_at_period
    monkeypatch.setattr(
        wm,
        "_fold_at_period",
        lambda *args, **kw: (calls.append(1) if "whiten" in kw else None) or original(*args, **kw),
    )
    return calls


def test_a_clip_an_earlier_path_reads_folds_nothing_for_the_own_phase_aggregates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The own-phase aggregates are read only where every earlier path found nothing, so the
    frames kept for them are folded only then: a panning clip whose summed folds read does no
    host-suppressed fold (it did 4 a frame when each frame was folded on arrival)."""
    frames = [rgb for rgb, _ in h264_with_types(_marked(camera_pan(astronaut(), n_frames=12), anchored=False), crf=23)]
    calls = _counting_own_phase_folds(monkeypatch)
    assert extract_watermark_frames(frames).payload == PAYLOAD
    assert calls == []


@pytest.mark.parametrize("picture", [astronaut, grace_hopper])
def test_an_unmarked_clip_folds_every_fourth_frame_for_the_own_phase_aggregates(
    picture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unmarked clips reach the own-phase aggregates (every earlier path found nothing) and
    their sampled frames show no mark, so the others are never folded (every frame was)."""
    frames = camera_pan(picture(), n_frames=40)
    calls = _counting_own_phase_folds(monkeypatch)
    reader = wm.ClipWatermarkReader()
    for rgb in frames:
        reader.add(rgb)
    assert reader.read().payload is None
    periods = reader._clip.periods
    assert periods is not None and len(periods) == wm._CLIP_PERIODS
    assert len(calls) == 10 * len(periods)  # frames 0, 4, ..., 36


def test_own_phase_aggregates_of_kept_frames_equal_those_folded_on_arrival(
    shaking_half_size_copy: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames kept (as uint8 work luma) until the clip is read give the own-phase aggregates,
    and so the reading, bit for bit, of frames folded as they arrive (no room to keep any):
    the clip's sampled frames show its mark, so every frame is folded."""
    calls = _counting_own_phase_folds(monkeypatch)
    kept = extract_watermark_frames(shaking_half_size_copy)
    assert len(calls) == len(shaking_half_size_copy) * wm._CLIP_PERIODS
    monkeypatch.setattr(wm, "_OWN_PHASE_KEPT_BYTES", 0)
    on_arrival = extract_watermark_frames(shaking_half_size_copy)
    assert len(calls) == 2 * len(shaking_half_size_copy) * wm._CLIP_PERIODS
    assert kept.payload == PAYLOAD
    assert on_arrival == kept


def test_black_frames_where_the_gate_samples_do_not_hide_the_mark_of_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A clip only the own-phase aggregates read, every 4th frame blacked out: the frames the
    gate samples first. Before, the sampled frames showed no mark, so the marked ones were never
    folded and the clip read as unlabelled, where folding every frame (the reader before the
    gate) reads it. A frame that cannot show a mark (no pilot peak in any aggregate) now hands
    the sample on to the next frame."""
    # (x264 does not encode twice alike here: of 20 encodes of this clip the sample by position
    # read none, this reader all 20)
    frames = handheld_camera(grace_hopper(), n_frames=40, seed=5)
    embedder = WatermarkEmbedder(PAYLOAD, *SIZE, anchored=True)
    small = [cv2.resize(embedder.embed(rgb), (320, 180), interpolation=cv2.INTER_AREA) for rgb in frames]
    blacked = [np.zeros_like(rgb) if index % wm._OWN_PHASE_SAMPLE == 0 else rgb for index, rgb in enumerate(small)]
    copy = [rgb for rgb, _ in h264_with_types(blacked, crf=28)]
    reading = extract_watermark_frames(copy)
    assert reading.payload == PAYLOAD
    monkeypatch.setattr(wm, "_OWN_PHASE_GATE_FRAMES", 10**9)  # every frame folded
    assert extract_watermark_frames(copy) == reading
