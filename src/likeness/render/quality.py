"""Render quality measures for the report and the benchmark. Pure: arrays in, numbers out.

Every measure a report prints has a threshold and a verdict (DESIGN invariant 9: metrics do not
flatter). A verdict is one of ``pass``, ``warn``, ``fail`` or ``not_measured`` (there was
nothing to measure, e.g. the performer barely moved their mouth: that is never a pass).

* ``identity_verdict``: median dlib distance of the output face to the subject's references,
  against ``likeness.faces.IDENTITY_THRESHOLD`` (the product's own same-person decision).
* ``motion_agreement``: how well a per-frame openness series of the output face follows the
  performer's: Pearson correlation *and* the ratio of their spreads, so a frozen mouth fails
  however its tiny wobble happens to correlate; for the mouth also the *peak opening* (the
  output's opening over the performer's at the performer's widest frames), so a mouth smeared
  shut where the performer opens widest fails however well the small motions correlate. Series come from :func:`mouth_opening` (inner
  lip gap over the outer inter-ocular distance) and ``likeness.faces.eye_openness`` (lid gap over
  eye width, which drops towards 0 in a blink).
* ``sharpness_ratio``: the output face's *effective resolution* over the performer's, both cut
  at the face's own size in the frame: the finest detail band in which the output keeps at least
  half the performer's detail (:func:`detail_spectrum`). A 64 px model's face pasted over a
  220 px face measures about 0.33 however busy its pixel grid.
* ``flicker_ratio``: frame-to-frame change of the output face region relative to the same
  region of the source. 1.0 means the swap moves exactly as much as the original footage;
  above 1 the swap adds jitter or breathing (below 1 is often a blurred swap: read it with the
  sharpness ratio).
* ``occluder_damage``: of the pixels inside the performer's face that the shipped occlusion
  segmenter marks as covered on the *input* frame (glasses, hands, microphones, hair), how many
  the output changed by more than :data:`OCCLUDER_TOLERANCE` CIEDE2000: an occluder the swap
  painted over. It sees only what the segmenter finds (see docs/render.md).
* ``ring_colour_difference``: CIEDE2000 between the swapped face just inside its mask border and
  the skin just outside it. Below ~2 is hard to see, above ~5 is a visible seam.
* ``identity_transfer``: distances of the output face to the subject and to the performer it
  replaced (the JSON keeps both; the verdict uses the distance to the subject).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab

from likeness.checks import check_mask, check_rgb
from likeness.errors import FaceError, MediaError
from likeness.faces.canonical import (
    INNER_LIP_LOWER,
    INNER_LIP_UPPER,
    LEFT_EYE_OUTER,
    RIGHT_EYE_OUTER,
)
from likeness.render.mask import erode_dilate

Verdict = Literal["pass", "warn", "fail", "not_measured"]
VERDICT_ORDER: dict[str, int] = {"not_measured": 0, "pass": 1, "warn": 2, "fail": 3}


@dataclass(frozen=True)
class Bound:
    """Thresholds of one metric: ``pass_at`` and ``warn_at`` on the side ``better`` names
    (``"higher"``: value >= pass_at passes, >= warn_at warns, else fails; ``"lower"``: <=)."""

    pass_at: float
    warn_at: float
    better: Literal["higher", "lower"]

    def verdict(self, value: float | None) -> Verdict:
        if value is None or not np.isfinite(value):
            return "not_measured"
        if self.better == "higher":
            return "pass" if value >= self.pass_at else "warn" if value >= self.warn_at else "fail"
        return "pass" if value <= self.pass_at else "warn" if value <= self.warn_at else "fail"


#: Output mouth/eye openness must correlate with the performer's over the track at least this much.
EXPRESSION_CORRELATION = Bound(pass_at=0.6, warn_at=0.4, better="higher")
#: ... and move at least this share of the performer's spread (std of the series): a frozen mouth
#: (ratio near 0) fails however well its jitter correlates. Above 1/ratio is exaggeration.
EXPRESSION_AMPLITUDE = Bound(pass_at=0.5, warn_at=0.25, better="higher")
#: Least spread (10th to 90th percentile) of the performer's mouth opening, in inter-ocular
#: distances, for the mouth to count as moving: lips apart by 5 % of the eye distance is
#: about 3 px on a 200 px face.
MIN_MOUTH_RANGE = 0.05
#: The performer's eyes count as moving when at least one sample is this far below the track's
#: median openness (a blink, or a squint held long enough to see).
BLINK_DEPTH = 0.4
#: Blinks the output shows per blink of the performer (runs counted by :func:`count_blinks`):
#: eyes that narrow in time but never close read as "no blinks".
BLINKS_KEPT = Bound(pass_at=0.5, warn_at=0.25, better="higher")
#: Output mouth opening over the performer's at the performer's widest openings (median over
#: :data:`PEAK_SHARE` of the samples, see :func:`peak_opening_ratio`). Where the performer opens
#: widest a viewer compares the two mouths directly: at 0.6 of the performer's gap the output
#: still reads as the same open vowel; below a third it looks shut (the issue's smeared mouth:
#: 0.17 -> 0.03, 0.18).
PEAK_OPENING = Bound(pass_at=0.6, warn_at=0.35, better="higher")
#: Share of a track's mouth samples, the performer's widest, that the peak opening looks at ...
PEAK_SHARE = 0.1
#: ... and the least number of them (a 60-frame clip sampled every 2nd frame has 30 samples).
MIN_PEAK_SAMPLES = 3
#: Least samples of a series for a correlation.
MIN_SERIES_SAMPLES = 8
#: Output effective resolution over the performer's (:func:`sharpness_ratio`). On the test's
#: astronaut and Grace Hopper portraits (face region 220 px): a Gaussian blur of 0.6 px, hard to
#: see side by side, measures 0.65-0.67; of 0.8 px (a mild softening, visible side by side) 0.46-0.47;
#: of 1 px 0.37; a 128 px face stretched over the 220 px 0.47-0.48; a 64 px face 0.33, with a
#: checkerboard of +-8 or +-20 grey levels on its 64 px grid 0.32-0.34 (the earlier
#: high-frequency measure gave that grid 0.73-0.86). Pass: no softening one sees; warn: a visible
#: softening (a 128 px model on a 220 px face); fail: a face blurred beside its surroundings.
SHARPNESS = Bound(pass_at=0.6, warn_at=0.4, better="higher")
#: Amplitude (square root of the power) of a detail band the output must keep, as a share of the
#: performer's, for the band to count as resolved: half, i.e. a quarter of the power.
RESOLVED_AMPLITUDE = 0.5
#: Flicker (output change / source change): up to a quarter more motion than the footage is
#: hard to see; 1.75 is visible boiling.
FLICKER = Bound(pass_at=1.25, warn_at=1.75, better="lower")
#: Border colour difference, CIEDE2000: ~2 is a just-noticeable difference, 5 a visible seam.
BORDER_COLOUR = Bound(pass_at=2.0, warn_at=5.0, better="lower")
#: Occluder pixels (the core of what the occlusion mask marks inside the performer's face on the
#: input frame, see :func:`occluder_damage`) the output changed beyond :data:`OCCLUDER_TOLERANCE`,
#: as a share of them. Painted over (the face shown where a generated hand, microphone or thick
#: glasses frame was) measures 0.97-1.0; the same occluders kept exactly, with the face around
#: them changed, 0.0-0.04. A third painted over is a visibly broken occluder (a rim with gaps, a
#: finger smeared into skin); a tenth is the edge of one.
OCCLUSION_DAMAGE = Bound(pass_at=0.1, warn_at=0.33, better="lower")
#: CIEDE2000 from which an occluder pixel counts as changed: 5 is a visible difference (the
#: border-colour seam threshold); the swapped face over a rim or a finger differs by 20-60, a
#: pixel a quarter blended by the mask's feathered edge by about 5-15.
OCCLUDER_TOLERANCE = 5.0
#: Occluder probability (the segmenter's, on the input crop) from which a pixel is an occluder.
OCCLUDER_PROBABILITY = 0.5
#: Least share of the face region a frame's occluder must cover to be measured: isolated
#: segmenter specks (0.03 % of a clear face on the card's validation) are not an occluder.
MIN_OCCLUDER_SHARE = 0.01
#: Share of a track's identity samples that must be within the threshold for a pass.
IDENTITY_WITHIN_SHARE = 0.75


def worst_verdict(verdicts: Iterable[str]) -> Verdict:
    """The worst of ``verdicts`` (``fail`` > ``warn`` > ``pass`` > ``not_measured``)."""
    worst: Verdict = "not_measured"
    for verdict in verdicts:
        if VERDICT_ORDER[verdict] > VERDICT_ORDER[worst]:
            worst = cast(Verdict, verdict)
    return worst


def flicker_ratio(source_regions: np.ndarray, output_regions: np.ndarray, *, eps: float = 0.5) -> float:
    """Mean absolute frame-to-frame change of ``output_regions`` over that of ``source_regions``.

    Both are uint8 ``(T, h, w, 3)`` crops of the same frame region over T >= 2 frames (the
    region of one tracked face). ``eps`` (grey levels) keeps a static source from dividing by zero.
    """
    source = np.asarray(source_regions)
    output = np.asarray(output_regions)
    if source.shape != output.shape or source.ndim != 4 or source.shape[0] < 2:
        raise MediaError(
            None,
            f"flicker_ratio: expected two (T>=2, h, w, 3) stacks of equal shape, got {source.shape} and {output.shape}",
        )
    source_change = np.abs(np.diff(source.astype(np.float32), axis=0)).mean()
    output_change = np.abs(np.diff(output.astype(np.float32), axis=0)).mean()
    return float((output_change + eps) / (source_change + eps))


def ring_colour_difference(frame: np.ndarray, mask: np.ndarray, *, ring_px: int = 4) -> float | None:
    """CIEDE2000 between the mean L*a*b* of a band just inside and a band just outside ``mask``.

    ``frame`` uint8 RGB ``(H, W, 3)`` (the rendered frame), ``mask`` float32 ``(H, W)`` in [0, 1]
    (the paste mask in frame coordinates; > 0.5 counts as face). Returns None when either band is
    empty (no face, or a face that fills the frame).
    """
    frame = check_rgb(frame, name="frame")
    inside = (check_mask(mask, name="mask", shape=frame.shape[:2]) > 0.5).astype(np.uint8)
    if ring_px < 1:
        raise MediaError(None, f"ring_px: expected >= 1, got {ring_px}")
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring_px + 1, 2 * ring_px + 1))
    eroded: np.ndarray = cv2.erode(inside, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    dilated: np.ndarray = cv2.dilate(inside, kernel)
    inner = inside & (1 - eroded)
    outer = dilated & (1 - inside)
    if inner.sum() == 0 or outer.sum() == 0:
        return None
    # Only the two bands are converted (a few thousand pixels, not the whole region).
    inner_lab = rgb2lab(frame[inner.astype(bool)][None]).reshape(-1, 3).mean(axis=0)
    outer_lab = rgb2lab(frame[outer.astype(bool)][None]).reshape(-1, 3).mean(axis=0)
    return float(deltaE_ciede2000(inner_lab[None], outer_lab[None])[0])


def occluder_damage(
    before: np.ndarray,
    after: np.ndarray,
    occluder: np.ndarray,
    face: np.ndarray,
    *,
    tolerance: float = OCCLUDER_TOLERANCE,
    core_px: int = 0,
) -> tuple[int, int]:
    """``(occluder pixels, of them changed)`` between the input and the output face.

    ``before`` and ``after``: uint8 ``(H, W, 3)`` crops of the same place of the source and the
    rendered frame; ``occluder``: float32 ``(H, W)`` occluder probability of the *input* crop
    (``likeness.faces.occlusion``); ``face``: float ``(H, W)``, the performer's face region
    (> 0.5; the landmark hull). An occluder pixel is one inside the face with probability
    >= :data:`OCCLUDER_PROBABILITY`, at least ``core_px`` from the occluder's edge: the mask's
    edge is only as precise as its own pixel (``side / 64`` frame pixels), and a swap that keeps
    the occluder exactly may change the skin right beside it. It is changed when its CIEDE2000 to
    the input exceeds ``tolerance``. Returns ``(0, 0)`` when the occluder's core covers less
    than :data:`MIN_OCCLUDER_SHARE` of the face (nothing to measure: a rim thinner than two of
    the mask's pixels has no core, so it is never judged, neither as kept nor as erased).

    >>> before = np.full((8, 8, 3), 200, np.uint8); before[2:4] = 20   # a dark bar over the face
    >>> covered = np.zeros((8, 8), np.float32); covered[2:4] = 1.0
    >>> after = np.full((8, 8, 3), 180, np.uint8)                      # painted over with skin
    >>> occluder_damage(before, after, covered, np.ones((8, 8))), occluder_damage(before, before, covered, np.ones((8, 8)))
    ((16, 16), (16, 0))
    """
    before = check_rgb(before, name="before")
    after = check_rgb(after, name="after")
    if before.shape != after.shape:
        raise MediaError(None, f"occluder_damage: crops differ in shape, {before.shape} and {after.shape}")
    covered = check_mask(np.asarray(occluder, np.float32), name="occluder", shape=before.shape[:2])
    inside = check_mask(np.asarray(face, np.float32), name="face", shape=before.shape[:2]) > 0.5
    core = erode_dilate((covered >= OCCLUDER_PROBABILITY).astype(np.float32), pixels=-max(0, int(core_px)))
    pixels = inside & (core > 0.5)
    count = int(pixels.sum())
    if count == 0 or count < MIN_OCCLUDER_SHARE * int(inside.sum()):
        return 0, 0
    # Only the occluder's pixels are converted to L*a*b*.
    difference = deltaE_ciede2000(rgb2lab(before[pixels][None]), rgb2lab(after[pixels][None]))
    return count, int(np.count_nonzero(difference > tolerance))


# --------------------------------------------------------------------------------------------
# expression: mouth opening and eye openness over time


def _points(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] <= max(LEFT_EYE_OUTER, INNER_LIP_LOWER):
        raise FaceError(f"expected FaceMesh landmarks (478, 2), got {points.shape}")
    if not np.isfinite(points).all():
        raise FaceError("landmarks contain NaN or infinite values")
    return points


def face_size(landmarks: np.ndarray) -> float:
    """Outer inter-ocular distance (pixels) of FaceMesh ``landmarks (478, 2)``: the face's scale,
    which speech and blinks do not change."""
    points = _points(landmarks)
    size = float(np.linalg.norm(points[LEFT_EYE_OUTER] - points[RIGHT_EYE_OUTER]))
    if size < 1e-6:
        raise FaceError("landmarks are degenerate (eye corners coincide)")
    return size


def mouth_opening(landmarks: np.ndarray) -> float:
    """Inner-lip gap (upper to lower inner lip, FaceMesh 13-14) over :func:`face_size`.

    0 with the lips closed; about 0.1-0.4 in speech; independent of the face's pixel size.

    >>> points = np.zeros((478, 2)); points[[33, 263]] = [[-50, 0], [50, 0]]
    >>> points[[13, 14]] = [[0, 40], [0, 60]]
    >>> round(mouth_opening(points), 3)
    0.2
    """
    points = _points(landmarks)
    return float(np.linalg.norm(points[INNER_LIP_UPPER] - points[INNER_LIP_LOWER])) / face_size(points)


@dataclass(frozen=True)
class MotionAgreement:
    """How an output openness series follows the performer's (see :func:`motion_agreement`).

    ``value`` is the correlation (None when not measured); ``amplitude_ratio`` the output's spread
    over the performer's (standard deviations); ``peak_opening_ratio`` (mouth only) the output's
    opening over the performer's at the performer's widest frames (:func:`peak_opening_ratio`);
    ``performer_range`` the performer's motion that decided whether the series was measurable
    (mouth: 10th-90th percentile spread in eye distances; eyes: deepest dip below the median, as
    a share of the median); ``reason`` says why a verdict is not ``pass``.
    """

    value: float | None
    amplitude_ratio: float | None
    performer_range: float
    samples: int
    verdict: Verdict
    reason: str
    peak_opening_ratio: float | None = None
    threshold: float = EXPRESSION_CORRELATION.pass_at
    warn_at: float = EXPRESSION_CORRELATION.warn_at
    min_amplitude_ratio: float = EXPRESSION_AMPLITUDE.pass_at
    min_peak_opening_ratio: float | None = None

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        for key in ("value", "amplitude_ratio", "peak_opening_ratio", "performer_range"):
            if payload[key] is not None:
                payload[key] = round(float(payload[key]), 4)
        return payload


def motion_agreement(performer: np.ndarray, output: np.ndarray, *, kind: Literal["mouth", "eyes"]) -> MotionAgreement:
    """Agreement of an output openness series with the performer's over one track.

    ``performer`` and ``output``: float ``(T,)`` per-frame openness at the same frames
    (:func:`mouth_opening` for ``kind="mouth"``, ``likeness.faces.eye_openness`` for ``"eyes"``).

    Not measured (never a pass) with fewer than :data:`MIN_SERIES_SAMPLES` samples, or when the
    performer barely moves: mouth spread (10th-90th percentile) under :data:`MIN_MOUTH_RANGE`,
    or no eye sample :data:`BLINK_DEPTH` below the median (no blink). Otherwise the verdict is
    the worst of the correlation's (:data:`EXPRESSION_CORRELATION`), the spread ratio's
    (:data:`EXPRESSION_AMPLITUDE`) and, for the mouth, the peak opening's (:data:`PEAK_OPENING`):
    the output must move with the performer, as much, and open as wide where the performer opens
    widest (correlation and spread are dominated by the many small motions of speech; a mouth
    smeared shut at the few wide openings passed both). For the eyes, the blinks kept
    (:data:`BLINKS_KEPT`) play the part of the peak.
    """
    p = np.asarray(performer, np.float64).reshape(-1)
    o = np.asarray(output, np.float64).reshape(-1)
    if p.shape != o.shape:
        raise FaceError(f"motion_agreement: expected two (T,) series of equal length, got {p.shape} and {o.shape}")
    keep = np.isfinite(p) & np.isfinite(o)
    p, o = p[keep], o[keep]
    samples = int(p.size)
    if samples < MIN_SERIES_SAMPLES:
        return MotionAgreement(
            None,
            None,
            0.0,
            samples,
            "not_measured",
            f"{samples} sample{'' if samples == 1 else 's'} (at least {MIN_SERIES_SAMPLES} needed)",
        )
    if kind == "mouth":
        spread = float(np.percentile(p, 90) - np.percentile(p, 10))
        if spread < MIN_MOUTH_RANGE:
            return MotionAgreement(
                None,
                None,
                spread,
                samples,
                "not_measured",
                f"the performer's mouth barely moves (spread {spread:.3f} < {MIN_MOUTH_RANGE} of the eye distance)",
            )
    elif kind == "eyes":
        median = float(np.median(p))
        spread = (median - float(p.min())) / median if median > 1e-6 else 0.0
        if spread < BLINK_DEPTH:
            return MotionAgreement(
                None, None, spread, samples, "not_measured", "the performer does not blink in the sampled frames"
            )
    else:
        raise FaceError(f"motion_agreement: kind must be 'mouth' or 'eyes', got {kind!r}")
    p_std, o_std = float(p.std()), float(o.std())
    ratio = o_std / p_std
    # A constant output has no correlation at all: score it 0, not "undefined", so it fails.
    correlation = float(np.corrcoef(p, o)[0, 1]) if o_std > 1e-9 else 0.0
    verdicts = [EXPRESSION_CORRELATION.verdict(correlation), EXPRESSION_AMPLITUDE.verdict(ratio)]
    reasons = []
    if verdicts[0] != "pass":
        reasons.append(f"correlation {correlation:.2f} < {EXPRESSION_CORRELATION.pass_at}")
    if verdicts[1] != "pass":
        reasons.append(f"the output moves {ratio:.2f} of the performer's spread (< {EXPRESSION_AMPLITUDE.pass_at})")
    peak = None
    if kind == "mouth":
        peak = peak_opening_ratio(p, o)
        verdicts.append(PEAK_OPENING.verdict(peak))
        if verdicts[-1] != "pass":
            reasons.append(
                f"at the performer's widest openings the output opens {peak:.2f} as wide (< {PEAK_OPENING.pass_at})"
            )
    if kind == "eyes":
        performer_blinks, output_blinks = count_blinks(p), count_blinks(o)
        verdicts.append(BLINKS_KEPT.verdict(output_blinks / performer_blinks))
        if verdicts[-1] != "pass":
            reasons.append(f"the performer blinks {performer_blinks} times, the output {output_blinks}")
    return MotionAgreement(
        correlation,
        ratio,
        spread,
        samples,
        worst_verdict(verdicts),
        "; ".join(reasons),
        peak_opening_ratio=peak,
        min_peak_opening_ratio=PEAK_OPENING.pass_at if kind == "mouth" else None,
    )


def peak_opening_ratio(performer: np.ndarray, output: np.ndarray) -> float:
    """Median of output / performer mouth opening over the performer's widest openings: the
    :data:`PEAK_SHARE` of the samples (at least :data:`MIN_PEAK_SAMPLES`) where the performer's
    ``performer`` opening (:func:`mouth_opening`, float ``(T,)``) is largest; ``output`` the
    output's at the same frames. 1.0 opens as wide; a frozen or smeared-shut mouth is far below.
    The caller makes sure the performer opens at all (:data:`MIN_MOUTH_RANGE`).

    >>> round(peak_opening_ratio(np.array([0.0, 0.1, 0.3, 0.3, 0.3]), np.array([0.0, 0.1, 0.3, 0.15, 0.0])), 2)
    0.5
    """
    p = np.asarray(performer, np.float64).reshape(-1)
    o = np.asarray(output, np.float64).reshape(-1)
    count = min(p.size, max(MIN_PEAK_SAMPLES, int(np.ceil(PEAK_SHARE * p.size))))
    widest = np.argsort(p, kind="stable")[-count:]
    return float(np.median(o[widest] / np.maximum(p[widest], 1e-6)))


def count_blinks(eye_openness: np.ndarray, *, depth: float = BLINK_DEPTH) -> int:
    """Number of runs of samples at least ``depth`` below the series' median openness."""
    series = np.asarray(eye_openness, np.float64).reshape(-1)
    series = series[np.isfinite(series)]
    if series.size == 0:
        return 0
    closed = series < (1.0 - depth) * float(np.median(series))
    return int(np.count_nonzero(closed[1:] & ~closed[:-1]) + int(closed[0]))


# --------------------------------------------------------------------------------------------
# sharpness


@functools.lru_cache(maxsize=16)
def detail_rings(side: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The rings :func:`sharpness_ratio` compares on an ``side`` x ``side`` crop: their centres
    (cycles per crop, quarter octaves from ``side / 16``, the scale of eyes and lips, to the
    Nyquist ``side / 2``) and, for each, the flat indices of its frequencies in ``rfft2``'s
    ``(side, side // 2 + 1)`` output. A ring that holds no frequency (small crops) is left out."""
    nyquist = side / 2
    edges = nyquist * 2.0 ** (-np.arange(12, -1, -1) / 4)
    radius = np.hypot((np.fft.fftfreq(side) * side)[:, None], (np.fft.rfftfreq(side) * side)[None, :]).ravel()
    rings = [np.flatnonzero((radius >= low) & (radius < high)) for low, high in zip(edges[:-1], edges[1:])]
    kept = [n for n, ring in enumerate(rings) if ring.size]
    centres = np.sqrt(edges[:-1] * edges[1:])[kept]
    return centres, tuple(rings[n] for n in kept)


def face_weight(mask: np.ndarray) -> np.ndarray:
    """float64 ``(N, N)``: the face (``mask`` > 0.5) feathered over ``N / 48`` px, the window
    :func:`detail_spectrum` looks through (a hard edge would spread power over every ring)."""
    side = mask.shape[0]
    return cv2.GaussianBlur((mask > 0.5).astype(np.float32), (0, 0), side / 48).astype(np.float64)


def detail_spectrum(rgb: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Median spectral power of the grey face in each of :func:`detail_rings`' rings.

    ``rgb`` uint8 ``(N, N, 3)``; ``weight`` float ``(N, N)``, the face's window
    (:func:`face_weight`). The *median* over a ring, not the sum: a natural face spreads its
    detail over every direction of a ring, a decoder's checkerboard or pixel grid puts its power
    into a few peaks, which the median ignores.
    """
    grey = cv2.cvtColor(check_rgb(rgb, name="rgb"), cv2.COLOR_RGB2GRAY).astype(np.float64)
    side = grey.shape[0]
    centred = (grey - float((grey * weight).sum() / max(float(weight.sum()), 1e-9))) * weight
    # A real image's spectrum is symmetric: half of it (rfft2) holds every ring's values.
    power = (np.abs(np.fft.rfft2(centred)) ** 2).ravel()
    return np.array([float(np.median(power[ring])) for ring in detail_rings(side)[1]])


def sharpness_ratio(performer_region: np.ndarray, output_region: np.ndarray, mask: np.ndarray) -> float | None:
    """The output face's effective resolution over the performer's, in the same region.

    ``performer_region`` and ``output_region``: uint8 ``(N, N, 3)`` crops of the same place of
    the source and the rendered frame, at frame resolution (not the model's); ``mask`` float
    ``(N, N)``: the inner face (> 0.5). Detail is compared ring by ring of spatial frequency
    (:func:`detail_spectrum`, quarter-octave rings from ``N / 16`` cycles, the scale of eyes and
    lips, to the crop's Nyquist ``N / 2``); the effective resolution is the frequency where the
    output first keeps less than :data:`RESOLVED_AMPLITUDE` of the performer's detail amplitude
    (interpolated between rings), as a share of ``N / 2``: 1.0 when every ring is kept, and at
    least the first ring's centre (2 ** (-11.5 / 4), about 0.136) when even that is lost.

    Why not the energy of the finest band, as before: an undertrained decoder's checkerboard and
    the pixel grid of a 64 px face stretched over 200 px are high-frequency energy too, and scored
    0.95-0.99 on faces a person sees as blocky and blurred. A 64 px face has no detail above its
    own 32 cycles per face, however busy its grid; the ring medians see only detail spread over
    the whole face, as a face's is, so such a face measures about 64 / N whatever its grid.

    None when the performer's region is flat (nothing to compare) or the mask covers under 16 px.
    """
    if performer_region.shape != output_region.shape:
        raise MediaError(
            None, f"sharpness_ratio: regions differ in shape, {performer_region.shape} and {output_region.shape}"
        )
    performer_region = check_rgb(performer_region, name="performer_region")
    inside = check_mask(mask, name="mask", shape=performer_region.shape[:2]) > 0.5
    side = performer_region.shape[0]
    if performer_region.shape[1] != side:
        raise MediaError(None, f"sharpness_ratio: expected square regions, got {performer_region.shape}")
    grey = cv2.cvtColor(performer_region, cv2.COLOR_RGB2GRAY)
    if int(inside.sum()) < 16 or float(grey[inside].std()) < 1.0:
        return None
    nyquist = side / 2
    centres = detail_rings(side)[0]
    weight = face_weight(inside)
    performer = detail_spectrum(performer_region, weight)
    output = detail_spectrum(output_region, weight)
    kept = np.sqrt(output / np.maximum(performer, 1e-12))
    lost = np.flatnonzero(kept < RESOLVED_AMPLITUDE)
    if lost.size == 0:
        return 1.0
    ring = int(lost[0])
    if ring == 0:
        return float(centres[0] / nyquist)
    # Between the last ring kept and the first lost, linear in log frequency.
    t = (kept[ring - 1] - RESOLVED_AMPLITUDE) / (kept[ring - 1] - kept[ring])
    return float(np.exp(np.log(centres[ring - 1]) + t * np.log(centres[ring] / centres[ring - 1])) / nyquist)


# --------------------------------------------------------------------------------------------
# identity


def identity_transfer(
    output_embedding: np.ndarray, subject_embeddings: np.ndarray, target_embedding: np.ndarray | None
) -> dict[str, float | None]:
    """Distances of the swapped face's embedding to the subject (min over references) and to
    the original target face (None when unknown).

    ``output_embedding`` and ``target_embedding`` float32 ``(128,)``; ``subject_embeddings``
    float32 ``(K, 128)``, K >= 1.
    """
    out = np.asarray(output_embedding, np.float64).reshape(-1)
    refs = np.asarray(subject_embeddings, np.float64)
    if refs.ndim != 2 or refs.shape[0] < 1 or refs.shape[1] != out.shape[0]:
        raise FaceError(f"identity_transfer: expected (D,), (K>=1, D), got {out.shape}, {refs.shape}")
    to_subject = float(np.linalg.norm(refs - out, axis=1).min())
    to_target = None
    if target_embedding is not None:
        target = np.asarray(target_embedding, np.float64).reshape(-1)
        if target.shape != out.shape:
            raise FaceError(f"identity_transfer: target embedding {target.shape}, expected {out.shape}")
        to_target = float(np.linalg.norm(target - out))
    return {"distance_to_subject": to_subject, "distance_to_performer": to_target}


def identity_verdict(distances: np.ndarray, threshold: float) -> dict[str, Any]:
    """The identity line of a track: median distance of the output to the subject, against
    ``threshold`` (``likeness.faces.IDENTITY_THRESHOLD``).

    ``distances``: float ``(S,)``, one per sampled frame. Pass: median within the threshold and
    at least :data:`IDENTITY_WITHIN_SHARE` of the samples too; warn: median within, fewer
    samples; fail: median beyond (the product's own recogniser says it is not the subject).
    """
    values = np.asarray(distances, np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    line: dict[str, Any] = {
        "value": None,
        "threshold": float(threshold),
        "samples": int(values.size),
        "within_threshold_share": None,
        "worst": None,
    }
    if values.size == 0:
        return {**line, "verdict": "not_measured", "reason": "no sampled output face could be embedded"}
    median = float(np.median(values))
    share = float(np.mean(values <= threshold))
    line.update(value=round(median, 4), within_threshold_share=round(share, 3), worst=round(float(values.max()), 4))
    if median > threshold:
        return {
            **line,
            "verdict": "fail",
            "reason": f"median distance {median:.3f} > {threshold:.2f}: not the subject by the product's own measure",
        }
    if share < IDENTITY_WITHIN_SHARE:
        return {**line, "verdict": "warn", "reason": f"only {share:.0%} of sampled frames within {threshold:.2f}"}
    return {**line, "verdict": "pass", "reason": ""}


def bounded_line(value: float | None, bound: Bound, samples: int, *, digits: int = 4) -> dict[str, Any]:
    """``{"value", "threshold", "warn_at", "better", "samples", "verdict"}`` for one metric."""
    return {
        "value": None if value is None else round(float(value), digits),
        "threshold": bound.pass_at,
        "warn_at": bound.warn_at,
        "better": bound.better,
        "samples": int(samples),
        "verdict": bound.verdict(value),
    }
