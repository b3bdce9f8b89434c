"""The small interfaces pipeline stages share (``Protocol``s): one home for them.

A stage takes one of these, never a concrete class, so a new detector, embedder or content
model plugs in without touching its callers, and tests pass fakes. The product's own
implementations: ``likeness.faces.FaceDetector`` (:class:`LandmarkDetector`),
``likeness.faces.FaceEmbedder`` (:class:`IdentityEmbedder`),
``likeness.render.content.ContentDetector`` (:class:`FrameDetector`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np


class LandmarkDetector(Protocol):
    """Faces in one uint8 RGB frame: ``DetectedFace``-like objects with ``bbox``, ``score`` and
    ``landmarks`` float32 (478, 2) in frame pixels."""

    def detect(self, rgb: np.ndarray) -> list[Any]: ...


class IdentityEmbedder(Protocol):
    """Identity embedding float32 (128,) of the face at ``landmarks`` in uint8 RGB ``rgb``."""

    def embed(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray: ...


class FrameDetector(Protocol):
    """What ``check_content`` needs: NudeNet-style detections for one uint8 RGB frame."""

    def detect(self, rgb: np.ndarray) -> list[dict]: ...


#: ``rgb (H,W,3) uint8 -> landmarks float32 (478,2)`` of the main face, or ``None`` if none found.
Landmarker = Callable[[np.ndarray], "np.ndarray | None"]
