"""Held-out quality metrics computed at every checkpoint.

* reconstruction DSSIM per identity (lower is better);
* identity transfer: share of swapped target faces whose embedding is closer to the source
  subject's references than to the performer's *and* within the calibrated match threshold;
* expression fidelity: Pearson correlation of eye and mouth openness measured by a landmark
  detector on the swapped faces against the same measures on the input target faces.

Embedders and landmark detectors are passed in (``Protocol``s of ``likeness.stages``), so tests can inject fakes and the
product uses ``likeness.faces.FaceEmbedder`` / ``FaceDetector``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from likeness.errors import LikenessError, ModelError
from likeness.stages import IdentityEmbedder, Landmarker


@dataclass(frozen=True)
class IdentityTransfer:
    """Per-face distances (N,) of swapped faces to the nearest source and target reference; the
    recognition rule and the reasons for failing are derived from them here, in one place."""

    distance_to_source: np.ndarray
    distance_to_target: np.ndarray
    threshold: float

    @property
    def _nearer_source(self) -> np.ndarray:
        return self.distance_to_source < self.distance_to_target

    @property
    def share(self) -> float:
        """In [0, 1]: swapped faces nearer the source than the target *and* within the threshold."""
        return float(np.mean(self._nearer_source & (self.distance_to_source <= self.threshold)))

    # Why faces fail: still the performer, or not close enough to the source.
    @property
    def nearer_target(self) -> int:
        """Swapped faces at least as close to the target's references as to the source's."""
        return int(np.sum(~self._nearer_source))

    @property
    def median_distance_to_source(self) -> float:
        return float(np.median(self.distance_to_source))

    @property
    def worst_distance_to_source(self) -> float:
        return float(np.max(self.distance_to_source))


def embed_faces(
    embedder: IdentityEmbedder, images: np.ndarray, landmarks: np.ndarray, *, embed_size: int = 256
) -> np.ndarray:
    """float32 (N, 128) embeddings of uint8 (N,R,R,3) faces with landmarks (N,478,2) in R pixels.

    Small crops are upscaled to ``embed_size`` first: dlib cuts a 150 px chip and a 64 px face
    would otherwise be embedded from a blurry, too-small chip.
    """
    if images.ndim != 4 or images.dtype != np.uint8 or landmarks.shape[:1] != images.shape[:1]:
        raise ModelError(f"embed_faces: expected uint8 (N,R,R,3) and (N,478,2), got {images.shape}, {landmarks.shape}")
    out = []
    for rgb, points in zip(images, landmarks):
        size = rgb.shape[0]
        if size < embed_size:
            rgb = cv2.resize(rgb, (embed_size, embed_size), interpolation=cv2.INTER_CUBIC)
            points = points * (embed_size / size)
        out.append(np.asarray(embedder.embed(np.ascontiguousarray(rgb), points.astype(np.float32)), np.float32))
    return np.stack(out) if out else np.zeros((0, 128), np.float32)


def identity_transfer(
    swapped_embeddings: np.ndarray,
    source_references: np.ndarray,
    target_references: np.ndarray,
    *,
    threshold: float,
) -> IdentityTransfer:
    """Share of swapped faces closer to the source references than to the target's, within ``threshold``.

    Distances are to the nearest reference (euclidean). All inputs float (N|K, D).
    """
    if len(source_references) == 0 or len(target_references) == 0:
        raise ModelError("identity_transfer: need at least one source and one target reference embedding")
    if len(swapped_embeddings) == 0:
        raise ModelError("identity_transfer: no swapped faces to score")
    d_src = np.linalg.norm(swapped_embeddings[:, None, :] - source_references[None], axis=-1).min(axis=1)
    d_tgt = np.linalg.norm(swapped_embeddings[:, None, :] - target_references[None], axis=-1).min(axis=1)
    return IdentityTransfer(d_src, d_tgt, float(threshold))


def _pearson(a: Sequence[float], b: Sequence[float]) -> float | None:
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(x) < 3 or x.std() < 1e-9 or y.std() < 1e-9:
        return None
    return float(np.corrcoef(x, y)[0, 1])


@dataclass(frozen=True)
class ExpressionFidelity:
    """Correlations in [-1, 1] (``None`` if too few faces were found or nothing varied)."""

    eye_correlation: float | None
    mouth_correlation: float | None
    faces_measured: int


def expression_fidelity(
    swapped: np.ndarray,
    input_landmarks: np.ndarray,
    *,
    landmarker: Landmarker,
    eye_openness: Callable[[np.ndarray], float],
    mouth_openness: Callable[[np.ndarray], float],
    detect_size: int = 256,
) -> ExpressionFidelity:
    """Correlate eye/mouth openness of the swapped faces (uint8 (N,R,R,3)) with the inputs' landmarks (N,478,2)."""
    eyes_in, eyes_out, mouth_in, mouth_out = [], [], [], []
    for rgb, points in zip(swapped, input_landmarks):
        size = rgb.shape[0]
        big = cv2.resize(rgb, (detect_size, detect_size), interpolation=cv2.INTER_CUBIC) if size < detect_size else rgb
        found = landmarker(np.ascontiguousarray(big))
        if found is None:
            continue
        try:
            measured = (eye_openness(points), eye_openness(found), mouth_openness(points), mouth_openness(found))
        except LikenessError:  # degenerate landmarks on a poor swap: skip the face, not the metric
            continue
        eyes_in.append(measured[0])
        eyes_out.append(measured[1])
        mouth_in.append(measured[2])
        mouth_out.append(measured[3])
    return ExpressionFidelity(_pearson(eyes_in, eyes_out), _pearson(mouth_in, mouth_out), len(eyes_in))


def detector_landmarker(detector: object) -> Landmarker:
    """Adapt ``likeness.faces.FaceDetector`` (``.detect(rgb) -> [DetectedFace]``) to a :data:`Landmarker`."""

    def landmarks_of_main_face(rgb: np.ndarray) -> np.ndarray | None:
        faces = detector.detect(rgb)  # type: ignore[attr-defined]
        if not faces:
            return None
        best = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
        return np.asarray(best.landmarks, np.float32)

    return landmarks_of_main_face
