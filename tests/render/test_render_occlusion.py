"""The swap does not paint over what covers the performer's face (a hand, a microphone)."""

from __future__ import annotations

import numpy as np
import pytest

from likeness.faces.detect import FaceDetector
from likeness.faces.identity import FaceEmbedder
from likeness.faces.occluders import occlude
from likeness.media.synthetic import compose_group, grace_hopper
from likeness.render.frame import RefineOptions


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder()


class _SeenBefore:
    """The face as found before the occluder came in front of it, as a video's tracker carries
    it over the frames where a hand hides too much of the face for the detector."""

    def __init__(self, faces: list) -> None:
        self.faces = faces

    def detect(self, rgb: np.ndarray) -> list:
        return self.faces


def _frames(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, _SeenBefore]:
    """(the clear frame, the same frame with an occluder, the occluder's mask, a detector)."""
    frame = compose_group([grace_hopper()], size=(512, 512))
    faces = FaceDetector(mode="image").detect(frame)
    occluded, drawn = occlude(frame, faces[0].landmarks, np.random.default_rng(seed), kind=kind)
    return frame, occluded, drawn, _SeenBefore(faces)


def _render(world, embedder, clear: np.ndarray, occluded: np.ndarray, detector, *, occlusion: bool):
    """Render the clear frame, then the occluded one, as two frames of a clip: the track's
    identity is settled on the clear frame (a face half hidden by a hand embeds poorly)."""
    renderer = world.frame_renderer(detector, embedder, options=RefineOptions(occlusion=occlusion))
    renderer.process(clear, frame_index=0, t_s=0.0)
    out, outcomes = renderer.process(occluded, frame_index=1, t_s=0.04)
    assert [o.swapped for o in outcomes] == [True], "the occluded performer must still be swapped"
    return out, outcomes[0]


@pytest.mark.parametrize(("kind", "seed"), [("microphone", 1), ("hand", 4), ("glasses", 2)])
def test_an_occluder_in_front_of_the_face_is_not_painted_over(trained_world, embedder, kind: str, seed: int) -> None:
    clear, frame, drawn, detector = _frames(kind, seed)
    kept, outcome = _render(trained_world, embedder, clear, frame, detector, occlusion=True)
    painted, _ = _render(trained_world, embedder, clear, frame, detector, occlusion=False)
    x0, y0, x1, y1 = (int(v) for v in outcome.bbox)
    occluder = np.zeros(drawn.shape, bool)
    occluder[y0:y1, x0:x1] = drawn[y0:y1, x0:x1] >= 0.99
    assert occluder.sum() > 400

    def overwritten(out: np.ndarray) -> float:
        return float((np.abs(out.astype(int) - frame.astype(int)).max(axis=2)[occluder] > 8).mean())

    assert overwritten(painted) > 0.8  # without the mask the swap covers the occluder
    # Solid occluders stay whole; a glasses rim is 1-2 px of the 64 px crop the mask sees, so the
    # feathered edges of a rim four times that size in the frame are partly blended.
    assert overwritten(kept) < (0.3 if kind == "glasses" else 0.02)
    # The rest of the face is still swapped.
    face = np.zeros(drawn.shape, bool)
    face[y0:y1, x0:x1] = drawn[y0:y1, x0:x1] == 0
    assert (np.abs(kept.astype(int) - frame.astype(int)).max(axis=2)[face] > 8).mean() > 0.3
