"""Render quality measures for the report and the benchmark. Pure: arrays in, numbers out.

Every measure a report prints has a threshold and a verdict (DESIGN invariant 9: metrics do not
flatter). A verdict is one of ``pass``, ``warn``, ``fail`` or ``not_measured`` (there was
nothing to measure, e.g. the performer barely moved their mouth: that is never a pass).

* ``identity_verdict``: median dlib distance of the output face to the subject's references,
  against ``likeness.faces.IDENTITY_THRESHOLD`` (the product's own same-person decision).
* ``motion_agreement``: how well a per-frame openness series of the output face follows the
  performer's: Pearson correlation *and* the ratio of their spreads, so a frozen mouth fails
  however its tiny wobble happens to correlate. Series come from :func:`mouth_opening` (inner
  lip gap over the outer inter-ocular distance) and ``likeness.faces.eye_openness`` (lid gap over
  eye width, which drops towards 0 in a blink).
* ``sharpness_ratio``: high-frequency energy of the output face region over that of the
  performer's own face region, both at output (frame) resolution.
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
#: Least samples of a series for a correlation.
MIN_SERIES_SAMPLES = 8
#: Output high-frequency energy over the performer's (RMS of the finest band, at frame
#: resolution). On the test's astronaut portrait a Gaussian blur of 0.8 px (a mild softening,
#: visible side by side) measures 0.63, of 1.5 px 0.35, and a 64 px face stretched over 220 px
#: 0.46: 0.8 still reads as the same detail, below 0.6 the face is blurred.
SHARPNESS = Bound(pass_at=0.8, warn_at=0.6, better="higher")
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
    over the performer's (standard deviations); ``performer_range`` the performer's motion that
    decided whether the series was measurable (mouth: 10th-90th percentile spread in eye
    distances; eyes: deepest dip below the median, as a share of the median); ``reason`` says
    why a verdict is not ``pass``.
    """

    value: float | None
    amplitude_ratio: float | None
    performer_range: float
    samples: int
    verdict: Verdict
    reason: str
    threshold: float = EXPRESSION_CORRELATION.pass_at
    warn_at: float = EXPRESSION_CORRELATION.warn_at
    min_amplitude_ratio: float = EXPRESSION_AMPLITUDE.pass_at

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        for key in ("value", "amplitude_ratio", "performer_range"):
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
    the worse of the correlation's (:data:`EXPRESSION_CORRELATION`) and the spread ratio's
    (:data:`EXPRESSION_AMPLITUDE`): the output must move with the performer *and* as much.
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
            None, None, 0.0, samples, "not_measured", f"{samples} samples (at least {MIN_SERIES_SAMPLES} needed)"
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
    if kind == "eyes":
        performer_blinks, output_blinks = count_blinks(p), count_blinks(o)
        verdicts.append(BLINKS_KEPT.verdict(output_blinks / performer_blinks))
        if verdicts[-1] != "pass":
            reasons.append(f"the performer blinks {performer_blinks} times, the output {output_blinks}")
    return MotionAgreement(correlation, ratio, spread, samples, worst_verdict(verdicts), "; ".join(reasons))


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


def high_frequency_energy(rgb: np.ndarray, mask: np.ndarray, *, sigma: float = 1.0) -> float | None:
    """RMS (grey levels) of the finest detail band of ``rgb`` where ``mask`` > 0.5.

    ``rgb`` uint8 ``(H, W, 3)``; ``mask`` float ``(H, W)`` in [0, 1]. The band is the grey image
    minus its Gaussian blur of ``sigma`` px: what a soft or upscaled face lacks. None when the
    mask selects fewer than 16 pixels.
    """
    rgb = check_rgb(rgb, name="rgb")
    inside = check_mask(mask, name="mask", shape=rgb.shape[:2]) > 0.5
    if int(inside.sum()) < 16:
        return None
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    detail = grey - cv2.GaussianBlur(grey, (0, 0), sigma)
    return float(np.sqrt(np.mean(detail[inside] ** 2)))


def sharpness_ratio(performer_region: np.ndarray, output_region: np.ndarray, mask: np.ndarray) -> float | None:
    """High-frequency energy of the output face over the performer's, in the same region.

    ``performer_region`` and ``output_region``: uint8 ``(H, W, 3)`` crops of the same place of the
    source and the rendered frame, at frame resolution (not the model's); ``mask`` float
    ``(H, W)``: the inner face (> 0.5). 1.0 is as detailed as the footage; see :data:`SHARPNESS`.
    None when the performer's region is flat (nothing to compare) or the mask is too small.
    """
    if performer_region.shape != output_region.shape:
        raise MediaError(
            None, f"sharpness_ratio: regions differ in shape, {performer_region.shape} and {output_region.shape}"
        )
    source = high_frequency_energy(performer_region, mask)
    output = high_frequency_energy(output_region, mask)
    if source is None or output is None or source < 0.25:
        return None
    return output / source


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
