"""Content policy check on target footage: explicit nudity is refused before any frame renders.

Uses ``nudenet``'s detector model (it ships inside the wheel; nothing is downloaded).
Refused classes (``PROHIBITED_CONTENT_CLASSES``) are exposed genitalia (female, male), exposed
female breasts, exposed buttocks and exposed anus: the classes that make footage sexually
explicit, which no grant can authorise (``sexual_content`` is a prohibited use). Exposed male
chests, bellies, armpits and feet are *not* refused: stage and dance footage shows them routinely.

The check has no switch: ``render_media`` always runs it, on every image of a folder and, for a
video, on the frames a :class:`ContentSampler` picks while the clip is decoded once at low
resolution: at least one frame per second (and at least ``samples`` frames over the clip), plus
the first frame after every cut and after any gradual change to new content, so a short scene
between two cuts is seen however short it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from likeness.errors import ConsentError, ModelError
from likeness.render.validation import require_rgb

PROHIBITED_CONTENT_CLASSES: frozenset[str] = frozenset(
    {
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "FEMALE_BREAST_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)
# NudeNet scores are class confidences of a YOLO head; 0.45 refuses clear detections while
# letting low-confidence false positives on skin-toned clothing through (measured on the
# package portraits and generated clips, which score below 0.3 on every prohibited class).
CONTENT_THRESHOLD = 0.45

# Video sampling (``ContentSampler``). A cut is a jump in the mean absolute difference of
# consecutive 32x18 grey thumbnails (0..255): slow head motion in the generated clips stays
# below 6, a cut between two portraits or to a flat colour measures 60-75. Gradual changes
# (dissolves, fades, pans to new content) are caught by the 4x4x4 colour histogram drifting
# from the last checked frame: half the L1 distance, 0..1; the moving portraits drift up to
# 0.28 within a clip, a different scene measures 0.5-1.0.
CONTENT_SAMPLES_PER_S = 1.0
SCENE_CUT_MAD = 24.0
SCENE_CHANGE_HISTOGRAM = 0.4
THUMBNAIL_SIZE = (32, 18)  # (W, H)


@dataclass(frozen=True)
class ContentCheck:
    """Outcome of a passed check: frames examined and the highest score per prohibited class."""

    frames_checked: int
    max_scores: dict[str, float] = field(default_factory=dict)


class FrameDetector(Protocol):
    """What ``check_content`` needs: NudeNet-style detections for one uint8 RGB frame."""

    def detect(self, rgb: np.ndarray) -> list[dict]: ...


class ContentDetector:
    """NudeNet's detector (the ``320n.onnx`` model inside the ``nudenet`` wheel) on uint8 RGB frames.

    The model, its 320 px letterboxed input, its class list and its box decoding are NudeNet's;
    the Python around them is ours: the frame is scaled down before it is padded (NudeNet pads the
    full frame first), the 2100 candidate boxes are decoded as arrays (NudeNet loops over them),
    and the session's threads do not spin between frames, which leaves the cores to the render's
    set-up running beside the check. Scores match ``NudeDetector.detect`` to 0.001 (timings in
    ``docs/render.md``). ``threads``: onnxruntime intra-op threads.
    """

    INPUT_SIZE = 320
    MIN_SCORE = 0.2  # NudeNet's candidate floor, and its NMS thresholds below
    NMS_SCORE, NMS_IOU = 0.25, 0.45

    def __init__(self, threads: int = 2) -> None:
        import nudenet.nudenet as reference
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = Path(reference.__file__).with_name("320n.onnx")
        self._session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        # Module-level, so not name-mangled; read rather than copied so the classes follow the model.
        self.labels: tuple[str, ...] = tuple(getattr(reference, "__labels"))

    def detect(self, rgb: np.ndarray) -> list[dict]:
        """Detections ``[{"class", "score", "box": [x, y, w, h]}]`` for one uint8 RGB frame."""
        rgb = require_rgb("frame", rgb)
        blob, side = letterbox_blob(rgb, self.INPUT_SIZE)
        (output,) = self._session.run(None, {self._input: blob})
        return decode_detections(
            output[0],
            self.labels,
            frame_size=(rgb.shape[1], rgb.shape[0]),
            scale=side / self.INPUT_SIZE,
            min_score=self.MIN_SCORE,
            nms_score=self.NMS_SCORE,
            nms_iou=self.NMS_IOU,
        )


def letterbox_blob(rgb: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """``(1, 3, size, size)`` float32 in [0, 1]: ``rgb`` scaled so its long side is ``size``,
    at the top left of a black square (NudeNet's padding); and the long side in frame pixels."""
    height, width = rgb.shape[:2]
    side = max(height, width)
    scaled = (max(1, round(width * size / side)), max(1, round(height * size / side)))
    small = cv2.resize(rgb, scaled, interpolation=cv2.INTER_LINEAR)
    blob = np.zeros((1, 3, size, size), np.float32)
    blob[0, :, : scaled[1], : scaled[0]] = small.transpose(2, 0, 1) * np.float32(1 / 255)
    return blob, side


def decode_detections(
    output: np.ndarray,
    labels: Sequence[str],
    *,
    frame_size: tuple[int, int],
    scale: float,
    min_score: float,
    nms_score: float,
    nms_iou: float,
) -> list[dict]:
    """NudeNet's YOLO head ``(4 + classes, candidates)`` to detections in frame pixels.

    Boxes are centre/size in model pixels; ``scale`` (frame pixels per model pixel) maps them
    back, then they are clipped to the frame and thinned by non-maximum suppression.
    """
    candidates = np.asarray(output, np.float32).T
    if candidates.ndim != 2 or candidates.shape[1] != 4 + len(labels):
        raise ModelError(f"content model output: expected (candidates, {4 + len(labels)}), got {candidates.shape}")
    class_scores = candidates[:, 4:]
    best = class_scores.max(axis=1)
    keep = best >= min_score
    if not keep.any():
        return []
    scores = best[keep].astype(np.float64)
    classes = class_scores[keep].argmax(axis=1)
    cx, cy, w, h = (candidates[keep, :4].astype(np.float64) * scale).T
    width, height = frame_size
    x = np.clip(cx - w / 2, 0, width)
    y = np.clip(cy - h / 2, 0, height)
    w = np.minimum(w, width - x)
    h = np.minimum(h, height - y)
    boxes = np.stack([x, y, w, h], axis=1)
    chosen = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), nms_score, nms_iou)
    return [
        {"class": labels[int(classes[i])], "score": float(scores[i]), "box": [int(v) for v in boxes[i]]}
        for i in np.asarray(chosen, np.int64).reshape(-1)
    ]


@dataclass(frozen=True)
class FrameSignature:
    """What the cut detector keeps of a frame: a ``float32 (18, 32)`` grey thumbnail (0..255)
    and a ``float32 (64,)`` colour histogram (4 bins per channel) summing to 1."""

    thumbnail: np.ndarray
    histogram: np.ndarray


def frame_signature(rgb: np.ndarray) -> FrameSignature:
    """The :class:`FrameSignature` of one uint8 RGB frame (about 0.1 ms for a 640 px frame)."""
    rgb = require_rgb("frame", rgb)
    small = cv2.resize(rgb, (64, 36), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    thumbnail = cv2.resize(grey, THUMBNAIL_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
    histogram = cv2.calcHist([small], [0, 1, 2], None, [4, 4, 4], [0, 256] * 3).ravel()
    return FrameSignature(thumbnail, (histogram / max(float(histogram.sum()), 1.0)).astype(np.float32))


def picture_jump(before: FrameSignature, after: FrameSignature) -> float:
    """Mean absolute difference of the grey thumbnails, 0..255 (a cut measures tens)."""
    return float(np.abs(after.thumbnail - before.thumbnail).mean())


def content_drift(before: FrameSignature, after: FrameSignature) -> float:
    """Half the L1 distance of the colour histograms, 0 (same colours) .. 1 (disjoint)."""
    return float(0.5 * np.abs(after.histogram - before.histogram).sum())


def content_sample_interval(duration_s: float, *, floor: int, per_second: float = CONTENT_SAMPLES_PER_S) -> float:
    """Seconds between time samples: ``1 / per_second``, shorter when the clip is too short for
    ``floor`` samples at that rate; ``1 / per_second`` when the duration is unknown (<= 0).

    >>> content_sample_interval(60.0, floor=8), content_sample_interval(2.0, floor=8)
    (1.0, 0.25)
    """
    every_s = 1.0 / per_second
    if not math.isfinite(duration_s) or duration_s <= 0:
        return every_s
    return min(every_s, duration_s / max(floor, 1))


class ContentSampler:
    """Picks the frames of a clip the content check looks at, one decoded frame at a time.

    A frame is picked (``pick`` returns why) when it is the first in a new ``interval_s`` slot of
    the clip ("time"), when it jumps from the frame before ("cut", :func:`picture_jump` >=
    ``cut_threshold``) or when its colours drifted from the last picked frame ("change",
    :func:`content_drift` >= ``change_threshold``). Every frame must be shown in order.

    >>> sampler = ContentSampler(interval_s=1.0)
    >>> flat = frame_signature(np.zeros((18, 32, 3), np.uint8))
    >>> [sampler.pick(t / 10, flat) for t in (0, 5, 10)]
    ['time', None, 'time']
    """

    def __init__(
        self,
        *,
        interval_s: float,
        cut_threshold: float = SCENE_CUT_MAD,
        change_threshold: float = SCENE_CHANGE_HISTOGRAM,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self.interval_s = float(interval_s)
        self.cut_threshold = cut_threshold
        self.change_threshold = change_threshold
        self._next_slot = 0
        self._previous: FrameSignature | None = None
        self._last_picked: FrameSignature | None = None

    def pick(self, pts_s: float, signature: FrameSignature) -> str | None:
        """``"time"``, ``"cut"``, ``"change"`` or ``None`` (not needed) for the next frame."""
        slot = math.floor(max(pts_s, 0.0) / self.interval_s + 1e-9)
        reason = None
        if slot >= self._next_slot:
            reason = "time"
        elif self._previous is not None and picture_jump(self._previous, signature) >= self.cut_threshold:
            reason = "cut"
        elif self._last_picked is not None and content_drift(self._last_picked, signature) >= self.change_threshold:
            reason = "change"
        self._previous = signature
        if reason is not None:
            self._next_slot = max(self._next_slot, slot + 1)
            self._last_picked = signature
        return reason


def sample_indices(frame_count: int, samples: int) -> list[int]:
    """``samples`` frame indices spread evenly over ``frame_count`` frames (all if fewer)."""
    if frame_count <= 0:
        return []
    if frame_count <= samples:
        return list(range(frame_count))
    return sorted({int(round(i)) for i in np.linspace(0, frame_count - 1, samples)})


def check_content(
    frames: Iterable[np.ndarray],
    *,
    source: str,
    detector: FrameDetector | None = None,
    threshold: float = CONTENT_THRESHOLD,
) -> ContentCheck:
    """Run the content detector on ``frames``; raise ``ConsentError("prohibited_content")`` on
    any prohibited class scoring >= ``threshold``. ``source`` names the target in the message."""
    detector = detector or ContentDetector()
    max_scores: dict[str, float] = {}
    checked = 0
    for rgb in frames:
        checked += 1
        for detection in detector.detect(rgb):
            label = str(detection.get("class"))
            score = float(detection.get("score", 0.0))
            if label in PROHIBITED_CONTENT_CLASSES:
                max_scores[label] = max(max_scores.get(label, 0.0), score)
                if score >= threshold:
                    raise ConsentError(
                        "prohibited_content",
                        f"{source}: target shows explicit content ({label.lower()}, score {score:.2f}); "
                        "sexual content cannot be rendered under any grant",
                    )
    return ContentCheck(frames_checked=checked, max_scores=max_scores)


def describe_classes(classes: Sequence[str] = tuple(sorted(PROHIBITED_CONTENT_CLASSES))) -> str:
    return ", ".join(c.lower() for c in classes)
