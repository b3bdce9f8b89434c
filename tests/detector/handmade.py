"""Hand-built detectors and generated real/fake media for the gate tests.

A "detector" here is an ONNX graph whose logit is one image statistic of the aligned crop's
centre: ``chroma`` (mean red minus green) or ``luma`` (mean grey). The fakes are portraits whose
inner face is tinted towards red *at constant luma*, so the chroma statistic genuinely separates
them and the luma statistic genuinely does not; face size and high-frequency energy (computed on
grey) barely move with the tint. Every unit (a folder of frames) gets its own random scale, shift,
brightness and blur, drawn the same way for real and fake, so the shortcut baselines see variation
unrelated to the label. The card's threshold is set like training sets it: on separate authentic
"calibration" frames, at 5 % false positives, whose files the card lists as training data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from likeness.detector.calibration import threshold_at_fpr
from likeness.detector.train import CARD_FILE, DETECTOR_INPUT, MODEL_FILE
from likeness.media.synthetic import astronaut, grace_hopper

#: Luma weights (ITU-R BT.601, OpenCV's RGB2GRAY): the tint keeps this sum unchanged.
LUMA = (0.299, 0.587, 0.114)
TINT = 24.0


def statistic_onnx(kind: str) -> bytes:
    """ONNX: float32 (N, 3, S, S) in [0, 1] -> (N, 1) = gain * (statistic over the centre - offset)."""
    import onnx
    from onnx import TensorProto, helper

    lo, hi = DETECTOR_INPUT * 3 // 8, DETECTOR_INPUT * 5 // 8
    weights = (1.0, -1.0, 0.0) if kind == "chroma" else LUMA
    gain, offset = (40.0, 0.03) if kind == "chroma" else (10.0, 0.45)
    consts = [
        helper.make_tensor("starts", TensorProto.INT64, [2], [lo, lo]),
        helper.make_tensor("ends", TensorProto.INT64, [2], [hi, hi]),
        helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3]),
        helper.make_tensor("weights", TensorProto.FLOAT, [1, 3, 1, 1], list(weights)),
        helper.make_tensor("offset", TensorProto.FLOAT, [], [offset]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [gain]),
        helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
        helper.make_tensor("sum_axes", TensorProto.INT64, [1], [1]),
    ]
    nodes = [
        helper.make_node("Slice", ["face", "starts", "ends", "axes"], ["centre"]),
        helper.make_node("Mul", ["centre", "weights"], ["weighted"]),
        helper.make_node("ReduceMean", ["weighted"], ["per_channel"], axes=[2, 3], keepdims=0),
        helper.make_node("ReduceSum", ["per_channel", "sum_axes"], ["value"], keepdims=0),
        helper.make_node("Sub", ["value", "offset"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["scaled"]),
        helper.make_node("Reshape", ["scaled", "shape"], ["manipulated_logit"]),
    ]
    graph = helper.make_graph(
        nodes,
        f"{kind}-statistic",
        [helper.make_tensor_value_info("face", TensorProto.FLOAT, ["n", 3, DETECTOR_INPUT, DETECTOR_INPUT])],
        [helper.make_tensor_value_info("manipulated_logit", TensorProto.FLOAT, ["n", 1])],
        initializer=consts,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def face_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    from likeness.faces.detect import FaceDetector

    with FaceDetector(mode="image") as detector:
        face = detector.detect(rgb)[0]
    return tuple(int(v) for v in face.bbox)  # type: ignore[return-value]


def tint_face(rgb: np.ndarray, box: tuple[int, int, int, int], amount: float = TINT) -> np.ndarray:
    """Shift the inner face towards red at constant luma (a blended-in face with a colour cast)."""
    x0, y0, x1, y1 = box
    mask = np.zeros(rgb.shape[:2], np.float32)
    centre = ((x0 + x1) // 2, (y0 + y1) // 2)
    cv2.ellipse(mask, centre, (int((x1 - x0) * 0.42), int((y1 - y0) * 0.5)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 6)[..., None]
    shift = np.array([amount, -amount * LUMA[0] / LUMA[1], 0.0], np.float32)
    return np.clip(rgb.astype(np.float32) + mask * shift, 0, 255).round().astype(np.uint8)


def varied(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One unit's look: scale, shift, brightness, blur (drawn alike for real and fake units)."""
    h, w = rgb.shape[:2]
    scale = rng.uniform(0.8, 1.1)
    matrix = np.array([[scale, 0, rng.uniform(-20, 20) + (1 - scale) * w / 2], [0, scale, rng.uniform(-20, 20)]])
    out = cv2.warpAffine(rgb, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
    out = np.clip(out.astype(np.float32) * rng.uniform(0.85, 1.1), 0, 255).astype(np.uint8)
    sigma = rng.uniform(0.0, 1.5)
    return cv2.GaussianBlur(out, (0, 0), sigma) if sigma > 0.3 else out


def write_frames(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, rgb in enumerate(frames):
        cv2.imwrite(str(folder / f"frame{k}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder


@dataclass(frozen=True)
class GateMedia:
    """Folders of generated units: held-out real and fake, and calibration (training) frames."""

    real: list[Path]
    fake: list[Path]
    calibration: Path
    box: tuple[int, int, int, int]


def gate_media(
    root: Path, *, units: int = 5, frames: int = 2, seed: int = 11, portrait: np.ndarray | None = None
) -> GateMedia:
    """``units`` real and fake units of ``frames`` frames each of ``portrait`` (astronaut: the
    tests' ``mina``), and its calibration frames."""
    base = cv2.resize(astronaut() if portrait is None else portrait, (256, 256), interpolation=cv2.INTER_AREA)
    box = face_box(base)
    rng = np.random.default_rng(seed)
    real, fake = [], []
    for k in range(units):
        for label, out in ((0, real), (1, fake)):
            look = np.random.default_rng(rng.integers(1 << 31))
            shown = tint_face(base, box) if label else base
            pictures = [varied(shown, look) for _ in range(frames)]
            out.append(write_frames(root / f"{'fake' if label else 'real'}{k}", pictures))
    look = np.random.default_rng(seed + 1)
    calibration = write_frames(root / "calibration", [varied(base, look) for _ in range(24)])
    return GateMedia(real, fake, calibration, box)


def write_detector(
    folder: Path, kind: str, calibration: Path, *, target_fpr: float = 0.05, payload: bytes | None = None
) -> Path:
    """``detector.onnx`` + a card whose threshold is set on ``calibration``'s authentic faces.

    ``payload``: another ONNX graph computing the same statistic (``benchmarks/verify.py`` adds
    a full MobileNetV2 to it, to time a detector of the real one's size)."""
    from likeness.detector.evaluation import unit_faces
    from likeness.detector.score import session_for
    from likeness.detector.train import to_tensor_batch
    from likeness.faces.detect import FaceDetector

    folder.mkdir(parents=True, exist_ok=True)
    payload = payload if payload is not None else statistic_onnx(kind)
    (folder / MODEL_FILE).write_bytes(payload)
    with FaceDetector(mode="image") as detector:
        crops = unit_faces(detector, calibration).crops
    logits = session_for(payload).run(None, {"face": to_tensor_batch(crops)})[0][:, 0].astype(np.float64)
    threshold = threshold_at_fpr(logits, target_fpr)
    card = {
        "model": f"test.handmade-{kind}",
        "file": MODEL_FILE,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "calibration": {
            "temperature": 1.0,
            "threshold_logit": threshold,
            "threshold_probability": float(1 / (1 + np.exp(-threshold))),
            "target_false_positive_rate": target_fpr,
        },
        "training": {
            "files_sha256": sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in calibration.iterdir()),
        },
    }
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return folder


#: The look of ``enrol_as_units``'s reference frames (a seed whose frames enrolment accepts).
REFERENCE_SEED = 5


def enrol_as_units(workspace: Any, slug: str, folder: Path, *, portrait: np.ndarray | None = None) -> Any:
    """Enrol the workspace's subject ``slug`` with three frames of ``portrait`` (astronaut: the
    tests' ``mina``) varied as ``gate_media``'s units are (one full-size portrait alone gives a
    threshold the 256 px units sit at the edge of), and return it as an ``EvaluationSubject``:
    such units are then recognised as it at about half its threshold."""
    from likeness.detector.evaluation import evaluation_subject
    from likeness.faceset import enroll_reference_photos

    base = cv2.resize(astronaut() if portrait is None else portrait, (256, 256), interpolation=cv2.INTER_AREA)
    look = np.random.default_rng(REFERENCE_SEED)
    references = write_frames(folder, [varied(base, look) for _ in range(3)])
    report = enroll_reference_photos(workspace, slug, sorted(references.iterdir()))
    assert report.added >= 2, report
    return evaluation_subject(workspace, slug)


def evaluated_for_mina(workspace: Any, detector: Path, media: GateMedia, folder: Path) -> Path:
    """A copy of ``detector`` in ``folder``, evaluated on ``media`` for the workspace's ``mina``
    (enrolled by ``enrol_as_units`` beside whatever she has): the only kind of evaluation
    ``register`` accepts for her. Subject ids differ per workspace, so each test evaluates."""
    import shutil

    from likeness.detector.evaluation import evaluate_detector

    shutil.copytree(detector, folder)
    mina = enrol_as_units(workspace, "mina", folder.parent / f"{folder.name}-mina-references")
    assert evaluate_detector(folder, media.real, media.fake, subject=mina)["passed"]
    return folder


def write_portraits(folder: Path, count: int) -> list[Path]:
    """``count`` PNG portraits ``person00.png``... in a new ``folder``: the astronaut and Grace
    Hopper in turn, every other pair mirrored, each at its own brightness (distinct bytes)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    portraits = [astronaut(), grace_hopper()]
    paths = []
    for k in range(count):
        rgb = portraits[k % 2]
        if k // 2 % 2:
            rgb = rgb[:, ::-1]
        gain = rng.uniform(0.8, 1.2)
        rgb = np.clip(rgb.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        paths.append(folder / f"person{k:02d}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return paths
