"""The eyes option: while the performer's eyes close, their own eyelids show through the swap
(so the output blinks); open eyes, narrow ones included, and stills are not touched."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from likeness.errors import FaceError, MediaError
from likeness.faces.canonical import (
    CANONICAL_POINTS,
    LEFT_EYE_INNER,
    LEFT_EYE_LIDS,
    LEFT_EYE_OUTER,
    POSE_INDICES,
    RIGHT_EYE_INNER,
    RIGHT_EYE_LIDS,
    RIGHT_EYE_OUTER,
)
from likeness.faces.detect import FaceDetector
from likeness.faces.identity import FaceEmbedder
from likeness.faces.pose import head_pose
from likeness.faces.quality import eye_openness_each
from likeness.media.synthetic import compose_group, grace_hopper
from likeness.render.frame import EYE_MIN_SAMPLES, EYE_WINDOW, FrameRenderer, RefineOptions, _TrackEyes
from likeness.render.mask import OPEN_EYE_FLOOR, closed_eye_mask, eye_closure, eye_closures, open_eye_levels

RIGHT_CENTRE, LEFT_CENTRE = (19, 30), (45, 30)  # (x, y) of each eye in _eye_landmarks


def _eye_landmarks(right_open: float, left_open: float) -> np.ndarray:
    """478 points with two 14 px wide eyes at y = 30 whose lid gaps are ``*_open`` x the width."""
    points = np.zeros((478, 2), np.float32)
    for (outer, inner), lids, (cx, cy), ratio in (
        ((RIGHT_EYE_OUTER, RIGHT_EYE_INNER), RIGHT_EYE_LIDS, RIGHT_CENTRE, right_open),
        ((LEFT_EYE_OUTER, LEFT_EYE_INNER), LEFT_EYE_LIDS, LEFT_CENTRE, left_open),
    ):
        points[outer], points[inner] = (cx - 7, cy), (cx + 7, cy)
        for n, (upper, lower) in enumerate(lids):
            x = cx - 3 + 3 * n
            points[upper], points[lower] = (x, cy - 7 * ratio), (x, cy + 7 * ratio)
    return points


def _at(mask: np.ndarray, xy: tuple[int, int]) -> float:
    return float(mask[xy[1], xy[0]])


def test_a_closed_eye_is_cut_out_and_an_open_one_is_not() -> None:
    # The right eye shut (5 % of its width), the left open at the performer's own level.
    mask = closed_eye_mask(_eye_landmarks(0.05, 0.3), size=64, open_levels=(0.3, 0.3))
    assert _at(mask, RIGHT_CENTRE) == pytest.approx(1.0)
    assert _at(mask, (RIGHT_CENTRE[0], RIGHT_CENTRE[1] - 4)) > 0.9  # the upper lid is the performer's too
    assert _at(mask, LEFT_CENTRE) == 0.0  # the open eye stays the swap's
    assert _at(mask, (32, 55)) == 0.0 and _at(mask, (32, 5)) == 0.0  # mouth and forehead untouched
    # Both eyes open: no mask at all, so the render is exactly as without the option.
    assert not closed_eye_mask(_eye_landmarks(0.3, 0.3), size=64, open_levels=(0.3, 0.3)).any()


def test_closure_is_relative_to_the_performers_own_open_level() -> None:
    # A narrow eye open at 0.17 (the narrowest open eye on the measured portraits) is untouched
    # against its own level; the same lids against a wide-eyed level of 0.4 count as closing.
    narrow = _eye_landmarks(0.17, 0.17)
    assert not closed_eye_mask(narrow, size=64, open_levels=(0.17, 0.17)).any()
    assert closed_eye_mask(narrow, size=64, open_levels=(0.4, 0.4)).max() > 0.3
    # Half way down the mask fades in, so a closing eye does not pop.
    assert eye_closure(0.3, 0.3) == 0.0 and eye_closure(0.05, 0.3) == 1.0
    assert 0.3 < eye_closure(0.105, 0.3) < 0.7


# (right, left) eye ratios and open levels of two frames of the consenting-actor clip as the
# benchmark renders it (720p H.264, docs/render.md): frame 67 in its third blink, both eyes shut
# on screen but the left read at 0.55 of its level; frame 54 looking down, both eyes open, the
# left narrowed to 0.49 of its level.
THIRD_BLINK = ((0.086, 0.104), (0.207, 0.188))
LOOKING_DOWN = ((0.217, 0.094), (0.206, 0.191))


def test_a_blink_read_weakly_in_one_eye_still_cuts_both_eyes() -> None:
    # A blink closes both eyes: the eye FaceMesh reads at 0.55 of its level borrows the
    # closure the pair shows. Read one eye at a time it kept the swap's open eye (weight 0).
    openness, levels = THIRD_BLINK
    right, left = eye_closures(openness, levels)
    assert left > 0.5 and right > 0.5
    mask = closed_eye_mask(
        _eye_landmarks(*(o / lv * 0.3 for o, lv in zip(openness, levels))), size=64, open_levels=(0.3, 0.3)
    )
    assert _at(mask, LEFT_CENTRE) > 0.5 and _at(mask, RIGHT_CENTRE) > 0.5


def test_one_eye_narrowed_while_the_other_stays_open_is_not_cut() -> None:
    # Looking down, the left eye read at 0.49 of its level while the right stayed at 1.05: an open
    # eye, which the one-eye ramp from 0.55 cut by a quarter. A wink (one eye shut) is still cut.
    openness, levels = LOOKING_DOWN
    assert eye_closures(openness, levels) == (0.0, 0.0)
    assert eye_closures((0.3, 0.05), (0.3, 0.3)) == (0.0, 1.0)


def test_measured_and_given_openness_agree() -> None:
    points = _eye_landmarks(0.05, 0.3)
    assert eye_openness_each(points) == pytest.approx((0.05, 0.3), abs=1e-3)
    given = closed_eye_mask(points, size=64, open_levels=(0.3, 0.3), openness=(0.05, 0.3))
    assert np.array_equal(given, closed_eye_mask(points, size=64, open_levels=(0.3, 0.3)))


def test_bad_landmarks_and_levels_are_typed_errors() -> None:
    with pytest.raises(FaceError, match="landmarks"):
        closed_eye_mask(np.zeros((10, 2), np.float32), size=64, open_levels=(0.3, 0.3))
    nan = _eye_landmarks(0.05, 0.3)
    nan[RIGHT_EYE_OUTER] = np.nan
    with pytest.raises(FaceError, match="NaN"):
        closed_eye_mask(nan, size=64, open_levels=(0.3, 0.3))
    with pytest.raises(FaceError, match="eye corners coincide"):
        closed_eye_mask(np.zeros((478, 2), np.float32), size=64, open_levels=(0.3, 0.3))
    with pytest.raises(FaceError, match="eye corners coincide"):
        closed_eye_mask(np.zeros((478, 2), np.float32), size=64, open_levels=(0.3, 0.3), openness=(0.0, 0.0))
    with pytest.raises(FaceError, match="open level"):
        closed_eye_mask(_eye_landmarks(0.05, 0.3), size=64, open_levels=(0.0, 0.3))
    with pytest.raises(FaceError, match="right, left"):
        closed_eye_mask(_eye_landmarks(0.05, 0.3), size=64, open_levels=(0.3,))  # type: ignore[arg-type]
    with pytest.raises(MediaError, match="closed_full"):
        eye_closure(0.1, 0.3, closed_from=0.3, closed_full=0.6)
    with pytest.raises(MediaError, match="size"):
        closed_eye_mask(_eye_landmarks(0.05, 0.3), size=0, open_levels=(0.3, 0.3))


def _close_eyes(face):
    """The detection with both upper lids moved down onto the lower ones: a blink."""
    points = np.array(face.landmarks, np.float32)
    for upper, lower in RIGHT_EYE_LIDS + LEFT_EYE_LIDS:
        points[upper] = points[lower] + 0.03 * (points[upper] - points[lower])
    return replace(face, landmarks=points)


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder()


@pytest.fixture(scope="module")
def performer():
    """A generated performer frame and its detections, open and with the eyes closed."""
    frame = compose_group([grace_hopper()], size=(512, 512))
    faces = FaceDetector(mode="image").detect(frame)
    assert len(faces) == 1
    return frame, faces, [_close_eyes(f) for f in faces]


def _renderer(world, embedder, *, eyes: bool) -> FrameRenderer:
    return world.frame_renderer(FaceDetector(mode="image"), embedder, options=RefineOptions(eyes=eyes))


def _blink(world, embedder, performer, *, eyes: bool):
    """Render EYE_MIN_SAMPLES open-eyed frames (the track's open level), then a closed-eye frame."""
    frame, open_faces, closed_faces = performer
    renderer = _renderer(world, embedder, eyes=eyes)
    opened = [renderer.process(frame, frame_index=i, t_s=i / 25, faces=open_faces)[0] for i in range(EYE_MIN_SAMPLES)]
    closed, outcomes = renderer.process(
        frame, frame_index=EYE_MIN_SAMPLES, t_s=EYE_MIN_SAMPLES / 25, faces=closed_faces
    )
    assert [o.swapped for o in outcomes] == [True]
    return opened, closed, outcomes[0]


def _eye_centres(outcome) -> list[tuple[int, int]]:
    points = outcome.landmarks
    centres = [
        (points[RIGHT_EYE_OUTER] + points[RIGHT_EYE_INNER]) / 2,
        (points[LEFT_EYE_OUTER] + points[LEFT_EYE_INNER]) / 2,
    ]
    return [(int(round(y)), int(round(x))) for x, y in centres]


def test_the_performers_closing_eyelids_show_through_the_swap(trained_world, embedder, performer) -> None:
    frame = performer[0]
    opened_on, kept, outcome = _blink(trained_world, embedder, performer, eyes=True)
    opened_off, painted, _ = _blink(trained_world, embedder, performer, eyes=False)
    for y, x in _eye_centres(outcome):
        inside = (slice(y - 2, y + 3), slice(x - 2, x + 3))
        # With the option the closed eye is the performer's own pixels; without it, the swap's.
        assert np.array_equal(kept[inside], frame[inside])
        assert not np.array_equal(painted[inside], frame[inside])
    # Open eyes render exactly as without the option: the swap's eyes (its identity) stay.
    assert all(np.array_equal(a, b) for a, b in zip(opened_on, opened_off))
    # On the blink frame the two renders differ only around the eyes.
    differs = np.abs(kept.astype(int) - painted.astype(int)).sum(axis=2) > 0
    rows, cols = np.nonzero(differs)
    x0, y0, x1, y1 = outcome.bbox
    eye_ys = [y for y, _ in _eye_centres(outcome)]
    height = y1 - y0
    assert rows.size and min(eye_ys) - 0.25 * height < rows.min() and rows.max() < max(eye_ys) + 0.2 * height
    assert (cols.max() - cols.min()) < 0.9 * (x1 - x0)


def test_a_still_with_closed_eyes_is_not_cut(trained_world, embedder, performer) -> None:
    # A lone frame has no open level to compare with: narrow open eyes look like closing ones.
    frame, _, closed_faces = performer
    with_option, outcomes = _renderer(trained_world, embedder, eyes=True).process(
        frame, frame_index=0, t_s=0.0, faces=closed_faces
    )
    without, _ = _renderer(trained_world, embedder, eyes=False).process(
        frame, frame_index=0, t_s=0.0, faces=closed_faces
    )
    assert outcomes[0].eye_open_levels is None
    assert np.array_equal(with_option, without)


def test_the_open_level_survives_a_checkpoint(trained_world, embedder, performer) -> None:
    frame, open_faces, closed_faces = performer
    renderer = _renderer(trained_world, embedder, eyes=True)
    for i in range(EYE_MIN_SAMPLES):
        renderer.process(frame, frame_index=i, t_s=i / 25, faces=open_faces)
    resumed = _renderer(trained_world, embedder, eyes=True)
    resumed.restore(renderer.state())
    _, outcomes = resumed.process(frame, frame_index=EYE_MIN_SAMPLES, t_s=EYE_MIN_SAMPLES / 25, faces=closed_faces)
    assert outcomes[0].eye_open_levels is not None
    assert outcomes[0].eye_open_levels == pytest.approx(eye_openness_each(open_faces[0].landmarks), rel=1e-6)


def test_eyes_closed_through_a_ballad_line_stay_the_performers(trained_world, embedder, performer) -> None:
    # Singers keep their eyes shut for seconds on stage. With the open level a running median,
    # 1.5 s of closed eyes dragged the level down to the closed lids and the swap painted open
    # eyes over them again: the level must stay the performer's open eyes through 4 s shut.
    frame, open_faces, closed_faces = performer
    renderer = _renderer(trained_world, embedder, eyes=True)
    for i in range(EYE_MIN_SAMPLES):
        renderer.process(frame, frame_index=i, t_s=i / 25, faces=open_faces)
    open_levels = eye_openness_each(open_faces[0].landmarks)
    closed_seconds = 4
    for i in range(EYE_MIN_SAMPLES, EYE_MIN_SAMPLES + 25 * closed_seconds):
        rendered, outcomes = renderer.process(frame, frame_index=i, t_s=i / 25, faces=closed_faces)
    assert outcomes[0].eye_open_levels == pytest.approx(open_levels, rel=1e-6)
    for y, x in _eye_centres(outcomes[0]):
        inside = (slice(y - 2, y + 3), slice(x - 2, x + 3))
        assert np.array_equal(rendered[inside], frame[inside])


def test_the_open_level_is_the_open_eyes_median_whatever_the_closed_share() -> None:
    rng = np.random.default_rng(6)
    opened = 0.26 + 0.01 * rng.standard_normal((60, 2))
    shut = 0.07 + 0.01 * rng.standard_normal((125, 2))  # 5 s at 25 fps
    median = tuple(np.median(opened, axis=0))
    # Open eyes, then shut for 5 s (longer than the open stretch): the level stays the open one.
    assert open_eye_levels(np.vstack([opened, shut])) == pytest.approx(median)
    # Narrow open frames (looking down, 0.65 of the level) count as open: the level does not rise.
    looking_down = np.vstack([opened, 0.17 + 0.0 * opened[:20]])
    assert open_eye_levels(looking_down) == pytest.approx(tuple(np.median(looking_down, axis=0)))
    with pytest.raises(FaceError, match="samples"):
        open_eye_levels(np.zeros((0, 2)))


def test_a_shot_that_opens_on_closed_eyes_still_shows_the_performers_lids(trained_world, embedder, performer) -> None:
    # A cut to a singer with the eyes already shut: the track's own samples are all closed, so
    # its level is the closed lids. No open eye measures under OPEN_EYE_FLOOR (the narrowest
    # measured portraits are at 0.16), so the level is at least that and the lids stay.
    frame, _, closed_faces = performer
    renderer = _renderer(trained_world, embedder, eyes=True)
    for i in range(2 * EYE_MIN_SAMPLES):
        rendered, outcomes = renderer.process(frame, frame_index=i, t_s=i / 25, faces=closed_faces)
    assert outcomes[0].eye_open_levels is not None and min(outcomes[0].eye_open_levels) >= OPEN_EYE_FLOOR
    for y, x in _eye_centres(outcomes[0]):
        inside = (slice(y - 2, y + 3), slice(x - 2, x + 3))
        assert np.array_equal(rendered[inside], frame[inside])


def test_a_render_resumed_mid_blink_continues_the_blink(trained_world, embedder, performer) -> None:
    # Checkpointed between two closed frames of a blink: the resumed renderer's next frame is
    # the uninterrupted one's, eye mask included, and the state is plain JSON.
    frame, open_faces, closed_faces = performer
    renderer = _renderer(trained_world, embedder, eyes=True)
    for i in range(EYE_MIN_SAMPLES):
        renderer.process(frame, frame_index=i, t_s=i / 25, faces=open_faces)
    renderer.process(frame, frame_index=EYE_MIN_SAMPLES, t_s=EYE_MIN_SAMPLES / 25, faces=closed_faces)
    resumed = _renderer(trained_world, embedder, eyes=True)
    resumed.restore(json.loads(json.dumps(renderer.state())))
    index = EYE_MIN_SAMPLES + 1
    expected, expected_outcomes = renderer.process(frame, frame_index=index, t_s=index / 25, faces=closed_faces)
    got, outcomes = resumed.process(frame, frame_index=index, t_s=index / 25, faces=closed_faces)
    assert outcomes[0].eye_open_levels == pytest.approx(expected_outcomes[0].eye_open_levels)
    assert np.array_equal(got, expected)


def _head_landmarks(yaw_deg: float, eye_ratio: float, *, size: int = 720) -> np.ndarray:
    """478 frame points of the canonical face turned ``yaw_deg`` about the vertical axis, its
    lid gaps ``eye_ratio`` x the eye width in 3D, seen by ``head_pose``'s pinhole camera (focal =
    frame width) with the eyes 150 px apart; points the pose and eye ratios do not use stay 0."""
    points3d = {int(i): np.array(CANONICAL_POINTS[int(i)]) for i in POSE_INDICES}
    for (outer, inner), lids in (
        ((RIGHT_EYE_OUTER, RIGHT_EYE_INNER), RIGHT_EYE_LIDS),
        ((LEFT_EYE_OUTER, LEFT_EYE_INNER), LEFT_EYE_LIDS),
    ):
        start, end = np.array(CANONICAL_POINTS[outer]), np.array(CANONICAL_POINTS[inner])
        gap = np.array([0.0, eye_ratio * float(np.linalg.norm(end - start)) / 2, 0.0])
        for n, (upper, lower) in enumerate(lids):
            on_line = start + (end - start) * (n + 1) / 4
            points3d[upper], points3d[lower] = on_line - gap, on_line + gap
    angle = np.radians(yaw_deg)
    turn = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    distance = size / 150  # canonical units: outer eye corners 1 apart
    points = np.zeros((478, 2), np.float32)
    for index, xyz in points3d.items():
        x, y, z = turn @ xyz + np.array([0.0, 0.0, distance])
        points[index] = (size / 2 + size * x / z, size / 2 + size * y / z)
    return points


def test_turned_faces_do_not_raise_the_open_level() -> None:
    # A 10 s window of one performer: frontal (|yaw| under 6 degrees) with open eyes (3D lid gap
    # 0.28 of the eye width), turned past 55 degrees for a third of it, where the foreshortened
    # corners make the same open eyes read about twice as wide, with two blinks in the frontal part.
    rng = np.random.default_rng(26)
    track = _TrackEyes()
    for i in range(EYE_WINDOW):
        turned = i % 3 == 0
        yaw = float(rng.uniform(55, 65) * rng.choice([-1, 1]) if turned else rng.uniform(-6, 6))
        ratio = 0.28 * (1 + 0.03 * rng.standard_normal())
        if not turned and i % 100 in (50, 51, 52):
            ratio = 0.04  # a blink
        points = _head_landmarks(yaw, ratio)
        levels = track.add(eye_openness_each(points), yaw=head_pose(points, (720, 720))[0])
    frontal = _head_landmarks(0.0, 0.28)
    assert abs(head_pose(frontal, (720, 720))[0]) < 1 and abs(head_pose(_head_landmarks(60, 0.28), (720, 720))[0]) > 55
    open_ratio = eye_openness_each(frontal)
    assert eye_openness_each(_head_landmarks(60, 0.28))[0] > 1.8 * open_ratio[0]  # why the level rose
    # The level stays the frontal open eyes', so a frontal open eye is not cut; a blink still is.
    assert levels == pytest.approx(open_ratio, rel=0.05)
    assert eye_closures(open_ratio, levels) == (0.0, 0.0)
    assert eye_closures(eye_openness_each(_head_landmarks(0.0, 0.04)), levels) == (1.0, 1.0)


def test_a_shot_turned_throughout_compares_turned_eyes_with_turned_eyes() -> None:
    # Too few frontal samples for a frontal level: the level is the turned eyes' own, so a turned
    # open eye is not cut and a turned blink is.
    rng = np.random.default_rng(27)
    track = _TrackEyes()
    for _ in range(2 * EYE_MIN_SAMPLES):
        points = _head_landmarks(float(rng.uniform(40, 50)), 0.28 * (1 + 0.03 * rng.standard_normal()))
        levels = track.add(eye_openness_each(points), yaw=head_pose(points, (720, 720))[0])
    assert levels is not None
    assert eye_closures(eye_openness_each(_head_landmarks(45.0, 0.28)), levels) == (0.0, 0.0)
    assert eye_closures(eye_openness_each(_head_landmarks(45.0, 0.04)), levels) == (1.0, 1.0)


def test_a_non_finite_sample_is_left_out_not_a_stopped_render() -> None:
    # One NaN yaw (or an edited checkpoint's inf) made open_eye_levels raise FaceError for the
    # next EYE_WINDOW frames of the track, and the render stopped.
    track = _TrackEyes([(0.28, 0.28, 0.0)] * EYE_MIN_SAMPLES + [(0.28, float("inf"), 0.0)])
    assert track.add((0.28, 0.28), yaw=float("nan")) == pytest.approx((0.28, 0.28))
    assert track.add((0.05, 0.05), yaw=0.0) == pytest.approx((0.28, 0.28))
    assert len(track.samples) == EYE_MIN_SAMPLES + 1
