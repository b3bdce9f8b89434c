"""Extraction: consented footage in, identity-filtered aligned faceset out.

``extract_faceset`` is the only entry point. It refuses to read a single frame without an
``Authorization`` for use ``training`` (or a performer's ``ReleaseAuthorization``), rechecks it at
every input and every ``recheck_every`` frames, and records ``faceset.created`` on the ledger.

Per frame: detect faces and 478 landmarks, keep only faces of the subject (embedding distance to
the enrolled reference photos; for video the embedding runs once per track every
``identity_every`` sampled frames, not on every frame), align to a square crop, measure pose and
quality, drop faces that are too small, blurry, extreme in pose or near-duplicates, and append
the crop and its index record. A face recognised as a subject of another rights holder
(:mod:`likeness.faceset.enrolled_faces`, the verifier's thresholds) is not kept; when such faces
are too large a share of the run to be bystanders, the whole extraction is refused
(``FacesOfAnotherHolder``, ``another_holders_refusal``) and nothing is written. Work is checkpointed atomically in ``.progress.json`` so an
interrupted run resumes where it stopped when called again with the same ``out`` folder.

Example::

    authz = workspace.policy.authorize("mina", "training", "studio")
    report = extract_faceset(workspace, authz, ["shoot/day1.mp4", "stills/"], "mina-faceset")
    print(report.faces_kept, report.rejected, report.skipped_inputs)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from likeness.digests import sha256_file
from likeness.durable import write_atomic
from likeness.errors import ConsentError, FaceError, FacesetError, FacesOfAnotherHolder, MediaError
from likeness.faceset import selection
from likeness.faceset.enrolled_faces import FaceMatch, OtherHoldersFaces
from likeness.faceset.filters import filter_face
from likeness.faceset.format import (
    FACES_DIR,
    INDEX_NAME,
    MANIFEST_NAME,
    FaceRecord,
    FacesetManifest,
    index_sha256,
    read_index,
)
from likeness.faceset.resume import (
    PROGRESS_NAME,
    RunState,
    discard_unfinished,
    open_run,
    write_checkpoint,
)
from likeness.media.file_kind import ANIMATED_CONTAINERS, IMAGE_SUFFIXES, VIDEO_SUFFIXES, FileKind, sniff_file
from likeness.media.video.budget import DecodeLimits

if TYPE_CHECKING:
    from likeness.consent.policy import Authorization, ReleaseAuthorization
    from likeness.faces.align import Coverage
    from likeness.faces.detect import DetectorMode
    from likeness.workspace import Workspace

CROP_FORMATS = ("png", "jpg")
#: Near-duplicates dropped are listed by name (face, the kept face it repeats, why) up to this many;
#: past it (long videos) only the count in ``rejected["duplicate"]`` grows.
DUPLICATES_LISTED = 200
#: An extraction whose faces of other rights holders' subjects are more than this many AND more
#: than this share of the faces it would have kept is refused. Footage of the subject holds few:
#: a bystander the verifier takes for another enrolled person (a lookalike; 0 of 42,195 pairs of
#: different people lie within 0.40 on congress_pd, docs/consent.md) shows up briefly. An
#: agency's footage of another holder's artist holds many: even one photo against one photo
#: matches 41 % of genuine pairs within 0.40 (docs/calibration.md), and the subject's several
#: references match more. A few faces are tolerated whatever the share, so that a photo set of
#: ten with one lookalike is not refused; those faces are still dropped one by one.
OTHER_HOLDERS_TOLERATED = 3
OTHER_HOLDERS_SHARE = 0.05


@dataclass(frozen=True)
class ExtractOptions:
    """Tunable parts of extraction; defaults suit studio footage (1080p, faces >= 64 px).

    ``size``: crop side in pixels. ``min_face``: smallest face kept, longer side of the landmark
    box in source pixels. ``min_sharpness``: variance of the Laplacian of the grey crop.
    ``max_yaw``/``max_pitch``: degrees. ``dedup_hamming``: perceptual-hash bits within which a
    face counts as a near-duplicate of a recently kept one (None keeps duplicates).
    ``frame_step``: use every n-th video frame. ``identity_threshold``: embedding distance for
    "same person" (None: ``likeness.faces.IDENTITY_THRESHOLD``). ``identity_every``: re-embed a
    tracked face every n sampled frames. ``recheck_every``: frames between consent rechecks and
    checkpoints. ``crop_format``: "png" (lossless) or "jpg" (``jpeg_quality``).
    """

    size: int = 256
    coverage: Coverage = "wf"
    min_face: int = 64
    min_sharpness: float = 10.0
    max_yaw: float = 75.0
    max_pitch: float = 50.0
    dedup_hamming: int | None = 3
    dedup_window: int = 512
    frame_step: int = 1
    identity_threshold: float | None = None
    identity_every: int = 10
    max_faces: int = 8
    min_confidence: float = 0.5
    recheck_every: int = 50
    crop_format: str = "png"
    jpeg_quality: int = 95
    max_pixels: int = 64_000_000

    def __post_init__(self) -> None:
        checks = [
            (32 <= self.size <= 2048, f"size must be 32..2048 px, got {self.size}"),
            (self.min_face >= 0, f"min_face must be >= 0, got {self.min_face}"),
            (self.min_sharpness >= 0, f"min_sharpness must be >= 0, got {self.min_sharpness}"),
            (0 < self.max_yaw <= 180, f"max_yaw must be in (0, 180], got {self.max_yaw}"),
            (0 < self.max_pitch <= 180, f"max_pitch must be in (0, 180], got {self.max_pitch}"),
            (self.frame_step >= 1, f"frame_step must be >= 1, got {self.frame_step}"),
            (self.identity_every >= 1, f"identity_every must be >= 1, got {self.identity_every}"),
            (self.recheck_every >= 1, f"recheck_every must be >= 1, got {self.recheck_every}"),
            (1 <= self.max_faces <= 64, f"max_faces must be 1..64, got {self.max_faces}"),
            (self.crop_format in CROP_FORMATS, f"crop_format must be one of {CROP_FORMATS}"),
            (1 <= self.jpeg_quality <= 100, f"jpeg_quality must be 1..100, got {self.jpeg_quality}"),
            (
                self.dedup_hamming is None or 0 <= self.dedup_hamming <= 64,
                f"dedup_hamming must be 0..64 or None, got {self.dedup_hamming}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise FacesetError(f"invalid extraction option: {message}")

    def output_shaping(self) -> dict[str, Any]:
        """Options that change what is written; a resumed run must use the same ones."""
        return {
            "size": self.size,
            "coverage": self.coverage,
            "crop_format": self.crop_format,
            "frame_step": self.frame_step,
        }


@dataclass(frozen=True)
class SkippedInput:
    """An input file that contributed nothing, and why (plain language)."""

    path: str
    reason: str


@dataclass(frozen=True)
class ExtractProgress:
    """Sent to the ``progress`` callback after every frame."""

    input_path: str
    input_number: int
    input_total: int
    frame_index: int
    frame_total: int | None
    frames_read: int
    faces_seen: int
    faces_kept: int
    elapsed_s: float


@dataclass
class ExtractionReport:
    """What an extraction did. ``ok`` is False when no usable face was found (CLI exits 1)."""

    out: str
    subject_slug: str
    faceset_sha256: str | None
    faces_kept: int
    faces_seen: int
    frames_read: int
    inputs_used: int
    rejected: dict[str, int]
    skipped_inputs: list[SkippedInput]
    resumed: bool
    frames_before_resume: int
    elapsed_s: float
    ledger_event_id: str | None = None
    #: Faces dropped as near-duplicates, ``{"face": "photo_3.jpg", "reason": "repeats photo_2.jpg: ..."}``,
    #: the first ``DUPLICATES_LISTED`` of ``rejected["duplicate"]``.
    duplicates_dropped: list[dict[str, str]] = field(default_factory=list)
    #: Near-duplicates dropped per input path, all of them.
    duplicates_by_input: dict[str, int] = field(default_factory=dict)
    #: Inputs read as clips (videos and animations, by content, whatever their names say).
    clip_inputs: list[str] = field(default_factory=list)
    #: Faces dropped as another rights holder's subject's (``rejected["another_holder"]``), per
    #: subject slug: ``{"org": ..., "faces": ..., "first": label of the first}``.
    other_holders: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.faces_kept > 0

    @property
    def faces_per_s(self) -> float:
        return self.faces_seen / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["ok"] = self.ok
        return result


@dataclass
class _Track:
    """Identity decision cached for one tracked face."""

    accepted: bool
    distance: float
    frames_since_embed: int = 0
    #: The subject of another rights holder this face is recognised as, if any.
    other_holder: FaceMatch | None = None


def authorize_extraction(workspace: Any, subject: str, org: str | None = None) -> Any:
    """The authorization extraction needs for ``subject``: a performer's release, else training.

    ``org`` defaults to ``settings.org``, else the workspace's only organisation. Raises
    ``ConsentError`` from the policy engine when there is no valid grant or release.
    """
    record = workspace.registry.get_subject(subject)
    preferred = org or getattr(getattr(workspace, "settings", None), "org", None)
    grantee = workspace.registry.default_org(preferred).slug
    if record.kind == "performer":
        return workspace.policy.authorize_release(record.slug, grantee)
    return workspace.policy.authorize(record.slug, "training", grantee)


def extract_faceset(
    workspace: Any,
    authz: Authorization | ReleaseAuthorization,
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    options: ExtractOptions = ExtractOptions(),
    progress: Callable[[ExtractProgress], None] | None = None,
) -> ExtractionReport:
    """Extract the authorized subject's faces from ``inputs`` (images, folders, videos) into ``out``.

    ``authz`` must be an ``Authorization`` for use "training" or a ``ReleaseAuthorization``
    issued by ``workspace.policy``; it is rechecked before the first frame is read, at every
    input and every ``options.recheck_every`` frames (revocation stops the run and removes the
    unfinished output). Unusable inputs are skipped with a reason. Returns an
    ``ExtractionReport``; when no face was kept nothing is written and ``report.ok`` is False.
    Calling again with the same ``out`` after an interruption resumes from the last checkpoint.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    # Before any input is touched: the authorization must still hold right now (the guard rechecks).
    subject_id, subject_slug, consent_id, grant_id, release_id = _consent_identity(authz)

    out_dir = Path(out)
    references = _reference_embeddings(workspace, subject_slug)
    state, resumed = open_run(out_dir, subject_id, consent_id, options.output_shaping())
    frames_before_resume = state.frames_read

    from likeness.faces import IDENTITY_THRESHOLD, FaceEmbedder

    threshold = options.identity_threshold if options.identity_threshold is not None else IDENTITY_THRESHOLD
    other_holders = OtherHoldersFaces(workspace.registry, subject_slug)

    pipeline = _Pipeline(
        out_dir=out_dir,
        state=state,
        options=options,
        embedder=FaceEmbedder(),
        references=references,
        threshold=float(threshold),
        other_holders=other_holders,
        grant_id=grant_id,
        release_id=release_id,
        authz=authz,
        progress=progress,
        decode_limits=DecodeLimits.of(workspace.settings),
    )
    try:
        pipeline.run(inputs)
    except ConsentError:
        pipeline.close()
        discard_unfinished(out_dir)
        raise
    finally:
        pipeline.close()
    refusal = another_holders_refusal(subject_slug, state.index_lines, state.other_holders)
    if refusal is not None:
        discard_unfinished(out_dir)
        raise refusal

    elapsed = pipeline.elapsed_s
    report = ExtractionReport(
        out=str(out_dir),
        subject_slug=subject_slug,
        faceset_sha256=None,
        faces_kept=state.index_lines,
        faces_seen=state.faces_seen,
        frames_read=state.frames_read,
        inputs_used=len(state.inputs_used),
        rejected=dict(state.rejected),
        skipped_inputs=[SkippedInput(**s) for s in state.skipped_inputs],
        resumed=resumed,
        frames_before_resume=frames_before_resume,
        elapsed_s=elapsed,
        duplicates_dropped=list(state.duplicates_dropped),
        duplicates_by_input=dict(state.duplicates_by_input),
        clip_inputs=list(state.clip_inputs),
        other_holders=dict(state.other_holders),
    )
    if state.index_lines == 0:
        discard_unfinished(out_dir)
        return report

    authz.recheck()
    faceset_sha256 = index_sha256(out_dir / INDEX_NAME)
    counts = {
        "faces": state.index_lines,
        "faces_seen": state.faces_seen,
        "frames_read": state.frames_read,
        "inputs_used": len(state.inputs_used),
        "inputs_skipped": len(state.skipped_inputs),
        "rejected": dict(state.rejected),
    }
    if state.other_holders:
        counts["other_holders"] = dict(state.other_holders)
    manifest = FacesetManifest(
        faceset_sha256=faceset_sha256,
        subject_id=subject_id,
        subject_slug=subject_slug,
        grant_id=grant_id,
        release_id=release_id,
        org_id=getattr(authz, "org_id", None),
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        counts=counts,
        size=options.size,
        coverage=options.coverage,
        options=_options_for_manifest(options, threshold),
    )
    event = record_faceset(workspace, authz, out_dir, manifest)
    (out_dir / PROGRESS_NAME).unlink(missing_ok=True)
    return replace(
        report,
        faceset_sha256=faceset_sha256,
        ledger_event_id=str(getattr(event, "event_id", "")) or None,
    )


def record_faceset(
    workspace: Workspace, authz: Authorization | ReleaseAuthorization, out_dir: Path, manifest: FacesetManifest
) -> Any:
    """Sign ``manifest`` with the organisation's key, record ``faceset.created`` (same digests and
    signature) under ``authz`` and write ``out_dir/manifest.json``; returns the ledger event.

    The event comes first: a manifest on disk always has its event, so a crash leaves at worst an
    event whose faceset has no manifest yet (and that is refused as unfinished).
    """
    from likeness.consent.artefacts import FACESET_BOUND, event_fields, seal_document

    # The fields the training lineage check rebuilds from the same constant.
    bound = {name: getattr(manifest, name) for name in FACESET_BOUND}
    seal = seal_document(workspace, str(manifest.org_id), "faceset-manifest", manifest.document(), bound)
    event = authz.record(
        "faceset.created",
        {
            **event_fields(seal),
            "subject_slug": manifest.subject_slug,
            "faces": int(manifest.counts.get("faces", 0)),
            "counts": manifest.counts,
            "size": manifest.size,
            "faceset_name": out_dir.name,
        },
    )
    write_atomic(out_dir / MANIFEST_NAME, replace(manifest, seal=seal).to_json().encode("utf-8"))
    return event


def input_kind(path: Path) -> FileKind:
    """What a file with a media suffix is, by its content: an MP4 saved as ``.png`` is a clip
    (``media_type`` "video"). Bytes the sniffer does not know (empty, text) and a file that
    cannot be opened keep their suffix's ``media_type`` and no container, so that suffix's
    reader says why it cannot read them."""
    try:
        sniffed = sniff_file(path)
    except OSError:
        sniffed = FileKind(None, None)
    if sniffed.media_type is not None:
        return sniffed
    return FileKind("video" if path.suffix.lower() in VIDEO_SUFFIXES else "image", None)


def expand_inputs(
    inputs: Iterable[str | os.PathLike[str]],
) -> tuple[list[tuple[Path, FileKind]], list[SkippedInput]]:
    """Resolve files and folders (recursively, sorted, hidden files ignored) to (path, kind).

    Files are taken by suffix (``IMAGE_SUFFIXES`` and ``VIDEO_SUFFIXES``, the lists ``verify``
    walks folders with); ``kind`` is what their content is (``input_kind``, sniffed once). Missing
    paths and unsupported formats come back as ``SkippedInput`` so the run can report them and
    go on.
    """
    found: list[tuple[Path, FileKind]] = []
    skipped: list[SkippedInput] = []
    seen: set[Path] = set()
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            candidates = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            candidates = [path]
        else:
            skipped.append(SkippedInput(str(path), "not found"))
            continue
        for candidate in candidates:
            key = candidate.resolve()
            if key in seen:
                continue
            seen.add(key)
            suffix = candidate.suffix.lower()
            if suffix not in IMAGE_SUFFIXES and suffix not in VIDEO_SUFFIXES:
                skipped.append(SkippedInput(str(candidate), f"unsupported format '{suffix or '(no suffix)'}'"))
                continue
            found.append((candidate, input_kind(candidate)))
    return found, skipped


class _Pipeline:
    """One extraction run: owns the detector, embedder, index handle and checkpoint state."""

    def __init__(
        self,
        *,
        out_dir: Path,
        state: RunState,
        options: ExtractOptions,
        embedder: Any,
        references: np.ndarray,
        threshold: float,
        other_holders: OtherHoldersFaces,
        grant_id: str | None,
        release_id: str | None,
        authz: Authorization | ReleaseAuthorization,
        progress: Callable[[ExtractProgress], None] | None,
        decode_limits: DecodeLimits,
    ) -> None:
        self.out_dir = out_dir
        self.decode_limits = decode_limits
        self.state = state
        self.options = options
        self._detectors: dict[str, Any] = {}
        self.embedder = embedder
        self.references = references
        self.threshold = threshold
        self.other_holders = other_holders
        self.grant_id = grant_id
        self.release_id = release_id
        self.authz = authz
        self.progress = progress
        self.duplicates = selection.DuplicateFilter(max_distance=options.dedup_hamming, window=options.dedup_window)
        index_path = out_dir / INDEX_NAME
        if index_path.exists():
            self.duplicates.seed(
                selection.KeptFace(
                    int(r.perceptual_hash, 16),
                    r.mouth_openness,
                    r.eye_openness,
                    face_label(r.source, r.frame_index, r.timestamp_s),
                )
                for r in read_index(index_path)
                if r.perceptual_hash
            )
        self.index = open(index_path, "a", encoding="utf-8")  # noqa: SIM115 - open for the run; close() closes it
        self.frames_since_checkpoint = 0
        self.started = time.monotonic()
        self.elapsed_s = 0.0

    def close(self) -> None:
        if not self.index.closed:
            self.index.close()
        for detector in self._detectors.values():
            detector.close()
        self._detectors.clear()
        self.elapsed_s = time.monotonic() - self.started

    def detector(self, mode: DetectorMode) -> Any:
        """Photos use the full detector per image; clips use FaceMesh tracking (several x faster)."""
        if mode not in self._detectors:
            from likeness.faces import FaceDetector

            self._detectors[mode] = FaceDetector(
                max_faces=self.options.max_faces, min_confidence=self.options.min_confidence, mode=mode
            )
        return self._detectors[mode]

    def run(self, inputs: Sequence[str | os.PathLike[str]]) -> None:
        found, skipped = expand_inputs(inputs)
        known_skips = {s["path"] for s in self.state.skipped_inputs}
        for item in skipped:
            if item.path not in known_skips:
                self.state.skipped_inputs.append(asdict(item))
        total = len(found)
        for number, (path, kind) in enumerate(found, start=1):
            key = str(path)
            if key in self.state.finished_inputs:
                continue
            self.authz.recheck()
            try:
                if kind.media_type == "image":
                    self._run_image(path, kind, number, total)
                else:
                    self._run_video(path, number, total)
            except MediaError as exc:
                if self.state.input_kept.get(key, 0):
                    # A clip that breaks part-way still gave good frames before the break.
                    self.state.inputs_used.append(key)
                    self._skip(key, f"{exc.reason} (faces from the frames before were kept)")
                else:
                    self._skip(key, exc.reason)
            else:
                seen = self.state.input_seen.get(key, 0)
                kept = self.state.input_kept.get(key, 0)
                if seen == 0:
                    self._skip(key, "no face found" if kind.media_type == "image" else "no face found in any frame")
                elif kept == 0:
                    self._skip(key, no_face_kept_reason(seen, self.state.duplicates_by_input.get(key, 0)))
                else:
                    self.state.inputs_used.append(key)
            self.state.finished_inputs.append(key)
            self.state.next_frame.pop(key, None)
            self.state.input_seen.pop(key, None)
            self.state.input_kept.pop(key, None)
            # Videos checkpoint at their end; stills only every ``recheck_every`` frames so a
            # folder of thousands of photos does not fsync per photo.
            if kind.media_type == "video" or self.frames_since_checkpoint >= self.options.recheck_every:
                self.authz.recheck()
                self._checkpoint()

    # -- inputs -------------------------------------------------------------------------

    def _run_image(self, path: Path, kind: FileKind, number: int, total: int) -> None:
        from likeness.media import read_image
        from likeness.media.animation import animation_timeline

        if kind.container in ANIMATED_CONTAINERS:
            timeline = animation_timeline(path)
            if timeline is not None:
                # An animated GIF, WebP or PNG is footage, as verify reads it: its frames are
                # sampled (every ``frame_step``-th, spread by time) and faces tracked.
                self._run_animation(path, timeline, number, total)
                return
        rgb = read_image(path, max_pixels=self.options.max_pixels)
        self._process_frame(rgb, source=str(path), frame_index=0, timestamp_s=None, tracks=None)
        self._frame_done(str(path), number, total, 0, 1, may_checkpoint=False)

    def _run_animation(self, path: Path, timeline: Any, number: int, total: int) -> None:
        from likeness.media.animation import sample_animation_frames

        samples = max(1, timeline.frames // self.options.frame_step)
        # every_s=0: the samples are spread evenly over the animation's duration; a frame's
        # ``index`` counts samples, the same on a resumed run.
        frames = sample_animation_frames(path, every_s=0.0, max_frames=samples, timeline=timeline)
        self._run_frames(path, frames, number, total, frame_total=samples, step=1)

    def _run_video(self, path: Path, number: int, total: int) -> None:
        from likeness.media import iter_video_frames, probe_video

        info = probe_video(path)
        start = self.state.next_frame.get(str(path), 0)
        step = self.options.frame_step
        # upright, as players show it: a phone clip stored sideways keeps its faces findable
        frames = iter_video_frames(path, start=start, step=step, autorotate=True, limits=self.decode_limits)
        self._run_frames(path, frames, number, total, frame_total=getattr(info, "frame_count", None), step=step)

    def _run_frames(
        self, path: Path, frames: Iterable[Any], number: int, total: int, *, frame_total: int | None, step: int
    ) -> None:
        """Faces of a clip's frames, tracked across them; resumes after the last frame done."""
        from likeness.faces import FaceTracker

        key = str(path)
        if key not in self.state.clip_inputs:
            self.state.clip_inputs.append(key)
        start = self.state.next_frame.get(key, 0)
        tracker = FaceTracker()
        self.detector("video").reset()
        decisions: dict[int, _Track] = {}
        global_ids: dict[int, int] = {}
        for frame in frames:
            if frame.index < start:
                continue
            self._process_frame(
                frame.rgb,
                source=key,
                frame_index=int(frame.index),
                timestamp_s=float(frame.pts_s),
                tracks=(tracker, decisions, global_ids),
            )
            self.state.next_frame[key] = int(frame.index) + step
            self._frame_done(key, number, total, int(frame.index), frame_total, may_checkpoint=True)

    def _frame_done(
        self,
        key: str,
        number: int,
        total: int,
        frame_index: int,
        frame_total: int | None,
        *,
        may_checkpoint: bool,
    ) -> None:
        self.state.frames_read += 1
        self.frames_since_checkpoint += 1
        if may_checkpoint and self.frames_since_checkpoint >= self.options.recheck_every:
            self.authz.recheck()
            self._checkpoint()
        if self.progress is not None:
            self.progress(
                ExtractProgress(
                    input_path=key,
                    input_number=number,
                    input_total=total,
                    frame_index=frame_index,
                    frame_total=frame_total,
                    frames_read=self.state.frames_read,
                    faces_seen=self.state.faces_seen,
                    faces_kept=self.state.index_lines,
                    elapsed_s=time.monotonic() - self.started,
                )
            )

    def _skip(self, key: str, reason: str) -> None:
        self.state.skipped_inputs = [s for s in self.state.skipped_inputs if s["path"] != key]
        self.state.skipped_inputs.append({"path": key, "reason": reason})

    def _checkpoint(self) -> None:
        write_checkpoint(self.out_dir, self.state, self.index)
        self.frames_since_checkpoint = 0

    # -- faces --------------------------------------------------------------------------

    def _process_frame(
        self,
        rgb: np.ndarray,
        *,
        source: str,
        frame_index: int,
        timestamp_s: float | None,
        tracks: tuple[Any, dict[int, _Track], dict[int, int]] | None,
    ) -> None:
        faces = self.detector("image" if tracks is None else "video").detect(rgb)
        self.state.faces_seen += len(faces)
        self.state.input_seen[source] = self.state.input_seen.get(source, 0) + len(faces)
        if not faces:
            return
        if tracks is not None:
            tracker, decisions, global_ids = tracks
            local_ids = [int(t) for t in tracker.update([tuple(face.bbox) for face in faces])]
        else:
            decisions, global_ids = {}, {}
            local_ids = list(range(len(faces)))
        track_ids = []
        for local_id in local_ids:
            if local_id not in global_ids:
                # Track ids are unique across the whole faceset, also across resumed runs.
                global_ids[local_id] = self.state.next_track_id
                self.state.next_track_id += 1
            track_ids.append(global_ids[local_id])
        sizes = [self._face_size(face) for face in faces]
        self._update_identities(rgb, faces, sizes, track_ids, decisions)
        for face, size, track_id in zip(faces, sizes, track_ids, strict=True):
            self._process_face(
                rgb,
                face,
                face_size=size,
                source=source,
                frame_index=frame_index,
                timestamp_s=timestamp_s,
                track_id=track_id,
                decision=decisions.get(track_id),
            )

    @staticmethod
    def _face_size(face: Any) -> float | None:
        try:
            return selection.face_extent(np.asarray(face.landmarks, dtype=np.float32))
        except FaceError:
            return None

    def _update_identities(
        self,
        rgb: np.ndarray,
        faces: Sequence[Any],
        sizes: Sequence[float | None],
        track_ids: Sequence[int],
        decisions: dict[int, _Track],
    ) -> None:
        """Embed (in one batched call) the faces whose track has no fresh identity decision."""
        from likeness.faces import match_identity

        due: list[int] = []
        for i, (size, track_id) in enumerate(zip(sizes, track_ids, strict=True)):
            if size is None or size < self.options.min_face:
                continue
            cached = decisions.get(track_id)
            if cached is not None and cached.frames_since_embed < self.options.identity_every:
                cached.frames_since_embed += 1
                continue
            due.append(i)
        if not due:
            return
        try:
            embeddings = self.embedder.embed_many(rgb, [np.asarray(faces[i].landmarks, np.float32) for i in due])
        except FaceError:
            return
        matches = self.other_holders.closest_matches(np.asarray(embeddings))  # one matrix product for the batch
        for i, embedding, match in zip(due, embeddings, matches, strict=True):
            distance, same = match_identity(embedding, self.references, threshold=self.threshold)
            decisions[track_ids[i]] = _Track(
                accepted=bool(same), distance=float(distance), frames_since_embed=1, other_holder=match
            )

    def _process_face(
        self,
        rgb: np.ndarray,
        face: Any,
        *,
        face_size: float | None,
        source: str,
        frame_index: int,
        timestamp_s: float | None,
        track_id: int,
        decision: _Track | None,
    ) -> None:
        from likeness import faces as fa

        rejected = self.state.rejected
        candidate = filter_face(
            rgb,
            face.landmarks,
            face_size=face_size,
            identity=None if decision is None else decision.accepted,
            options=self.options,
        )
        if isinstance(candidate, str):
            rejected[candidate] += 1
            return
        assert face_size is not None and decision is not None  # the filters rejected the others
        crop, crop_landmarks, phash = candidate.crop, candidate.landmarks, candidate.phash
        eye, mouth = candidate.eye_openness, candidate.mouth_openness
        label = face_label(source, frame_index, timestamp_s)
        repeated = self.duplicates.find(phash, mouth=mouth, eyes=eye)
        if repeated is not None:
            rejected[selection.DUPLICATE] += 1
            self.state.duplicates_by_input[source] = self.state.duplicates_by_input.get(source, 0) + 1
            if len(self.state.duplicates_dropped) < DUPLICATES_LISTED:
                self.state.duplicates_dropped.append({"face": label, "reason": repeated.reason()})
            return
        if decision.other_holder is not None:
            # Held as if kept, so the faces that repeat it are judged as in a run without this
            # check: what is kept is what that run keeps, less the faces of other holders' subjects.
            self.duplicates.keep(phash, mouth=mouth, eyes=eye, label=label)
            self._drop_as_another_holders(decision.other_holder, label)
            return
        mask = fa.hull_mask(crop_landmarks, self.options.size)
        record = self._write_face(
            crop,
            source=source,
            frame_index=frame_index,
            timestamp_s=timestamp_s,
            track_id=track_id,
            landmarks=crop_landmarks,
            affine=candidate.affine,
            pose=candidate.pose,
            sharpness=candidate.sharpness,
            face_size=face_size,
            eye=eye,
            mouth=mouth,
            brightness=float(fa.brightness(crop, mask)),
            distance=decision.distance,
            phash=phash,
        )
        self.duplicates.keep(phash, mouth=mouth, eyes=eye, label=label)
        self.index.write(record.to_json() + "\n")
        self.state.index_lines += 1
        self.state.input_kept[source] = self.state.input_kept.get(source, 0) + 1

    def _drop_as_another_holders(self, match: FaceMatch, label: str) -> None:
        rejected = self.state.rejected
        # A checkpoint written before this reason existed has no count for it.
        rejected[selection.ANOTHER_HOLDER] = rejected.get(selection.ANOTHER_HOLDER, 0) + 1
        tally = self.state.other_holders.setdefault(match.slug, {"org": match.org, "faces": 0, "first": label})
        tally["faces"] += 1

    def _write_face(
        self,
        crop: np.ndarray,
        *,
        source: str,
        frame_index: int,
        timestamp_s: float | None,
        track_id: int,
        landmarks: np.ndarray,
        affine: np.ndarray,
        pose: tuple[float, float, float],
        sharpness: float,
        face_size: float,
        eye: float,
        mouth: float,
        brightness: float,
        distance: float,
        phash: int,
    ) -> FaceRecord:
        from likeness.media import write_image

        name = f"{FACES_DIR}/{self.state.index_lines:06d}.{self.options.crop_format}"
        path = self.out_dir / name
        write_image(path, crop, quality=self.options.jpeg_quality)
        return FaceRecord(
            file=name,
            source=source,
            frame_index=frame_index,
            timestamp_s=timestamp_s,
            track_id=int(track_id),
            landmarks=landmarks,
            affine=affine,
            yaw=pose[0],
            pitch=pose[1],
            roll=pose[2],
            sharpness=sharpness,
            face_size=face_size,
            eye_openness=eye,
            mouth_openness=mouth,
            brightness=brightness,
            identity_distance=distance,
            grant_id=self.grant_id,
            release_id=self.release_id,
            image_sha256=sha256_file(path),
            perceptual_hash=f"{phash:016x}",
        )


def another_holders_refusal(
    subject: str, kept: int, other_holders: dict[str, dict[str, Any]]
) -> FacesOfAnotherHolder | None:
    """The refusal of an extraction that kept ``kept`` faces of ``subject`` and dropped
    ``other_holders`` (``RunState.other_holders``), or None: refused when the faces of other
    holders' subjects are more than ``OTHER_HOLDERS_TOLERATED`` and more than
    ``OTHER_HOLDERS_SHARE`` of the faces it would have kept; it names the subject most faces are.

    >>> another_holders_refusal("jiwoo", 95, {"mina": {"org": "haneul", "faces": 4, "first": "a.mp4 frame 3"}})
    >>> another_holders_refusal("jiwoo", 60, {"mina": {"org": "haneul", "faces": 4, "first": "a.mp4 frame 3"}}).faces
    4
    """
    dropped = sum(int(tally["faces"]) for tally in other_holders.values())
    would_keep = kept + dropped
    if dropped <= OTHER_HOLDERS_TOLERATED or dropped <= OTHER_HOLDERS_SHARE * would_keep:
        return None
    slug, tally = max(other_holders.items(), key=lambda item: int(item[1]["faces"]))
    return FacesOfAnotherHolder(
        subject, slug, str(tally["org"]), faces=int(tally["faces"]), would_keep=would_keep, first=str(tally["first"])
    )


def no_face_kept_reason(seen: int, duplicates: int) -> str:
    """Why an input with faces gave none to the faceset, from how many of them were near-duplicates.

    >>> no_face_kept_reason(3, 3)
    'all 3 faces repeat faces already kept (near-duplicates; --dedup -1 keeps them)'
    >>> no_face_kept_reason(4, 1)
    'no usable face of the subject: 1 near-duplicate, 3 rejected by the filters (counts below)'
    """
    if duplicates >= seen:
        which = "its face repeats a face" if seen == 1 else f"all {seen} faces repeat faces"
        return f"{which} already kept (near-duplicates; --dedup -1 keeps them)"
    if duplicates:
        return (
            f"no usable face of the subject: {duplicates} near-duplicate{'s' if duplicates > 1 else ''}, "
            f"{seen - duplicates} rejected by the filters (counts below)"
        )
    return "no usable face of the subject (rejected by the filters: counts below)"


def face_label(source: str, frame_index: int, timestamp_s: float | None) -> str:
    """How reports name a face: the photo's path, or ``"clip.mp4 frame 12"`` for a frame of a
    clip or an animation (which have a time; a still has none, whatever its name says)."""
    return source if timestamp_s is None else f"{source} frame {frame_index}"


def _consent_identity(authz: Authorization | ReleaseAuthorization) -> tuple[str, str, str, str | None, str | None]:
    """(subject_id, subject_slug, consent_id, grant_id, release_id) of an accepted authorization."""
    from likeness.consent import Authorization, require_extraction_consent

    accepted = require_extraction_consent(authz)
    if isinstance(accepted, Authorization):
        return accepted.subject_id, accepted.subject_slug, accepted.grant_id, accepted.grant_id, None
    return accepted.performer_id, accepted.performer_slug, accepted.release_id, None, accepted.release_id


def _reference_embeddings(workspace: Any, subject_slug: str) -> np.ndarray:
    references = np.asarray(workspace.registry.reference_embeddings(subject_slug), dtype=np.float32)
    if references.ndim != 2 or references.shape[0] == 0:
        raise FacesetError(
            f"subject '{subject_slug}' has no reference photos to recognise them by; "
            f"add some with `likeness subject photos add {subject_slug} PHOTO...`"
        )
    return references


def _options_for_manifest(options: ExtractOptions, threshold: float) -> dict[str, Any]:
    recorded = asdict(options)
    recorded["identity_threshold"] = float(threshold)
    return recorded
