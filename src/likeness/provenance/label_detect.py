"""Find the product's own visible label in a picture: template search over scale and mirroring.

The product renders the label itself (:mod:`likeness.provenance.visible_label`), so it knows
the glyphs: the detector renders the same label as a template and correlates it with the
picture (normalised cross-correlation of luma), over the font sizes a re-upload can leave
(downscaled to 360p, letterboxed into 9:16, cropped by 20 % and scaled back up, the smaller
face tag) and mirrored. No OCR engine, no system dependency.

Two passes keep it cheap (docs/verify.md gives the timings):

1. coarse: the picture is resized once per candidate font size so the label would be
   :data:`COARSE_FONT_PX` tall, and correlated with one small template and its mirror image
   (both blurred, which tolerates the 7 % between the sizes tried);
2. fine: around the best few coarse hits, at up to :data:`FINE_FONT_PX`, at 0.88-1.12 times
   the coarse size in 6 % steps and then halfway to the best one's neighbours, the sharp
   template gives the score that decides (``score >= PRESENT_SCORE``). Hits under
   :data:`FINE_MIN_COARSE` are not refined.

The coarse images of the small font sizes, which cost the most, are screened at half their
resolution first and correlated only around the screen's best spots (``_coarse_hits``).

Example::

    found = detect_visible_label(rgb)        # uint8 (H, W, 3) or (H, W)
    found.present, found.where, found.score  # True, (x0, y0, x1, y1), 0.83
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from likeness.errors import MediaError
from likeness.provenance.visible_label import LABEL_TEXT, label_patch

#: The label's font size as a fraction of the picture's short side, over which the search
#: runs: a 9:16 letterbox of a 16:9 render leaves 0.025 (the tag 0.016, not searched: the
#: main label is whole in a letterbox), a 20 % crop of both sides of a small render 0.17.
MIN_FONT_RATIO = 0.021
MAX_FONT_RATIO = 0.18
#: Below this many pixels the glyphs are gone; such scales are not searched.
MIN_FONT_SEEN_PX = 7.0
COARSE_FONT_PX = 10
COARSE_STEP = 1.15
COARSE_BLUR_SIGMA = 0.7
#: The screen (``_coarse_hits``): coarse images of at least SCREEN_MIN_PIXELS are correlated
#: at half resolution first; the SCREEN_PEAKS best spots of each size and orientation compete,
#: and the SCREEN_CANDIDATES best of them are correlated at the coarse resolution, in a window
#: SCREEN_REACH coarse pixels wider than the template on every side.
SCREEN_MIN_PIXELS = 40_000
SCREEN_PEAKS = 5
SCREEN_CANDIDATES = 48
SCREEN_REACH = 3
#: Coarse hits kept for the fine pass (the best per scale and orientation, far enough apart).
FINE_CANDIDATES = 4
#: Coarse hits below this are not refined: every hit that the fine pass found to be the label
#: scored 0.449 or more on the coarse pass (the benchmark's 826 labelled copies, docs/verify.md),
#: and no hit below 0.40 reached a fine score of 0.38.
FINE_MIN_COARSE = 0.40
#: The sharp template is rendered at the candidate's size, between these bounds.
FINE_MIN_FONT_PX = 10
FINE_FONT_PX = 18
FINE_STEPS = (0.88, 0.94, 1.0, 1.06, 1.12)
#: The decision threshold on the fine correlation (calibrated in docs/verify.md: labelled
#: frames under re-upload transforms score above, unlabelled pictures with text below).
PRESENT_SCORE = 0.58
#: A window whose luma varies less than this (standard deviation) cannot hold the label: white
#: text on its dark box varies by 50 or more, even blurred and after JPEG.
MIN_WINDOW_STD = 20.0
#: Bars: edge rows or columns of a thumbnail (long side BAR_PROBE_SIDE) that vary less than
#: BAR_STD and match the outermost line, covering at least MIN_BAR_FRACTION of the side.
BAR_PROBE_SIDE = 320
BAR_STD = 3.0
MIN_BAR_FRACTION = 0.03
#: Flat grey the templates are composited over: the box darkens whatever lies behind it.
TEMPLATE_BACKGROUND = 128.0


@dataclass(frozen=True)
class LabelDetection:
    """Whether the visible AI label was found, where (``(x0, y0, x1, y1)`` in the picture's
    pixels, the label's box), how well it matched (normalised correlation, -1..1; the best
    found even when below the threshold), at what font size and whether mirrored."""

    present: bool
    score: float
    where: tuple[int, int, int, int] | None = None
    font_px: float | None = None
    mirrored: bool = False

    @classmethod
    def nothing(cls, score: float = 0.0) -> LabelDetection:
        return cls(present=False, score=float(score))


@dataclass(frozen=True)
class _Hit:
    score: float
    x: float  # template top-left in picture pixels
    y: float
    font_px: float
    mirrored: bool


def detect_visible_label(
    picture: np.ndarray, *, text: str = LABEL_TEXT, threshold: float = PRESENT_SCORE
) -> LabelDetection:
    """Search ``picture`` (uint8 RGB ``(H, W, 3)`` or grey ``(H, W)``) for the visible label."""
    full = _luma(picture)
    # Letterbox / pillarbox bars hold no label, and their edge against the picture looks like
    # the bright-on-dark of a label to the coarse pass: search the content only.
    left, top, right, bottom = content_box(full)
    luma = full[top:bottom, left:right]
    hits = _coarse_hits(luma, text)
    pyramid = _Pyramid(luma)
    best = LabelDetection.nothing()
    for hit in _distinct(sorted(hits, key=lambda h: -h.score), FINE_CANDIDATES):
        if hit.score < FINE_MIN_COARSE:
            break  # no label scores this low on the coarse pass; the rest are lower still
        found = _refine(pyramid, hit, text)
        if found.score > best.score:
            best = found
    where = (
        None
        if best.where is None
        else (best.where[0] + left, best.where[1] + top, best.where[2] + left, best.where[3] + top)
    )
    return LabelDetection(
        present=best.score >= threshold, score=best.score, where=where, font_px=best.font_px, mirrored=best.mirrored
    )


def _coarse_hits(luma: np.ndarray, text: str) -> list[_Hit]:
    """The coarse pass: per candidate font size and orientation, where the blurred template
    correlates best with the picture resized so that the label would be COARSE_FONT_PX tall.

    Large sizes are correlated whole. Where that costs most (the picture resized for the small
    font sizes), a screen goes first: the same correlation at half that resolution, whose
    :data:`SCREEN_PEAKS` best spots per size and orientation compete over all sizes; only the
    :data:`SCREEN_CANDIDATES` best are correlated at the coarse resolution, in a window around
    each (docs/verify.md)."""
    import cv2

    height, width = luma.shape
    coarse = _template(COARSE_FONT_PX, text, blur=True)
    templates = (coarse, np.ascontiguousarray(coarse[:, ::-1]))
    screens = _screen_templates(text)
    hits: list[_Hit] = []
    screened: list[tuple[float, float, np.ndarray, bool, int, int]] = []
    previous, previous_scale = luma, 1.0
    for font_px in _font_sizes(min(height, width)):
        scale = COARSE_FONT_PX / font_px
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if size[0] < coarse.shape[1] or size[1] < coarse.shape[0]:
            break
        # Each size is resized from the one before (1.15x larger): the cost shrinks with the size.
        resized = cv2.resize(
            previous, size, interpolation=cv2.INTER_AREA if scale < previous_scale else cv2.INTER_LINEAR
        )
        previous, previous_scale = resized, scale
        blurred = cv2.GaussianBlur(resized, (0, 0), COARSE_BLUR_SIGMA)
        if blurred.size < SCREEN_MIN_PIXELS:
            for mirrored, scores in zip((False, True), _correlate(blurred, *templates)):
                _, peak, _, (bx, by) = cv2.minMaxLoc(scores)
                hits.append(_Hit(float(peak), bx / scale, by / scale, font_px, mirrored))
            continue
        half = cv2.pyrDown(blurred)
        for mirrored, scores in zip((False, True), _correlate(half, *screens)):
            for score, sx, sy in _peaks(scores, screens[0].shape, SCREEN_PEAKS):
                screened.append((score, font_px, blurred, mirrored, 2 * sx, 2 * sy))
    best: dict[tuple[float, bool], _Hit] = {}
    t_h, t_w = coarse.shape
    for _, font_px, blurred, mirrored, cx, cy in sorted(screened, key=lambda s: -s[0])[:SCREEN_CANDIDATES]:
        x0, y0 = max(0, cx - SCREEN_REACH), max(0, cy - SCREEN_REACH)
        window = blurred[y0 : cy + SCREEN_REACH + t_h, x0 : cx + SCREEN_REACH + t_w]
        if window.shape[0] < t_h or window.shape[1] < t_w:
            continue
        _, peak, _, (bx, by) = cv2.minMaxLoc(_correlate(window, templates[mirrored])[0])
        scale = COARSE_FONT_PX / font_px
        hit = _Hit(float(peak), (x0 + bx) / scale, (y0 + by) / scale, font_px, mirrored)
        if (font_px, mirrored) not in best or hit.score > best[(font_px, mirrored)].score:
            best[(font_px, mirrored)] = hit
    return hits + list(best.values())


def _peaks(scores: np.ndarray, shape: tuple[int, ...], count: int) -> list[tuple[float, int, int]]:
    """The ``count`` best spots of a correlation map, each at least half a template from the
    ones before (``(score, x, y)``, best first)."""
    import cv2

    scores = scores.copy()
    reach_y, reach_x = max(1, shape[0] // 2), max(1, shape[1] // 2)
    found = []
    for _ in range(count):
        _, peak, _, (x, y) = cv2.minMaxLoc(scores)
        if peak <= 0.0:
            break
        found.append((float(peak), int(x), int(y)))
        scores[max(0, y - reach_y) : y + reach_y + 1, max(0, x - reach_x) : x + reach_x + 1] = -1.0
    return found


@lru_cache(maxsize=8)
def _screen_templates(text: str) -> tuple[np.ndarray, np.ndarray]:
    """The coarse template at half its resolution, and its mirror image."""
    import cv2

    half = cv2.pyrDown(_template(COARSE_FONT_PX, text, blur=True))
    half.flags.writeable = False
    mirrored = np.ascontiguousarray(half[:, ::-1])
    mirrored.flags.writeable = False
    return half, mirrored


def content_box(luma: np.ndarray) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of ``luma`` without uniform bars along its edges (letterbox or
    pillarbox, any flat colour, at least :data:`MIN_BAR_FRACTION` of the side), found on a
    thumbnail; the whole picture when there are none."""
    import cv2

    height, width = luma.shape
    scale = min(1.0, BAR_PROBE_SIDE / max(height, width))
    small = (
        luma
        if scale == 1.0
        else cv2.resize(
            luma, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
        )
    )

    def bars(lines: np.ndarray) -> tuple[int, int]:
        spread, level = lines.std(axis=1), lines.mean(axis=1)

        def run(order: slice) -> int:
            flat = (spread[order] < BAR_STD) & (np.abs(level[order] - level[order][0]) < BAR_STD)
            count = len(flat) if flat.all() else int(np.argmin(flat))
            # One thumbnail line is given back to the picture: the bar's edge is blurred there.
            return max(0, count - 1) if count >= MIN_BAR_FRACTION * len(lines) else 0

        return run(slice(None)), run(slice(None, None, -1))

    top, bottom = bars(small)
    left, right = bars(small.T)
    x0, y0 = int(left / scale), int(top / scale)
    x1, y1 = width - int(right / scale), height - int(bottom / scale)
    if x1 - x0 < width // 4 or y1 - y0 < height // 4:
        return 0, 0, width, height
    return x0, y0, x1, y1


class _Pyramid:
    """The picture's luma at 1, 1/2, 1/4 ... (built on demand): a window is resized from the
    level just above the size it needs, so a large label costs no more than a small one."""

    def __init__(self, luma: np.ndarray) -> None:
        self.levels = [luma]

    def window(self, box: tuple[float, float, float, float], scale: float) -> tuple[np.ndarray, float, float]:
        """The part ``box`` (x0, y0, x1, y1 in picture pixels) resized by ``scale`` (<= ~1.6);
        returns it with the picture coordinates of its top-left."""
        import cv2

        level = 0
        while scale * 2 ** (level + 1) <= 1.0:
            level += 1
        while len(self.levels) <= level:
            self.levels.append(cv2.pyrDown(self.levels[-1]))
        image = self.levels[level]
        factor = 2**level
        height, width = image.shape
        x0 = int(max(0, math.floor(box[0] / factor)))
        y0 = int(max(0, math.floor(box[1] / factor)))
        x1 = int(min(width, math.ceil(box[2] / factor)))
        y1 = int(min(height, math.ceil(box[3] / factor)))
        cut = image[y0:y1, x0:x1]
        relative = scale * factor
        size = (max(1, round(cut.shape[1] * relative)), max(1, round(cut.shape[0] * relative)))
        if cut.size == 0:
            return cut, x0 * factor, y0 * factor
        resized = cv2.resize(cut, size, interpolation=cv2.INTER_AREA if relative < 1 else cv2.INTER_LINEAR)
        return resized, x0 * factor, y0 * factor


def _correlate(image: np.ndarray, *templates: np.ndarray) -> list[np.ndarray]:
    """Normalised cross-correlation (``TM_CCOEFF_NORMED``) of ``image`` with each template (all
    of one shape), the window statistics computed once for all; 0 wherever the window is too
    flat to hold a label (there the normalisation divides by nearly nothing and scores anything)."""
    import cv2

    t_h, t_w = templates[0].shape
    count = float(t_h * t_w)
    mean = cv2.boxFilter(image, -1, (t_w, t_h), anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    mean_sq = cv2.boxFilter(image * image, -1, (t_w, t_h), anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    rows, cols = image.shape[0] - t_h + 1, image.shape[1] - t_w + 1
    variance = np.maximum(mean_sq[:rows, :cols] - mean[:rows, :cols] ** 2, 0.0)
    flat = variance < MIN_WINDOW_STD**2
    spread = np.sqrt(variance * count)
    spread[flat] = 1.0
    results = []
    for template in templates:
        centred = template - float(template.mean())
        # With a zero-mean template the plain correlation is the covariance's numerator.
        scores = cv2.matchTemplate(image, centred, cv2.TM_CCORR) / (spread * float(np.linalg.norm(centred)))
        scores[flat] = 0.0
        results.append(scores)
    return results


def _font_sizes(short: int) -> list[float]:
    """Candidate label font sizes in picture pixels, small to large, :data:`COARSE_STEP` apart."""
    low = max(MIN_FONT_SEEN_PX, MIN_FONT_RATIO * short)
    high = MAX_FONT_RATIO * short
    if high < low:
        return [low]
    count = int(math.floor(math.log(high / low) / math.log(COARSE_STEP))) + 1
    return [low * COARSE_STEP**i for i in range(count)]


def _distinct(hits: list[_Hit], count: int) -> list[_Hit]:
    """The best ``count`` hits, skipping any that repeats a better one: the same spot at a size
    the fine pass around that one already covers."""
    kept: list[_Hit] = []
    reach = math.log(FINE_STEPS[-1] / FINE_STEPS[0])  # sizes one fine pass covers
    for hit in hits:
        if all(
            math.hypot(hit.x - k.x, hit.y - k.y) > 2 * k.font_px or abs(math.log(hit.font_px / k.font_px)) > reach / 2
            for k in kept
        ):
            kept.append(hit)
        if len(kept) == count:
            break
    return kept


def _refine(pyramid: _Pyramid, hit: _Hit, text: str) -> LabelDetection:
    """Correlate the sharp template (the way round the coarse hit says) at sizes around ``hit``
    in a window around it: :data:`FINE_STEPS` first, then halfway to the neighbours of the best."""
    import cv2

    rendered_px = max(FINE_MIN_FONT_PX, round(min(FINE_FONT_PX, hit.font_px)))
    template = _template(rendered_px, text, blur=False)
    t_h, t_w = template.shape
    box_w, box_h = t_w * hit.font_px / rendered_px, t_h * hit.font_px / rendered_px
    margin_x, margin_y = 0.12 * box_w + hit.font_px, 0.5 * box_h + hit.font_px
    area = (hit.x - margin_x, hit.y - margin_y, hit.x + box_w + margin_x, hit.y + box_h + margin_y)

    def score_at(step: float, mirrored: bool) -> LabelDetection:
        font_px = hit.font_px * step
        scale = rendered_px / font_px
        window, left, top = pyramid.window(area, scale)
        if window.shape[0] < t_h or window.shape[1] < t_w:
            return LabelDetection.nothing(-1.0)
        oriented = np.ascontiguousarray(template[:, ::-1]) if mirrored else template
        _, score, _, (bx, by) = cv2.minMaxLoc(_correlate(window, oriented)[0])
        x, y = left + bx / scale, top + by / scale
        where = (int(round(x)), int(round(y)), int(round(x + t_w / scale)), int(round(y + t_h / scale)))
        return LabelDetection(present=False, score=float(score), where=where, font_px=float(font_px), mirrored=mirrored)

    tried = {float(step): score_at(float(step), hit.mirrored) for step in FINE_STEPS}
    step, best = max(tried.items(), key=lambda item: item[1].score)
    half = (FINE_STEPS[1] - FINE_STEPS[0]) / 2
    for nearby in (step - half, step + half):
        found = score_at(nearby, hit.mirrored)
        if found.score > best.score:
            best = found
    return best


@lru_cache(maxsize=32)
def _template(font_px: int, text: str, *, blur: bool) -> np.ndarray:
    """The label's luma at ``font_px`` over flat grey (float32), blurred for the coarse pass."""
    import cv2

    template = label_patch(font_px, text).over(TEMPLATE_BACKGROUND)
    if blur:
        template = cv2.GaussianBlur(template, (0, 0), COARSE_BLUR_SIGMA)
    template.flags.writeable = False
    return template


def _luma(picture: np.ndarray) -> np.ndarray:
    if not isinstance(picture, np.ndarray) or picture.dtype != np.uint8 or picture.ndim not in (2, 3):
        got = f"{picture.dtype} {picture.shape}" if isinstance(picture, np.ndarray) else type(picture).__name__
        raise MediaError(None, f"label detection expects uint8 (H, W, 3) RGB or (H, W) grey, got {got}")
    if picture.ndim == 3 and picture.shape[2] != 3:
        raise MediaError(None, f"label detection expects 3 colour channels, got {picture.shape}")
    if min(picture.shape[:2]) < 1:
        raise MediaError(None, f"label detection got an empty picture {picture.shape}")
    if picture.ndim == 3:
        import cv2

        picture = cv2.cvtColor(np.ascontiguousarray(picture), cv2.COLOR_RGB2GRAY)
    return picture.astype(np.float32)
