"""Identity embeddings: dlib's ResNet face descriptor (128-D), weights from face_recognition_models.

The descriptor needs dlib's 5-point layout (two corners per eye and the base of the nose); it is
built from MediaPipe landmarks, so no second landmark model runs. dlib then cuts its own aligned
150 px chip from the frame (``get_face_chip``, exactly what ``compute_face_descriptor`` does).
The network itself runs by default as an ONNX graph converted from dlib's own weight file
(``likeness.faces.dlib_resnet``; ~15x faster than dlib-bin, which has no BLAS), checked against
dlib at construction; dlib runs it when asked (``backend="dlib"``), when ``num_jitters > 0``, or
when the check fails (with a warning). Distances are euclidean; ``IDENTITY_THRESHOLD`` was
calibrated on synthetic East Asian and other synthetic faces (see docs/calibration.md and
benchmarks/identity_calibration.py) because dlib's customary 0.6 over-matches East Asian faces.

Example:
    >>> from likeness.faces.detect import FaceDetector
    >>> from likeness.media.synthetic import astronaut, grace_hopper
    >>> embedder = FaceEmbedder()
    >>> with FaceDetector(max_faces=1) as detector:
    ...     faces = [(rgb, detector.detect(rgb)[0].landmarks) for rgb in (astronaut(), grace_hopper())]
    >>> references = np.stack([embedder.embed(*faces[0])])   # one reference photo of the astronaut
    >>> distance, same = match_identity(embedder.embed(*faces[1]), references)
    >>> same, distance > IDENTITY_THRESHOLD
    (False, True)
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from likeness.assets import check_asset_file
from likeness.checks import check_rgb
from likeness.errors import FaceError, ModelError
from likeness.faces import dlib_resnet
from likeness.faces.align import check_landmarks
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

#: A subject with one reference has no spread to calibrate from: this threshold, below every
#: impostor pair of the calibration (the closest, East Asian, at 0.383; docs/calibration.md).
SINGLE_REFERENCE_THRESHOLD = 0.38
#: Lowest per-subject threshold: references that nearly coincide (one photo saved twice, a burst)
#: would otherwise reject the subject's own other photos.
SUBJECT_THRESHOLD_FLOOR = 0.30

# dlib 5-point order (checked against dlib's own 5-point predictor on a frontal face):
# image-right eye outer, image-right eye inner, image-left eye outer, image-left eye inner,
# base of the nose. MediaPipe names eyes by the subject's side, so the subject's left eye is the
# image-right one.
DLIB_FIVE_POINT_INDICES = (LEFT_EYE_OUTER, LEFT_EYE_INNER, RIGHT_EYE_OUTER, RIGHT_EYE_INNER, SUBNASALE)

MatchMethod = Literal["min", "mean_of_k"]
EmbedderBackend = Literal["onnx", "dlib"]

DESCRIPTOR_TOLERANCE = 1e-3
"""Largest per-component difference from dlib's descriptor accepted for the ONNX backend."""

# The check face: dlib 5-point layout of the astronaut portrait (scikit-image, public domain),
# measured once with FaceDetector + five_point_shape and rounded as dlib.point rounds.
_CHECK_FACE_BOX = (179, 70, 271, 177)
_CHECK_FACE_POINTS = ((256, 104), (237, 105), (195, 101), (213, 104), (223, 133))


class EmbedderFallbackWarning(RuntimeWarning):
    """The ONNX descriptor network could not be used or disagreed with dlib; dlib runs instead."""


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
    """dlib ResNet face descriptor. Construct once per worker (about 1 s: loading dlib's network,
    converting it to ONNX once per process, and checking the two agree).

    Args:
        num_jitters: dlib's test-time augmentation; 0 is fastest (each jitter costs a full pass).
            Jittering is dlib's own random augmentation, so ``num_jitters > 0`` always runs dlib.
        shape: ``"mediapipe"`` maps MediaPipe landmarks to dlib's 5 points; ``"dlib5"`` runs
            dlib's 5-point predictor inside the landmarks' box instead (the points the network
            was trained with; slower by about 1 ms per face).
        backend: ``"onnx"`` (default) runs the network converted from dlib's weight file through
            ONNX Runtime after checking, on a built-in face, that it gives dlib's descriptor within
            ``DESCRIPTOR_TOLERANCE``; if the check fails it warns once (``EmbedderFallbackWarning``)
            and runs dlib. ``"dlib"`` always runs dlib. ``self.backend`` says which one runs.
        intra_op_threads: ONNX Runtime threads per call (1 per worker process is right when
            several workers share the cores).

    Attributes:
        check_difference: largest per-component difference between the ONNX and dlib
            descriptors of the check face (``None`` when the ONNX backend was not tried).
    """

    #: Whether this process has already warned that dlib runs instead of the ONNX network
    #: (the warning is given once per process; a test that expects it sets this to False).
    fallback_warned: ClassVar[bool] = False

    def __init__(
        self,
        *,
        num_jitters: int = 0,
        shape: Literal["mediapipe", "dlib5"] = "mediapipe",
        backend: EmbedderBackend = "onnx",
        intra_op_threads: int = 1,
    ) -> None:
        if num_jitters < 0:
            raise FaceError(f"num_jitters must be >= 0, got {num_jitters}")
        if shape not in ("mediapipe", "dlib5"):
            raise FaceError(f"shape must be 'mediapipe' or 'dlib5', got {shape!r}")
        if backend not in ("onnx", "dlib"):
            raise FaceError(f"backend must be 'onnx' or 'dlib', got {backend!r}")
        if intra_op_threads < 1:
            raise FaceError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
        import dlib

        recognition_path, predictor_path = _model_paths()
        for path in (recognition_path, predictor_path):
            if not path.is_file():
                raise ModelError(f"{path}: dlib weights missing (reinstall face_recognition_models)")
        check_asset_file("dlib-resnet-v1", recognition_path)
        check_asset_file("dlib-5-point", predictor_path)
        self._dlib: Any = dlib
        self._recognizer: Any = None
        self._predictor: Any = dlib.shape_predictor(str(predictor_path)) if shape == "dlib5" else None
        self._session: dlib_resnet.DlibResnetSession | None = None
        self._closed = False
        self.num_jitters = int(num_jitters)
        self.shape = shape
        self.check_difference: float | None = None
        self.backend: EmbedderBackend = "dlib"
        if backend == "onnx" and self.num_jitters == 0:
            self._session = self._checked_session(recognition_path, int(intra_op_threads))
            self.backend = "onnx" if self._session is not None else "dlib"
        if self._session is None:  # dlib's own network runs; the ONNX one needs it only for the check
            self._recognizer = dlib.face_recognition_model_v1(str(recognition_path))

    def _checked_session(self, recognition_path: Path, intra_op_threads: int) -> dlib_resnet.DlibResnetSession | None:
        """The ONNX session if it reproduces dlib on the check face, else ``None`` (warned once)."""
        try:
            session = dlib_resnet.DlibResnetSession(
                dlib_resnet.converted_dlib_resnet(recognition_path), intra_op_threads=intra_op_threads
            )
            expected = _dlib_check_descriptor(str(recognition_path))
            produced = session.descriptors(check_chip()[None])[0].astype(np.float64)
        except (ModelError, FaceError) as exc:
            _warn_fallback(f"the ONNX descriptor network is unavailable ({exc}); running dlib instead")
            return None
        self.check_difference = float(np.abs(produced - expected).max())
        if not self.check_difference <= DESCRIPTOR_TOLERANCE:
            _warn_fallback(
                f"the ONNX descriptor network differs from dlib by {self.check_difference:.2e} "
                f"(> {DESCRIPTOR_TOLERANCE:g}) on the check face; running dlib instead"
            )
            return None
        return session

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

    def close(self) -> None:
        """Release the ONNX session and dlib's networks; further calls raise ``FaceError``."""
        if self._session is not None:
            self._session.close()
        self._session = self._recognizer = self._predictor = None
        self._closed = True

    def embed(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Descriptor ``float32 (128,)`` of the face with ``landmarks (478, 2)`` in ``rgb``."""
        return self.embed_many(rgb, [landmarks])[0]

    def embed_many(self, rgb: np.ndarray, landmarks: Sequence[np.ndarray]) -> np.ndarray:
        """Descriptors ``float32 (N, 128)`` of N faces of one frame (one batched network call)."""
        if self._closed:
            raise FaceError("embedder is closed")
        check_rgb(rgb, error=FaceError)
        if len(landmarks) == 0:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        frame = np.ascontiguousarray(rgb)
        shapes = self._dlib.full_object_detections()
        for face_landmarks in landmarks:
            shapes.append(self._full_object_detection(frame, face_landmarks))
        if self._session is not None:
            # The same chips compute_face_descriptor cuts (get_face_chip_details(shape, 150, 0.25)).
            chips = self._dlib.get_face_chips(
                frame, shapes, size=dlib_resnet.CHIP_SIZE, padding=dlib_resnet.CHIP_PADDING
            )
            return self._session.descriptors(np.stack([np.asarray(chip) for chip in chips]))
        descriptors = self._recognizer.compute_face_descriptor(frame, shapes, self.num_jitters)
        return np.array([np.asarray(d) for d in descriptors], dtype=np.float32).reshape(-1, EMBEDDING_SIZE)


@functools.cache
def _dlib_check_descriptor(recognition_path: str) -> np.ndarray:
    """dlib's descriptor of the check face with the weights at ``recognition_path`` (read-only).

    Computed once per process: the weights were checked against their pinned digest before
    (``check_asset_file``), so the answer cannot change, and loading dlib's network and running
    it took about 60 % of an embedder's start (a CLI verify, every worker job, each test)."""
    import dlib

    recognizer = dlib.face_recognition_model_v1(recognition_path)
    descriptor = np.asarray(recognizer.compute_face_descriptor(check_chip()), dtype=np.float64)
    descriptor.setflags(write=False)
    return descriptor


@functools.cache
def check_chip() -> np.ndarray:
    """The built-in check face: dlib's ``uint8 (150, 150, 3)`` chip of the astronaut portrait
    (read-only: one array per process)."""
    import dlib
    from skimage import data

    portrait = np.ascontiguousarray(data.astronaut())
    shape = dlib.full_object_detection(
        dlib.rectangle(*_CHECK_FACE_BOX), [dlib.point(x, y) for x, y in _CHECK_FACE_POINTS]
    )
    chip = dlib.get_face_chip(portrait, shape, size=dlib_resnet.CHIP_SIZE, padding=dlib_resnet.CHIP_PADDING)
    chip = np.ascontiguousarray(chip, dtype=np.uint8)
    chip.setflags(write=False)
    return chip


def _warn_fallback(message: str) -> None:
    if not FaceEmbedder.fallback_warned:
        FaceEmbedder.fallback_warned = True
        warnings.warn(message, EmbedderFallbackWarning, stacklevel=4)


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


def subject_threshold(references: np.ndarray, *, cap: float) -> float:
    """A subject's identity threshold from its own references ``(K, 128)``: the mean pairwise
    distance between them, within ``[SUBJECT_THRESHOLD_FLOOR, cap]``;
    ``min(cap, SINGLE_REFERENCE_THRESHOLD)`` for one reference.

    >>> refs = np.zeros((3, 128), np.float32); refs[1, 0] = refs[2, 1] = 0.35
    >>> round(subject_threshold(refs, cap=0.40), 3)   # pairwise 0.35, 0.35, 0.495
    0.398
    >>> subject_threshold(refs[:1], cap=0.40)
    0.38
    """
    rows = np.asarray(references, dtype=np.float64)
    if len(rows) < 2:
        return float(min(cap, SINGLE_REFERENCE_THRESHOLD))
    pairwise = np.linalg.norm(rows[:, None, :] - rows[None, :, :], axis=2)
    spread = float(pairwise[np.triu_indices(len(rows), 1)].mean())
    return float(np.clip(spread, min(SUBJECT_THRESHOLD_FLOOR, cap), cap))


def distance_to_similarity(distance: float, *, threshold: float) -> float:
    """Map an identity distance to a similarity in [0, 1]; 0.5 is exactly ``threshold``.

    >>> distance_to_similarity(0.0, threshold=0.5), distance_to_similarity(0.5, threshold=0.5)
    (1.0, 0.5)
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    return float(min(1.0, max(0.0, 1.0 - distance / (2.0 * threshold))))
