"""The mouth option: the performer's open inner mouth shows through the swap, a closed one
does not change the render, and the lips and the rest of the face stay swapped."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from likeness.errors import FaceError
from likeness.faces.canonical import INNER_LIP_LEFT, INNER_LIP_LOOP, INNER_LIP_LOWER, INNER_LIP_RIGHT, INNER_LIP_UPPER
from likeness.faces.detect import FaceDetector
from likeness.faces.identity import FaceEmbedder
from likeness.media.synthetic import compose_group, grace_hopper
from likeness.render.frame import RefineOptions
from likeness.render.mask import inner_mouth_mask

# The lower inner lip, which opening the mouth moves down.
LOWER_INNER_LIP = (324, 318, 402, 317, 14, 87, 178, 88, 95)


def _mouth_landmarks(gap: float, *, width: float = 20.0, centre=(32.0, 40.0)) -> np.ndarray:
    """478 points whose inner lips form an ellipse ``width`` wide with a gap of ``gap`` x width."""
    points = np.zeros((478, 2), np.float32)
    angles = np.linspace(np.pi, -np.pi, len(INNER_LIP_LOOP), endpoint=False)
    loop = np.stack([centre[0] + width / 2 * np.cos(angles), centre[1] + gap * width / 2 * np.sin(angles)], 1)
    points[list(INNER_LIP_LOOP)] = loop
    points[INNER_LIP_UPPER] = (centre[0], centre[1] - gap * width / 2)
    points[INNER_LIP_LOWER] = (centre[0], centre[1] + gap * width / 2)
    points[INNER_LIP_RIGHT], points[INNER_LIP_LEFT] = (
        (centre[0] - width / 2, centre[1]),
        (centre[0] + width / 2, centre[1]),
    )
    return points


def test_an_open_mouth_is_cut_out_and_a_closed_one_is_not() -> None:
    wide = inner_mouth_mask(_mouth_landmarks(0.4), size=64)
    assert wide[40, 32] == pytest.approx(1.0)
    assert wide[10, 10] == 0.0 and wide[40, 5] == 0.0  # forehead and cheek untouched
    # Closed lips (a gap of 2 % of the width) keep the swapped lips whole: no hole at all.
    assert not inner_mouth_mask(_mouth_landmarks(0.02), size=64).any()
    # Between the two the hole fades in with the opening, so a mouth that opens does not pop.
    half = inner_mouth_mask(_mouth_landmarks(0.07), size=64)
    assert 0.3 < half.max() < 0.7


def test_degenerate_mouth_landmarks_are_a_typed_error() -> None:
    with pytest.raises(FaceError, match="mouth corners coincide"):
        inner_mouth_mask(np.zeros((478, 2), np.float32), size=64)
    with pytest.raises(FaceError, match="landmarks"):
        inner_mouth_mask(np.zeros((10, 2), np.float32), size=64)


class _OpenMouthDetector:
    """The real detector, with the performer's lower inner lip moved down: an open mouth."""

    def __init__(self, opening: float) -> None:
        self.detector = FaceDetector(mode="image")
        self.opening = opening

    def detect(self, rgb: np.ndarray) -> list:
        faces = []
        for face in self.detector.detect(rgb):
            points = np.array(face.landmarks, np.float32)
            width = float(np.linalg.norm(points[INNER_LIP_LEFT] - points[INNER_LIP_RIGHT]))
            points[list(LOWER_INNER_LIP)] += (0.0, self.opening * width)
            faces.append(replace(face, landmarks=points))
        return faces


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder()


def _render(world, embedder, detector, *, mouth: bool) -> tuple[np.ndarray, np.ndarray, object]:
    frame = compose_group([grace_hopper()], size=(512, 512))
    renderer = world.frame_renderer(detector, embedder, options=RefineOptions(mouth=mouth))
    out, outcomes = renderer.process(frame, frame_index=0, t_s=0.0)
    assert [o.swapped for o in outcomes] == [True]
    return frame, out, outcomes[0]


def _mouth_centre(outcome) -> tuple[int, int]:
    points = outcome.landmarks
    x, y = (points[INNER_LIP_UPPER] + points[INNER_LIP_LOWER]) / 2
    return int(round(y)), int(round(x))


def test_the_performers_open_mouth_shows_through_the_swap(trained_world, embedder) -> None:
    detector = _OpenMouthDetector(opening=0.45)
    frame, kept, outcome = _render(trained_world, embedder, detector, mouth=True)
    _, painted, _ = _render(trained_world, embedder, detector, mouth=False)
    y, x = _mouth_centre(outcome)
    inside = (slice(y - 2, y + 3), slice(x - 2, x + 3))
    # With the option the inner mouth is the performer's own pixels; without it, the swap's.
    assert np.array_equal(kept[inside], frame[inside])
    assert not np.array_equal(painted[inside], frame[inside])
    # Everything else is still the swap: the two renders differ only around the mouth.
    differs = np.abs(kept.astype(int) - painted.astype(int)).sum(axis=2) > 0
    rows, cols = np.nonzero(differs)
    x0, y0, x1, y1 = outcome.bbox
    assert rows.size and (rows.max() - rows.min()) < 0.35 * (y1 - y0) and (cols.max() - cols.min()) < 0.6 * (x1 - x0)


def test_a_closed_mouth_renders_exactly_as_without_the_option(trained_world, embedder) -> None:
    detector = FaceDetector(mode="image")
    _, with_option, _ = _render(trained_world, embedder, detector, mouth=True)
    _, without, _ = _render(trained_world, embedder, detector, mouth=False)
    assert np.array_equal(with_option, without)
