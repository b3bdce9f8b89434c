"""Decide, per detected face, whether to swap it or leave it untouched, and why.

A face that the model cannot render well is better left alone than swapped badly: too small
(the model's output would be upsampled mush), turned further than the source faceset covered
(the model never saw that side of the subject), or partly out of frame (the alignment is
extrapolated). Every skip carries a reason so the render report can count them.

Example::

    >>> gate_face((100, 100, 200, 220), frame_size=(640, 480), yaw=5.0, yaw_range=(-30.0, 30.0))
    GateDecision(swap=True, reason=None)
    >>> gate_face((0, 0, 20, 20), frame_size=(640, 480), yaw=0.0, yaw_range=None).reason
    'too_small'
"""

from __future__ import annotations

from dataclasses import dataclass

from likeness.errors import FaceError

SKIP_REASONS: tuple[str, ...] = (
    "not_target",  # identity does not match the released performer: never touched
    "too_small",
    "profile_beyond_coverage",
    "out_of_frame",
)


@dataclass(frozen=True)
class GateOptions:
    """``min_face_px``: shorter bbox side in frame pixels below which a face is skipped.
    ``yaw_margin_deg``: how far beyond the faceset's yaw coverage a face may still be swapped.
    ``max_outside_fraction``: share of the bbox area allowed outside the frame."""

    min_face_px: float = 32.0
    yaw_margin_deg: float = 10.0
    max_outside_fraction: float = 0.1


@dataclass(frozen=True)
class GateDecision:
    swap: bool
    reason: str | None


def gate_face(
    bbox: tuple[float, float, float, float],
    *,
    frame_size: tuple[int, int],
    yaw: float,
    yaw_range: tuple[float, float] | None,
    options: GateOptions = GateOptions(),
) -> GateDecision:
    """Swap/skip decision for one face.

    ``bbox`` (x0, y0, x1, y1) in frame pixels (may extend past the frame); ``frame_size``
    (width, height); ``yaw`` in degrees; ``yaw_range`` (min, max) degrees covered by the source
    faceset (from the model card), or None when unknown (no pose gating).
    """
    x0, y0, x1, y1 = (float(v) for v in bbox)
    if not (x1 > x0 and y1 > y0):
        raise FaceError(f"bbox: expected x1 > x0 and y1 > y0, got {bbox}")
    width, height = frame_size
    if min(x1 - x0, y1 - y0) < options.min_face_px:
        return GateDecision(False, "too_small")
    area = (x1 - x0) * (y1 - y0)
    inside_w = max(0.0, min(x1, width) - max(x0, 0.0))
    inside_h = max(0.0, min(y1, height) - max(y0, 0.0))
    if 1.0 - inside_w * inside_h / area > options.max_outside_fraction:
        return GateDecision(False, "out_of_frame")
    if yaw_range is not None:
        low, high = yaw_range
        if yaw < low - options.yaw_margin_deg or yaw > high + options.yaw_margin_deg:
            return GateDecision(False, "profile_beyond_coverage")
    return GateDecision(True, None)
