"""Score aligned faces with a trained detector through ONNX Runtime, and aggregate over a track.

A detector folder holds ``detector.onnx`` and ``detector.card.json`` (``likeness.detector.train``).
The card's sha256 must match the ONNX bytes, or the model is refused.

Usage (no detector ships with the product yet, see docs/detector.md, so this needs a folder that
``likeness detector train`` wrote)::

    model = load_detector(Path("detector-general"))
    logits = model.logits(aligned_crops)          # (N,) float64
    model.probability(logits), model.flags(logits)
"""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from likeness import strict_json
from likeness.detector.calibration import sigmoid
from likeness.detector.train import CARD_FILE, DETECTOR_INPUT, MODEL_FILE, to_tensor_batch
from likeness.errors import ModelError


@dataclass(frozen=True)
class DetectorModel:
    """A loaded detector: its card (id, sha256, calibration) and an ONNX Runtime session."""

    card: dict[str, Any]
    session: Any

    @property
    def temperature(self) -> float:
        return float(self.card["calibration"]["temperature"])

    @property
    def threshold_logit(self) -> float:
        """Calibrated-logit threshold at the card's target false-positive rate on authentic faces."""
        return float(self.card["calibration"]["threshold_logit"])

    def logits(self, crops: np.ndarray | list[np.ndarray], *, batch: int = 32) -> np.ndarray:
        """Calibrated logits (raw logit / temperature) for uint8 RGB aligned crops ``(N, S, S, 3)``."""
        crops = list(crops)
        for crop in crops:
            if crop.dtype != np.uint8 or crop.shape != (DETECTOR_INPUT, DETECTOR_INPUT, 3):
                raise ModelError(
                    f"detector: expected uint8 ({DETECTOR_INPUT}, {DETECTOR_INPUT}, 3) aligned crops, "
                    f"got {crop.dtype} {crop.shape}"
                )
        if not crops:
            return np.zeros(0, np.float64)
        out = [
            self.session.run(None, {"face": to_tensor_batch(crops[k : k + batch])})[0][:, 0]
            for k in range(0, len(crops), batch)
        ]
        return np.concatenate(out).astype(np.float64) / self.temperature

    def probability(self, calibrated_logits: np.ndarray) -> np.ndarray:
        return sigmoid(calibrated_logits)

    def flags(self, calibrated_logits: np.ndarray) -> np.ndarray:
        return np.asarray(calibrated_logits) >= self.threshold_logit


def track_score(calibrated_logits: np.ndarray) -> float:
    """One score for a track (or an image's faces): the mean calibrated logit of its faces."""
    values = np.asarray(calibrated_logits, np.float64)
    if not len(values):
        raise ModelError("track_score: no faces")
    return float(values.mean())


#: The most bytes a detector's ONNX file or card may hold (the general model's ONNX is 9 MB): a
#: file is read whole, so a link to ``/dev/zero`` or a sparse file must not be.
MAX_DETECTOR_FILE_BYTES = 256 * 1024 * 1024


def read_detector_file(path: Path) -> bytes:
    """The bytes of a detector's ONNX file or card; ``ModelError`` naming ``path`` when it cannot
    be read, is not a regular file (a device, a FIFO, a link to one) or is over
    :data:`MAX_DETECTOR_FILE_BYTES`."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ModelError(f"{path}: not a regular file")
        if info.st_size > MAX_DETECTOR_FILE_BYTES:
            raise ModelError(
                f"{path}: {info.st_size} bytes, over the {MAX_DETECTOR_FILE_BYTES} a detector file may hold"
            )
        with open(path, "rb") as handle:
            payload = handle.read(MAX_DETECTOR_FILE_BYTES + 1)
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(payload) > MAX_DETECTOR_FILE_BYTES:  # grew while it was read
        raise ModelError(f"{path}: over the {MAX_DETECTOR_FILE_BYTES} bytes a detector file may hold")
    return payload


def load_detector(folder: Path, *, threads: int = 1) -> DetectorModel:
    """Load ``folder/detector.onnx`` after checking it against ``folder/detector.card.json``."""
    onnx_path, card_path = Path(folder) / MODEL_FILE, Path(folder) / CARD_FILE
    if not onnx_path.is_file() or not card_path.is_file():
        raise ModelError(f"{folder}: no detector here (expected {MODEL_FILE} and {CARD_FILE})")
    try:
        card = strict_json.loads(read_detector_file(card_path))
        expected = card["sha256"]
        card["calibration"]["temperature"], card["calibration"]["threshold_logit"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{card_path}: not a detector card ({type(exc).__name__}: {exc})") from None
    payload = read_detector_file(onnx_path)
    if hashlib.sha256(payload).hexdigest() != expected:
        raise ModelError(f"{onnx_path}: sha256 does not match its card")
    return DetectorModel(card, session_for(payload, threads=threads))


def session_for(onnx_bytes: bytes, *, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session for bytes already checked against a sha256."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own untyped errors on bad graphs
        raise ModelError(f"detector: ONNX Runtime cannot load it ({type(exc).__name__})") from None
