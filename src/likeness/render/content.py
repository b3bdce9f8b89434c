"""Content policy check on target footage: explicit nudity is refused before any frame renders.

Uses ``nudenet``'s detector (its ONNX model ships inside the wheel; nothing is downloaded).
Refused classes (``PROHIBITED_CONTENT_CLASSES``) are exposed genitalia (female, male), exposed
female breasts, exposed buttocks and exposed anus: the classes that make footage sexually
explicit, which no grant can authorise (``sexual_content`` is a prohibited use). Exposed male
chests, bellies, armpits and feet are *not* refused: stage and dance footage shows them routinely.

The check has no switch: ``render_media`` always runs it, on ``samples`` frames spread evenly
over the target (every image of a folder).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from likeness.errors import ConsentError
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


@dataclass(frozen=True)
class ContentCheck:
    """Outcome of a passed check: frames examined and the highest score per prohibited class."""

    frames_checked: int
    max_scores: dict[str, float] = field(default_factory=dict)


class FrameDetector(Protocol):
    """What ``check_content`` needs: NudeNet-style detections for one uint8 RGB frame."""

    def detect(self, rgb: np.ndarray) -> list[dict]: ...


class ContentDetector:
    """Thin wrapper over ``nudenet.NudeDetector`` taking uint8 RGB frames."""

    def __init__(self) -> None:
        from nudenet import NudeDetector

        self._detector = NudeDetector()

    def detect(self, rgb: np.ndarray) -> list[dict]:
        """NudeNet detections ``[{"class", "score", "box"}]`` for one uint8 RGB frame."""
        rgb = require_rgb("frame", rgb)
        # nudenet converts ndarray input with COLOR_RGBA2BGR, so it must receive RGBA.
        rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
        return self._detector.detect(rgba)


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
