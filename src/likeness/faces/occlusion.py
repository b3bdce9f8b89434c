"""Find what covers a face (glasses frames, hands, microphones, hair) in an aligned crop.

A swap must never paint over an occluder: the renderer multiplies its blend mask by one minus
this mask. The network is the product's own (``likeness.train.occlusion``; trained on synthetic
occluders over public-domain portraits) and ships in ``likeness/faces/weights`` with its card;
the file's SHA-256 is checked against the card on load.

Example::

    >>> from likeness.faces.detect import FaceDetector
    >>> from likeness.media.synthetic import astronaut
    >>> rgb = astronaut()
    >>> with FaceDetector(max_faces=1) as detector:
    ...     face = detector.detect(rgb)[0]
    >>> from likeness.faces.align import align_face
    >>> aligned = align_face(rgb, face.landmarks, size=64)
    >>> covered = OcclusionSegmenter().occluders(np.stack([aligned.image]))
    >>> covered.shape, float((covered >= 0.5).mean()) < 0.05   # nothing in front of this face
    ((1, 64, 64), True)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from likeness.assets import check_asset_file
from likeness.digests import sha256_file
from likeness.errors import FaceError, ModelError

WEIGHTS_DIR = Path(__file__).parent / "weights"
ONNX_FILE = "occlusion_mask.onnx"
CARD_FILE = "occlusion_mask.card.json"
#: The network's input side when its card names no ``sizes`` (weights before v2).
MASK_INPUT = 64


def load_card(folder: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """The occlusion mask's model card, after checking the ONNX file's SHA-256 against it."""
    card_path, onnx_path = folder / CARD_FILE, folder / ONNX_FILE
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{card_path}: unreadable occlusion-mask card ({exc})") from None
    if not isinstance(card, dict) or not isinstance(card.get("sha256"), str):
        raise ModelError(f"{card_path}: the card names no sha256")
    try:
        digest = sha256_file(onnx_path)
    except OSError as exc:
        raise ModelError(f"{onnx_path}: cannot be read ({exc})") from None
    if digest != card["sha256"]:
        raise ModelError(f"{onnx_path}: SHA-256 {digest[:16]}… does not match its card ({card['sha256'][:16]}…)")
    if folder == WEIGHTS_DIR:
        check_asset_file("occlusion-mask", onnx_path)  # the shipped weights are also in the asset table
    return card


class OcclusionSegmenter:
    """The shipped occlusion mask on ONNX Runtime (CPU, one thread unless told otherwise)."""

    def __init__(self, folder: Path = WEIGHTS_DIR, *, threads: int = 1) -> None:
        from likeness.train.swap_model import ort_session

        self.card = load_card(folder)
        self.session = ort_session(folder / ONNX_FILE, threads=threads)
        self.input_name = self.session.get_inputs()[0].name
        #: The sides it was trained at: a crop of one of them runs as it is (a thin rim of a
        #: 128 px crop is lost when shrunk to 64), others are resized to the nearest and back.
        self.sizes: tuple[int, ...] = tuple(int(s) for s in self.card.get("sizes", [MASK_INPUT]))

    def input_size(self, size: int) -> int:
        """The side a crop of ``size`` runs at: itself when trained, else the nearest trained."""
        return min(self.sizes, key=lambda trained: (abs(trained - size), -trained))

    def occluders(self, crops: np.ndarray) -> np.ndarray:
        """Occluder probability float32 ``(N, R, R)`` for uint8 RGB crops ``(N, R, R, 3)``."""
        crops = np.asarray(crops)
        if (
            crops.dtype != np.uint8
            or crops.ndim != 4
            or crops.shape[3] != 3
            or crops.shape[1] != crops.shape[2]
            or crops.shape[0] == 0
            or crops.shape[1] < 8
        ):
            raise FaceError(f"occluders: expected uint8 square RGB crops (N, R, R, 3), got {crops.dtype} {crops.shape}")
        size = crops.shape[1]
        side = self.input_size(size)
        small = (
            crops
            if size == side
            else np.stack([cv2.resize(c, (side, side), interpolation=cv2.INTER_AREA) for c in crops])
        )
        batch = small.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
        logits = self.session.run(None, {self.input_name: batch})[0][:, 0]
        probability = (1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))).astype(np.float32)
        if size == side:
            return probability
        return np.stack([cv2.resize(p, (size, size), interpolation=cv2.INTER_LINEAR) for p in probability])
