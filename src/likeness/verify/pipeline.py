"""Verify one file: C2PA, watermark (+ ledger), artist recognition, then the decision table.

:class:`Verifier` holds what is expensive to build (face detector, embedder, artist gallery,
trust anchors) and is built once per worker process; :func:`verify_path` is the one-call API.
Every stage that fails on a file records a :class:`StageError` and the scan goes on; a file
whose pixels cannot be read at all gets the ``error`` verdict and is never recorded on the
ledger as verified.

Example::

    >>> result = verify_path(workspace, Path("found/clip.mp4"))   # doctest: +SKIP
    >>> result.verdict.code                                       # doctest: +SKIP
    'authorized-synthetic'
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from likeness.digests import sha256_file
from likeness.errors import LikenessError, MediaError
from likeness.verify.gallery import ArtistGallery, GalleryQuery, gallery_folder, open_gallery
from likeness.verify.label_search import LabelSearch
from likeness.verify.report import FACE_CROP_SIDE, THUMBNAIL_SIDE, EvidenceMedia, EvidencePicture, crop_box, fit_within
from likeness.verify.result import (
    C2paEvidence,
    FaceEvidence,
    FacesEvidence,
    GrantEvidence,
    RenderRecord,
    StageError,
    VerificationResult,
    WatermarkEvidence,
    declares_ai_generation,
)
from likeness.verify.verdict import decide

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"})
MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES

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
#: Video face views kept for the deferred embedding are cut with this margin around the face box
#: (dlib's 150 px chip reaches 25 % beyond the eye/nose layout) and downscaled so the face is at
#: most this many pixels across (twice dlib's chip: the descriptor does not change measurably).
VIEW_MARGIN = 0.75
VIEW_FACE_SIDE = 320
#: Faces analysed per still: a class or team photo holds dozens (each costs one embedding).
MAX_FACES_PER_IMAGE = 64
#: Image containers that may hold an animation, which is sampled as a clip.
ANIMATED_CONTAINERS = frozenset({"gif", "png", "webp"})


@dataclass(frozen=True)
class FileKind:
    """What the first bytes say a file is (extensions lie)."""

    media_type: str | None  # "image" | "video" | None
    container: str | None


def sniff(head: bytes) -> FileKind:
    """Classify a file from its first 16+ bytes.

    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8)).container
    'png'
    """
    if head.startswith(b"\xff\xd8\xff"):
        return FileKind("image", "jpeg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return FileKind("image", "png")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return FileKind("image", "webp")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return FileKind("video", "avi")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return FileKind("image", "gif")
    if head[:2] == b"BM":
        return FileKind("image", "bmp")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return FileKind("image", "tiff")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"):
            return FileKind("image", brand.decode("ascii", "replace"))
        return FileKind("video", "mp4")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return FileKind("video", "matroska")
    return FileKind(None, None)


def video_sampling(
    *,
    fps: float,
    frame_count: int | None,
    duration_s: float,
    sample_fps: float = VIDEO_SAMPLE_FPS,
    max_frames: int = MAX_VIDEO_FRAMES,
) -> int:
    """Frame step so that about ``sample_fps`` frames per second, and at most ``max_frames``
    frames over the whole clip, are analysed, for ``iter_video_frames(step=...)``.

    The verifier now samples by time with :func:`likeness.media.sample_video_frames`, which
    does not decode the frames in between; this plan is kept for the benchmark's side-by-side
    baseline (the previous full-decode path).

    >>> video_sampling(fps=30.0, frame_count=300, duration_s=10.0)
    30
    >>> video_sampling(fps=30.0, frame_count=None, duration_s=600.0)
    1125
    """
    if fps <= 0:
        return 1
    total = frame_count if frame_count else max(1, int(round(duration_s * fps)))
    step = max(1, int(round(fps / sample_fps)))
    return max(step, int(math.ceil(total / max_frames)))


#: JUMBF type of a C2PA manifest store ("c2pa" then the ISO 19566-5 suffix): its 16 bytes stand
#: at the head of the store in every container that carries one (MP4 uuid box, JPEG APP11, PNG
#: caBX), so their absence proves a file was never signed.
C2PA_STORE_UUID = bytes.fromhex("6332706100110010800000aa00389b71")


def holds_manifest_store(path: Path) -> bool:
    """True when the bytes of ``path`` contain a C2PA manifest store's JUMBF type.

    Positive evidence that a manifest was written into the file, for when the C2PA reader
    cannot parse the container (truncated, garbage appended, broken box sizes). One read of the
    file through a memory map (the hash already read it once).
    """
    import mmap

    try:
        with open(path, "rb") as stream:
            if os.fstat(stream.fileno()).st_size == 0:
                return False
            with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return mapped.find(C2PA_STORE_UUID) >= 0
    except (OSError, ValueError):
        return True  # absence not proven: the reader's finding stands


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
    views: list[tuple[float, np.ndarray, np.ndarray]] = field(default_factory=list)


@dataclass(frozen=True)
class FaceView:
    """A face cut from a frame for a deferred embedding: ``rgb`` uint8 ``(h, w, 3)`` and the
    face's 478 ``landmarks`` float32 ``(478, 2)`` in that cut's pixels."""

    rgb: np.ndarray
    landmarks: np.ndarray


def face_view(
    rgb: np.ndarray, landmarks: np.ndarray, *, margin: float = VIEW_MARGIN, max_face_side: int = VIEW_FACE_SIDE
) -> FaceView:
    """Cut the face with ``landmarks (478, 2)`` out of the frame ``rgb (H, W, 3)`` with ``margin``
    (fraction of the face size) on every side, downscaled (area) so the face spans at most
    ``max_face_side`` pixels; landmarks are mapped into the cut. Memory per view stays a few
    hundred kB whatever the frame size, so a video's best views can wait for the end of the
    scan instead of being embedded on every frame.

    >>> view = face_view(np.zeros((1080, 1920, 3), np.uint8),     # a 600 px face
    ...                  np.array([[700, 240], [1300, 840]] * 239, np.float32))
    >>> view.rgb.shape, view.landmarks.min(axis=0).round(1).tolist()  # cut 1500x1080, x 320/600
    ((576, 800, 3), [240.0, 128.0])
    """
    import cv2

    points = np.asarray(landmarks, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise MediaError(None, f"face_view: expected uint8 RGB (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
        raise MediaError(None, f"face_view: expected finite (N, 2) landmarks, got {points.shape}")
    height, width = rgb.shape[:2]
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    side = float(max(x1 - x0, y1 - y0, 1.0))
    left = int(np.clip(np.floor(x0 - margin * side), 0, width - 1))
    top = int(np.clip(np.floor(y0 - margin * side), 0, height - 1))
    right = int(np.clip(np.ceil(x1 + margin * side), left + 1, width))
    bottom = int(np.clip(np.ceil(y1 + margin * side), top + 1, height))
    cut = rgb[top:bottom, left:right]
    shifted = points - np.array([left, top], dtype=np.float32)
    scale = min(1.0, max_face_side / side)
    if scale < 1.0:
        size = (max(1, round(cut.shape[1] * scale)), max(1, round(cut.shape[0] * scale)))
        cut = cv2.resize(cut, size, interpolation=cv2.INTER_AREA)
        shifted = shifted * np.float32(scale)
    return FaceView(np.ascontiguousarray(cut), shifted.astype(np.float32))


class _FramesAhead:
    """Iterate ``frames`` with the next one decoded in a background thread.

    Decoding (PyAV releases the GIL) then overlaps the watermark and face analysis of the frame
    before, which on two cores hides most of the decoding time. At most ``depth`` frames wait,
    so memory stays bounded; an error raised while decoding is raised here, in order, after
    the frames decoded before it.
    """

    _DONE = object()

    def __init__(self, frames: Iterator[Any], *, depth: int = 1) -> None:
        import queue
        import threading

        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(frames,), daemon=True, name="likeness-verify-decode"
        )
        self._thread.start()

    def _put(self, item: Any) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, frames: Iterator[Any]) -> None:
        try:
            for frame in frames:
                if not self._put(("frame", frame)):
                    return
            self._put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(("error", exc))
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> _FramesAhead:
        return self

    def __next__(self) -> Any:
        kind, item = self._queue.get()
        if kind == "frame":
            return item
        self.close()
        if kind == "error":
            raise item
        raise StopIteration

    def close(self) -> None:
        self._stop.set()
        # Unblock a producer waiting on a full queue, then wait for it to close the decoder.
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except Exception:  # noqa: BLE001 - queue.Empty: nothing to drain yet
                pass
            self._thread.join(timeout=0.05)


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

    # ---- lazily built models (a scan of only bad files never loads them)

    def _detector(self, media_type: str) -> Any:
        from likeness.faces import FaceDetector

        if media_type == "video":
            if self._video_detector is None:
                # Sampled frames are far apart in time: detect afresh on each (image mode), but
                # without tiling, which is for small faces in big group stills.
                # crop_retry: a close-up clip (or an animated face crop) fills the frame.
                self._video_detector = FaceDetector(
                    max_faces=8, min_confidence=0.5, mode="image", max_side=1280, tile_side=4096, crop_retry=True
                )
            return self._video_detector
        if self._image_detector is None:
            # Fixed tiles start above 1920 px; a 1080p frame with a face of ordinary size is
            # analysed whole (tiling it would cost several detector calls per still).
            # small_faces: finer tiles when the faces found are small or none were found (group
            # photos); crop_retry: a padded second look at a close face crop. Both cost only
            # where they find what the first pass missed (benchmarks/face_recall.py).
            self._image_detector = FaceDetector(
                max_faces=MAX_FACES_PER_IMAGE,
                min_confidence=0.5,
                mode="image",
                max_side=1280,
                tile_side=1280,
                crop_retry=True,
                small_faces=True,
            )
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
        for executor in (self._executor, self._label_executor):
            if executor is not None:
                executor.shutdown(wait=True)
        self._executor = self._label_executor = None

    # ---- one file

    def verify(self, path: Path, *, evidence: bool = False) -> tuple[VerificationResult, EvidenceMedia | None]:
        """Verify one file; never raises for anything wrong with the file itself.

        Returns the result and, when ``evidence`` is asked for, the pixels for the HTML page.
        """
        started = time.perf_counter()
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
                kind = sniff(stream.read(32))
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
                reason="not an image or video this product reads (unrecognised file signature)",
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
        damage = next((e.reason for e in errors[before_analysis:] if e.stage == "read"), None)
        verdict = decide(c2pa=c2pa, watermark=watermark, faces=faces, damage=damage, visible_label=visible_label)
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
        )
        if media is not None:
            media = EvidenceMedia(
                thumbnail=media.thumbnail,
                frames=media.frames,
                face_crops={t.face_id: t.best_crop for t in tracks or () if t.best_crop is not None},
                references=self._reference_faces(faces),
                label_crop=label_crop,
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
        try:
            state = self.workspace.registry.grant_state(grant_id)
        except LikenessError:
            state = "unknown"
        subject_slug, org_slug = known.get("subject_slug"), known.get("org_slug")
        if state != "unknown":
            try:
                record = self.workspace.registry.grant_record(grant_id)
                subject_slug, org_slug = record.subject_slug, record.org_slug
            except LikenessError:
                pass  # an altered grant may not load; its state already says so
        return GrantEvidence(
            grant_id=grant_id,
            state=state,
            subject_id=known.get("subject_id"),
            subject_slug=subject_slug,
            org_id=known.get("org_id"),
            org_slug=org_slug,
            use=known.get("use"),
        )

    def _watermark_evidence(self, reading: Any, frame_times: tuple[float, ...]) -> WatermarkEvidence:
        if reading.payload is None:
            return WatermarkEvidence.no_mark(
                reading.algorithm, bit_confidence=float(reading.bit_confidence), frame_timestamps_s=frame_times
            )
        payload_hex = bytes(reading.payload).hex()
        events = self.workspace.ledger.find_watermark(payload_hex, "render.completed")
        render = grant = None
        if events:
            event = events[-1]
            p = event.payload
            render = RenderRecord(
                job_id=str(p.get("job_id")),
                grant_id=p.get("grant_id"),
                subject_id=p.get("subject_id"),
                org_id=p.get("org_id"),
                use=p.get("use"),
                output_sha256=p.get("output_sha256"),
                output_name=p.get("output_name"),
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
        from likeness.provenance.watermark import extract_watermark_frames

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
                sampled = sample_video_frames(path, every_s=1.0 / VIDEO_SAMPLE_FPS, max_frames=MAX_VIDEO_FRAMES)
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
        frames_ahead = _FramesAhead(sampled)

        def analysed_frames() -> Iterator[np.ndarray]:
            # One decode pass feeds both the watermark (which folds full-resolution frames) and
            # face detection; each sampled frame is held in memory only while it is analysed.
            for number in range(MAX_VIDEO_FRAMES):
                try:
                    frame = next(frames_ahead, None)
                except MediaError as exc:
                    # Frames decoded before the damage still count; the reason says where
                    # decoding stopped.
                    decode_failure.append(exc.reason)
                    return
                if frame is None:
                    return
                frame_times.append(frame.pts_s)
                self._labels.offer(frame.rgb, frame.pts_s)  # a few frames, on the label thread
                if not first_rgb:
                    first_rgb.append(fit_within(frame.rgb, max_side=THUMBNAIL_SIDE))
                if evidence and number % max(1, MAX_VIDEO_FRAMES // EVIDENCE_FRAMES) == 0:
                    pictures.append(
                        EvidencePicture(fit_within(frame.rgb, max_side=THUMBNAIL_SIDE // 2), f"{frame.pts_s:.2f} s")
                    )
                if not face_failure:
                    try:
                        found = self._detector("video").detect(frame.rgb)
                        ids = tracker.update([face.bbox for face in found])
                        for track_id, face in zip(ids, found):
                            track = tracks.setdefault(track_id, _Track(track_id))
                            quality = self._observe(track, face, frame.rgb, frame.pts_s, evidence=evidence)
                            if embed:
                                _keep_view(track, quality, frame.rgb, face.landmarks)
                    except (LikenessError, MediaError) as exc:
                        face_failure.append(str(exc))
                yield frame.rgb

        watermark = None
        try:
            reading = extract_watermark_frames(analysed_frames())
        except LikenessError as exc:
            reading = None
            errors.append(StageError("watermark", str(exc)))
        finally:
            frames_ahead.close()
        if not frame_times:
            return decode_failure[0] if decode_failure else "no decodable video frame"
        if decode_failure:
            errors.append(StageError("read", decode_failure[0]))
        times = tuple(frame_times)
        if reading is not None:
            watermark = self._watermark_evidence(reading, times)
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

    def _embed_views(self, tracks: Iterable[_Track]) -> None:
        """Embed every track's kept views (best first) once the whole clip has been seen."""
        embedder = self._embedder_model()
        for track in tracks:
            for _, view_rgb, view_landmarks in sorted(track.views, key=lambda v: -v[0]):
                track.embeddings.append(np.asarray(embedder.embed(view_rgb, view_landmarks), dtype=np.float32))
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
        quality = float(face.score) * max(0.0, (x1 - x0) * (y1 - y0))
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


def _keep_view(track: _Track, quality: float, rgb: np.ndarray, landmarks: np.ndarray) -> None:
    """Keep this sighting for the track's deferred embedding if it is among its
    :data:`EMBEDDINGS_PER_TRACK` best (cut small, so the frame itself is not held)."""
    if len(track.views) >= EMBEDDINGS_PER_TRACK:
        worst = min(range(len(track.views)), key=lambda i: track.views[i][0])
        if quality <= track.views[worst][0]:
            return
        track.views.pop(worst)
    view = face_view(rgb, landmarks)
    track.views.append((quality, view.rgb, view.landmarks))


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
        "manipulation": result.manipulation,
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
    "video_sampling",
]
