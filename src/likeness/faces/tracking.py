"""Stable face ids across video frames by greedy box-IoU matching.

Extraction uses the ids to embed a face once per track (or every N frames) instead of on
every frame.

Example:
    >>> tracker = FaceTracker()
    >>> tracker.update([(0, 0, 10, 10)]), tracker.update([(1, 0, 11, 10), (50, 50, 60, 60)])
    ([0], [0, 1])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from likeness.errors import FaceError
from likeness.faces.detect import box_iou


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    missed: int = 0


class FaceTracker:
    """Greedy IoU tracker.

    Args:
        iou_threshold: least IoU between a track's last box and a new box to continue the track.
        max_missed: a track survives this many consecutive frames without a matching box
            (brief occlusions, missed detections) before its id is retired. Ids are never reused.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise FaceError(f"iou_threshold must lie in (0, 1], got {iou_threshold}")
        if max_missed < 0:
            raise FaceError(f"max_missed must be >= 0, got {max_missed}")
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self._tracks: list[_Track] = []
        self._next_id = 0

    @property
    def active_ids(self) -> list[int]:
        """Ids of the tracks still alive."""
        return [track.track_id for track in self._tracks]

    def reset(self) -> None:
        """Drop all tracks (new clip); ids keep counting up."""
        self._tracks = []

    def update(self, boxes: Sequence[Sequence[float]] | np.ndarray) -> list[int]:
        """Track ids for this frame's ``boxes`` ``(N, 4)`` as ``(x0, y0, x1, y1)``, in input order."""
        new_boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
        if not np.isfinite(new_boxes).all():
            raise FaceError("tracker: boxes contain NaN or infinity")
        ids: list[int | None] = [None] * len(new_boxes)
        matched_tracks: set[int] = set()
        if self._tracks and len(new_boxes):
            ious = box_iou(np.stack([t.box for t in self._tracks]), new_boxes)
            # Greedy: best overlaps first, each track and box used once.
            for flat in np.argsort(-ious, axis=None, kind="stable"):
                t, b = np.unravel_index(flat, ious.shape)
                if ious[t, b] < self.iou_threshold:
                    break
                if t in matched_tracks or ids[b] is not None:
                    continue
                track = self._tracks[t]
                track.box, track.missed = new_boxes[b], 0
                ids[b] = track.track_id
                matched_tracks.add(int(t))
        survivors = []
        for index, track in enumerate(self._tracks):
            if index not in matched_tracks:
                track.missed += 1
            if track.missed <= self.max_missed:
                survivors.append(track)
        self._tracks = survivors
        for b, assigned in enumerate(ids):
            if assigned is None:
                self._tracks.append(_Track(self._next_id, new_boxes[b]))
                ids[b] = self._next_id
                self._next_id += 1
        return [int(i) for i in ids if i is not None]
