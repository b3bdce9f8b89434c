"""Per-frame face swapping: detect, track, choose by identity, gate, align, swap, refine, paste.

``FrameRenderer`` is the stateful core (tracks, per-track identity decisions, temporal filters)
shared by the image and video paths. It takes frames and returns frames; it never reads or
writes files, so tests check it at the pixel level (faces that are not swapped stay
bit-identical) and the pipeline feeds its output only to the labelled writer.

Swapped pixels need consent here too, not only in the pipeline: a renderer is built with the
render ``Authorization`` of the model's subject and the ``ReleaseAuthorization`` of the
performer whose footage it swaps into, and rechecks both every ``recheck_every`` frames. Its
model must be a ``SwapModel`` made by ``likeness.train.load_swap_model`` (card, ledger event and
file hash verified); a duck-typed object with ``card`` and ``run`` is refused
(``not_issued_here``), when the renderer is built and at every swap.

Identity is decided per *track*, not per frame: a track's face is embedded when it appears and
again about every ``identity_every`` frames, and the decision uses the running mean distance to
the performer's references. One bad embedding (motion blur, a hand over the face) therefore
cannot make the swap flicker on and off. Which frames are sampled is drawn from a secret of the
render (``sample_gap``), so a take cannot show the performer on the sampled frames alone.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from likeness.checks import check_rgb
from likeness.errors import ConsentError, FaceError, ModelError, OptionError
from likeness.render.blend import paste_face, warp_to_frame
from likeness.render.colour import lab_statistics, transfer_colour
from likeness.render.gating import GateOptions, gate_face
from likeness.render.mask import (
    blend_mask,
    closed_eye_mask,
    inner_mouth_mask,
    keep_occluders,
    landmark_hull,
    open_eye_levels,
)
from likeness.render.smoothing import SmoothingOptions, TrackSmoother
from likeness.stages import IdentityEmbedder, LandmarkDetector
from likeness.train.swap_model import SwapModel, require_issued_model

if TYPE_CHECKING:
    from likeness.consent.policy import Authorization, ReleaseAuthorization


def _box(values: Any) -> tuple[float, float, float, float]:
    """A face box ``(x0, y0, x1, y1)`` as four floats."""
    x0, y0, x1, y1 = (float(v) for v in values)
    return x0, y0, x1, y1


@dataclass(frozen=True)
class RefineOptions:
    """Refinement settings. Defaults come from ``benchmarks/render.py`` (see docs/render.md).

    Mask distances are fractions of the crop side R so they mean the same at 64 and 256 px.
    """

    colour: str = "rct"
    blend: str = "alpha"
    erode: float = 0.03
    feather: float = 0.08
    # Keep the performer's open inner mouth (teeth, tongue) through the swap, for speech and
    # singing; a model trained on closed-mouth photos draws closed lips there (docs/render.md).
    mouth: bool = False
    # Let the performer's own eyelids show through the swap while an eye closes, weighted by how
    # closed it is against the track's open level; a model trained on photos paints open eyes over
    # every blink (docs/render.md). Open eyes stay the swap's.
    eyes: bool = False
    # Take what covers the face (glasses frames, hands, microphones, hair) out of the blend mask
    # with the shipped occlusion mask (likeness.faces.occlusion), so the swap never paints over it.
    occlusion: bool = True
    # Add the thin-rim network to the occlusion mask for crops of 128 px and more (models of
    # 128 px and up): thin metal and light spectacle rims the 64 px mask misses stay the
    # performer's, at a ring of clear face round each rim, some wrinkle arcs inside the lenses and
    # about 4 times the mask's cost per face (docs/render.md). Needs ``occlusion``.
    thin_rims: bool = False
    smoothing: SmoothingOptions = SmoothingOptions()
    gate: GateOptions = GateOptions()

    def __post_init__(self) -> None:
        if self.thin_rims and not self.occlusion:
            raise OptionError("{thin_rims} adds to the occlusion mask: it needs {occlusion} on")


@dataclass
class FaceOutcome:
    """What happened to one detected face in one frame."""

    track_id: int
    bbox: tuple[float, float, float, float]
    swapped: bool
    reason: str | None
    affine: np.ndarray | None = None
    crop: np.ndarray | None = None  # colour-corrected swapped crop, uint8 (R, R, 3)
    mask: np.ndarray | None = None  # blend mask, float32 (R, R)
    source_crop: np.ndarray | None = None  # the target face aligned the same way
    landmarks: np.ndarray | None = None  # target landmarks in frame pixels
    # With ``RefineOptions.eyes``: this frame's (right, left) eye aspect ratios and the track's open
    # levels, None until the track has ``EYE_MIN_SAMPLES`` samples.
    eye_openness: tuple[float, float] | None = None
    eye_open_levels: tuple[float, float] | None = None


# A render track stays active this many frames after its last face.
TRACK_MAX_MISSED = 15
# ``process_batch`` relies on no track ending inside a batch (see there).
MAX_BATCH_FRAMES = TRACK_MAX_MISSED
# A track's open-eye level is the median of the open samples among its last EYE_WINDOW eye
# samples (``open_eye_levels``: 10 s at 25 fps, so eyes shut for most of a ballad line do not
# become the level), once it has EYE_MIN_SAMPLES of them. A lone frame cannot tell a narrow open
# eye from a closing one, so a still image never gets the eye mask.
EYE_WINDOW = 250
EYE_MIN_SAMPLES = 8


@dataclass(frozen=True)
class FrameInput:
    """One frame for :meth:`FrameRenderer.process_batch`: uint8 RGB ``rgb``, its index and
    presentation time, and its detections (None: detect here)."""

    rgb: np.ndarray
    index: int
    t_s: float
    faces: list[Any] | None = None


@dataclass
class _PreparedFrame:
    rgb: np.ndarray
    t_s: float
    index: int
    outcomes: list[FaceOutcome] = field(default_factory=list)
    pending: list[tuple[FaceOutcome, Any]] = field(default_factory=list)


@dataclass
class _TrackIdentity:
    distances: list[float] = field(default_factory=list)
    last_embedded: int = -(10**9)
    embedding: np.ndarray | None = None
    # The face's look (``face_appearance``) when it was last embedded, and the last frame the
    # track had a face: a track whose face stops looking like that, or comes back after frames
    # without one, may now be someone else (a cut, a crossing), so it is embedded again at once.
    appearance: np.ndarray | None = None
    last_seen: int | None = None
    # Until this frame the track's box is contested (``CONTESTED_STEPS``): it is embedded at every
    # frame it would be swapped.
    contested_until: int = -(10**9)

    def mean(self) -> float:
        return float(np.mean(self.distances)) if self.distances else float("inf")


# A face box whose 16x16 grey look correlates less than this with its look at the track's last
# identity embedding is embedded again before it is swapped. On one person's consecutive frames
# the correlation with that look stays above it for 20-120 frames at a time (a head turn, a
# talking mouth: the consenting-actor clip sets it off 5 times in 300 frames, one embedding
# each); a cut or a crossing that hands the box to another person measured 0.35-0.69.
SAME_FACE_APPEARANCE = 0.7
APPEARANCE_SIDE = 16
# A settled track the performer's is sampled every this many ``identity_every`` steps, a settled
# left-alone one every 8: a lookalike who takes the performer's place unseen by the look test
# (alike at 16 px) is swapped until the next sample, at most 60 frames at the default 15.
SETTLED_SWAPPED_EVERY = 4
# A sample that says "not the performer" on a swapped track shows the look test cannot tell the
# two faces in that box apart: for this many ``identity_every`` steps from it (480 frames at the
# defaults, longer than a left-alone track's 8-step gap) the box's tracks are embedded at every
# frame they would be swapped, so a take that flips between the performer and a lookalike has
# the lookalike swapped on no frame after she is first found (sampled as usual, 39 of her 74
# frames were swapped when the flips came every 2 frames). Faces the look test tells apart, and
# boxes where no sample ever disagreed, cost nothing more. When the look test saw no change
# (a lookalike, not a crossing), the window holds for every track of the render, and no track is
# trusted at ``SETTLED_SWAPPED_EVERY`` again (``FrameRenderer.lookalike_found_at``).
CONTESTED_STEPS = 32


def sample_gap(key: bytes, track_id: int, sampled_at: int, interval: int) -> int:
    """Frames from a track's identity sample at frame ``sampled_at`` to its next one: between
    ``interval - interval // 2`` and ``interval``, drawn from ``key`` (a render's secret).

    On a fixed schedule (every ``interval`` frames from the track's first) a take that shows the
    performer on those frames and a lookalike (alike at 16 px, so the look test stays quiet) on
    all the others had the lookalike swapped on all 68 of her frames (trial 26).

    >>> sample_gap(b"k", 3, 120, 1)
    1
    """
    if interval <= 1:
        return 1
    low = interval - interval // 2
    digest = hashlib.blake2b(f"{track_id}:{sampled_at}".encode(), key=key, digest_size=8).digest()
    return low + int.from_bytes(digest, "big") % (interval - low + 1)


def face_appearance(rgb: np.ndarray, bbox: tuple[float, float, float, float]) -> np.ndarray | None:
    """float32 ``(APPEARANCE_SIDE ** 2,)``: the grey face box shrunk to 16x16, zero mean and unit
    norm (so a brightness change is no change), or None for a box with no pixels or no contrast.
    The dot product of two is their correlation, -1..1."""
    import cv2

    height, width = rgb.shape[:2]
    x0, y0 = max(0, int(bbox[0])), max(0, int(bbox[1]))
    x1, y1 = min(width, int(np.ceil(bbox[2]))), min(height, int(np.ceil(bbox[3])))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    look = cv2.resize(grey, (APPEARANCE_SIDE, APPEARANCE_SIDE), interpolation=cv2.INTER_AREA)
    look = look.astype(np.float32).ravel()
    look -= look.mean()
    norm = float(np.linalg.norm(look))
    return look / norm if norm > 1e-3 else None


@dataclass
class _TrackEyes:
    """A track's recent (right, left) eye aspect ratios and head yaws, for its open-eye level."""

    samples: list[tuple[float, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A non-finite sample (a checkpoint edited, a degenerate pose) would make every level of
        # the next EYE_WINDOW frames a FaceError and stop the render: it is left out instead.
        self.samples = [sample for sample in self.samples if np.all(np.isfinite(sample))]

    def add(self, openness: tuple[float, float], *, yaw: float) -> tuple[float, float] | None:
        """Record this frame's openness and yaw (degrees); returns the open levels (right, left) or None."""
        sample = (float(openness[0]), float(openness[1]), float(yaw))
        if np.all(np.isfinite(sample)):
            self.samples = (self.samples + [sample])[-EYE_WINDOW:]
        if len(self.samples) < EYE_MIN_SAMPLES:
            return None
        values = np.asarray(self.samples, np.float64)
        return open_eye_levels(values[:, :2], yaws=values[:, 2], min_frontal=EYE_MIN_SAMPLES)


@dataclass
class TrackTally:
    """What became of one track's faces, for the report: the frames it spans, its last face box
    ``(x0, y0, x1, y1)``, and how many faces were swapped or left alone, by reason
    (``gating.SKIP_REASONS``)."""

    first_frame: int
    last_frame: int
    box: tuple[float, float, float, float]
    swapped: int = 0
    left_alone: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: FaceOutcome, frame_index: int) -> None:
        self.last_frame, self.box = frame_index, outcome.bbox
        if outcome.swapped:
            self.swapped += 1
        else:
            self.left_alone[outcome.reason or "not_swapped"] += 1

    def summary(self, track_id: int) -> dict[str, Any]:
        """The report's row: ``track_id``, frames, box, faces, ``swapped`` and ``left_alone``."""
        return {
            "track_id": track_id,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "box": [round(v, 1) for v in self.box],
            "faces": self.swapped + sum(self.left_alone.values()),
            "swapped": self.swapped,
            "left_alone": dict(self.left_alone),
        }


class TrackIds:
    """Stable render track ids on top of ``likeness.faces.FaceTracker``, with checkpointable state.

    ``FaceTracker`` owns the IoU matching; this wrapper remembers each live track's last box so
    a resumed render can rebuild the tracker and keep the same ids (identity decisions and
    temporal filters are keyed by them). A restored tracker is re-seeded with the saved boxes,
    and the ids it hands out are translated back to the saved ones.
    """

    def __init__(self, *, iou_threshold: float = 0.3, max_missed: int = TRACK_MAX_MISSED) -> None:
        from likeness.faces import FaceTracker

        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self._tracker = FaceTracker(iou_threshold=iou_threshold, max_missed=max_missed)
        self._render_id: dict[int, int] = {}  # FaceTracker id -> render track id
        self._boxes: dict[int, tuple[float, float, float, float]] = {}  # render id -> last box
        self.next_id = 0

    @property
    def active_ids(self) -> set[int]:
        return {self._render_id[i] for i in self._tracker.active_ids if i in self._render_id}

    def update(self, boxes: list[tuple[float, float, float, float]]) -> list[int]:
        """Render track ids for this frame's ``(x0, y0, x1, y1)`` boxes, in input order."""
        ids = []
        for tracker_id, box in zip(self._tracker.update(boxes), boxes):
            if tracker_id not in self._render_id:
                self._render_id[tracker_id] = self.next_id
                self.next_id += 1
            ids.append(self._render_id[tracker_id])
            self._boxes[self._render_id[tracker_id]] = _box(box)
        live = set(self._tracker.active_ids)
        self._render_id = {k: v for k, v in self._render_id.items() if k in live}
        kept = set(self._render_id.values())
        self._boxes = {k: v for k, v in self._boxes.items() if k in kept}
        return ids

    def split(self, render_id: int) -> int:
        """Give the face now in track ``render_id``'s box a new render id (another person took the
        box over); returns the new id. The old id ends here."""
        tracker_id = next(k for k, v in self._render_id.items() if v == render_id)
        new_id, self.next_id = self.next_id, self.next_id + 1
        self._render_id[tracker_id] = new_id
        self._boxes[new_id] = self._boxes.pop(render_id)
        return new_id

    def state(self) -> dict:
        return {"next_id": self.next_id, "tracks": {str(k): list(v) for k, v in self._boxes.items()}}

    @classmethod
    def from_state(cls, state: dict, *, iou_threshold: float = 0.3, max_missed: int = TRACK_MAX_MISSED) -> TrackIds:
        tracks = cls(iou_threshold=iou_threshold, max_missed=max_missed)
        saved = [(int(k), _box(v)) for k, v in state["tracks"].items()]
        if saved:
            seeded = tracks._tracker.update([box for _, box in saved])
            tracks._render_id = {tracker_id: render_id for tracker_id, (render_id, _) in zip(seeded, saved)}
            tracks._boxes = dict(saved)
        tracks.next_id = int(state["next_id"])
        return tracks


class FrameRenderer:
    """Swap the released performer's faces in frames, leaving every other face untouched.

    Args:
        model: a ``SwapModel`` from ``likeness.train.load_swap_model`` (nothing else is accepted).
        detector: landmark detector (``likeness.faces.FaceDetector``, video mode for clips).
        embedder: identity embedder (``likeness.faces.FaceEmbedder``).
        performer_embeddings: float32 ``(K, 128)`` reference embeddings of the released performer.
        authz: the render ``Authorization`` (a final-media use) for the model card's subject.
        release: the ``ReleaseAuthorization`` of the card's performer (the footage's owner).
        identity_threshold: distance at or below which a track is the performer.
        options: refinement options.
        identity_every: re-embed a track about every this many frames (``sample_gap``).
        sample_key: the secret that places identity samples (``sample_gap``); a fresh random one
            by default, kept in ``state`` so a resumed render samples the same frames.
        recheck_every: recheck both authorizations every this many frames (revocation bites).

    Raises ``ConsentError`` when either authorization is missing, forged, not in force or for
    someone other than the card names, or when ``model`` was not made by ``load_swap_model``
    (``not_issued_here``).
    """

    def __init__(
        self,
        model: SwapModel,
        detector: LandmarkDetector,
        embedder: IdentityEmbedder,
        performer_embeddings: np.ndarray,
        *,
        authz: Authorization | None = None,
        release: ReleaseAuthorization | None = None,
        identity_threshold: float,
        options: RefineOptions = RefineOptions(),
        identity_every: int = 15,
        recheck_every: int = 25,
        sample_key: bytes | None = None,
    ) -> None:
        self.authz, self.release = _required_consent(model, authz, release)
        self.recheck_every = max(1, int(recheck_every))
        self._rechecked_at: int | None = None  # frame index of the last recheck
        references = np.asarray(performer_embeddings, np.float32)
        if references.ndim != 2 or references.shape[0] == 0:
            raise FaceError("the performer has no reference embeddings: enroll reference photos first")
        self.model = model
        self.detector = detector
        self.embedder = embedder
        self.references = references
        self.identity_threshold = float(identity_threshold)
        self.options = options
        self.identity_every = int(identity_every)
        self.sample_key = secrets.token_bytes(16) if sample_key is None else bytes(sample_key)
        card = model.card
        self.resolution = int(card.get("resolution", 64))
        from likeness.faces.occlusion import THIN_FROM

        if options.thin_rims and self.resolution < THIN_FROM:
            # The add-on runs only on crops of THIN_FROM px and up: on a smaller model the option
            # would render exactly as without it, so it is refused rather than ignored.
            raise OptionError(
                f"{{thin_rims}} keeps rims only for models of {THIN_FROM} px and more; this model is "
                f"{self.resolution} px: render without it"
            )
        from likeness.faces.align import as_coverage

        self.coverage = as_coverage(card.get("coverage", "wf"))
        yaw_range = card.get("yaw_range")
        self.yaw_range = (float(yaw_range[0]), float(yaw_range[1])) if yaw_range else None
        self.tracker = TrackIds()
        self.smoother = TrackSmoother(options.smoothing)
        self.identities: dict[int, _TrackIdentity] = {}
        # The last frame where a swapped track's sample found someone else while her look had not
        # changed (a face the look test cannot tell from the performer's), or None: from then on
        # the render trusts no track for ``SETTLED_SWAPPED_EVERY`` steps (``_identify``).
        self.lookalike_found_at: int | None = None
        self.eyes: dict[int, _TrackEyes] = {}
        self.counts: Counter[str] = Counter()
        # Per track of a clip: its frames and what became of its faces (``track_summaries``).
        self.tallies: dict[int, TrackTally] = {}
        # Swapped faces that kept the mask without the thin add-on (no spectacle zone): the
        # report says so; they are swapped, so they are not among ``counts``' skip reasons.
        self.thin_rims_skipped = 0
        self.occlusion = occlusion_segmenter(thin_rims=options.thin_rims) if options.occlusion else None

    # -- state for checkpoints ------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "tracker": self.tracker.state(),
            "smoother": self.smoother.state(),
            "identities": {
                str(k): {
                    "distances": v.distances,
                    "last_embedded": v.last_embedded,
                    "embedding": None if v.embedding is None else v.embedding.tolist(),
                    "appearance": None if v.appearance is None else v.appearance.tolist(),
                    "last_seen": v.last_seen,
                    "contested_until": v.contested_until,
                }
                for k, v in self.identities.items()
            },
            "eyes": {str(k): [list(s) for s in v.samples] for k, v in self.eyes.items()},
            "counts": dict(self.counts),
            "tallies": {str(k): v.summary(k) for k, v in self.tallies.items()},
            "thin_rims_skipped": self.thin_rims_skipped,
            "sample_key": self.sample_key.hex(),
            "lookalike_found_at": self.lookalike_found_at,
        }

    def track_summaries(self) -> list[dict[str, Any]]:
        """Every track of the clip so far, in order of appearance (``TrackTally.summary``)."""
        return [self.tallies[k].summary(k) for k in sorted(self.tallies)]

    def reset(self) -> None:
        """Forget tracks, identity decisions and filters (unrelated images; counts are kept)."""
        self.tracker = TrackIds()
        self.smoother = TrackSmoother(self.options.smoothing)
        self.identities = {}
        self.eyes = {}
        self.tallies = {}

    def restore(self, state: dict) -> None:
        self.tracker = TrackIds.from_state(state["tracker"])
        self.smoother = TrackSmoother.from_state(state["smoother"], self.options.smoothing)
        self.identities = {
            int(k): _TrackIdentity(
                list(v["distances"]),
                int(v["last_embedded"]),
                None if v["embedding"] is None else np.asarray(v["embedding"], np.float32),
                # absent in older checkpoints: the look is taken again at the next embedding
                None if v.get("appearance") is None else np.asarray(v["appearance"], np.float32),
                None if v.get("last_seen") is None else int(v["last_seen"]),
                int(v.get("contested_until", -(10**9))),  # absent in older checkpoints
            )
            for k, v in state["identities"].items()
        }
        # Checkpoints written before the eyes option have no eye samples: the levels rebuild.
        # Samples saved before the yaw was kept are (right, left): taken as frontal.
        self.eyes = {
            int(k): _TrackEyes([(float(s[0]), float(s[1]), float(s[2]) if len(s) > 2 else 0.0) for s in v])
            for k, v in state.get("eyes", {}).items()
        }
        self.counts = Counter(state["counts"])
        self.tallies = {  # absent in older checkpoints: the report's tracks start at the resume
            int(k): TrackTally(
                int(v["first_frame"]), int(v["last_frame"]), _box(v["box"]), int(v["swapped"]), Counter(v["left_alone"])
            )
            for k, v in state.get("tallies", {}).items()
        }
        self.thin_rims_skipped = int(state.get("thin_rims_skipped", 0))  # absent in older checkpoints
        found_at = state.get("lookalike_found_at")  # absent in older checkpoints
        self.lookalike_found_at = None if found_at is None else int(found_at)
        if state.get("sample_key"):  # absent in older checkpoints: this renderer's own is as secret
            self.sample_key = bytes.fromhex(str(state["sample_key"]))

    # -- per frame ------------------------------------------------------------------------------

    def _identify(
        self,
        rgb: np.ndarray,
        track_id: int,
        bbox: tuple[float, float, float, float],
        landmarks: np.ndarray,
        frame_index: int,
    ) -> tuple[int, bool]:
        """``(track id, is the performer)`` for one face: the track's id, or a new one when another
        person has taken its box over."""
        from likeness.faces.identity import match_identity

        identity = self.identities.setdefault(track_id, _TrackIdentity())
        appearance = face_appearance(rgb, bbox)
        # The box tracker matches boxes, not people: after a hard cut, a crossing or an exit and
        # entrance at the same place, a settled track (next embedded 60 frames on) would carry
        # the performer's decision over to whoever stands there. Such a face is embedded now.
        came_back = identity.last_seen is not None and frame_index - identity.last_seen > 1
        looks_different = (
            identity.appearance is not None
            and appearance is not None
            and float(identity.appearance @ appearance) < SAME_FACE_APPEARANCE
        )
        suspect = bool(identity.distances) and (came_back or looks_different)
        identity.last_seen = frame_index
        # Once two samples agree on a side of the threshold, re-embed less often: a dlib embedding
        # costs as much as ~8 frames of everything else on a 2-core CPU.
        all_performer = max(identity.distances, default=float("inf")) <= self.identity_threshold
        settled = len(identity.distances) >= 2 and (all_performer or min(identity.distances) > self.identity_threshold)
        # Once the take has shown a lookalike, a settled track of the performer is trusted no longer
        # than an unsettled one: after the contested window a lookalike cut into a box (or into a
        # fresh track after frames without a face) was swapped until the next sample, up to 60
        # frames a time at the defaults.
        swapped_every = SETTLED_SWAPPED_EVERY if self.lookalike_found_at is None else 1
        interval = self.identity_every * ((swapped_every if all_performer else 8) if settled else 1)
        if frame_index < self._contested_until(identity) and identity.mean() <= self.identity_threshold:
            interval = 1
        gap = sample_gap(self.sample_key, track_id, identity.last_embedded, interval)
        if not suspect and frame_index - identity.last_embedded < gap:
            return track_id, identity.mean() <= self.identity_threshold
        was_target = identity.mean() <= self.identity_threshold
        identity.last_embedded = frame_index
        identity.appearance = appearance
        try:
            embedding = self.embedder.embed(rgb, landmarks)
        except FaceError:
            embedding = None
        distance = None
        if embedding is not None:
            distance, _ = match_identity(embedding, self.references, threshold=self.identity_threshold)
        says_target = distance is not None and distance <= self.identity_threshold
        # A swapped track's sample that says "not the performer" ends the swap at once, suspect
        # or not: folded into the mean of the last eight, it left a lookalike at 16 px (who never
        # sets off the look test) swapped for samples more (90 frames at the defaults).
        dissents = distance is not None and was_target and not says_target
        if (suspect and says_target != was_target) or dissents:
            # Someone else now: a new track, decided on this face alone (and never swapped
            # unless it is the performer), so the report keeps the two people apart too.
            track_id = self.tracker.split(track_id)
            contested_until = identity.contested_until
            if dissents:
                contested_until = max(contested_until, frame_index + CONTESTED_STEPS * self.identity_every)
                if not looks_different:  # the look test saw no one else: a lookalike, not a crossing
                    self.lookalike_found_at = frame_index
            identity = _TrackIdentity(
                last_embedded=frame_index,
                appearance=appearance,
                last_seen=frame_index,
                contested_until=contested_until,
            )
            self.identities[track_id] = identity
        if distance is not None:
            identity.distances = (identity.distances + [distance])[-8:]
            identity.embedding = embedding
        return track_id, identity.mean() <= self.identity_threshold

    def _contested_until(self, identity: _TrackIdentity) -> int:
        """The frame until which ``identity``'s track is contested: its own box's window, or the
        render's while a lookalike the look test missed was found less than ``CONTESTED_STEPS``
        steps ago (she may come back in any box, or in a fresh track)."""
        if self.lookalike_found_at is None:
            return identity.contested_until
        return max(identity.contested_until, self.lookalike_found_at + CONTESTED_STEPS * self.identity_every)

    def process(
        self,
        rgb: np.ndarray,
        *,
        frame_index: int,
        t_s: float,
        faces: list[Any] | None = None,
        in_place: bool = False,
    ) -> tuple[np.ndarray, list[FaceOutcome]]:
        """Render one frame. Returns the new frame (a copy, unless ``in_place``) and one outcome per
        detected face.

        ``faces``: this frame's detections when the caller already ran ``detector.detect`` (the
        video pipeline detects on its decode thread, one frame ahead); None detects here.
        ``in_place=True``: faces are pasted into ``rgb`` itself, which is returned (the video
        pipeline owns its decoded frames and saves a frame-sized copy per frame).
        """
        return self.process_batch([FrameInput(rgb, frame_index, t_s, faces)], in_place=in_place)[0]

    def process_batch(
        self, frames: list[FrameInput], *, in_place: bool = False
    ) -> list[tuple[np.ndarray, list[FaceOutcome]]]:
        """Render consecutive frames of one clip with one swap-model call for all their faces.

        The result equals calling :meth:`process` on each frame in order (up to the model's own
        float rounding): tracking, identity and landmark smoothing run frame by frame before the
        model, swap denoising, colour smoothing and pasting frame by frame after it. Per-track state cannot be
        dropped in between, because a track stays active for ``TRACK_MAX_MISSED`` frames after
        its last face, so a batch holds at most that many frames. One call on 4 faces costs about
        12 % less per face than 4 calls on a 2-core CPU (docs/render.md); a GPU gains far more.
        """
        if len(frames) > MAX_BATCH_FRAMES:
            raise ValueError(f"process_batch: at most {MAX_BATCH_FRAMES} frames per batch, got {len(frames)}")
        for frame in frames:
            self._recheck_consent(frame.index)
        prepared = [self._prepare(f) for f in frames]
        pending = [item for p in prepared for item in p.pending]
        if pending:
            batch = np.stack([a.image for _, a in pending]).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
            model = require_issued_model(self.model)  # the attribute may have been replaced since
            swapped, learned = _checked_model_output(model.run(batch), len(pending), self.resolution)
        results = []
        first = 0
        for p in prepared:
            count = len(p.pending)
            results.append(
                self._finish(
                    p,
                    swapped[first : first + count] if count else (),
                    learned[first : first + count] if count else (),
                    in_place=in_place,
                )
            )
            first += count
        return results

    def _recheck_consent(self, frame_index: int) -> None:
        last = self._rechecked_at
        if last is None or not 0 <= frame_index - last < self.recheck_every:
            self.authz.recheck()
            self.release.recheck()
            self._rechecked_at = frame_index

    def _prepare(self, frame: FrameInput) -> _PreparedFrame:
        """Track, identify, gate and align one frame's faces (everything before the model)."""
        from likeness.faces.align import align_face
        from likeness.faces.pose import head_pose

        rgb = check_rgb(frame.rgb, name="frame")
        height, width = rgb.shape[:2]
        faces = self.detector.detect(rgb) if frame.faces is None else frame.faces
        track_ids = self.tracker.update([_box(f.bbox) for f in faces])
        active = self.tracker.active_ids
        self.smoother.keep_only(active)
        # Ended tracks' identity decisions go too, so memory stays bounded on long videos.
        self.identities = {k: v for k, v in self.identities.items() if k in active}
        self.eyes = {k: v for k, v in self.eyes.items() if k in active}
        prepared = _PreparedFrame(rgb, frame.t_s, frame.index)
        for face, track_id in zip(faces, track_ids):
            bbox = _box(face.bbox)
            landmarks = np.asarray(face.landmarks, np.float32)
            track_id, is_target = self._identify(rgb, track_id, bbox, landmarks, frame.index)
            outcome = FaceOutcome(track_id, bbox, False, None, landmarks=landmarks)
            prepared.outcomes.append(outcome)
            if not is_target:
                outcome.reason = "not_target"
                continue
            try:
                yaw = head_pose(landmarks, (height, width))[0]
            except FaceError:
                yaw = 0.0
            decision = gate_face(
                bbox, frame_size=(width, height), yaw=yaw, yaw_range=self.yaw_range, options=self.options.gate
            )
            if not decision.swap:
                outcome.reason = decision.reason
                continue
            face_width = max(bbox[2] - bbox[0], 1.0)
            smoothed = self.smoother.smooth(track_id, "landmarks", landmarks, frame.t_s, scale=face_width)
            aligned = align_face(rgb, smoothed.astype(np.float32), size=self.resolution, coverage=self.coverage)
            if self.options.eyes:
                self._measure_eyes(outcome, landmarks, yaw)
            prepared.pending.append((outcome, aligned))
        return prepared

    def _measure_eyes(self, outcome: FaceOutcome, landmarks: np.ndarray, yaw: float) -> None:
        """This frame's eye openness and the track's open levels, from the unsmoothed landmarks:
        landmark smoothing shares one cutoff over the whole face, so it flattens a blink. ``yaw``
        keeps turned faces' samples out of the level (``open_eye_levels``)."""
        from likeness.faces.quality import eye_openness_each

        try:
            outcome.eye_openness = eye_openness_each(landmarks)
        except FaceError:
            return  # degenerate eye corners: no sample, no eye mask this frame
        track = self.eyes.setdefault(outcome.track_id, _TrackEyes())
        outcome.eye_open_levels = track.add(outcome.eye_openness, yaw=yaw)

    def _finish(
        self, prepared: _PreparedFrame, swapped: Any, learned: Any, *, in_place: bool
    ) -> tuple[np.ndarray, list[FaceOutcome]]:
        """Colour-correct, mask and paste one frame's swapped faces (everything after the model)."""
        rgb = prepared.rgb
        out = rgb
        size = self.resolution
        occluders: Any = [None] * len(prepared.pending)
        if self.occlusion is not None and prepared.pending:
            occluders, thin_skips = self.occlusion.occluders_and_thin_skips(
                np.stack([aligned.image for _, aligned in prepared.pending]),
                np.stack([aligned.landmarks for _, aligned in prepared.pending]),
            )
            self.thin_rims_skipped += int(thin_skips.sum())
        for (outcome, aligned), face_out, mask_out, occluder in zip(prepared.pending, swapped, learned, occluders):
            face_out = self.smoother.denoise_swap(outcome.track_id, face_out)
            crop = np.clip(np.asarray(face_out).transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            hull = landmark_hull(aligned.landmarks, size=size)
            stats = lab_statistics(aligned.image, mask=hull)
            stats = self.smoother.smooth(outcome.track_id, "colour", stats, prepared.t_s)
            corrected = transfer_colour(
                crop,
                aligned.image,
                mode=self.options.colour,
                mask=hull,
                reference_stats=stats if self.options.colour == "rct" else None,
            )
            mask = blend_mask(
                np.clip(np.asarray(mask_out)[0], 0.0, 1.0).astype(np.float32),
                aligned.landmarks,
                erode_px=max(1, round(self.options.erode * size)),
                feather_px=max(1, round(self.options.feather * size)),
            )
            if self.options.mouth:
                mask = mask * (1.0 - inner_mouth_mask(aligned.landmarks, size=size))
            if outcome.eye_openness is not None and outcome.eye_open_levels is not None:
                closed = closed_eye_mask(
                    aligned.landmarks, size=size, open_levels=outcome.eye_open_levels, openness=outcome.eye_openness
                )
                mask = mask * (1.0 - closed)
            if occluder is not None:
                mask = keep_occluders(mask, occluder)
            # After the first paste ``out`` is already this call's own copy: paste into it.
            out = paste_face(
                out, corrected, mask, aligned.affine, method=self.options.blend, in_place=in_place or out is not rgb
            )
            outcome.swapped = True
            outcome.affine = aligned.affine
            outcome.crop = corrected
            outcome.mask = mask
            outcome.source_crop = aligned.image
        self.counts.update(o.reason or "swapped" for o in prepared.outcomes)
        for o in prepared.outcomes:
            self.tallies.setdefault(o.track_id, TrackTally(prepared.index, prepared.index, o.bbox)).add(
                o, prepared.index
            )
        if out is rgb and not in_place:
            out = rgb.copy()
        return out, prepared.outcomes


def occlusion_segmenter(*, thin_rims: bool = False) -> Any:
    """One shipped occlusion mask per process, with or without the shipped thin-rim add-on
    (cards and SHA-256 checked on load). The render report's occlusion damage always measures
    against the mask without it, so renders with and without compare on the same pixels."""
    return _occlusion_segmenter(bool(thin_rims))


@functools.cache
def _occlusion_segmenter(thin_rims: bool) -> Any:
    from likeness.faces.occlusion import THIN_ONNX_FILE, WEIGHTS_DIR, OcclusionSegmenter

    return OcclusionSegmenter(thin=WEIGHTS_DIR / THIN_ONNX_FILE if thin_rims else None)


def _required_consent(
    model: Any, authz: Authorization | None, release: ReleaseAuthorization | None
) -> tuple[Authorization, ReleaseAuthorization]:
    """``(authz, release)`` when both are live and name the card's subject and performer."""
    from likeness.consent import require_authorization, require_release

    authz = require_authorization(authz, step="render")
    release = require_release(release, step="render")
    card = require_issued_model(model).card
    if card["subject_id"] != authz.subject_id:
        raise ConsentError(
            "no_grant",
            f"the model renders {card.get('subject_slug')!r}, the authorization is for {authz.subject_slug!r}",
        )
    if card["performer_id"] != release.performer_id:
        raise ConsentError(
            "no_release",
            f"the model swaps onto {card.get('performer_slug')!r}, the release is for {release.performer_slug!r}",
        )
    return authz, release


def frame_mask(outcome: FaceOutcome, frame_shape: tuple[int, ...]) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """The outcome's blend mask in frame coordinates, as (row/col slices, float32 alpha) or None."""
    if not outcome.swapped or outcome.crop is None or outcome.mask is None or outcome.affine is None:
        return None
    patch = warp_to_frame(outcome.crop, outcome.mask, outcome.affine, frame_shape=frame_shape)
    if patch is None:
        return None
    return patch.slices, patch.alpha


def _checked_model_output(output: Any, count: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's ``(swapped (N,3,R,R), mask (N,1,R,R))``, or ``ModelError`` saying what came."""
    try:
        swapped, mask = output
        swapped, mask = np.asarray(swapped), np.asarray(mask)
    except (TypeError, ValueError):
        raise ModelError(f"swap model must return (swapped, mask), got {type(output).__name__}") from None
    if swapped.shape != (count, 3, size, size) or mask.shape != (count, 1, size, size):
        raise ModelError(
            f"swap model output: expected swapped ({count}, 3, {size}, {size}) and mask "
            f"({count}, 1, {size}, {size}), got {swapped.shape} and {mask.shape}"
        )
    if not (np.isfinite(swapped).all() and np.isfinite(mask).all()):
        raise ModelError("swap model output contains NaN or infinity")
    return swapped, mask
