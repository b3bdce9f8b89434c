"""The visible-label stage of verification: is the product's "AI 생성 · AI-generated" label in
the picture?

:class:`LabelSearch` is offered every analysed frame of one file (one for an image) and searches
a few of them, spread over the clip, on a helper thread, so the search overlaps face analysis; it
stops once a frame shows the label. :func:`likeness.provenance.label_detect.detect_visible_label`
does the search (template matching over scale and mirroring, docs/verify.md).

A visible label is a claim anyone can paint on a picture, never proof of who made it: the verdict
never rests on it (docs/verify.md, "Visible label").

Example::

    search = LabelSearch(executor)
    for t, rgb in frames:
        search.offer(rgb, t)
    evidence, crop = search.result()   # LabelEvidence, uint8 crop of the label or None
"""

from __future__ import annotations

from concurrent.futures import Executor, Future
from dataclasses import dataclass

import numpy as np

from likeness.verify.result import LabelEvidence

#: Video: frames searched at most (every ``SEARCH_EVERY``-th sampled frame); the search stops
#: at the first frame that shows the label. A label is burned into every frame of our renders,
#: so a few frames spread over the clip find it; each search costs ~50 ms on one core.
MAX_SEARCHED_FRAMES = 4
SEARCH_EVERY = 4
#: Evidence crops of the found label are at most this wide.
CROP_MAX_WIDTH = 480


@dataclass
class _Searched:
    timestamp_s: float
    picture: np.ndarray
    future: Future


class LabelSearch:
    """Collects the label searches of one file; ``result()`` waits for them and decides."""

    def __init__(self, executor: Executor | None, *, keep_crop: bool = False) -> None:
        self._executor = executor
        self._keep_crop = keep_crop
        self._offered = 0
        self._searched: list[_Searched] = []

    def offer(self, rgb: np.ndarray, timestamp_s: float = 0.0) -> None:
        """Offer one analysed frame (uint8 (H, W, 3)); searched if it is one of the few chosen."""
        index = self._offered
        self._offered += 1
        if index % SEARCH_EVERY or len(self._searched) >= MAX_SEARCHED_FRAMES or self._found_already():
            return
        from likeness.provenance.label_detect import detect_visible_label

        if self._executor is None:
            future: Future = Future()
            try:
                future.set_result(detect_visible_label(rgb))
            except BaseException as exc:  # noqa: BLE001 - handed to result(), like an executor would
                future.set_exception(exc)
        else:
            future = self._executor.submit(detect_visible_label, rgb)
        self._searched.append(_Searched(float(timestamp_s), rgb if self._keep_crop else _no_pixels(), future))

    def result(self) -> tuple[LabelEvidence, np.ndarray | None]:
        """The evidence (best frame: present first, then score) and, when asked for and
        found, a crop of the label from that frame. Raises a ``LikenessError`` if a search failed."""
        best: tuple[LabelEvidence, _Searched] | None = None
        for searched in self._searched:
            found = searched.future.result()
            evidence = LabelEvidence(
                present=found.present,
                score=round(float(found.score), 4),
                where=tuple(found.where) if found.present and found.where is not None else None,
                frame_timestamp_s=searched.timestamp_s if found.present else None,
                mirrored=bool(found.mirrored) if found.present else False,
                frames_searched=len(self._searched),
            )
            if best is None or (evidence.present, evidence.score) > (best[0].present, best[0].score):
                best = (evidence, searched)
        if best is None:
            return LabelEvidence(present=False, score=0.0, frames_searched=0), None
        evidence, searched = best
        crop = None
        if self._keep_crop and evidence.present and evidence.where is not None:
            crop = _crop(searched.picture, evidence.where)
        return evidence, crop

    def _found_already(self) -> bool:
        for searched in self._searched:
            if searched.future.done() and searched.future.exception() is None and searched.future.result().present:
                return True
        return False


def _no_pixels() -> np.ndarray:
    return np.zeros((0, 0, 3), np.uint8)


def _crop(rgb: np.ndarray, where: tuple[int, int, int, int]) -> np.ndarray | None:
    """The label's box and a little around it, at most :data:`CROP_MAX_WIDTH` wide."""
    import cv2

    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = where
    pad = max(2, (y1 - y0) // 3)
    left, top = max(0, x0 - pad), max(0, y0 - pad)
    right, bottom = min(width, x1 + pad), min(height, y1 + pad)
    if right <= left or bottom <= top:
        return None
    crop = np.ascontiguousarray(rgb[top:bottom, left:right])
    if crop.shape[1] > CROP_MAX_WIDTH:
        scale = CROP_MAX_WIDTH / crop.shape[1]
        crop = cv2.resize(crop, (CROP_MAX_WIDTH, max(1, round(crop.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    return crop
