"""An int8 copy of an exported swap model, calibrated on the performer's faces and checked against it.

On a CPU the swap network is the largest cost of a render after decoding and encoding; static
int8 quantization (ONNX QDQ: uint8 activations, int8 weights, per tensor) ran full-width ``df``
64 px in 3.0 ms per face against 9.2 ms in float on an AVX-512 VNNI CPU. Rounding changes the
output, so the int8 model is kept only when its output stays within ``INT8_MIN_PSNR_DB`` of the
float model's on held-out faces of the performer. Renders on a CPU use it by default
(``--precision auto``; ``float`` forces the float model): rounding noise that is small in one face
(about 48 dB) made the swapped face change about a third more from frame to frame, which showed
as flicker, until the render's swap denoising (``likeness.render.smoothing.denoise_swap``) took
that back to within 0.002-0.013 of float on two clips (docs/render.md, run 15).

The calibration faces are the target faceset's: what the swap path sees at render time is the
performer's aligned face, so that is the range the activations must cover.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from likeness.errors import ModelError
from likeness.train.swap_model import INT8_ONNX_NAME, ONNX_INPUT, ONNX_OUTPUTS, ort_session

#: Lowest per-face PSNR (dB) of int8 against float outputs (swapped face and mask) on held-out
#: faces for the int8 model to be used: 40 dB is an RMS error of 1 % of the range, about 2.5 of
#: 255 levels, below what shows in a pasted, colour-matched face.
INT8_MIN_PSNR_DB = 40.0
#: Faces read from the faceset: half calibrate, the other half check.
INT8_MAX_FACES = 64
QUANTIZATION = (
    "static QDQ: uint8 activations, int8 weights, per tensor, min-max calibration; "
    "each output's last convolution and what follows it in float"
)


@dataclass(frozen=True)
class Int8Check:
    """How an int8 model compares with its float original on held-out faces (one face per run,
    one thread, as a render runs it)."""

    calibration_faces: int
    check_faces: int
    psnr_db_median: float
    psnr_db_min: float
    ms_per_face_float: float
    ms_per_face_int8: float

    @property
    def passed(self) -> bool:
        return self.psnr_db_min >= INT8_MIN_PSNR_DB

    @property
    def faster(self) -> bool:
        return self.ms_per_face_int8 < self.ms_per_face_float

    def to_card(self, sha256: str | None) -> dict[str, Any]:
        return {
            "file": INT8_ONNX_NAME if sha256 else None,
            "sha256": sha256,
            "quantization": QUANTIZATION,
            **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()},
            "min_psnr_db_required": INT8_MIN_PSNR_DB,
            "passed": self.passed,
            "faster": self.faster,
        }


def describe_int8(entry: dict[str, Any] | None) -> str:
    """One line on a model card's ``int8`` entry, for people (CLI, demo)."""
    if entry is None:
        return "no int8 copy: the performer's faces were not at hand at export"
    if entry.get("reason"):
        return f"no int8 copy: {entry['reason']}"
    measured = (
        f"{entry['psnr_db_min']:.1f} dB worst (median {entry['psnr_db_median']:.1f}) against float on "
        f"{entry['check_faces']} held-out faces; {entry['ms_per_face_int8']:.1f} vs "
        f"{entry['ms_per_face_float']:.1f} ms per face"
    )
    if not entry.get("passed"):
        return f"no int8 copy: {measured}, below the {entry['min_psnr_db_required']:.0f} dB needed"
    return f"int8 copy {entry['file']}: {measured}; renders on a CPU use it (--precision float: not)"


def split_calibration(count: int, *, max_faces: int = INT8_MAX_FACES) -> tuple[np.ndarray, np.ndarray]:
    """(calibration indices, check indices): up to ``max_faces`` spread over ``count``, alternating."""
    picks = np.unique(np.linspace(0, count - 1, min(count, max_faces)).round().astype(np.int64))
    return picks[0::2], picks[1::2]


def output_psnr(reference: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Per-face PSNR (dB, peak 1) of ``other`` against ``reference``, the worse of face and mask."""
    worst: np.ndarray | None = None
    for ref, out in zip(reference, other):
        mse = np.mean((ref.astype(np.float64) - out.astype(np.float64)) ** 2, axis=(1, 2, 3))
        psnr = 10.0 * np.log10(1.0 / np.maximum(mse, 1e-12))
        worst = psnr if worst is None else np.minimum(worst, psnr)
    assert worst is not None  # two outputs (face, mask) were compared
    return worst


class _DropQuantizationAdvice(logging.Filter):
    """Drops onnxruntime.quantization's own info/warning records (it logs through the root logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from_quantizer = "onnxruntime" in record.pathname and "quantization" in record.pathname
        return not (from_quantizer and record.levelno < logging.ERROR)


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    # onnxruntime.quantization advises "pre-processing" through the root logger on every call.
    # Only its records are dropped: the root logger's level and everyone else's records are left
    # alone. A root logger without handlers gets a NullHandler meanwhile, so that its
    # ``logging.warning`` does not install a stderr handler (basicConfig) for the whole process.
    root = logging.getLogger()
    quiet = _DropQuantizationAdvice()
    placeholder = logging.NullHandler() if not root.handlers else None
    root.addFilter(quiet)
    if placeholder is not None:
        root.addHandler(placeholder)
    try:
        yield
    finally:
        root.removeFilter(quiet)
        if placeholder is not None:
            root.removeHandler(placeholder)


class _FaceBatches:
    """onnxruntime's CalibrationDataReader protocol over faces float32 (N,3,R,R), 8 at a time."""

    def __init__(self, faces: np.ndarray) -> None:
        self._batches = iter(np.array_split(faces, max(1, -(-len(faces) // 8))))

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {ONNX_INPUT: np.ascontiguousarray(batch)}


def output_tail_nodes(model: Any) -> list[str]:
    """Names of the nodes from each graph output back to, and including, the last ``Conv`` before
    it (along first inputs): the layers that write the output pixels."""
    producers = {name: node for node in model.graph.node for name in node.output}
    tail: list[str] = []
    for output in model.graph.output:
        node = producers.get(output.name)
        while node is not None:
            tail.append(node.name)
            if node.op_type == "Conv" or not node.input:
                break
            node = producers.get(node.input[0])
    return tail


def quantize_swap_model(float_onnx: bytes, calibration: np.ndarray) -> bytes:
    """Static int8 (QDQ) model from the float ONNX bytes, activation ranges from ``calibration``;
    the output tails (``output_tail_nodes``) stay float."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if calibration.ndim != 4 or len(calibration) == 0:
        raise ModelError(f"int8 calibration needs faces (N, 3, R, R), got {calibration.shape}")
    with tempfile.TemporaryDirectory(prefix="likeness-int8-") as tmp:
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(float_onnx)
        try:
            float_tail = output_tail_nodes(onnx.load_from_string(float_onnx))
            with _quiet_root_logger():
                quantize_static(
                    str(source),
                    str(target),
                    _FaceBatches(calibration),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    per_channel=False,
                    calibrate_method=CalibrationMethod.MinMax,
                    nodes_to_exclude=float_tail,
                )
        except Exception as exc:  # onnxruntime's quantizer raises assorted non-Python-typed errors
            raise ModelError(f"int8 quantization failed ({str(exc)[:200]})") from None
        return target.read_bytes()


def _outputs_and_ms(session: Any, faces: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], float]:
    """Outputs for ``faces`` run one at a time, and the median milliseconds per face."""
    swapped, masks, times = [], [], []
    for face in faces:
        started = time.perf_counter()
        rgb, mask = session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: face[None]})
        times.append(time.perf_counter() - started)
        swapped.append(rgb)
        masks.append(mask)
    return (np.concatenate(swapped), np.concatenate(masks)), 1000.0 * statistics.median(times)


def check_int8(float_onnx: bytes, int8_onnx: bytes, faces: np.ndarray, *, calibration_faces: int) -> Int8Check:
    """Compare the two models on ``faces`` (held out from calibration)."""
    float_session = ort_session(float_onnx, threads=1)
    int8_session = ort_session(int8_onnx, threads=1)
    # One warm-up run each: the first call allocates.
    for session in (float_session, int8_session):
        session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: faces[:1]})
    want, ms_float = _outputs_and_ms(float_session, faces)
    got, ms_int8 = _outputs_and_ms(int8_session, faces)
    psnr = output_psnr(want, got)
    return Int8Check(
        calibration_faces=calibration_faces,
        check_faces=len(faces),
        psnr_db_median=float(np.median(psnr)),
        psnr_db_min=float(psnr.min()),
        ms_per_face_float=ms_float,
        ms_per_face_int8=ms_int8,
    )
