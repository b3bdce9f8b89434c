"""Measure a detector on held-out authentic and manipulated media, and decide its gates.

The gates (issue #31) say when a detector's score may enter a verdict at all:

* video AUC >= 0.90 on the held-out swaps;
* the detector's video AUC beats each shortcut baseline (face size, high-frequency energy),
  scored on the very same files, by at least 0.10;
* the false-positive rate on the authentic units at the card's threshold (verify flags a face
  track, not a frame) is at most 1.5x the card's target (itself at most 0.2);
* at that threshold it flags at least half the fake units (a threshold nothing reaches meets
  the false-positive gate and catches nothing).

The evaluation records the calibration (temperature, threshold, target) it measured; a card
whose calibration differs from it, or is not a usable one, passes no gate.

The false-positive gate compares the point estimate with its limit, which on a handful of
authentic units says little (0 of 2 flagged passes it). Beside it the evaluation reports the
one-sided 95 % Clopper-Pearson upper bound of the authentic false-positive rate and how many
authentic units, none flagged, would bring that bound within the gate (``false_positive_bound``).

Verify applies subject S's registered detector only to face tracks it recognises as S, so an
evaluation *for* S (``subject=``) recognises each unit's faces with verify's gallery and track rule
and measures the gates on the units recognised as S only; the others are listed as ones verify
would not analyse. Only an evaluation that names S can be registered for S (pseudo-gate
``subject``).

Each "unit" (a video, sampled as verify samples one, or a folder of images treated as the frames
of one clip) gives aligned faces; a unit's score is the mean calibrated logit of its faces (``score.track_score``), the
way verify scores a face track. The shortcut baselines are scored in whichever direction gives
the higher AUC on these files: an upper bound on what the shortcut can do, generous to it.

Example (the pure part)::

    >>> gates = gate_results(
    ...     video_auc=0.95, face_size_video_auc=0.6, high_frequency_video_auc=0.7,
    ...     authentic_video_fpr=0.05, fake_video_recall=0.8, target_fpr=0.05)
    >>> all(g["holds"] for g in gates)
    True
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from likeness import strict_json
from likeness.detector.calibration import roc_auc
from likeness.digests import sha256_file
from likeness.durable import write_atomic
from likeness.errors import MediaError, ModelError

#: The gates' limits (issue #31).
MIN_VIDEO_AUC = 0.90
MIN_MARGIN_OVER_BASELINES = 0.10
MAX_FPR_FACTOR = 1.5
#: Share of held-out fake units a detector must flag at its own threshold. Neither AUC (blind to
#: the threshold) nor the false-positive gate (met by a threshold nothing reaches) sees a detector
#: that never flags; below half the fakes it misses more than it finds.
MIN_FAKE_RECALL = 0.5
#: The highest false-positive target a card may state: the FPR gate is relative to it.
MAX_TARGET_FPR = 0.2
#: The card's calibration an evaluation was measured with; the card must still hold exactly these.
CALIBRATION_KEYS = ("temperature", "threshold_logit", "target_false_positive_rate")
#: Confidence of the reported upper bound of the authentic false-positive rate.
FPR_BOUND_CONFIDENCE = 0.95
#: Fewer units than this per class cannot give an AUC at all.
MIN_UNITS_PER_CLASS = 2
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})


class GateFailed(ModelError):
    """A detector whose measured evaluation does not pass a gate (``gate`` names which)."""

    def __init__(self, gate: str, message: str) -> None:
        super().__init__(message)
        self.gate = gate


class TooFewUnits(ModelError):
    """Fewer than ``MIN_UNITS_PER_CLASS`` usable units of a class (with a face; with a subject,
    recognised as it). ``recognition`` holds each unit's recognition, as an evaluation records it."""

    def __init__(self, message: str, recognition: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.recognition = list(recognition)


def high_frequency_energy(crop: np.ndarray) -> float:
    """Share of the grey crop's spectral energy above a quarter of Nyquist (a shortcut baseline)."""
    import cv2

    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float64)
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(grey - grey.mean()))) ** 2
    h, w = grey.shape
    yy, xx = np.mgrid[:h, :w]
    radius = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2))
    return float(spectrum[radius > 0.25].sum() / max(spectrum.sum(), 1e-12))


def best_direction_auc(labels: np.ndarray, values: np.ndarray) -> float:
    """AUC of a single feature in whichever direction separates better (a baseline's upper bound)."""
    auc = roc_auc(labels, values)
    return max(auc, 1 - auc)


@dataclass
class UnitFaces:
    """The largest face of each sampled frame of one unit: detector crops and face-box shares,
    and (when recognising) the best views kept as verify keeps a face track's."""

    path: Path
    crops: list[np.ndarray] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)
    #: (sighting quality, face view, landmarks) of the unit's best sightings, as ``verify.pipeline.keep_view``.
    views: list[tuple[float, np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(self, detector: Any, rgb: np.ndarray, *, keep_views: bool = False) -> None:
        """Align the frame's largest face as verify does for the detector, and note its box's share;
        ``keep_views``: also keep the sighting for recognition if it is among the unit's best."""
        from likeness.detector.train import COVERAGE, DETECTOR_INPUT
        from likeness.faces.align import align_face

        faces = detector.detect(rgb)
        if not faces:
            return
        face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
        x0, y0, x1, y1 = (float(v) for v in face.bbox)
        self.crops.append(align_face(rgb, face.landmarks, size=DETECTOR_INPUT, coverage=COVERAGE).image)
        self.sizes.append((x1 - x0) * (y1 - y0) / (rgb.shape[0] * rgb.shape[1]))
        if keep_views:
            from likeness.verify.pipeline import keep_view, sighting_quality

            keep_view(self.views, sighting_quality(face), rgb, face.landmarks)


@dataclass(frozen=True)
class EvaluationSubject:
    """The subject a detector is evaluated for, and the gallery verify recognises faces with
    (``likeness.verify.gallery.ArtistGallery``)."""

    subject_id: str
    slug: str
    gallery: Any
    #: The workspace's ledger, where ``evaluate_detector`` records what it measured.
    ledger: Any


#: The ledger event ``evaluate_detector`` appends for an evaluation made for a subject: what
#: ``register`` finds again, so a card whose figures were typed or copied in does not register.
EVALUATED_EVENT = "detector.evaluated"


def evaluation_sha256(evaluation: dict[str, Any]) -> str:
    """The sha256 of an evaluation as the card holds it (keys sorted, so the card's own layout
    does not matter; NaN figures as JSON writes them)."""
    text = json.dumps(evaluation, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def evaluation_recorded(ledger: Any, evaluation: dict[str, Any], subject_id: str) -> bool:
    """Whether ``ledger`` holds the ``EVALUATED_EVENT`` of exactly this evaluation, for this
    subject and of the ONNX file it names."""
    return any(
        event.payload.get("subject_id") == subject_id
        and event.payload.get("onnx_sha256") == evaluation.get("onnx_sha256")
        for event in ledger.find(EVALUATED_EVENT, evaluation_sha256=evaluation_sha256(evaluation))
    )


def evaluation_subject(workspace: Any, subject: str) -> EvaluationSubject:
    """``subject`` (slug or id) resolved as ``register`` resolves it, with the workspace's gallery
    synced as verify syncs it. ``ModelError`` when the subject has no reference enrolled: verify
    could recognise no face as it."""
    from likeness.verify.gallery import open_gallery

    record = workspace.registry.get_subject(subject)
    gallery = open_gallery(workspace)
    if not gallery.subject_references(str(record.id))["references"]:
        raise ModelError(
            f"{record.slug} has no reference photo enrolled, so verify recognises no face as {record.slug} and "
            f"would analyse no unit (enrol some first: likeness subject photos add {record.slug} PHOTO...)"
        )
    return EvaluationSubject(str(record.id), record.slug, gallery, workspace.ledger)


def unit_recognition(subject: EvaluationSubject, label: int, path: Path, query: Any) -> dict[str, Any]:
    """Whether verify would give ``subject``'s detector this unit, from the gallery's answer
    ``query`` (``GalleryQuery``) for its faces: only when the subject is the match (artist) or
    performer verify reports, as ``Verifier._manipulation`` looks the detector up."""
    within = query.within
    own = next((c for c in query.candidates if c.subject_id == subject.subject_id), None)
    threshold = subject.gallery.subject_thresholds.get(subject.subject_id)
    analysed = within is not None and within.subject_id == subject.subject_id
    if analysed:
        says = f"recognised as {subject.slug}"
    elif within is not None:
        says = f"recognised as {within.slug}"
    else:
        says = "no enrolled match"
    if own is not None and not analysed:
        says += f" (distance to {subject.slug} {own.distance:.3f}, threshold {own.threshold:.3f})"
    elif own is not None:
        says += f" (distance {own.distance:.3f}, threshold {own.threshold:.3f})"
    return {
        "unit": str(path),
        "class": "fake" if label else "real",
        "analysed_by_verify": analysed,
        "recognised_as": within.slug if within is not None else None,
        "recognised_as_id": within.subject_id if within is not None else None,
        "distance": round(float(own.distance), 4) if own is not None else None,
        "threshold": round(float(threshold), 4) if threshold is not None else None,
        "says": says,
    }


def recognise_units(subject: EvaluationSubject, units: Sequence[tuple[int, UnitFaces]]) -> list[dict[str, Any]]:
    """Each unit recognised as verify recognises a face track: its best views embedded
    (``embed_views``) and matched by the gallery's track rule (``ArtistGallery.query_tracks``)."""
    from likeness.faces import FaceEmbedder
    from likeness.verify.pipeline import embed_views

    embedder = FaceEmbedder()
    tracks = [np.stack(embed_views(embedder, u.views)) for _, u in units]
    queries = subject.gallery.query_tracks(tracks)
    return [unit_recognition(subject, label, u.path, q) for (label, u), q in zip(units, queries)]


def unit_files(path: Path) -> list[Path]:
    """The files a unit is made of: the video itself, or a folder's images in name order.

    ``MediaError`` for one that is not a regular file (a device, a FIFO, a link to one): hashing
    ``/dev/zero`` never ends."""
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
    for file in files:
        if not file.is_file():
            raise MediaError(file, "not a regular file")
    return files


def unit_faces(detector: Any, path: Path, *, keep_views: bool = False) -> UnitFaces:
    """Aligned faces of one unit: a folder of images (its frames) or a video, sampled as verify
    samples it (``VIDEO_SAMPLE_FPS``, at most ``MAX_VIDEO_FRAMES``): the gates must measure the
    scores verify will compute, not an average over more frames than verify ever sees.
    ``keep_views``: also keep its best views for recognition (``UnitFaces.add``)."""
    from likeness.media.file_kind import VIDEO_SUFFIXES
    from likeness.media.images import read_image
    from likeness.media.video import sample_video_frames
    from likeness.verify.pipeline import MAX_VIDEO_FRAMES, VIDEO_SAMPLE_FPS

    unit = UnitFaces(path)
    if path.is_dir():
        for image in unit_files(path):
            unit.add(detector, read_image(image), keep_views=keep_views)
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        for frame in sample_video_frames(path, every_s=1.0 / VIDEO_SAMPLE_FPS, max_frames=MAX_VIDEO_FRAMES):
            unit.add(detector, frame.shown(), keep_views=keep_views)  # as verify looks for faces
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        unit.add(detector, read_image(path), keep_views=keep_views)
    else:
        raise ModelError(f"{path}: not a video, an image or a folder of images")
    return unit


def gate_results(
    *,
    video_auc: float,
    face_size_video_auc: float,
    high_frequency_video_auc: float,
    authentic_video_fpr: float,
    fake_video_recall: float,
    target_fpr: float,
) -> list[dict[str, Any]]:
    """Each gate with its figure, its limit and whether it holds (pure: the figures decide)."""
    fpr_limit = MAX_FPR_FACTOR * target_fpr

    def gate(name: str, figure: float, limit: float, holds: bool, says: str) -> dict[str, Any]:
        return {"gate": name, "figure": round(figure, 4), "limit": round(limit, 4), "holds": holds, "says": says}

    margins = [
        ("beats_face_size", "face size", face_size_video_auc),
        ("beats_high_frequency_energy", "high-frequency energy", high_frequency_video_auc),
    ]
    return [
        gate(
            "video_auc",
            video_auc,
            MIN_VIDEO_AUC,
            bool(np.isfinite(video_auc) and video_auc >= MIN_VIDEO_AUC),
            f"video AUC {video_auc:.3f} (needs >= {MIN_VIDEO_AUC:.2f})",
        ),
        *(
            gate(
                name,
                video_auc - baseline,
                MIN_MARGIN_OVER_BASELINES,
                bool(np.isfinite(video_auc - baseline) and video_auc - baseline >= MIN_MARGIN_OVER_BASELINES),
                f"video AUC {video_auc:.3f} against {words} {baseline:.3f}: margin {video_auc - baseline:+.3f} "
                f"(needs >= {MIN_MARGIN_OVER_BASELINES:.2f})",
            )
            for name, words, baseline in margins
        ),
        # verify flags a track, not a frame: the rate that matters is of authentic units flagged
        gate(
            "authentic_false_positive_rate",
            authentic_video_fpr,
            fpr_limit,
            bool(authentic_video_fpr <= fpr_limit + 1e-12),
            f"false-positive rate on authentic clips {authentic_video_fpr:.3f} "
            f"(needs <= {MAX_FPR_FACTOR}x target {target_fpr:.3f} = {fpr_limit:.3f})",
        ),
        gate(
            "fake_recall",
            fake_video_recall,
            MIN_FAKE_RECALL,
            bool(np.isfinite(fake_video_recall) and fake_video_recall >= MIN_FAKE_RECALL),
            f"fake clips flagged at the card's threshold {fake_video_recall:.3f} (needs >= {MIN_FAKE_RECALL:.2f})",
        ),
    ]


def false_positive_upper_bound(flagged: int, units: int, *, confidence: float = FPR_BOUND_CONFIDENCE) -> float:
    """One-sided Clopper-Pearson upper bound of a rate with ``flagged`` of ``units`` observed: the
    highest true rate under which seeing so few is still at least ``1 - confidence`` likely.

    >>> round(false_positive_upper_bound(0, 2), 3), round(false_positive_upper_bound(0, 39), 4)
    (0.776, 0.0739)
    """
    if units < 1 or not 0 <= flagged <= units:
        raise ValueError(f"needs 0 <= flagged <= units and units >= 1, got {flagged} of {units}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if flagged == units:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(confidence, flagged + 1, units - flagged))


def units_for_bound(limit: float, *, confidence: float = FPR_BOUND_CONFIDENCE) -> int:
    """How many units, none flagged, bring the upper bound to ``limit`` or under (39 for 7.5 %).

    With none flagged the bound is ``1 - (1 - confidence) ** (1 / n)``, hence the logarithms;
    the loop only absorbs their rounding."""
    if not 0 < limit < 1:
        raise ValueError(f"limit must lie in (0, 1), got {limit}")
    units = max(1, math.ceil(math.log(1 - confidence) / math.log(1 - limit)) - 1)
    while false_positive_upper_bound(0, units, confidence=confidence) > limit:
        units += 1
    return units


def false_positive_bound(evaluation: dict[str, Any], *, target_fpr: float) -> dict[str, Any]:
    """The bound of an evaluation's authentic false-positive rate (from its figures: units and
    the rate of them flagged), the gate's limit, and the units needed to bound it within that."""
    try:
        figures = evaluation["figures"]
        units, rate = figures["units"]["real"], figures["authentic_false_positive_rate"]["video"]
        problem = count_problem("real", units) or share_problem("authentic false-positive rate", rate, units)
        if problem is not None:
            raise ModelError(f"the card's evaluation holds figures no evaluation gives: {problem}")
        flagged = round(rate * units)
        limit = MAX_FPR_FACTOR * target_fpr
        upper = false_positive_upper_bound(flagged, units)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"the card's evaluation is incomplete ({type(exc).__name__}: {exc})") from None
    return {
        "method": "one-sided Clopper-Pearson",
        "confidence": FPR_BOUND_CONFIDENCE,
        "flagged": flagged,
        "units": units,
        "upper": round(upper, 4),
        "limit": round(limit, 4),
        "within_limit": upper <= limit,
        "units_needed_none_flagged": units_for_bound(limit),
    }


def bound_says(bound: dict[str, Any]) -> str:
    """One sentence on what the false-positive gate's figure is worth."""
    rate = f"{bound['flagged']} of {bound['units']} authentic units flagged"
    says = (
        f"{rate}: the true rate may be up to {bound['upper']:.3f} ({bound['confidence']:.0%} one-sided "
        f"Clopper-Pearson upper bound; the gate's limit is {bound['limit']:.3f})"
    )
    if bound["within_limit"]:
        return says
    return (
        f"{says}; {bound['units_needed_none_flagged']} authentic units with none flagged would bound it within "
        "the limit (the gate itself uses the point estimate)"
    )


def figures_problem(figures: Any) -> str | None:
    """Why an evaluation's figures cannot have come from :func:`measure`, or None: a rate or AUC
    that is not a number in [0, 1], a unit count that is not a whole number of at least
    ``MIN_UNITS_PER_CLASS``, a rate of units that is no fraction of their count. Typed into a card,
    such figures passed gates (a negative false-positive rate is "within" any limit) or stopped
    ``detector list`` with a traceback (an infinite count)."""
    try:
        units = {label: figures["units"][label] for label in ("real", "fake")}
        aucs = {
            "video AUC": figures["video_auc"],
            "face-size video AUC": figures["baselines"]["face_size"]["video_auc"],
            "high-frequency video AUC": figures["baselines"]["high_frequency_energy"]["video_auc"],
        }
        rates = {
            "authentic false-positive rate": (figures["authentic_false_positive_rate"]["video"], "real"),
            "fake recall": (figures["fake_recall_at_threshold"]["video"], "fake"),
        }
    except (KeyError, TypeError) as exc:
        return f"the card's evaluation is incomplete ({type(exc).__name__}: {exc})"
    problems = [count_problem(label, count) for label, count in units.items()]
    # an AUC of NaN (undefined) fails its gate; any other value outside [0, 1] is typed
    problems += [share_problem(words, value, nan_allowed=True) for words, value in aucs.items()]
    problems += [share_problem(words, value, units[label]) for words, (value, label) in rates.items()]
    return next((p for p in problems if p is not None), None)


def count_problem(label: str, count: Any) -> str | None:
    """Why ``count`` is not a number of units an evaluation measured, or None."""
    if type(count) is not int or count < MIN_UNITS_PER_CLASS:
        return f"{label} units {count!r}: not a count of at least {MIN_UNITS_PER_CLASS}"
    return None


def share_problem(words: str, value: Any, of_units: Any = None, *, nan_allowed: bool = False) -> str | None:
    """Why ``value`` is not a share in [0, 1] (of ``of_units`` units when given: k / n, to the 4
    decimals :func:`measure` rounds to), or None."""
    if nan_allowed and type(value) is float and math.isnan(value):
        return None
    if type(value) not in (int, float) or not 0 <= value <= 1:
        return f"{words} {value!r}: not a number in [0, 1]"
    if type(of_units) is int and of_units > 0:
        k = value * of_units
        if abs(k - round(k)) > of_units * 5e-5 + 1e-9:
            return f"{words} {value!r}: not a share of {of_units} units"
    return None


def recheck_gates(evaluation: dict[str, Any], *, target_fpr: float) -> list[dict[str, Any]]:
    """The gates worked out again from an evaluation's figures (a card's stored booleans are not
    trusted; figures no evaluation can produce are a ``ModelError``: :func:`figures_problem`)."""
    try:
        figures = evaluation["figures"]
        problem = figures_problem(figures)
        if problem is not None:
            raise ModelError(f"the card's evaluation holds figures no evaluation gives: {problem}")
        return gate_results(
            video_auc=float(figures["video_auc"]),
            face_size_video_auc=float(figures["baselines"]["face_size"]["video_auc"]),
            high_frequency_video_auc=float(figures["baselines"]["high_frequency_energy"]["video_auc"]),
            authentic_video_fpr=float(figures["authentic_false_positive_rate"]["video"]),
            fake_video_recall=float(figures["fake_recall_at_threshold"]["video"]),
            target_fpr=target_fpr,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"the card's evaluation is incomplete ({type(exc).__name__}: {exc})") from None


def calibration_problem(calibration: Any) -> str | None:
    """Why a card's calibration cannot be used (a temperature that is not a positive number, a
    threshold that is not finite, a false-positive target outside (0, ``MAX_TARGET_FPR``]), or None."""
    try:
        temperature, threshold, target = (float(calibration[key]) for key in CALIBRATION_KEYS)
    except (KeyError, TypeError, ValueError) as exc:
        return f"its calibration is incomplete ({type(exc).__name__}: {exc})"
    if not (np.isfinite(temperature) and temperature > 0):
        return f"its temperature {temperature} is not a positive number"
    if not np.isfinite(threshold):
        return f"its threshold {threshold} is not a number"
    if not (0 < target <= MAX_TARGET_FPR):
        return f"its false-positive target {target} is outside (0, {MAX_TARGET_FPR}]"
    return None


def subject_problem(evaluation: dict[str, Any], subject_id: str, slug: str) -> str | None:
    """Why an evaluation does not measure the detector for the subject ``subject_id`` (verify
    scores only faces it recognises as that subject), or None."""
    named = evaluation.get("subject")
    again = f"evaluate it with --subject {slug}"
    if not isinstance(named, dict) or not named.get("id"):
        return (
            f"its evaluation names no subject, so it measured faces verify may never give this detector; {again} "
            "(the gates are then measured on the units verify recognises as the subject)"
        )
    if str(named["id"]) != subject_id:
        return f"it was evaluated for {named.get('slug')} ({named['id']}), not {slug}; {again}"
    return None


def first_failed_gate(
    card: dict[str, Any], *, subject_id: str | None = None, subject_slug: str | None = None
) -> dict[str, Any] | None:
    """The first gate a card's detector does not pass, worked out again from its evaluation's
    figures; pseudo-gates ``evaluated`` (no evaluation), ``subject`` (given ``subject_id``: the
    evaluation was not made for that subject) and ``calibration`` (an unusable calibration, or
    not the one the evaluation measured: a threshold, temperature or target edited after
    evaluating moves what the figures say)."""
    evaluation = card.get("evaluation")
    if not evaluation:
        return {"gate": "evaluated", "says": "the card holds no evaluation (run: likeness detector evaluate)"}
    if subject_id is not None:
        mismatch = subject_problem(evaluation, subject_id, subject_slug or subject_id)
        if mismatch is not None:
            return {"gate": "subject", "says": mismatch}
    calibration = card.get("calibration") or {}
    problem = calibration_problem(calibration)
    if problem is None and evaluation.get("calibration") != {k: calibration.get(k) for k in CALIBRATION_KEYS}:
        problem = "its calibration is not the one its evaluation measured (evaluate it again)"
    if problem is not None:
        return {"gate": "calibration", "says": problem}
    target = float(calibration["target_false_positive_rate"])
    return next((g for g in recheck_gates(evaluation, target_fpr=target) if not g["holds"]), None)


def training_sha256s(card: dict[str, Any]) -> frozenset[str]:
    """The sha256 of every file the card says its detector was trained or calibrated on."""
    files = card.get("training", {}).get("files_sha256")
    if not isinstance(files, list):
        raise ModelError(
            "the detector's card lists no training files (training.files_sha256), so held-out evaluation "
            "files cannot be told from training ones: retrain it with this version"
        )
    return frozenset(str(f) for f in files)


def evaluate_detector(
    folder: Path,
    real: Sequence[Path],
    fake: Sequence[Path],
    *,
    subject: EvaluationSubject | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score every unit of ``real`` (authentic) and ``fake`` (manipulated) with the detector in
    ``folder`` and with both shortcut baselines; work out the gates; write the result into the
    card as ``evaluation`` and return it.

    ``subject`` (``evaluation_subject``): recognise each unit's faces as verify recognises a
    track and measure only the units recognised as that subject, the ones verify would give its
    detector; the others are listed (``verify_would_not_analyse``). Without it every unit counts
    and the evaluation cannot be registered.

    ``ModelError`` when an evaluation file was in the detector's training data or when a file is
    both real and fake; ``TooFewUnits`` when fewer than two units per class hold a face
    (recognised as the subject, with ``subject``).
    """
    from likeness.detector.score import load_detector
    from likeness.detector.train import CARD_FILE
    from likeness.verify.pipeline import clip_face_detector, still_face_detector

    model = load_detector(folder)
    card_path = Path(folder) / CARD_FILE
    trained_on = training_sha256s(model.card)
    labelled = [(Path(p), 0) for p in real] + [(Path(p), 1) for p in fake]
    digests: dict[str, list[str]] = {"real": [], "fake": []}
    seen: dict[str, int] = {}  # digest -> the unit it belongs to
    for unit, (path, label) in enumerate(labelled):
        if not path.exists():
            raise ModelError(f"{path}: not found")
        files = unit_files(path)
        if not files:
            raise ModelError(f"{path}: no images in this folder")
        for file in files:
            digest = sha256_file(file)
            if digest in trained_on:
                raise ModelError(f"{file}: this file was in the detector's training data; evaluate on held-out media")
            if seen.get(digest, unit) != unit:
                first = labelled[seen[digest]]
                how = "given as both real and fake" if first[1] != label else "given twice"
                where = "" if first[0] == path else f" (the same bytes as a file of {first[0]})"
                raise ModelError(f"{file}: {how}{where}; a file is either real or fake, and counted once")
            seen[digest] = unit
            digests["fake" if label else "real"].append(digest)

    units: list[tuple[int, UnitFaces]] = []
    # verify's own detectors, so that the faces (and their landmarks, hence crops and views)
    # are the ones verify finds: a still is a still, a folder of frames is a clip
    with still_face_detector() as still_detector, clip_face_detector() as clip_detector:
        for k, (path, label) in enumerate(labelled):
            detector = still_detector if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES else clip_detector
            units.append((label, unit_faces(detector, path, keep_views=subject is not None)))
            if progress:
                progress(k + 1, len(labelled))
    faceless = [str(u.path) for _, u in units if not u.crops]
    units = [(label, u) for label, u in units if u.crops]
    recognition = recognise_units(subject, units) if subject is not None and units else []
    if subject is not None:
        units = [unit for unit, seen in zip(units, recognition) if seen["analysed_by_verify"]]
    for label, words in ((0, "real"), (1, "fake")):
        if sum(1 for lab, _ in units if lab == label) < MIN_UNITS_PER_CLASS:
            raise TooFewUnits(too_few_units(label, words, units, recognition, faceless, subject), recognition)
    problem = calibration_problem(model.card.get("calibration"))
    if problem is not None:
        raise ModelError(f"{card_path}: {problem}")
    figures = measure(model, units)
    target = float(model.card["calibration"]["target_false_positive_rate"])
    gates = gate_results(
        video_auc=figures["video_auc"],
        face_size_video_auc=figures["baselines"]["face_size"]["video_auc"],
        high_frequency_video_auc=figures["baselines"]["high_frequency_energy"]["video_auc"],
        authentic_video_fpr=figures["authentic_false_positive_rate"]["video"],
        fake_video_recall=figures["fake_recall_at_threshold"]["video"],
        target_fpr=target,
    )
    evaluation = {
        "onnx_sha256": model.card["sha256"],
        "calibration": {key: model.card["calibration"][key] for key in CALIBRATION_KEYS},
        "evaluated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "figures": figures,
        "files_sha256": digests,
        "units": {
            "real": [str(u.path) for lab, u in units if lab == 0],
            "fake": [str(u.path) for lab, u in units if lab],
        },
        "no_face": faceless,
        "subject": None
        if subject is None
        else {"id": subject.subject_id, "slug": subject.slug, **subject.gallery.subject_references(subject.subject_id)},
        "recognition": recognition,
        "verify_would_not_analyse": [
            f"{seen['unit']} ({seen['class']}): {seen['says']}"
            for seen in recognition
            if not seen["analysed_by_verify"]
        ],
        "gates": gates,
        "passed": all(g["holds"] for g in gates),
    }
    evaluation["false_positive_bound"] = false_positive_bound(evaluation, target_fpr=target)
    card = strict_json.loads(card_path.read_text())
    card["evaluation"] = evaluation
    if subject is not None:  # the only evaluations register takes; recorded before the card names them
        subject.ledger.append(
            EVALUATED_EVENT,
            {
                "subject_id": subject.subject_id,
                "subject_slug": subject.slug,
                "model": str(model.card.get("model")),
                "onnx_sha256": evaluation["onnx_sha256"],
                "evaluation_sha256": evaluation_sha256(evaluation),
                "passed": evaluation["passed"],
            },
        )
    write_atomic(card_path, (json.dumps(card, indent=2) + "\n").encode())
    return evaluation


def too_few_units(
    label: int,
    words: str,
    units: Sequence[tuple[int, UnitFaces]],
    recognition: Sequence[dict[str, Any]],
    faceless: Sequence[str],
    subject: EvaluationSubject | None,
) -> str:
    """The "too few units" message for one class, naming how many were usable and why the rest were not."""
    counted = sum(1 for lab, _ in units if lab == label)
    if subject is None:
        return (
            f"evaluation: needs at least {MIN_UNITS_PER_CLASS} {words} videos or folders with a face, got {counted}"
            + (f" (no face in: {', '.join(faceless)})" if faceless else "")
        )
    mine = [seen for seen in recognition if seen["class"] == words]
    left_out = [f"{Path(seen['unit']).name}: {seen['says']}" for seen in mine if not seen["analysed_by_verify"]]
    return (
        f"evaluation: needs at least {MIN_UNITS_PER_CLASS} {words} videos or folders recognised as {subject.slug} "
        f"(verify scores only faces it recognises as {subject.slug}), got {counted} of {len(mine)} with a face"
        + (f"; verify would not analyse {'; '.join(left_out)}" if left_out else "")
        + (f" (no face in: {', '.join(faceless)})" if faceless else "")
    )


def measure(model: Any, units: Sequence[tuple[int, UnitFaces]]) -> dict[str, Any]:
    """Frame and video AUC of the detector and of both baselines, and the authentic FPR."""
    from likeness.detector.score import track_score

    logits = [model.logits(np.stack(u.crops)) for _, u in units]
    sizes = [np.asarray(u.sizes, np.float64) for _, u in units]
    energies = [np.array([high_frequency_energy(c) for c in u.crops]) for _, u in units]
    unit_labels = np.array([label for label, _ in units])
    frame_labels = np.concatenate([np.full(len(u.crops), label) for label, u in units])

    def aucs(per_unit: list[np.ndarray], auc: Callable[[np.ndarray, np.ndarray], float]) -> dict[str, float]:
        return {
            "frame_auc": round(auc(frame_labels, np.concatenate(per_unit)), 4),
            "video_auc": round(auc(unit_labels, np.array([float(np.mean(v)) for v in per_unit])), 4),
        }

    detector = aucs(logits, roc_auc)
    threshold = model.threshold_logit
    real_frames = np.concatenate([v for v, (label, _) in zip(logits, units) if label == 0])
    real_videos = np.array([track_score(v) for v, (label, _) in zip(logits, units) if label == 0])
    fake_videos = np.array([track_score(v) for v, (label, _) in zip(logits, units) if label == 1])
    return {
        "frame_auc": detector["frame_auc"],
        "video_auc": detector["video_auc"],
        "baselines": {
            "face_size": aucs(sizes, best_direction_auc),
            "high_frequency_energy": aucs(energies, best_direction_auc),
        },
        "authentic_false_positive_rate": {
            "frame": round(float((real_frames >= threshold).mean()), 4),
            "video": round(float((real_videos >= threshold).mean()), 4),
        },
        "fake_recall_at_threshold": {"video": round(float((fake_videos >= threshold).mean()), 4)},
        "threshold_logit": threshold,
        "units": {"real": int((unit_labels == 0).sum()), "fake": int((unit_labels == 1).sum())},
        "faces": {"real": int((frame_labels == 0).sum()), "fake": int((frame_labels == 1).sum())},
    }
