"""Per-track quality of a render, gathered while frames render, in bounded memory.

One :class:`ShotQuality` per face track. The pipeline feeds it every swapped face (flicker),
and on sampled frames the performer's landmarks (from the source frame), the output's landmarks
(FaceMesh run again on the rendered frame), the identity distance of the output face, the
occluder pixels the output changed, and face-aligned crops of the source and the output.
``summary()`` is the JSON of the track in the render report: each metric with its value,
threshold and verdict (``likeness.render.quality``);
``picked_frames()`` the before/after crops at the worst and median frames for the HTML page.

Example:
    >>> shot = ShotQuality(track_id=0)
    >>> shot.summary()["metrics"]["mouth"]["verdict"]
    'not_measured'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from likeness.errors import FaceError
from likeness.faces.identity import IDENTITY_THRESHOLD
from likeness.faces.quality import eye_openness
from likeness.render.quality import (
    BORDER_COLOUR,
    FLICKER,
    MIN_SERIES_SAMPLES,
    OCCLUDER_TOLERANCE,
    OCCLUSION_DAMAGE,
    SHARPNESS,
    bounded_line,
    count_blinks,
    identity_verdict,
    motion_agreement,
    mouth_opening,
    occluder_damage,
    sharpness_ratio,
    worst_verdict,
)

#: Side of the before/after face crops in the report: large enough to judge lips, eyes, glasses.
FACE_CROP_SIDE = 256
#: Most openness samples kept per track; beyond it every other one is dropped and the stride
#: doubles (a 25 fps track sampled every 2nd frame fills it after 4 minutes).
MAX_SERIES_SAMPLES = 3000
#: Most sampled frames (with their crops, 2 x 192 KB) kept per track for the median pick; same
#: halving, which keeps the worst frames.
MAX_FRAME_SAMPLES = 16
#: Face region compared for sharpness: where the blend mask is at least this (the inner face;
#: the feathered edge mixes in the footage's own pixels).
INNER_MASK = 0.9
#: Sharpness is measured at the face's own size in the frame, within these bounds (pixels).
NATIVE_SIDE_RANGE = (32, 512)


@dataclass
class FrameSample:
    """One sampled frame of a track: its scores and the aligned before/after crops (uint8
    ``(FACE_CROP_SIDE, FACE_CROP_SIDE, 3)``; ``after`` is synthetic and must be marked before
    it is shown, see ``likeness.render.report.marked_thumbnail``)."""

    frame_index: int
    before: np.ndarray
    after: np.ndarray
    crop_affine: np.ndarray | None = None  # float64 (2, 3): frame pixels -> these crops
    identity_distance: float | None = None
    sharpness: float | None = None
    face_px: int | None = None  # side of the face region sharpness was measured on, in frame pixels
    mouth_performer: float | None = None
    mouth_output: float | None = None
    occluder_pixels: int = 0  # occluder pixels inside the face on the input (0: none found)
    occluder_changed: int = 0  # of them, changed by the output beyond OCCLUDER_TOLERANCE

    @property
    def occlusion_damage(self) -> float | None:
        """Share of this frame's occluder pixels the output changed (None: no occluder)."""
        return self.occluder_changed / self.occluder_pixels if self.occluder_pixels else None

    def scores(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(float(value), 4)

        return {
            "frame_index": self.frame_index,
            "identity_distance": rounded(self.identity_distance),
            "sharpness": rounded(self.sharpness),
            "mouth_performer": rounded(self.mouth_performer),
            "mouth_output": rounded(self.mouth_output),
            "occlusion_damage": rounded(self.occlusion_damage),
        }


def scaled_affine(affine: np.ndarray, from_size: int, to_size: int) -> np.ndarray:
    """The frame -> crop affine of a ``from_size`` crop, rescaled for a ``to_size`` crop of the same face."""
    return np.asarray(affine, np.float64) * (float(to_size) / float(from_size))


def native_side(affine: np.ndarray, crop_size: int) -> int:
    """Side (pixels) an aligned crop of ``crop_size`` covers in the frame: the face's own scale."""
    scale = float(np.sqrt(abs(np.linalg.det(np.asarray(affine, np.float64)[:, :2]))))
    low, high = NATIVE_SIDE_RANGE
    return int(np.clip(round(crop_size / max(scale, 1e-6)), low, high))


def crop_from_region(region: np.ndarray, origin: tuple[int, int], affine: np.ndarray, side: int) -> np.ndarray:
    """The ``side`` x ``side`` aligned crop of a frame, cut from ``region`` (a part of the frame
    whose top-left corner is at ``origin`` (x, y) in frame pixels); ``affine`` maps frame
    pixels to this crop."""
    shifted = np.asarray(affine, np.float64).copy()
    shifted[:, 2] += shifted[:, :2] @ np.array(origin, np.float64)
    return cv2.warpAffine(region, shifted, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def inner_face_mask(blend_mask: np.ndarray, side: int) -> np.ndarray:
    """The blend mask (float32 ``(R, R)``) at ``side`` px, 1 where it is at least :data:`INNER_MASK`."""
    mask = cv2.resize(np.asarray(blend_mask, np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    peak = float(mask.max()) if mask.size else 0.0
    # A model's learned mask may never reach 1: relative to its own peak.
    return (mask >= INNER_MASK * peak).astype(np.float32) if peak > 0 else mask


@dataclass
class ShotQuality:
    """Streaming quality accumulator for one track (bounded memory)."""

    track_id: int
    source: str | None = None  # the input file, for a track of one image in a folder render
    frames_swapped: int = 0
    _src_change: float = 0.0
    _out_change: float = 0.0
    _pairs: int = 0
    _prev: tuple[np.ndarray, np.ndarray] | None = None
    colour_differences: list[float] = field(default_factory=list)
    # Openness series at the same frames: (frame index, mouth performer, mouth output, eyes performer, eyes output).
    series: list[tuple[int, float, float, float, float]] = field(default_factory=list)
    series_stride: int = 1
    _series_seen: int = 0
    identity: list[dict[str, float | None]] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    face_px: list[int] = field(default_factory=list)  # with each sharpness sample
    # (frame index, occluder pixels, of them changed) on sampled frames with an occluder.
    occlusion: list[tuple[int, int, int]] = field(default_factory=list)
    samples: list[FrameSample] = field(default_factory=list)
    samples_stride: int = 1
    _samples_seen: int = 0
    worst_mouth: FrameSample | None = None
    output_face_missed: int = 0  # sampled frames where FaceMesh found no face in the output

    # -- every swapped face --------------------------------------------------------------------

    def add_crops(self, source_crop: np.ndarray, output_crop: np.ndarray, weight: np.ndarray) -> None:
        """Aligned (R, R, 3) crops of the source and the output at this frame, and the blend mask."""
        self.frames_swapped += 1
        source = source_crop.astype(np.float32)
        output = output_crop.astype(np.float32)
        if self._prev is not None:
            w = weight[..., None]
            total = float(w.sum()) * 3 + 1e-6
            self._src_change += float((np.abs(source - self._prev[0]) * w).sum()) / total
            self._out_change += float((np.abs(output - self._prev[1]) * w).sum()) / total
            self._pairs += 1
        self._prev = (source, output)

    def break_continuity(self) -> None:
        self._prev = None

    # -- sampled frames --------------------------------------------------------------------------

    def add_expression(
        self, frame_index: int, performer_landmarks: np.ndarray, output_landmarks: np.ndarray
    ) -> tuple[float, float] | None:
        """Mouth opening and eye openness of the performer's and the output's face at one frame
        (both FaceMesh ``(478, 2)``). Returns (performer, output) mouth opening, None when
        either face's landmarks are degenerate."""
        try:
            values = (
                mouth_opening(performer_landmarks),
                mouth_opening(output_landmarks),
                eye_openness(performer_landmarks),
                eye_openness(output_landmarks),
            )
        except FaceError:
            return None
        self._series_seen += 1
        if (self._series_seen - 1) % self.series_stride == 0:
            self.series.append((int(frame_index), *values))
            if len(self.series) > MAX_SERIES_SAMPLES:
                self.series = self.series[::2]
                self.series_stride *= 2
        return values[0], values[1]

    def miss_output_face(self) -> None:
        """A sampled frame where FaceMesh found no face in the rendered face's place."""
        self.output_face_missed += 1

    def add_sample(self, sample: FrameSample) -> None:
        """A sampled frame with its crops (kept for the median pick, decimated when full)."""
        if sample.identity_distance is not None:
            self.identity.append({"distance_to_subject": sample.identity_distance})
        if sample.sharpness is not None:
            self.sharpness.append(sample.sharpness)
            if sample.face_px is not None:
                self.face_px.append(sample.face_px)
        if sample.occluder_pixels:
            self.occlusion.append((sample.frame_index, sample.occluder_pixels, sample.occluder_changed))
            if len(self.occlusion) > MAX_SERIES_SAMPLES:
                # Thinned like the series, but the most damaged frame stays.
                worst = max(self.occlusion, key=lambda o: o[2] / o[1])
                self.occlusion = [o for n, o in enumerate(self.occlusion) if n % 2 == 0 or o is worst]
        self._samples_seen += 1
        if (self._samples_seen - 1) % self.samples_stride == 0:
            self.samples.append(sample)
            if len(self.samples) > MAX_FRAME_SAMPLES:
                # The extremes survive the halving: the worst frames are what a reader must see.
                extremes = {id(s) for s in self._extremes()}
                self.samples = [s for n, s in enumerate(self.samples) if n % 2 == 0 or id(s) in extremes]
                self.samples_stride *= 2

    def offer_mouth_frame(self, sample: FrameSample) -> bool:
        """Keep ``sample`` when its mouth openings differ more than the worst kept so far."""

        def gap(s: FrameSample | None) -> float:
            if s is None or s.mouth_performer is None or s.mouth_output is None:
                return -1.0
            return abs(s.mouth_performer - s.mouth_output)

        if gap(sample) > gap(self.worst_mouth):
            self.worst_mouth = sample
            return True
        return False

    def wants_mouth_frame(self, performer: float, output: float) -> bool:
        """Whether a frame with these mouth openings would replace the worst kept (so the caller
        cuts its crops only then)."""
        worst = self.worst_mouth
        if worst is None or worst.mouth_performer is None or worst.mouth_output is None:
            return True
        return abs(performer - output) > abs(worst.mouth_performer - worst.mouth_output)

    # -- results ---------------------------------------------------------------------------------

    def _by_identity(self) -> list[tuple[float, FrameSample]]:
        """Samples with an identity distance, nearest first."""
        return sorted(
            ((s.identity_distance, s) for s in self.samples if s.identity_distance is not None),
            key=lambda pair: pair[0],
        )

    def _least_sharp(self) -> FrameSample | None:
        scored = [(s.sharpness, s) for s in self.samples if s.sharpness is not None]
        return min(scored, key=lambda pair: pair[0])[1] if scored else None

    def _most_occluder_damage(self) -> FrameSample | None:
        scored = [(s.occlusion_damage, s) for s in self.samples if s.occlusion_damage is not None]
        worst = max(scored, key=lambda pair: pair[0], default=None)
        return worst[1] if worst is not None and worst[0] > 0 else None

    def _extremes(self) -> list[FrameSample]:
        picks = []
        damaged = self._most_occluder_damage()
        if damaged is not None:
            picks.append(damaged)
        by_identity = self._by_identity()
        if by_identity:
            picks.append(by_identity[-1][1])
        least_sharp = self._least_sharp()
        if least_sharp is not None:
            picks.append(least_sharp)
        return picks

    def picked_frames(self) -> list[tuple[str, FrameSample]]:
        """(why, sample) for the report's before/after crops: the worst identity, the median
        identity, the least sharp and the widest mouth disagreement, each frame once."""
        picks: list[tuple[str, FrameSample]] = []
        by_identity = self._by_identity()
        if by_identity:
            picks.append(("worst identity distance", by_identity[-1][1]))
            picks.append(("median identity distance", by_identity[(len(by_identity) - 1) // 2][1]))
        least_sharp = self._least_sharp()
        if least_sharp is not None:
            picks.append(("least sharp", least_sharp))
        if self.worst_mouth is not None:
            picks.append(("widest mouth disagreement", self.worst_mouth))
        damaged = self._most_occluder_damage()
        if damaged is not None:
            picks.append(("most of the occluder painted over", damaged))
        if not picks and self.samples:
            picks.append(("sampled frame", self.samples[len(self.samples) // 2]))
        seen: dict[int, int] = {}
        merged: list[tuple[str, FrameSample]] = []
        for why, sample in picks:
            if sample.frame_index in seen:
                index = seen[sample.frame_index]
                merged[index] = (f"{merged[index][0]}; {why}", merged[index][1])
            else:
                seen[sample.frame_index] = len(merged)
                merged.append((why, sample))
        return merged

    def _occlusion_line(self) -> dict[str, Any]:
        """The occlusion-damage line: the share of all sampled occluder pixels the output changed;
        one frame with a third of its occluder painted over is at least a warning, however many
        frames kept theirs (an erased hand is seen even when the glasses in the other frames stay)."""
        pixels = sum(o[1] for o in self.occlusion)
        changed = sum(o[2] for o in self.occlusion)
        line = bounded_line(changed / pixels if pixels else None, OCCLUSION_DAMAGE, len(self.occlusion))
        line["tolerance_ciede2000"] = OCCLUDER_TOLERANCE
        if not pixels:
            line["reason"] = "the occlusion mask found nothing covering the face on the sampled frames"
            return line
        frame, frame_pixels, frame_changed = max(self.occlusion, key=lambda o: o[2] / o[1])
        line["worst_frame"] = {"frame_index": frame, "value": round(frame_changed / frame_pixels, 4)}
        if line["verdict"] == "pass" and frame_changed / frame_pixels > OCCLUSION_DAMAGE.warn_at:
            line["verdict"] = "warn"
        if line["verdict"] != "pass":
            line["reason"] = (
                f"the output changed {changed / pixels:.0%} of the occluder pixels on the face; "
                f"frame {frame}: {frame_changed / frame_pixels:.0%} of its occluder"
            )
        return line

    def summary(self, *, identity_threshold: float = IDENTITY_THRESHOLD) -> dict[str, Any]:
        flicker = None
        if self._pairs:
            # Same definition as quality.flicker_ratio, accumulated frame pair by frame pair.
            flicker = (self._out_change / self._pairs + 0.5) / (self._src_change / self._pairs + 0.5)
        colour = float(np.median(self.colour_differences)) if self.colour_differences else None
        series = np.array([s[1:] for s in self.series], np.float64).reshape(-1, 4)
        mouth = motion_agreement(series[:, 0], series[:, 1], kind="mouth").to_json()
        eyes = motion_agreement(series[:, 2], series[:, 3], kind="eyes").to_json()
        tried = self._series_seen + self.output_face_missed
        if tried >= MIN_SERIES_SAMPLES and self.output_face_missed > tried / 2:
            # A face the landmark model cannot find is broken, whatever the frames it did find say.
            for line in (mouth, eyes):
                line["verdict"] = "fail"
                line["reason"] = (
                    f"FaceMesh found no face in the output in {self.output_face_missed} of {tried} sampled frames"
                )
        eyes["performer_blinks"] = count_blinks(series[:, 2])
        eyes["output_blinks"] = count_blinks(series[:, 3])
        identity = identity_verdict(
            np.array([d["distance_to_subject"] for d in self.identity], np.float64), identity_threshold
        )
        sharp = bounded_line(
            float(np.median(self.sharpness)) if self.sharpness else None, SHARPNESS, len(self.sharpness)
        )
        if sharp["value"] is not None and self.face_px:
            # The ratio read in pixels: the output carries the footage's detail down to the scale
            # of an ``effective_px`` face, where the footage has ``face_px``.
            sharp["face_px"] = int(np.median(self.face_px))
            sharp["effective_px"] = round(sharp["value"] * sharp["face_px"])
        flicker_line = bounded_line(flicker, FLICKER, self._pairs)
        if flicker is None:
            flicker_line["reason"] = (
                "swapped in one frame: flicker compares consecutive swapped frames"
                if self.frames_swapped == 1
                else "no two consecutive frames swapped"
            )
        metrics = {
            "identity": identity,
            "mouth": mouth,
            "eyes": eyes,
            "sharpness": sharp,
            "occlusion": self._occlusion_line(),
            "flicker": flicker_line,
            "border_colour": bounded_line(colour, BORDER_COLOUR, len(self.colour_differences), digits=3),
        }
        return {
            "track_id": self.track_id,
            **({"source": self.source} if self.source else {}),
            "frames_swapped": self.frames_swapped,
            "verdict": worst_verdict([m["verdict"] for m in metrics.values()]),
            "metrics": metrics,
            # Flat copies kept for readers of earlier reports.
            "flicker": metrics["flicker"]["value"],
            "colour_difference_ciede2000": metrics["border_colour"]["value"],
            "expression_samples": len(self.series),
            "output_face_missed": self.output_face_missed,
            "expression_sample_stride": self.series_stride,
            "frames_shown": [{"why": why, **sample.scores()} for why, sample in self.picked_frames()],
        }


def mask_side(crop_size: int) -> int:
    """The side the shipped occlusion mask ran at for a crop of ``crop_size``: one of its pixels
    is the occluder core's depth (its edge is no finer)."""
    from likeness.render.frame import occlusion_segmenter

    return int(occlusion_segmenter().input_size(crop_size))


def measure_sample(
    frame_index: int,
    before_region: np.ndarray,
    origin: tuple[int, int],
    rgb_out: np.ndarray,
    affine: np.ndarray,
    crop_size: int,
    blend_mask: np.ndarray,
    occluder: np.ndarray | None = None,
    face_region: np.ndarray | None = None,
) -> FrameSample:
    """Crops, sharpness and occluder damage of one swapped face at one frame.

    ``before_region``: uint8 part of the source frame (before the swap) with its top-left corner
    at ``origin`` (x, y); ``rgb_out`` the rendered frame; ``affine`` (2, 3) frame -> model crop of
    ``crop_size``; ``blend_mask`` float32 ``(crop_size, crop_size)``. Sharpness compares the inner
    face (:func:`inner_face_mask`) of both at the face's own size in the frame (:func:`native_side`).
    ``occluder`` (float32 occluder probability of the input's model crop, ``likeness.faces.occlusion``)
    and ``face_region`` (float32 performer's landmark hull in that crop), both ``(crop_size,
    crop_size)``: the occluder pixels the output changed (:func:`~likeness.render.quality.occluder_damage`),
    also at the face's own size.
    """
    report_affine = scaled_affine(affine, crop_size, FACE_CROP_SIDE)
    before = crop_from_region(before_region, origin, report_affine, FACE_CROP_SIDE)
    after = crop_from_region(rgb_out, (0, 0), report_affine, FACE_CROP_SIDE)
    side = native_side(affine, crop_size)
    native = scaled_affine(affine, crop_size, side)
    native_before = crop_from_region(before_region, origin, native, side)
    native_after = crop_from_region(rgb_out, (0, 0), native, side)
    ratio = sharpness_ratio(native_before, native_after, inner_face_mask(blend_mask, side))
    sample = FrameSample(frame_index, before, after, crop_affine=report_affine, sharpness=ratio, face_px=side)
    if occluder is not None and face_region is not None:

        def at_native(mask: np.ndarray) -> np.ndarray:
            return cv2.resize(np.asarray(mask, np.float32), (side, side), interpolation=cv2.INTER_LINEAR)

        sample.occluder_pixels, sample.occluder_changed = occluder_damage(
            native_before,
            native_after,
            at_native(occluder),
            at_native(face_region),
            core_px=max(1, round(side / mask_side(crop_size))),
        )
    return sample
