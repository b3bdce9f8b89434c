"""Identity embeddings: dlib's ResNet face descriptor (128-D), weights from face_recognition_models.

The descriptor needs dlib's 5-point layout (two corners per eye and the base of the nose); it is
built from MediaPipe landmarks, so no second landmark model runs. dlib then cuts its own aligned
150 px chip from the frame. Distances are euclidean; ``IDENTITY_THRESHOLD`` was calibrated on
synthetic East Asian and other synthetic faces (see docs/calibration.md and
benchmarks/identity_calibration.py) because dlib's customary 0.6 over-matches East Asian faces.

Example:
    >>> embedder = FaceEmbedder()  # doctest: +SKIP
    >>> distance, same = match_identity(embedder.embed(rgb, landmarks), references)  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from likeness.errors import FaceError, ModelError
from likeness.faces.align import check_landmarks, check_rgb
from likeness.faces.canonical import (
    LEFT_EYE_INNER,
    LEFT_EYE_OUTER,
    RIGHT_EYE_INNER,
    RIGHT_EYE_OUTER,
    SUBNASALE,
)

EMBEDDING_SIZE = 128

IDENTITY_THRESHOLD = 0.40
"""Largest euclidean distance still accepted as the same person (calibrated; docs/calibration.md)."""

# dlib 5-point order (checked against dlib's own 5-point predictor on a frontal face):
# image-right eye outer, image-right eye inner, image-left eye outer, image-left eye inner,
# base of the nose. MediaPipe names eyes by the subject's side, so the subject's left eye is the
# image-right one.
DLIB_FIVE_POINT_INDICES = (LEFT_EYE_OUTER, LEFT_EYE_INNER, RIGHT_EYE_OUTER, RIGHT_EYE_INNER, SUBNASALE)

MatchMethod = Literal["min", "mean_of_k"]


def _model_paths() -> tuple[Path, Path]:
    """(ResNet descriptor, 5-point predictor) weight files shipped in face_recognition_models."""
    # The package imports the deprecated pkg_resources at import time; the warning is not ours.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import face_recognition_models

    return (
        Path(face_recognition_models.face_recognition_model_location()),
        Path(face_recognition_models.pose_predictor_five_point_model_location()),
    )


def five_point_shape(landmarks: np.ndarray) -> np.ndarray:
    """dlib 5-point layout ``float64 (5, 2)`` from 478 MediaPipe landmarks."""
    points = check_landmarks(landmarks)
    return points[list(DLIB_FIVE_POINT_INDICES)]


class FaceEmbedder:
    """dlib ResNet face descriptor. Construct once per worker (loading takes ~0.5 s).

    Args:
        num_jitters: dlib's test-time augmentation; 0 is fastest (each jitter costs a full pass).
        shape: ``"mediapipe"`` maps MediaPipe landmarks to dlib's 5 points; ``"dlib5"`` runs
            dlib's 5-point predictor inside the landmarks' box instead (the points the network
            was trained with; slower by about 1 ms per face).
    """

    def __init__(self, *, num_jitters: int = 0, shape: Literal["mediapipe", "dlib5"] = "mediapipe") -> None:
        if num_jitters < 0:
            raise FaceError(f"num_jitters must be >= 0, got {num_jitters}")
        if shape not in ("mediapipe", "dlib5"):
            raise FaceError(f"shape must be 'mediapipe' or 'dlib5', got {shape!r}")
        import dlib

        recognition_path, predictor_path = _model_paths()
        for path in (recognition_path, predictor_path):
            if not path.is_file():
                raise ModelError(f"{path}: dlib weights missing (reinstall face_recognition_models)")
        self._dlib: Any = dlib
        self._recognizer: Any = dlib.face_recognition_model_v1(str(recognition_path))
        self._predictor: Any = dlib.shape_predictor(str(predictor_path)) if shape == "dlib5" else None
        self.num_jitters = int(num_jitters)
        self.shape = shape

    def _full_object_detection(self, rgb: np.ndarray, landmarks: np.ndarray) -> Any:
        dlib = self._dlib
        points = check_landmarks(landmarks)
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        rect = dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))
        if self._predictor is not None:
            return self._predictor(rgb, rect)
        parts = [dlib.point(int(round(x)), int(round(y))) for x, y in five_point_shape(points)]
        return dlib.full_object_detection(rect, parts)

    def embed(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Descriptor ``float32 (128,)`` of the face with ``landmarks (478, 2)`` in ``rgb``."""
        return self.embed_many(rgb, [landmarks])[0]

    def embed_many(self, rgb: np.ndarray, landmarks: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors ``float32 (N, 128)`` of N faces of one frame (one batched dlib call)."""
        check_rgb(rgb)
        if len(landmarks) == 0:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        frame = np.ascontiguousarray(rgb)
        shapes = self._dlib.full_object_detections()
        for face_landmarks in landmarks:
            shapes.append(self._full_object_detection(frame, face_landmarks))
        descriptors = self._recognizer.compute_face_descriptor(frame, shapes, self.num_jitters)
        return np.array([np.asarray(d) for d in descriptors], dtype=np.float32).reshape(-1, EMBEDDING_SIZE)


def _check_embedding(embedding: np.ndarray, name: str) -> np.ndarray:
    vector = np.asarray(embedding, dtype=np.float64)
    if vector.shape != (EMBEDDING_SIZE,) or not np.isfinite(vector).all():
        raise FaceError(f"{name}: expected a finite ({EMBEDDING_SIZE},) embedding, got {vector.shape}")
    return vector


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two ``(128,)`` embeddings (0 = identical)."""
    return float(np.linalg.norm(_check_embedding(a, "a") - _check_embedding(b, "b")))


def match_identity(
    embedding: np.ndarray,
    references: np.ndarray,
    *,
    threshold: float = IDENTITY_THRESHOLD,
    method: MatchMethod = "min",
    k: int = 3,
) -> tuple[float, bool]:
    """Distance of ``embedding (128,)`` to a subject's ``references (K, 128)`` and the verdict.

    Args:
        method: ``"min"`` (nearest reference; the default, it separated genuine from impostor
            pairs best in the calibration) or ``"mean_of_k"`` (mean of the ``k`` nearest).

    Returns:
        ``(distance, distance <= threshold)``.
    """
    vector = _check_embedding(embedding, "embedding")
    refs = np.asarray(references, dtype=np.float64)
    if refs.ndim != 2 or refs.shape[1] != EMBEDDING_SIZE or refs.shape[0] == 0:
        raise FaceError(f"references: expected (K, {EMBEDDING_SIZE}) with K >= 1, got {refs.shape}")
    distances = np.sort(np.linalg.norm(refs - vector, axis=1))
    if method == "min":
        distance = float(distances[0])
    elif method == "mean_of_k":
        distance = float(distances[: max(1, k)].mean())
    else:
        raise FaceError(f"method must be 'min' or 'mean_of_k', got {method!r}")
    return distance, distance <= threshold
