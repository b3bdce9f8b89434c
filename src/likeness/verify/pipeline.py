"""Verify one file: C2PA, watermark (+ ledger), artist recognition, then the decision table.

:class:`Verifier` holds what is expensive to build (face detector, embedder, artist gallery,
trust anchors) and is built once per worker process; :func:`verify_path` is the one-call API.
Every stage that fails on a file records a :class:`StageError` and the scan goes on; a file
whose pixels cannot be read at all gets the ``error`` verdict and is never recorded on the
ledger as verified.

Example::

    >>> import tempfile
    >>> from likeness.config import Settings
    >>> from likeness.media import write_image
    >>> from likeness.media.synthetic import astronaut
    >>> from likeness.workspace import Workspace
    >>> folder = Path(tempfile.mkdtemp())
    >>> workspace = Workspace.init(Settings(home=folder / "home"))
    >>> found = write_image(folder / "found.png", astronaut())
    >>> verify_path(workspace, found).verdict.code   # a face, but no artist enrolled here
    'no-enrolled-artist'
    >>> workspace.close()
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from likeness.digests import sha256_file
from likeness.errors import LikenessError, MediaError, VerificationTimedOut
from likeness.media.file_kind import (
    ANIMATED_CONTAINERS,
    IMAGE_SUFFIXES,
    MEDIA_SUFFIXES,
    SNIFF_BYTES,
    VIDEO_SUFFIXES,
    sniff,
    unreadable_reason,
)
from likeness.prefetch import Prefetch, WriteBehind
from likeness.train.preview import PREVIEW_EVENT
from likeness.verify.face_views import FaceView, face_view
from likeness.verify.gallery import ArtistGallery, GalleryQuery, gallery_folder, open_gallery
from likeness.verify.label_search import LabelSearch
from likeness.verify.manifest_store import holds_manifest_store
from likeness.verify.report import FACE_CROP_SIDE, THUMBNAIL_SIDE, EvidenceMedia, EvidencePicture, crop_box, fit_within
from likeness.verify.result import (
    C2paEvidence,
    FaceEvidence,
    FacesEvidence,
    GrantEvidence,
    ManipulationEvidence,
    RenderRecord,
    StageError,
    TrackManipulation,
    VerificationResult,
    WatermarkEvidence,
    declares_ai_generation,
)
from likeness.verify.verdict import decide

if TYPE_CHECKING:
    from likeness.media import VideoFrame

#: Image files bigger than this are refused before decoding: no legitimate still needs more,
#: and Pillow would otherwise hold the whole encoded file in memory.
MAX_IMAGE_BYTES = 200 * 1024 * 1024
#: Video sampling: about this many frames per second of footage, at most ``MAX_VIDEO_FRAMES``
#: per file (long videos are sampled more sparsely, evenly over the whole length).
VIDEO_SAMPLE_FPS = 1.0
MAX_VIDEO_FRAMES = 16
#: Frames for the evidence page (a subset of the analysed ones).
EVIDENCE_FRAMES = 8
#: Video: each face track is embedded on at most this many of its sampled frames (its best
#: ones: detector score x face area). The dlib descriptor is the most expensive stage (tens of ms
#: per face) and a track's mean over a few good views is as steady as over all of them.
EMBEDDINGS_PER_TRACK = 3
#: Faces analysed per still: a class or team photo holds dozens (each costs one embedding).
MAX_FACES_PER_IMAGE = 64


def signer_name(signer: Any) -> str | None:
    """A readable signer from a C2PA ``signature_info`` dict (common name, else issuer)."""
    if isinstance(signer, str):
        return signer or None
    if not isinstance(signer, dict):
        return None
    for key in ("common_name", "cert_common_name", "issuer", "cert_issuer"):
        value = signer.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def trust_anchors_for(workspace: Any, extra_anchors: Sequence[str] = ()) -> list[str]:
    """PEM texts of the trust anchors: the workspace's own C2PA root, any PEM files in
    ``HOME/trust_anchors/`` (partners the agency trusts), and ``extra_anchors``."""
    anchors: list[str] = []
    own_root = Path(workspace.keys_dir) / "c2pa" / "root-ca.pem"
    if own_root.is_file():
        anchors.append(own_root.read_text(encoding="ascii", errors="replace"))
    partner_folder = Path(workspace.home) / "trust_anchors"
    if partner_folder.is_dir():
        for pem in sorted(partner_folder.glob("*.pem")):
            anchors.append(pem.read_text(encoding="ascii", errors="replace"))
    anchors.extend(str(a) for a in extra_anchors)
    return anchors


def anchors_fingerprint(anchors: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(anchors)).encode()).hexdigest()


#: A kept view of a track: (sighting quality, face view RGB, landmarks in the view).
TrackView = tuple[float, np.ndarray, np.ndarray]


@dataclass
class _Track:
    """One face (image) or face track (video) being accumulated."""

    face_id: int
    embeddings: list[np.ndarray] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    best_score: float = -1.0
    best_quality: float = -1.0
    best_bbox: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    best_timestamp: float = 0.0
    best_crop: np.ndarray | None = None
    #: Video: the best views still to embed, as (quality, face view RGB, landmarks in the view).
    views: list[TrackView] = field(default_factory=list)
    #: Every sighting aligned for the manipulation detector (only while one is registered), and when.
    detector_crops: list[np.ndarray] = field(default_factory=list)
    detector_times: list[float] = field(default_factory=list)


class Verifier:
    """Per-worker verification tools, built once: detector, embedder, gallery, anchors.

    ``gallery`` defaults to the workspace's gallery synced from the registry; workers pass one
    loaded read-only from the folder the parent synced.
    """

    def __init__(
        self,
        workspace: Any,
        *,
        extra_anchors: Sequence[str] = (),
        gallery: ArtistGallery | None = None,
    ) -> None:
        self.workspace = workspace
        self.anchors = trust_anchors_for(workspace, extra_anchors)
        self.anchors_fingerprint = anchors_fingerprint(self.anchors)
        self.gallery = gallery if gallery is not None else open_gallery(workspace)
        self._image_detector: Any = None
        self._video_detector: Any = None
        self._embedder: Any = None
        self._executor: Any = None
        self._label_executor: Any = None
        # Matched subjects' reference pictures, read once per verifier (a scan meets the same
        # artists again and again); None where the workspace keeps none.
        self._reference_pictures: dict[str, np.ndarray | None] = {}
        # The visible-label search of the file being verified (a fresh one per file in verify()).
        self._labels = LabelSearch(None)
        from likeness.media.video.budget import DecodeLimits

        # What decoding one video may cost (settings video_*), and the caller's stop hook for
        # the file being verified (verify(interrupt=)), both checked inside the decode loop.
        self.decode_limits = DecodeLimits.of(workspace.settings)
        self._interrupt: Callable[[], None] | None = None
        # When the file being verified must be given up (``verify(deadline=)``), monotonic s.
        self._deadline: float | None = None
        from likeness.detector.registered import WorkspaceDetectors

        # The agency's registered manipulation detectors; faces are aligned for them only while
        # at least one is registered (looked up per file: a registration may land mid-scan).
        self.detectors = WorkspaceDetectors(workspace, self.gallery)
        self._score_faces = False
        # The file being verified: whether its evidence pack was asked for, and the flagged
        # faces' detector heatmaps for it.
        self._evidence = False
        self._heatmaps: dict[int, np.ndarray] = {}
        # The file being verified: the grants it names, looked up once (_grant_standing).
        self._grants: dict[str, tuple[str, tuple[str, str] | None]] = {}

    # ---- lazily built models (a scan of only bad files never loads them)

    def _detector(self, media_type: str) -> Any:
        if media_type == "video":
            if self._video_detector is None:
                self._video_detector = clip_face_detector()
            return self._video_detector
        if self._image_detector is None:
            self._image_detector = still_face_detector()
        return self._image_detector

    def _embedder_model(self) -> Any:
        if self._embedder is None:
            from likeness.faces import FaceEmbedder

            self._embedder = FaceEmbedder()
        return self._embedder

    def _background(self) -> Any:
        """One helper thread for work that overlaps face analysis (built on first use)."""
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="likeness-verify")
        return self._executor

    def _label_background(self) -> Any:
        """A second helper thread, for the visible-label search (built on first use): on a
        still it runs beside the watermark read and face analysis rather than after the
        watermark, so the three longest stages share both cores."""
        if self._label_executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._label_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="likeness-verify-label")
        return self._label_executor

    def close(self) -> None:
        for detector in (self._image_detector, self._video_detector):
            if detector is not None:
                detector.close()
        self._image_detector = self._video_detector = None
        if self._embedder is not None:
            self._embedder.close()
        self._embedder = None
        self.detectors.close()
        for executor in (self._executor, self._label_executor):
            if executor is not None:
                executor.shutdown(wait=True)
        self._executor = self._label_executor = None

    # ---- one file

    def verify(
        self,
        path: Path,
        *,
        evidence: bool = False,
        interrupt: Callable[[], None] | None = None,
        deadline: float | None = None,
    ) -> tuple[VerificationResult, EvidenceMedia | None]:
        """Verify one file; never raises for anything wrong with the file itself.

        Returns the result and, when ``evidence`` is asked for, the pixels for the HTML page.
        ``interrupt`` is called between the video decoder's packets and stops the verification
        by raising (a cancelled job, a request past its deadline); what it raises propagates.
        ``deadline`` (a ``time.monotonic()`` instant): past it, the verification stops at the
        next stage or sampled frame with ``VerificationTimedOut`` (a stage under way, such as
        hashing or one frame's analysis, finishes first).
        """
        started = time.perf_counter()
        self._interrupt = interrupt
        self._deadline = deadline
        self._evidence = evidence
        self._heatmaps = {}
        self._grants = {}
        path = Path(path)
        display = str(path)
        try:
            if not path.exists():
                raise MediaError(path, "file not found")
            if not path.is_file():
                raise MediaError(path, "not a regular file")
            size = path.stat().st_size
            if size == 0:
                return VerificationResult.failed(
                    display, sha256=None, size_bytes=0, stage="read", reason="empty file (0 bytes)"
                ), None
            sha256 = sha256_file(path)
            with open(path, "rb") as stream:
                kind = sniff(stream.read(SNIFF_BYTES))
            self._check_deadline()
        except MediaError as exc:
            return VerificationResult.failed(
                display, sha256=None, size_bytes=None, stage="read", reason=exc.reason
            ), None
        except OSError as exc:
            return VerificationResult.failed(
                display, sha256=None, size_bytes=None, stage="read", reason=exc.strerror or type(exc).__name__
            ), None

        if kind.media_type is None:
            return VerificationResult.failed(
                display,
                sha256=sha256,
                size_bytes=size,
                stage="read",
                reason=unreadable_reason(kind),
            ), None
        errors: list[StageError] = []
        suffix_kind = (
            "image"
            if path.suffix.lower() in IMAGE_SUFFIXES
            else "video"
            if path.suffix.lower() in VIDEO_SUFFIXES
            else None
        )
        if suffix_kind is not None and suffix_kind != kind.media_type:
            errors.append(StageError("read", f"extension {path.suffix!r} but the content is {kind.container}"))

        c2pa = self._read_c2pa(path, errors)
        self._check_deadline()
        from likeness.detector.registered import any_registered

        self._score_faces = any_registered(self.workspace)
        before_analysis = len(errors)
        self._labels = LabelSearch(self._label_background(), keep_crop=evidence)
        if kind.media_type == "image":
            analysed = self._analyse_image(path, size, errors, evidence=evidence, container=kind.container)
        else:
            analysed = self._analyse_video(path, errors, evidence=evidence)
        if isinstance(analysed, str):
            result = VerificationResult.failed(
                display,
                sha256=sha256,
                size_bytes=size,
                stage="read",
                reason=analysed,
                media_type=kind.media_type,
                c2pa=c2pa,
            )
            return _with_duration(result, started), None
        watermark, tracks, frame_times, media = analysed
        try:
            visible_label, label_crop = self._labels.result()
        except LikenessError as exc:
            errors.append(StageError("visible_label", str(exc)))
            visible_label, label_crop = None, None
        faces = self._faces_evidence(tracks, frame_times, errors)
        manipulation = self._manipulation(tracks, faces)
        damage = next((e.reason for e in errors[before_analysis:] if e.stage == "read"), None)
        verdict = decide(
            c2pa=c2pa,
            watermark=watermark,
            faces=faces,
            damage=damage,
            visible_label=visible_label,
            manipulation=manipulation,
        )
        result = VerificationResult(
            path=display,
            sha256=sha256,
            size_bytes=size,
            media_type=kind.media_type,
            verdict=verdict,
            c2pa=c2pa,
            watermark=watermark,
            faces=faces,
            errors=tuple(errors),
            visible_label=visible_label,
            manipulation=manipulation,
        )
        if media is not None:
            media = EvidenceMedia(
                thumbnail=media.thumbnail,
                frames=media.frames,
                face_crops={t.face_id: t.best_crop for t in tracks or () if t.best_crop is not None},
                references=self._reference_faces(faces),
                label_crop=label_crop,
                heatmaps=dict(self._heatmaps),
            )
        return _with_duration(result, started), media

    def _reference_faces(self, faces: FacesEvidence | None) -> dict[str, np.ndarray]:
        """A reference picture per matched subject, for the evidence page (when kept)."""
        from likeness.faceset.reference_faces import load_reference_face

        pictures: dict[str, np.ndarray] = {}
        for face in faces.faces if faces is not None else ():
            subject_id = face.match.subject_id if face.match is not None else None
            if not subject_id:
                continue
            if subject_id not in self._reference_pictures:
                self._reference_pictures[subject_id] = load_reference_face(self.workspace.home, subject_id)
            picture = self._reference_pictures[subject_id]
            if picture is not None:
                pictures[subject_id] = picture
        return pictures

    # ---- stages

    def _read_c2pa(self, path: Path, errors: list[StageError]) -> C2paEvidence | None:
        from likeness.provenance.c2pa_manifest import read_manifest

        try:
            reading = read_manifest(path, trust_anchors_pem=self.anchors)
        except LikenessError as exc:
            errors.append(StageError("c2pa", str(exc)))
            return None
        except Exception as exc:  # noqa: BLE001 - hostile files must not crash a scan in native code wrappers
            errors.append(StageError("c2pa", f"reader failed: {type(exc).__name__}: {exc}"[:300]))
            return None
        if reading.present and "manifest.unreadable" in reading.codes and not holds_manifest_store(path):
            # The reader could not parse the container at all and no manifest store is anywhere
            # in the bytes: nothing was signed, so a broken file is damaged, never "tampered".
            errors.append(
                StageError(
                    "c2pa",
                    "no C2PA manifest in the file (its container could not be parsed: "
                    + "; ".join(reading.reasons)
                    + ")",
                )
            )
            return C2paEvidence.absent()
        if not reading.present:
            if reading.reasons:
                errors.append(StageError("c2pa", "; ".join(reading.reasons)))
            return C2paEvidence.absent()
        consent = None
        assertion = reading.consent_assertion
        if assertion and isinstance(assertion.get("grant_id"), str):
            consent = self._grant(
                assertion["grant_id"],
                subject_slug=assertion.get("subject_slug"),
                subject_id=assertion.get("subject_id"),
                use=assertion.get("use"),
                org_slug=assertion.get("org_slug"),
            )
        actions = tuple(str(a.get("action")) for a in reading.actions if a.get("action"))
        return C2paEvidence(
            present=True,
            state=reading.state,
            reasons=tuple(reading.reasons),
            signer=signer_name(reading.signer),
            actions=actions,
            digital_source_type=reading.digital_source_type,
            declares_ai=declares_ai_generation(reading.digital_source_type),
            consent_assertion=assertion,
            consent=consent,
        )

    def _grant(self, grant_id: str, **known: Any) -> GrantEvidence:
        state, names = self._grant_standing(grant_id)
        subject_slug, org_slug = names or (known.get("subject_slug"), known.get("org_slug"))
        return GrantEvidence(
            grant_id=grant_id,
            state=state,
            subject_id=known.get("subject_id"),
            subject_slug=subject_slug,
            org_id=known.get("org_id"),
            org_slug=org_slug,
            use=known.get("use"),
        )

    def _grant_standing(self, grant_id: str) -> tuple[str, tuple[str, str] | None]:
        """A grant's state and, when its record loads, its subject's and organisation's slugs;
        looked up once per file (a labelled render names its grant in both the manifest and the
        watermark), afresh for the next file (a revocation mid-scan counts from there on)."""
        if grant_id not in self._grants:
            registry = self.workspace.registry
            try:
                record = registry.grant_record(grant_id)  # computes the state too
                self._grants[grant_id] = (record.state, (record.subject_slug, record.org_slug))
            except LikenessError:
                try:  # an unknown grant, or an altered one that no longer loads: its state says so
                    self._grants[grant_id] = (registry.grant_state(grant_id), None)
                except LikenessError:
                    self._grants[grant_id] = ("unknown", None)
        return self._grants[grant_id]

    def _watermark_evidence(self, reading: Any, frame_times: tuple[float, ...]) -> WatermarkEvidence:
        if reading.payload is None:
            return WatermarkEvidence.no_mark(
                reading.algorithm, bit_confidence=float(reading.bit_confidence), frame_timestamps_s=frame_times
            )
        payload_hex = bytes(reading.payload).hex()
        # Renders and training previews both carry a watermark (a preview can leak from a model folder).
        events = self.workspace.ledger.find_watermark(payload_hex)
        render = grant = None
        if events:
            event = events[-1]
            p = event.payload
            preview = event.event_type == PREVIEW_EVENT
            render = RenderRecord(
                kind=str(p.get("kind", "training_preview")) if preview else "render",
                job_id=str(p.get("job_id")),
                grant_id=p.get("grant_id"),
                subject_id=p.get("subject_id"),
                org_id=p.get("org_id"),
                use=p.get("use"),
                output_sha256=p.get("output_sha256"),
                output_name=p.get("output_name") or next(iter(p.get("output_names") or []), None),
                ledger_seq=event.seq,
                ledger_event_id=event.event_id,
                recorded_at=event.created_at,
            )
            if render.grant_id:
                grant = self._grant(render.grant_id, subject_id=render.subject_id, org_id=render.org_id, use=render.use)
        return WatermarkEvidence(
            algorithm=reading.algorithm,
            found=True,
            payload=payload_hex,
            bit_confidence=float(reading.bit_confidence),
            frame_timestamps_s=frame_times,
            render=render,
            grant=grant,
        )

    def _analyse_image(
        self, path: Path, size: int, errors: list[StageError], *, evidence: bool, container: str | None = None
    ):
        from likeness.media import read_image
        from likeness.media.animation import animation_timeline
        from likeness.provenance.watermark import extract_watermark

        if size > MAX_IMAGE_BYTES:
            return f"image file too large: {size} bytes > {MAX_IMAGE_BYTES}"
        if container in ANIMATED_CONTAINERS:
            try:
                timeline = animation_timeline(path)
            except MediaError as exc:
                return exc.reason
            if timeline is not None:
                # An animated GIF, WebP or PNG is footage: sampled like a clip, faces tracked.
                return self._analyse_video(path, errors, evidence=evidence, timeline=timeline)
        try:
            rgb = read_image(path)
        except MediaError as exc:
            return exc.reason
        self._check_deadline()
        # The watermark read (OpenCV and NumPy, which release the GIL) runs beside face
        # analysis; the ledger lookup stays on this thread (the database session is not shared).
        marking = self._background().submit(extract_watermark, rgb)
        self._labels.offer(rgb, 0.0)  # on its own helper thread, beside the watermark
        found: list[_Track] = []
        tracks: list[_Track] | None = found
        try:
            for face_id, (face, embedding) in enumerate(self._faces_in(rgb, "image")):
                track = _Track(face_id)
                self._observe(track, face, rgb, 0.0, evidence=evidence, embedding=embedding)
                self._keep_detector_crop(track, face, rgb, 0.0)
                found.append(track)
        except LikenessError as exc:
            errors.append(StageError("faces", str(exc)))
            tracks = None
        watermark = None
        try:
            watermark = self._watermark_evidence(marking.result(), ())
        except LikenessError as exc:
            errors.append(StageError("watermark", str(exc)))
        return watermark, tracks, (0.0,), _media(rgb, evidence)

    def _analyse_video(self, path: Path, errors: list[StageError], *, evidence: bool, timeline: Any = None):
        from likeness.faces import FaceTracker
        from likeness.media import sample_video_frames
        from likeness.media.animation import sample_animation_frames
        from likeness.provenance.watermark import ClipWatermarkReader

        # Set when this clip's analysis ends early (an exception on this thread): the decoder,
        # on its own thread, stops at its next packet instead of at its next sampled frame,
        # which a crafted clip can put minutes of decoding away.
        abandoned = threading.Event()

        def keep_decoding() -> None:
            if abandoned.is_set():
                raise MediaError(path, "the analysis of this clip stopped")
            if self._interrupt is not None:
                self._interrupt()

        try:
            if timeline is not None:
                # An animated image (``AnimationTimeline``): frames decoded in order up to the
                # last sample, within a decoding budget.
                sampled = sample_animation_frames(
                    path, every_s=1.0 / VIDEO_SAMPLE_FPS, max_frames=MAX_VIDEO_FRAMES, timeline=timeline
                )
            else:
                # Sparse: seeks to the keyframe before each target time and skips frames nothing
                # refers to, instead of decoding the whole clip to keep one frame per second.
                sampled = sample_video_frames(
                    path,
                    every_s=1.0 / VIDEO_SAMPLE_FPS,
                    max_frames=MAX_VIDEO_FRAMES,
                    limits=self.decode_limits,
                    interrupt=keep_decoding,
                )
        except MediaError as exc:
            return exc.reason
        tracker = FaceTracker(iou_threshold=0.2, max_missed=2)
        tracks: dict[int, _Track] = {}
        frame_times: list[float] = []
        pictures: list[EvidencePicture] = []
        first_rgb: list[np.ndarray] = []
        face_failure: list[str] = []
        decode_failure: list[str] = []
        embed = self.gallery.size > 0
        # Three threads share the work of one clip: the next sample decodes on one (PyAV releases
        # the GIL), the watermark folds the frame before on another (NumPy FFTs and OpenCV
        # filters release it too; the fold of the probe frames is most of a clip's CPU), and
        # faces are detected here. Every sampled frame reaches the watermark reader, in order,
        # so its reading is the same as folding them one after the other on this thread.
        frames_ahead = Prefetch(sampled, depth=1, name="likeness-verify-decode")
        marking = ClipWatermarkReader()
        folding = WriteBehind(marking.add, depth=2, name="likeness-verify-watermark")
        try:
            for number in range(MAX_VIDEO_FRAMES):
                try:
                    frame = next(frames_ahead, None)
                except MediaError as exc:
                    # Frames decoded before the damage still count; the reason says where
                    # decoding stopped.
                    decode_failure.append(exc.reason)
                    break
                if frame is None:
                    break
                self._check_deadline()
                # The watermark is read from the stored pixels (where the writer puts it); faces,
                # the visible label and the pictures from the frame as players show it, so a
                # display matrix (a phone clip stored sideways) hides no face.
                folding.put(frame.rgb)  # frames are only read from here on, on every thread
                shown = frame.shown()
                frame_times.append(frame.pts_s)
                if not face_failure:
                    try:
                        shown, found = self._faces_as_shown(frame)
                        ids = tracker.update([face.bbox for face in found])
                        for track_id, face in zip(ids, found):
                            track = tracks.setdefault(track_id, _Track(track_id))
                            quality = self._observe(track, face, shown, frame.pts_s, evidence=evidence)
                            self._keep_detector_crop(track, face, shown, frame.pts_s)
                            if embed:
                                keep_view(track.views, quality, shown, face.landmarks)
                    except (LikenessError, MediaError) as exc:
                        face_failure.append(str(exc))
                self._labels.offer(shown, frame.pts_s)  # a few frames, on the label thread
                if not first_rgb:
                    first_rgb.append(fit_within(shown, max_side=THUMBNAIL_SIDE))
                if evidence and number % max(1, MAX_VIDEO_FRAMES // EVIDENCE_FRAMES) == 0:
                    pictures.append(
                        EvidencePicture(fit_within(shown, max_side=THUMBNAIL_SIDE // 2), f"{frame.pts_s:.2f} s")
                    )
        finally:
            abandoned.set()
            frames_ahead.close()
            folding.close()
        watermark = None
        reading = None
        try:
            folding.raise_failure()
            reading = marking.read()
        except LikenessError as exc:
            errors.append(StageError("watermark", str(exc)))
        if not frame_times:
            return decode_failure[0] if decode_failure else "no decodable video frame"
        if decode_failure:
            errors.append(StageError("read", decode_failure[0]))
        times = tuple(frame_times)
        if reading is not None:
            watermark = self._watermark_evidence(reading, times)
        self._check_deadline()
        if embed and not face_failure:
            try:
                self._embed_views(tracks.values())
            except LikenessError as exc:
                face_failure.append(str(exc))
        if face_failure:
            errors.append(StageError("faces", face_failure[0]))
        media = None
        if evidence:
            media = EvidenceMedia(thumbnail=first_rgb[0] if first_rgb else None, frames=tuple(pictures))
        ordered = [tracks[k] for k in sorted(tracks)]
        return watermark, (None if face_failure else ordered), times, media

    def _faces_as_shown(self, frame: VideoFrame) -> tuple[np.ndarray, list[Any]]:
        """The frame as shown where faces are, and those faces: as FFmpeg shows it, else the first
        other way a player may show it (a display matrix players disagree on) that has a face."""
        shown = frame.shown()
        found = self._detector("video").detect(shown)
        if found:
            return shown, found
        for view in frame.disputed_views():
            in_view = self._detector("video").detect(view)
            if in_view:
                return view, in_view
        return shown, found

    def _check_deadline(self) -> None:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise VerificationTimedOut("the verification passed its deadline")

    def _embed_views(self, tracks: Iterable[_Track]) -> None:
        """Embed every track's kept views (best first) once the whole clip has been seen."""
        embedder = self._embedder_model()
        for track in tracks:
            track.embeddings.extend(embed_views(embedder, track.views))
            track.views.clear()

    def _faces_in(self, rgb: np.ndarray, media_type: str) -> Iterator[tuple[Any, np.ndarray | None]]:
        """Detected faces with their embeddings; embeddings are None when the gallery is empty
        (nothing to compare with, so the descriptor would be computed for nothing)."""
        faces = self._detector(media_type).detect(rgb)
        if not faces:
            return iter(())
        if self.gallery.size == 0:
            return iter([(face, None) for face in faces])
        embeddings = self._embedder_model().embed_many(rgb, [f.landmarks for f in faces])
        return iter(list(zip(faces, embeddings)))

    @staticmethod
    def _observe(
        track: _Track, face: Any, rgb: np.ndarray, t: float, *, evidence: bool, embedding: np.ndarray | None = None
    ) -> float:
        """Add one sighting of the track's face; returns its quality (score x box area)."""
        if embedding is not None:
            track.embeddings.append(np.asarray(embedding, dtype=np.float32))
        track.timestamps.append(float(t))
        x0, y0, x1, y1 = (float(v) for v in face.bbox)
        quality = sighting_quality(face)
        if quality > track.best_quality:
            track.best_quality = quality
            track.best_score = float(face.score)
            track.best_bbox = (x0, y0, x1, y1)
            track.best_timestamp = float(t)
            if evidence:
                try:
                    track.best_crop = fit_within(crop_box(rgb, track.best_bbox), max_side=FACE_CROP_SIDE)
                except MediaError:
                    track.best_crop = None
        track.best_score = max(track.best_score, float(face.score))
        return quality

    def _keep_detector_crop(self, track: _Track, face: Any, rgb: np.ndarray, t: float) -> None:
        """Align this sighting the way the detectors were trained (only while one is registered)."""
        if not self._score_faces:
            return
        from likeness.detector.train import COVERAGE, DETECTOR_INPUT
        from likeness.faces.align import align_face

        try:
            track.detector_crops.append(align_face(rgb, face.landmarks, size=DETECTOR_INPUT, coverage=COVERAGE).image)
        except LikenessError:
            return
        track.detector_times.append(float(t))

    def _manipulation(self, tracks: list[_Track] | None, faces: FacesEvidence | None) -> ManipulationEvidence:
        """Score each track of a subject with a registered detector (docs/detector.md); a
        registration whose files or ledger row no longer match is not used, and says why."""
        from likeness.detector.calibration import sigmoid
        from likeness.detector.score import track_score

        if faces is None or tracks is None:
            return ManipulationEvidence.not_analysed("face analysis did not run")
        if not self._score_faces:
            return ManipulationEvidence.not_analysed("no detector is registered in this workspace")
        by_id = {t.face_id: t for t in tracks}
        scored: list[TrackManipulation] = []
        skipped: list[str] = []
        for face in faces.faces:
            subject = face.match or face.performer
            if subject is None:
                continue
            found = self.detectors.for_subject(subject.subject_id)
            if found is None:
                continue
            if isinstance(found, str):
                skipped.append(f"face {face.face_id}: {found}")
                continue
            registered, model = found
            track = by_id.get(face.face_id)
            if track is None or not track.detector_crops:
                skipped.append(f"face {face.face_id}: no sighting could be aligned for its detector")
                continue
            try:
                logits = model.logits(track.detector_crops)
            except LikenessError as exc:
                skipped.append(f"face {face.face_id}: its detector failed ({exc})")
                continue
            score = track_score(logits)
            if self._evidence and score >= model.threshold_logit:
                self._heatmaps[face.face_id] = _heatmap(model, track.detector_crops[int(np.argmax(logits))])
            scored.append(
                TrackManipulation(
                    face_id=face.face_id,
                    model=registered.model,
                    sha256=registered.onnx_sha256,
                    ledger_seq=registered.ledger_seq,
                    threshold_logit=model.threshold_logit,
                    threshold_probability=float(sigmoid(np.array(model.threshold_logit))),
                    target_false_positive_rate=float(model.card["calibration"]["target_false_positive_rate"]),
                    score=score,
                    calibrated_probability=float(sigmoid(np.array(score))),
                    suspected=score >= model.threshold_logit,
                    face_scores=tuple(float(v) for v in logits),
                    face_timestamps_s=tuple(track.detector_times),
                )
            )
        if scored:
            return ManipulationEvidence(status="analysed", tracks=tuple(scored), skipped=tuple(skipped))
        if skipped:
            return ManipulationEvidence.not_analysed("; ".join(skipped), tuple(skipped))
        return ManipulationEvidence.not_analysed("no face of a subject with a registered detector")

    def _faces_evidence(
        self, tracks: list[_Track] | None, frame_times: tuple[float, ...], errors: list[StageError]
    ) -> FacesEvidence | None:
        if tracks is None:
            return None
        no_match = GalleryQuery(candidates=(), threshold=self.gallery.threshold)
        queries: list[GalleryQuery] = [no_match] * len(tracks)
        embedded = [i for i, t in enumerate(tracks) if t.embeddings]
        if embedded:
            # A track matches a subject when its mean embedding is within the subject's threshold
            # and the majority of its views (k of n) come close too: one lucky view of a
            # lookalike, or a cut to another person, cannot make the match alone.
            views = [np.stack(tracks[i].embeddings).astype(np.float32) for i in embedded]
            try:
                for i, query in zip(embedded, self.gallery.query_tracks(views)):
                    queries[i] = query
            except LikenessError as exc:
                errors.append(StageError("faces", str(exc)))
                return None
        faces = tuple(
            FaceEvidence(
                face_id=t.face_id,
                bbox=t.best_bbox,
                detection_score=t.best_score,
                frames=len(t.timestamps),
                timestamps_s=tuple(t.timestamps),
                best_timestamp_s=t.best_timestamp,
                match=q.match,
                nearest=q.nearest,
                performer=q.performer,
            )
            for t, q in zip(tracks, queries)
        )
        return FacesEvidence(
            frames_analysed=len(frame_times),
            frame_timestamps_s=frame_times,
            gallery_subjects=self.gallery.subject_count,
            gallery_references=self.gallery.size,
            threshold=self.gallery.threshold,
            faces=faces,
        )


def _heatmap(model: Any, crop: np.ndarray) -> np.ndarray:
    """Occlusion sensitivity of a flagged face's highest-scoring sighting, for the evidence pack."""
    from likeness.detector.heatmap import heat_overlay, occlusion_heat

    return heat_overlay(crop, occlusion_heat(model, crop))


def clip_face_detector() -> Any:
    """The face detector verify runs on a clip's (or an animation's) sampled frames."""
    from likeness.faces import FaceDetector

    # Sampled frames are far apart in time: detect afresh on each (image mode), but without
    # tiling, which is for small faces in big group stills. crop_retry: a close-up clip (or an
    # animated face crop) fills the frame.
    return FaceDetector(max_faces=8, min_confidence=0.5, mode="image", max_side=1280, tile_side=4096, crop_retry=True)


def still_face_detector() -> Any:
    """The face detector verify runs on a still."""
    from likeness.faces import FaceDetector

    # Fixed tiles start above 1920 px; a 1080p frame with a face of ordinary size is analysed
    # whole (tiling it would cost several detector calls per still). small_faces: finer tiles
    # when the faces found are small or none were found (group photos); crop_retry: a padded
    # second look at a close face crop. Both cost only where they find what the first pass
    # missed (benchmarks/face_recall.py).
    return FaceDetector(
        max_faces=MAX_FACES_PER_IMAGE,
        min_confidence=0.5,
        mode="image",
        max_side=1280,
        tile_side=1280,
        crop_retry=True,
        small_faces=True,
    )


def sighting_quality(face: Any) -> float:
    """How good one sighting of a face is for recognition: detector score x box area (pixels)."""
    x0, y0, x1, y1 = (float(v) for v in face.bbox)
    return float(face.score) * max(0.0, (x1 - x0) * (y1 - y0))


def keep_view(views: list[TrackView], quality: float, rgb: np.ndarray, landmarks: np.ndarray) -> None:
    """Keep this sighting in ``views`` for the track's deferred embedding if it is among its
    :data:`EMBEDDINGS_PER_TRACK` best (cut small, so the frame itself is not held)."""
    if len(views) >= EMBEDDINGS_PER_TRACK:
        worst = min(range(len(views)), key=lambda i: views[i][0])
        if quality <= views[worst][0]:
            return
        views.pop(worst)
    view = face_view(rgb, landmarks)
    views.append((quality, view.rgb, view.landmarks))


def embed_views(embedder: Any, views: Sequence[TrackView]) -> list[np.ndarray]:
    """The 128-D embeddings of a track's kept views, best first: what the gallery's track rule
    (``ArtistGallery.query_tracks``) recognises the track by."""
    return [
        np.asarray(embedder.embed(view_rgb, view_landmarks), dtype=np.float32)
        for _, view_rgb, view_landmarks in sorted(views, key=lambda v: -v[0])
    ]


def _media(rgb: np.ndarray, evidence: bool) -> EvidenceMedia | None:
    return EvidenceMedia(thumbnail=fit_within(rgb, max_side=THUMBNAIL_SIDE)) if evidence else None


def _with_duration(result: VerificationResult, started: float) -> VerificationResult:
    from dataclasses import replace

    return replace(result, duration_s=time.perf_counter() - started)


def verification_payload(result: VerificationResult) -> dict[str, Any]:
    """The ``verification.completed`` ledger payload for a readable result."""
    watermark = result.watermark
    return {
        "path": result.path,
        "name": Path(result.path).name,
        "sha256": result.sha256,
        "size_bytes": result.size_bytes,
        "media_type": result.media_type,
        "verdict": result.verdict.code,
        "verdict_rule": result.verdict.rule,
        "schema": result.schema,
        "c2pa_state": result.c2pa.state if result.c2pa is not None else None,
        "watermark_payload": watermark.payload if watermark is not None and watermark.found else None,
        "render_job_id": watermark.render.job_id if watermark is not None and watermark.render else None,
        "grant_ids": sorted({g.grant_id for g in result.referenced_grants()}),
        "matched_subjects": sorted({f.match.slug for f in (result.faces.faces if result.faces else ()) if f.match}),
        "partial": any(e.stage == "read" for e in result.errors),
        "manipulation": result.manipulation.summary,
        "visible_label": None if result.visible_label is None else result.visible_label.present,
    }


def record_verification(workspace: Any, result: VerificationResult) -> Any | None:
    """Append ``verification.completed`` for a readable result; unreadable files get nothing."""
    if not result.readable or result.sha256 is None:
        return None
    return workspace.ledger.append("verification.completed", verification_payload(result))


def verify_path(
    workspace: Any,
    path: str | Path,
    *,
    extra_anchors: Sequence[str] = (),
    record: bool = True,
    report_dir: Path | None = None,
) -> VerificationResult:
    """Verify one image or video file and (by default) record the verification on the ledger.

    ``extra_anchors``: PEM texts of additional C2PA trust anchors. ``report_dir``: also write
    the evidence pack (JSON, HTML, zip) there. Never raises for a bad file: the result has the
    ``error`` verdict and the reason.
    """
    verifier = Verifier(workspace, extra_anchors=extra_anchors)
    try:
        result, media = verifier.verify(Path(path), evidence=report_dir is not None)
    finally:
        verifier.close()
    if report_dir is not None:
        from likeness.verify.report import write_evidence

        write_evidence(result, media, Path(report_dir))
    if record:
        record_verification(workspace, result)
    return result


__all__ = [
    "EMBEDDINGS_PER_TRACK",
    "IMAGE_SUFFIXES",
    "MEDIA_SUFFIXES",
    "VIDEO_SUFFIXES",
    "FaceView",
    "Verifier",
    "face_view",
    "gallery_folder",
    "record_verification",
    "sniff",
    "trust_anchors_for",
    "verification_payload",
    "verify_path",
]
