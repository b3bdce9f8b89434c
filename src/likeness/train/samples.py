"""Training faces: in-memory arrays (``FaceSamples``) or a lazily read faceset (``FacesetFaces``).

Both satisfy :class:`FaceSource`: a count, ``face(i) -> (aligned_face uint8 (S,S,3) RGB,
landmarks float32 (478,2) crop pixels)``, a content hash for the model card and the yaw range.
The training loop only ever asks for the faces of the current batch, so memory does not grow
with faceset size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from likeness.errors import FacesetError

LANDMARK_COUNT = 478


@runtime_checkable
class FaceSource(Protocol):
    """Anything the training loop can sample aligned faces from."""

    @property
    def count(self) -> int: ...

    @property
    def size(self) -> int: ...

    def face(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...

    def content_sha256(self) -> str: ...

    def yaw_range(self) -> list[float] | None: ...


@dataclass(frozen=True, eq=False)
class FaceSamples:
    """Aligned faces held in memory.

    ``images``: uint8 (N, S, S, 3) RGB aligned crops; ``landmarks``: float32 (N, 478, 2) in crop
    pixel coordinates ``(x, y)``; optional ``yaw``: float (N,) degrees.
    """

    images: np.ndarray
    landmarks: np.ndarray
    yaw: np.ndarray | None = None

    def __post_init__(self) -> None:
        images, landmarks = self.images, self.landmarks
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            got = f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}"
            raise FacesetError(f"FaceSamples.images: expected uint8 (N, S, S, 3) RGB, got {got}")
        n, h, w, _ = images.shape
        if h != w or n == 0:
            raise FacesetError(f"FaceSamples.images: expected at least one square crop, got {images.shape}")
        if not isinstance(landmarks, np.ndarray) or landmarks.shape != (n, LANDMARK_COUNT, 2):
            raise FacesetError(
                f"FaceSamples.landmarks: expected ({n}, {LANDMARK_COUNT}, 2), got {getattr(landmarks, 'shape', None)}"
            )
        if not np.all(np.isfinite(landmarks)):
            raise FacesetError("FaceSamples.landmarks: contains NaN or infinite values")
        object.__setattr__(self, "landmarks", landmarks.astype(np.float32, copy=False))

    @property
    def count(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def face(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[index], self.landmarks[index]

    def content_sha256(self) -> str:
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.images).tobytes())
        digest.update(np.ascontiguousarray(self.landmarks).tobytes())
        return digest.hexdigest()

    def yaw_range(self) -> list[float] | None:
        if self.yaw is None or len(self.yaw) == 0:
            return None
        return [float(np.min(self.yaw)), float(np.max(self.yaw))]

    def subset(self, indices: np.ndarray) -> FaceSamples:
        yaw = None if self.yaw is None else self.yaw[indices]
        return FaceSamples(self.images[indices], self.landmarks[indices], yaw)


class FacesetFaces:
    """A :class:`likeness.faceset.Faceset` seen as a :class:`FaceSource`; crops are read on demand.

    Each crop is checked against its SHA-256 in the index when read, so a faceset altered after
    extraction fails loudly with a :class:`FacesetError` naming the file.
    """

    def __init__(self, faceset: Any) -> None:
        if len(faceset) == 0:
            raise FacesetError(f"{faceset.path}: faceset has no faces to train on")
        self.faceset = faceset

    @property
    def count(self) -> int:
        return len(self.faceset)

    @property
    def size(self) -> int:
        return int(self.faceset.size)

    def face(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        record = self.faceset[index]
        return self.faceset.image(record), np.asarray(record.landmarks, dtype=np.float32)

    def content_sha256(self) -> str:
        return str(self.faceset.faceset_sha256)

    def yaw_range(self) -> list[float] | None:
        yaws = self.faceset.yaws() if hasattr(self.faceset, "yaws") else np.array([r.yaw for r in self.faceset])
        return [float(np.min(yaws)), float(np.max(yaws))] if len(yaws) else None

    @property
    def manifest(self) -> Any:
        return self.faceset.manifest


def faceset_samples(faceset: Any) -> FacesetFaces:
    """Adapt a loaded ``Faceset`` (``likeness.faceset.load_faceset``) for training."""
    return FacesetFaces(faceset)


def as_face_source(source: Any) -> FaceSource:
    """Accept ``FaceSamples``, ``FacesetFaces`` or a ``Faceset`` and return a :class:`FaceSource`."""
    if isinstance(source, (FaceSamples, FacesetFaces)):
        return source
    if hasattr(source, "records") and hasattr(source, "manifest") and hasattr(source, "image"):
        return FacesetFaces(source)
    raise FacesetError(f"expected FaceSamples or a Faceset to train on, got {type(source).__name__}")
