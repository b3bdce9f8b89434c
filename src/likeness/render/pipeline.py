"""``render_media``: authorise, check content, swap faces frame by frame, write only labelled output.

Order of work for one call (see docs/render.md):

1. check the model card against its organisation seal and ``model.exported`` ledger event; obtain
   ``Authorization`` for (the event's subject, use, org) and a ``ReleaseAuthorization`` for the
   event's performer from the policy engine (no other way; the card itself is never believed);
2. run the content check on sampled target frames (no switch turns it off);
3. load the swap model through ``likeness.train.load_swap_model`` (verifies hash, subject, grant);
4. render frames with ``FrameRenderer``; decode + detection, swapping and label/watermark/encode
   run on three threads; both authorizations are rechecked every ``recheck_every`` frames; the
   output keeps the source's timestamps (VFR) and display rotation; odd sizes are padded by the
   writer;
5. hand every frame to ``LabelledWriter`` (label + watermark + C2PA + ledger, atomic);
6. write the render report next to the output.

Resume: every ``checkpoint_every`` frames the renderer's state and the per-frame swap recipes
(affine, colour-corrected crop, blend mask) are saved in ``.<out name>.render-checkpoint/``
beside the output, sealed with a per-job key (``likeness.render.checkpoint``). A rerun with the
same target, model and options replays the recipes onto the decoded source (cheap: one warp and
blend per face), then continues as the same job (counted once). The checkpoint holds no playable
media and no swapped pixels in the clear; it and its key are deleted when the job ends (output
written, render refused, consent withdrawn). A killed run's temporaries are removed by the rerun.
A killed run's key is kept only to resume it: every render first deletes the keys that can no
longer resume anything (``likeness.render.checkpoint.sweep_job_keys``: checkpoint gone, job
completed or ended, grant or release no longer in force), whatever it then renders.

Render limit: the writer counts the job when it opens the output and gives the slot back when
no output is placed: any failure, and a video in which no face was swapped (``FaceError``).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from likeness.errors import ConfigError, ConsentError, FaceError, LikenessError, MediaError
from likeness.media.video.budget import DecodeLimits
from likeness.media.video.deinterlace import deinterlacer_available
from likeness.prefetch import Prefetch, WriteBehind
from likeness.render import content
from likeness.render.blend import paste_face
from likeness.render.checkpoint import RenderCheckpoint, sweep_job_keys
from likeness.render.content import check_content, sample_indices
from likeness.render.frame import MAX_BATCH_FRAMES, FaceOutcome, FrameInput, FrameRenderer, RefineOptions, frame_mask
from likeness.render.keyframes import detect_alternate_frames
from likeness.render.quality import identity_transfer
from likeness.render.report import (
    RenderReport,
    StripFrame,
    colour_difference_in_roi,
    interlaced_note,
    write_report,
)
from likeness.render.track_quality import ShotQuality, measure_sample

if TYPE_CHECKING:
    from likeness.consent.policy import Authorization, ReleaseAuthorization
    from likeness.workspace import Workspace

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
OUTPUT_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

ProgressCallback = Callable[[int, int | None], None]  # (frames done, frames total or None)


MIN_CONTENT_SAMPLES = 8
# Long side of the frames the content check decodes: NudeNet looks at 320 px, so 640 keeps
# every detail it can use while converting each 1080p frame costs a fraction of full size.
CONTENT_FRAME_SIDE = 640


@dataclass(frozen=True)
class RenderOptions:
    """Options of one render. ``unlabelled`` asks for no visible label (the writer honours it only
    when the grant allows); nothing here can skip consent, the content check or the watermark.

    ``model_threads``: onnxruntime intra-op threads (1 measured fastest on 2 cores, where decode,
    detection and encoding already run on their own threads; see docs/render.md).
    ``precision``: "auto" (the model's int8 copy on a CPU when the export kept one, else float),
    "float" or "int8" (``likeness.train.swap_model.choose_precision``; the report says which ran
    and why).
    ``detect_ahead``: run face detection on the decode thread, one frame ahead of the swap
    (False: on the main thread, as before; kept for the side-by-side benchmark).
    ``interpolate_landmarks``: with ``detect_ahead``, run FaceMesh on every other frame and
    interpolate the landmarks of the frame between where both neighbours show the same faces
    moving little (``likeness.render.keyframes``; False: FaceMesh on every frame).
    ``swap_batch``: video frames whose faces go through the swap model in one call (1 to
    ``MAX_BATCH_FRAMES``); 4 costs about 12 % less per face than one call per frame on a 2-core
    CPU and more on a GPU. Output is the same up to the model's float rounding.
    ``expression_every``: run FaceMesh on the rendered face every this many frames (even frames,
    where the source's own FaceMesh ran) for the report's mouth and blink agreement; a blink
    lasts 3-8 frames at 25 fps, so 2 sees it. ``quality_every``: of those, every this many frames
    also get an identity embedding of the output, a sharpness ratio and report crops.
    """

    refine: RefineOptions = field(default_factory=RefineOptions)
    unlabelled: bool = False
    content_samples: int = 8
    recheck_every: int = 25
    checkpoint_every: int = 250
    identity_every: int = 15
    quality_every: int = 10
    expression_every: int = 2
    max_faces: int = 8
    detect_max_side: int = 960
    model_threads: int = 1
    precision: str = "auto"
    detect_ahead: bool = True
    interpolate_landmarks: bool = True
    swap_batch: int = 4
    write_report: bool = True

    def __post_init__(self) -> None:
        batch = self.swap_batch
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH_FRAMES:
            raise ConfigError(f"swap_batch must be an integer from 1 to {MAX_BATCH_FRAMES}, got {batch!r}")
        for name in ("expression_every", "quality_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# entry point


def render_media(
    workspace: Any,
    model_dir: str | os.PathLike[str],
    target: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    use: str,
    org: str,
    options: RenderOptions = RenderOptions(),
    progress: ProgressCallback | None = None,
) -> RenderReport:
    """Render the model's subject onto the released performer in ``target`` (video, image or a
    folder of images) and write labelled output to ``out`` (a file; a folder for a folder).

    Raises ``ConsentError`` (no grant, use not granted, no release, revoked mid-render,
    prohibited content, ``artefact_altered``/``artefact_unsigned`` for a model folder that is not
    what this workspace exported), ``ModelError``, ``MediaError`` (unreadable target),
    ``FaceError`` (performer has no reference embeddings).
    """
    from likeness.consent.vocabulary import check_use_for_step

    # First, whatever follows: keys of killed jobs that can no longer resume (revoked consent
    # included) are destroyed, so their sealed checkpoints can never be read.
    sweep_job_keys(workspace)
    use = check_use_for_step(use, "render")  # 'training' never yields final media
    model_dir, target, out = Path(model_dir), Path(target), Path(out)
    card, binding = read_card(workspace, model_dir)
    # Whose likeness, onto whom, for which organisation: the model's ledger event says, not the card.
    authz = workspace.policy.authorize(binding["subject_id"], use, org)
    if authz.org_id != binding["org_id"]:
        raise ConsentError(
            "wrong_grantee", f"{model_dir}: the model was exported for another organisation, not '{authz.org_slug}'"
        )
    release = workspace.policy.authorize_release(binding["performer_id"], org)
    subject, performer = authz.subject_slug, release.performer_slug
    if not target.exists():
        raise MediaError(target, "target does not exist")
    kind = "folder" if target.is_dir() else ("image" if target.suffix.lower() in IMAGE_SUFFIXES else "video")
    report = RenderReport(
        job_id=None,
        target=str(target),
        output=str(out),
        kind=kind,
        model_dir=str(model_dir),
        subject_slug=subject,
        performer_slug=performer,
        use=use,
        org=org,
        options=json.loads(json.dumps(asdict(options), default=str)),
    )
    if kind == "video":
        return _VideoRender(
            workspace,
            model_dir,
            authz,
            release,
            target=target,
            out=out,
            options=options,
            report=report,
            progress=progress,
        ).run()
    return _render_images(workspace, model_dir, card, authz, release, target, out, options, report, progress)


def read_card(workspace: Any, model_dir: Path) -> tuple[dict, dict]:
    """(card, binding): the model card after checking it against its seal and ledger event, and
    that event's payload (subject, grant, performer, release, org, file hashes), see
    ``likeness.train.swap_model.verified_model_card``."""
    from likeness.train.swap_model import verified_model_card

    return verified_model_card(workspace, model_dir)


def _precision_of(model: Any) -> dict[str, str]:
    return {"used": str(getattr(model, "precision", "float")), "why": str(getattr(model, "precision_reason", ""))}


def _load_model(
    workspace: Workspace, model_dir: Path, authz: Authorization, threads: int = 1, precision: str = "auto"
) -> Any:
    from likeness.train import load_swap_model

    return load_swap_model(workspace, model_dir, authz=authz, threads=threads, precision=precision)


def _performer_embeddings(workspace: Workspace, release: ReleaseAuthorization) -> np.ndarray:
    """(K, 128) reference embeddings of the released performer: the faces render may swap onto.
    Looked up by the release's ``performer_id`` (the model's verified ledger event named it),
    never by a slug from a card or an event, which no seal binds."""
    references = np.asarray(workspace.registry.reference_embeddings(release.performer_id), np.float32)
    if references.ndim != 2 or references.shape[0] == 0:
        raise FaceError(
            f"performer {release.performer_slug!r} has no reference photos: add them with `likeness subject photos add`"
        )
    return references


def _subject_embeddings(workspace: Any, subject_id: str) -> np.ndarray | None:
    """(K, 128) reference embeddings of the authorized subject (by id), None without any."""
    try:
        references = np.asarray(workspace.registry.reference_embeddings(subject_id), np.float32)
    except LikenessError:
        return None
    return references if references.ndim == 2 and references.shape[0] else None


def _make_renderer(
    workspace: Workspace,
    model: Any,
    authz: Authorization,
    release: ReleaseAuthorization,
    options: RenderOptions,
    *,
    video: bool,
) -> FrameRenderer:
    from likeness.faces.detect import FaceDetector
    from likeness.faces.identity import IDENTITY_THRESHOLD, FaceEmbedder

    references = _performer_embeddings(workspace, release)
    detector = FaceDetector(options.max_faces, mode="video" if video else "image", max_side=options.detect_max_side)
    try:
        return FrameRenderer(
            model,
            detector,
            FaceEmbedder(),
            references,
            authz=authz,
            release=release,
            identity_threshold=IDENTITY_THRESHOLD,
            options=options.refine,
            identity_every=options.identity_every,
            recheck_every=options.recheck_every,
        )
    except BaseException:
        detector.close()
        raise


def _start_setup(
    workspace: Workspace,
    model_dir: Path,
    authz: Authorization,
    release: ReleaseAuthorization,
    options: RenderOptions,
    *,
    video: bool,
) -> Future:
    """Load the model and build the renderer on a helper thread while the content check runs.

    Loading costs about a second (onnxruntime session, dlib and MediaPipe graphs, and the first
    import of the training package); the content check about as long, mostly inside
    onnxruntime. Nothing is rendered before both have finished, so the order of the invariants
    (consent, then content, then frames) is unchanged.
    """

    def build() -> FrameRenderer:
        model = _load_model(workspace, model_dir, authz, options.model_threads, options.precision)
        return _make_renderer(workspace, model, authz, release, options, video=video)

    return _in_background(build, "render-setup")


def _in_background(work: Callable[[], Any], name: str) -> Future:
    """Run ``work`` on a helper thread of its own; the future gives its result or its error."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    try:
        return executor.submit(work)
    finally:
        executor.shutdown(wait=False)


class _ContentDetectorLoading:
    """A ``ContentDetector`` whose onnxruntime session loads on a helper thread (about 0.1 s)
    while the first frames to check are decoded; ``detect`` waits for it."""

    def __init__(self) -> None:
        self._loading = _in_background(content.ContentDetector, "render-content")

    def detect(self, rgb: np.ndarray) -> list[dict]:
        return self._loading.result().detect(rgb)


def _checked_content(setup: Future, frames: Iterator[np.ndarray], source: str) -> Any:
    """Run the content check; if it refuses (or fails), wait for the setup and release it."""
    try:
        return check_content(frames, source=source, detector=_ContentDetectorLoading())
    except BaseException:
        with contextlib.suppress(BaseException):
            setup.result().detector.close()
        raise


class _QualityTracker:
    """Collects per-track quality while frames render (``likeness.render.track_quality``).

    Every swapped face feeds flicker (and every 5th the border colour). On frames the caller
    hands ``before_regions`` for (every ``expression_every``-th), FaceMesh runs again on the
    rendered face, so mouth and eye openness of the output are measured from its pixels; every
    ``every``-th of those also gets a dlib embedding of the output (identity), a sharpness
    ratio and before/after crops for the report.
    """

    def __init__(
        self, renderer: FrameRenderer, subject_refs: np.ndarray | None, every: int, expression_every: int = 2
    ) -> None:
        self.renderer = renderer
        self.subject_refs = subject_refs
        self.expression_every = max(1, expression_every)
        self.sample_every = max(1, every // self.expression_every)
        self.shots: dict[Any, ShotQuality] = {}
        self._expression_count: dict[Any, int] = {}
        self.track_jobs: dict[int, str] = {}
        self._output_detector: Any = None

    def observe(
        self,
        frame_index: int,
        rgb_out: np.ndarray,
        outcomes: list[FaceOutcome],
        before_regions: list[SourceRegion] | None = None,
        *,
        key: Any = None,
        source: str | None = None,
        job_id: str | None = None,
    ) -> None:
        """``before_regions``: parts of this frame as it was before the swap (:func:`source_regions`),
        given on frames to sample; ``key`` keeps tracks of unrelated images apart, ``source``
        names their file and ``job_id`` the output job their crops are marked for."""
        import cv2

        for outcome in outcomes:
            shot_key = (key, outcome.track_id)
            if not outcome.swapped:
                if shot_key in self.shots:
                    self.shots[shot_key].break_continuity()
                continue
            shot = self.shots.get(shot_key)
            if shot is None:
                shot = self.shots[shot_key] = ShotQuality(
                    len(self.shots) if key is not None else outcome.track_id, source=source
                )
                if job_id is not None:
                    self.track_jobs[shot.track_id] = job_id
            crop, affine, source_crop, mask = outcome.crop, outcome.affine, outcome.source_crop, outcome.mask
            # A swapped face carries its crop, affine, aligned target and mask (FrameRenderer).
            assert crop is not None and affine is not None and source_crop is not None and mask is not None
            size = crop.shape[0]
            output_crop = cv2.warpAffine(
                rgb_out, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            shot.add_crops(source_crop, output_crop, mask)
            if shot.frames_swapped % 5 == 1:
                placed = frame_mask(outcome, rgb_out.shape)
                if placed is not None:
                    value = colour_difference_in_roi(rgb_out, *placed)
                    if value is not None:
                        shot.colour_differences.append(value)
            if before_regions is not None:
                region = region_for(before_regions, outcome.bbox)
                if region is not None:
                    self._sample(shot, shot_key, frame_index, rgb_out, outcome, region)

    def _output_landmarks(self, rgb_out: np.ndarray, outcome: FaceOutcome) -> np.ndarray | None | bool:
        """FaceMesh landmarks of the rendered face; None for a face too small to look at, False
        when FaceMesh found no face where the swap put one."""
        from likeness.faces.detect import FaceDetector, box_iou

        if self._output_detector is None:
            self._output_detector = FaceDetector(1, mode="image")
        x0, y0, x1, y1 = outcome.bbox
        pad_x, pad_y = 0.3 * (x1 - x0), 0.3 * (y1 - y0)
        cx0, cy0 = int(max(0, x0 - pad_x)), int(max(0, y0 - pad_y))
        cx1, cy1 = int(min(rgb_out.shape[1], x1 + pad_x)), int(min(rgb_out.shape[0], y1 + pad_y))
        if cx1 - cx0 < 32 or cy1 - cy0 < 32:
            return None
        faces = self._output_detector.detect(np.ascontiguousarray(rgb_out[cy0:cy1, cx0:cx1]))
        if not faces:
            return False
        face = faces[0]
        if box_iou(np.array(face.bbox) + [cx0, cy0, cx0, cy0], np.array(outcome.bbox))[0, 0] < 0.3:
            return False
        return face.landmarks + np.array([cx0, cy0], np.float32)

    def _sample(
        self,
        shot: ShotQuality,
        shot_key: Any,
        frame_index: int,
        rgb_out: np.ndarray,
        outcome: FaceOutcome,
        region: SourceRegion,
    ) -> None:
        if outcome.landmarks is None or outcome.affine is None or outcome.crop is None or outcome.mask is None:
            return
        landmarks = self._output_landmarks(rgb_out, outcome)
        mouths = None
        if landmarks is False:
            shot.miss_output_face()
        elif isinstance(landmarks, np.ndarray):
            mouths = shot.add_expression(frame_index, outcome.landmarks, landmarks)
        # Full samples do not wait for FaceMesh to find the output face: a hand the swap painted
        # over, or a broken face, is exactly what the crops and the occluder damage must show.
        count = self._expression_count.get(shot_key, 0)
        self._expression_count[shot_key] = count + 1
        full = count % self.sample_every == 0
        if not full and (mouths is None or not shot.wants_mouth_frame(*mouths)):
            return
        origin, pixels = region
        size = outcome.crop.shape[0]
        occluder = face_region = None
        if full and outcome.source_crop is not None:
            occluder, face_region = self._occluder_and_face(outcome, size)
        sample = measure_sample(
            frame_index, pixels, origin, rgb_out, outcome.affine, size, outcome.mask, occluder, face_region
        )
        if mouths is not None:
            sample.mouth_performer, sample.mouth_output = mouths
        shot.offer_mouth_frame(sample)
        if not full:
            return
        if self.subject_refs is not None and isinstance(landmarks, np.ndarray):
            try:
                output_embedding = self.renderer.embedder.embed(rgb_out, landmarks)
            except FaceError:
                output_embedding = None
            if output_embedding is not None:
                sample.identity_distance = identity_transfer(output_embedding, self.subject_refs, None)[
                    "distance_to_subject"
                ]
        shot.add_sample(sample)

    @staticmethod
    def _occluder_and_face(outcome: FaceOutcome, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The shipped occlusion mask on the *input* face (the crop the renderer aligned, whatever
        the render's own ``occlusion`` option) and the performer's landmark hull, both (R, R)."""
        import cv2

        from likeness.render.frame import occlusion_segmenter
        from likeness.render.mask import landmark_hull

        assert outcome.source_crop is not None and outcome.affine is not None and outcome.landmarks is not None
        in_crop = cv2.transform(np.asarray(outcome.landmarks, np.float64)[:, None, :], outcome.affine)[:, 0]
        occluder = occlusion_segmenter().occluders(outcome.source_crop[None], in_crop[None])[0]
        return occluder, landmark_hull(in_crop, size=size)

    def summaries(self) -> list[dict[str, Any]]:
        from likeness.faces.identity import IDENTITY_THRESHOLD

        return [shot.summary(identity_threshold=IDENTITY_THRESHOLD) for shot in self.shots.values()]

    def picked_frames(self) -> dict[int, list[tuple[str, Any]]]:
        return {shot.track_id: shot.picked_frames() for shot in self.shots.values()}

    def close(self) -> None:
        if self._output_detector is not None:
            self._output_detector.close()


#: ``((x, y) origin in the frame, uint8 copy of that part of the frame before the swap)``.
SourceRegion = tuple[tuple[int, int], np.ndarray]
#: Margin around a face box copied for the quality sample, in box widths (covers the aligned crop).
SOURCE_REGION_MARGIN = 0.6


def source_regions(rgb: np.ndarray, faces: list[Any] | None) -> list[SourceRegion]:
    """Copies of the parts of ``rgb`` around each detected face (the whole frame when the faces
    are not known yet), taken before the swap pastes into the frame."""
    if faces is None:
        return [((0, 0), rgb.copy())]
    regions = []
    height, width = rgb.shape[:2]
    for face in faces:
        x0, y0, x1, y1 = face.bbox
        mx, my = SOURCE_REGION_MARGIN * (x1 - x0), SOURCE_REGION_MARGIN * (y1 - y0)
        cx0, cy0 = int(max(0, x0 - mx)), int(max(0, y0 - my))
        cx1, cy1 = int(min(width, x1 + mx + 1)), int(min(height, y1 + my + 1))
        if cx1 > cx0 and cy1 > cy0:
            regions.append(((cx0, cy0), rgb[cy0:cy1, cx0:cx1].copy()))
    return regions


def region_for(regions: list[SourceRegion], bbox: tuple[float, float, float, float]) -> SourceRegion | None:
    """The region that holds most of ``bbox``."""
    best, best_area = None, 0.0
    for origin, pixels in regions:
        ox, oy = origin
        w = min(bbox[2], ox + pixels.shape[1]) - max(bbox[0], ox)
        h = min(bbox[3], oy + pixels.shape[0]) - max(bbox[1], oy)
        if w > 0 and h > 0 and w * h > best_area:
            best, best_area = (origin, pixels), w * h
    return best


# --------------------------------------------------------------------------------------------
# images


def _render_images(workspace, model_dir, card, authz, release, target, out, options, report, progress) -> RenderReport:
    from likeness.media.images import read_image
    from likeness.provenance.writer import LabelledWriter, RenderJob

    if target.is_dir():
        inputs = sorted(p for p in target.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not inputs:
            raise MediaError(target, "folder holds no images (jpg, png, webp, bmp, tif)")
        out.mkdir(parents=True, exist_ok=True)
        destinations = [
            out / (p.stem + (p.suffix.lower() if p.suffix.lower() in OUTPUT_IMAGE_SUFFIXES else ".png")) for p in inputs
        ]
    else:
        if out.suffix.lower() not in OUTPUT_IMAGE_SUFFIXES:
            raise MediaError(out, f"image output must end in one of {', '.join(OUTPUT_IMAGE_SUFFIXES)}")
        inputs, destinations = [target], [out]
    images: list[tuple[Path, Path, np.ndarray]] = []
    for source, destination in zip(inputs, destinations):
        try:
            images.append((source, destination, read_image(source)))
        except MediaError as exc:
            if not target.is_dir():
                raise
            report.skipped_inputs.append({"path": str(source), "reason": exc.reason})
    report.frames_total = len(inputs)
    setup = _start_setup(workspace, model_dir, authz, release, options, video=False)
    report.content_check = asdict(_checked_content(setup, (rgb for _, _, rgb in images), str(target)))
    renderer = setup.result()
    report.model_precision = _precision_of(renderer.model)
    writer = LabelledWriter(workspace)
    strip: list[StripFrame] = []
    quality = _QualityTracker(
        renderer, _subject_embeddings(workspace, authz.subject_id), options.quality_every, options.expression_every
    )
    started = time.perf_counter()
    try:
        for done, (source, destination, rgb) in enumerate(images):
            authz.recheck()
            release.recheck()
            renderer.reset()  # images are unrelated: no tracks, identities or filters carry over
            rendered, outcomes = renderer.process(rgb, frame_index=done, t_s=float(done))
            report.frames_rendered += 1
            if not any(o.swapped for o in outcomes):
                reason = "no face" if not outcomes else "no swappable face of the released performer"
                report.skipped_inputs.append({"path": str(source), "reason": reason})
                continue
            report.frames_with_swaps += 1
            job = RenderJob.new("image", unlabelled_requested=options.unlabelled)
            # Each image is its own track: identity, sharpness and crops (no expression over time).
            quality.observe(done, rendered, outcomes, [((0, 0), rgb)], key=done, source=source.name, job_id=job.job_id)
            result = writer.write_image(
                authz, job, rendered, destination, source_path=source, faces=[o.bbox for o in outcomes]
            )  # the label keeps off every face
            report.job_id = report.job_id or job.job_id
            report.outputs.append(
                {
                    "path": str(result.path),
                    "job_id": job.job_id,
                    "sha256": result.sha256,
                    "watermark_payload": result.watermark_payload_hex,
                }
            )
            if len(strip) < 4:
                strip.append((rgb, rendered, job.job_id))
            if progress:
                progress(done + 1, len(images))
    finally:
        renderer.detector.close()
        quality.close()
    report.faces.update(renderer.counts)
    report.thin_rims_skipped_faces = renderer.thin_rims_skipped
    report.shots = quality.summaries()
    report.seconds = time.perf_counter() - started
    report.fps = report.frames_rendered / report.seconds if report.seconds else 0.0
    if not report.outputs:
        reasons = (
            "; ".join(f"{Path(s['path']).name}: {s['reason']}" for s in report.skipped_inputs) or "nothing rendered"
        )
        raise FaceError(f"{target}: nothing to render ({reasons})")
    if options.write_report:
        folder, stem = (out, "folder") if target.is_dir() else (out.parent, out.stem)
        write_report(report, folder, stem, strip, quality.picked_frames(), quality.track_jobs)
    return report


# --------------------------------------------------------------------------------------------
# video


def _checkpoint_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.render-checkpoint"


def _target_fingerprint(target: Path) -> str:
    stat = target.stat()
    digest = hashlib.sha256()
    with target.open("rb") as handle:
        digest.update(handle.read(1 << 20))
    return f"{stat.st_size}:{digest.hexdigest()[:32]}"


def _content_frames(
    target: Path, frame_count: int, duration_s: float, samples: int, limits: DecodeLimits
) -> Iterator[np.ndarray]:
    """The frames the content check sees: at least one per second and at least ``samples`` over
    the clip (every frame of a clip with no more than ``samples``), plus the first frame after
    each cut or change of scene (``content.ContentSampler``), so a short scene between two cuts
    cannot slip between evenly spaced samples.

    The clip is decoded once, every frame, but converted only to ``CONTENT_FRAME_SIDE`` px and
    reduced to a 32x18 signature unless picked (cost measured in docs/render.md).
    """
    from likeness.media.video import iter_video_frames

    sampler = content.ContentSampler(interval_s=content.content_sample_interval(duration_s, floor=samples))
    every_frame = 0 < frame_count <= samples
    try:
        for frame in iter_video_frames(target, autorotate=True, max_side=CONTENT_FRAME_SIDE, limits=limits):
            if sampler.pick(frame.pts_s, content.frame_signature(frame.rgb)) is not None or every_frame:
                yield frame.rgb
    except MediaError:
        return  # decoding problems are reported by the render pass itself


#: One frame handed to the encode thread: (pixels, output time, swapped face boxes or None,
#: boxes of the faces left alone).
_EncodeItem = tuple[np.ndarray, float, list | None, tuple | list]


class _VideoRender:
    """One video render (steps 2 to 6 of the module docstring); each stage is a method.

    ``run`` calls them in order: ``_probe`` (the target), ``_check_and_load`` (content check
    while the model loads), ``_open_checkpoint`` (resume state), ``_start_job`` (job id, writer),
    ``_open_video`` (the labelled output), ``_render_frames`` (decode + detect on one helper
    thread, swap on this one, label + encode on another) and ``_finish`` (the report).
    """

    def __init__(
        self,
        workspace: Any,
        model_dir: Path,
        authz: Authorization,
        release: ReleaseAuthorization,
        *,
        target: Path,
        out: Path,
        options: RenderOptions,
        report: RenderReport,
        progress: ProgressCallback | None,
    ) -> None:
        self.workspace, self.model_dir, self.authz, self.release = workspace, model_dir, authz, release
        self.target, self.out, self.options, self.report, self.progress = target, out, options, report, progress
        self.start_index = 0  # frames before it are replayed from the checkpoint's recipes
        self.recipes: dict[int, list] = {}
        self.resume: Any = None
        self.next_index = 0
        self.batch: list[tuple[Any, Any, np.ndarray | None]] = []  # (frame, faces, copy for the strip)
        self.strip: list[StripFrame] = []

    def run(self) -> RenderReport:
        from likeness.media.video import ColourTags

        info = self._probe()
        self._check_and_load(info)
        self._open_checkpoint()
        self._start_job()
        self.started = time.perf_counter()
        video = self._open_video(info, ColourTags.of(info))
        self.clock = _OutputClock(float(info.frame_rate or info.fps or 25.0))
        return self._finish(self._render_frames(video))

    # -- before the first frame -------------------------------------------------------------

    def _probe(self) -> Any:
        from likeness.media.video import probe_video

        if self.out.suffix.lower() != ".mp4":
            raise MediaError(self.out, "video output must be an .mp4 file")
        info = probe_video(self.target)  # MediaError for audio-only, corrupt or unsupported files
        width, height = info.display_size
        if min(width, height) < 2:  # the writer's least size; said of the footage, not of the output
            raise MediaError(self.target, f"the picture is {width}x{height} px: too small to render (at least 2x2)")
        self.expected = info.frame_count if info.frame_count else max(1, round(info.duration_s * info.fps))
        self.report.frames_total = self.expected
        return info

    def _check_and_load(self, info: Any) -> None:
        options = self.options
        # The content check cannot be turned off: at least MIN_CONTENT_SAMPLES frames, whatever the options say.
        samples = max(options.content_samples, MIN_CONTENT_SAMPLES)
        setup = _start_setup(self.workspace, self.model_dir, self.authz, self.release, options, video=True)
        frames = _content_frames(
            self.target, self.expected, info.duration_s, samples, DecodeLimits.of(self.workspace.settings)
        )
        self.report.content_check = asdict(_checked_content(setup, frames, str(self.target)))
        self.renderer = setup.result()  # a FrameRenderer with a closable FaceDetector
        self.report.model_precision = _precision_of(self.renderer.model)
        self.quality = _QualityTracker(
            self.renderer,
            _subject_embeddings(self.workspace, self.authz.subject_id),
            options.quality_every,
            options.expression_every,
        )

    def _open_checkpoint(self) -> None:
        from likeness.provenance.writer import remove_job_temporaries

        # The model file actually used: a resume must not mix float and int8 frames.
        model_sha256 = self.renderer.model.file_sha256
        key = {
            "target": _target_fingerprint(self.target),
            "model": str(model_sha256),
            "options": self.options.fingerprint(),
        }
        self.checkpoint = RenderCheckpoint(
            _checkpoint_dir(self.out),
            self.workspace.keys_dir,
            key,
            resolution=self.renderer.resolution,
            faces_per_frame=self.options.max_faces,
            frames_per_chunk=self.options.checkpoint_every,
        )
        try:
            self.resume = self.checkpoint.open()  # None also when one was discarded: foreign, keyless or altered
        except BaseException:
            self.renderer.detector.close()  # a FIFO or folder in the checkpoint: MediaError naming it
            self.quality.close()
            raise
        for abandoned in self.checkpoint.discarded:
            remove_job_temporaries(self.out, abandoned)
        resume = self.resume
        if resume is not None and resume.renderer_state is not None:
            self.start_index = self.next_index = resume.next_index
            self.renderer.restore(resume.renderer_state)
            self.recipes = resume.recipes
            self.report.resumed_from_frame = self.start_index

    def _start_job(self) -> None:
        from likeness.provenance.writer import LabelledWriter, RenderJob

        if self.resume is not None:
            # Same job id: consume_render is idempotent per job, so the resumed render counts once,
            # and the output carries the watermark payload the interrupted run would have had.
            self.job = RenderJob(self.resume.job_id, "video", unlabelled_requested=self.options.unlabelled)
        else:
            self.job = RenderJob.new("video", unlabelled_requested=self.options.unlabelled)
        self.checkpoint.start(
            self.job.job_id, output=self.out, grant_id=self.authz.grant_id, release_id=self.release.release_id
        )
        self.report.job_id = self.job.job_id
        self.writer = LabelledWriter(self.workspace)
        self.strip_at = set(sample_indices(self.expected, 4))

    def _open_video(self, info: Any, colour: Any) -> Any:
        # Frames are processed upright; the writer turns them back and keeps the display matrix, and
        # pads odd sizes itself.
        width, height = info.display_size
        try:
            video = self.writer.open_video(
                self.authz,
                self.job,
                self.out,
                width=width,
                height=height,
                fps=info.frame_rate or info.fps,
                audio_source=self.target,
                source_path=self.target,
                # frames of a mirroring display matrix are rendered and written as shown
                rotation=0 if info.mirrored else info.rotation,
                colour=colour,
            )
        except BaseException as exc:
            if isinstance(exc, LikenessError):
                self.checkpoint.remove()  # refused (limit reached, revoked) or failed for good: the job ends here
            self.renderer.detector.close()
            self.quality.close()
            raise
        self.report.padded_to_even = video.padded
        self.report.audio_note = video.audio_note
        if info.field_order is not None:
            self.report.deinterlaced = deinterlacer_available()  # what iter_video_frames(deinterlace=True) uses
        self.report.interlaced_note = interlaced_note(
            info.field_order, self.report.deinterlaced, float(info.frame_rate or info.fps or 25.0)
        )
        return video

    # -- the frames -------------------------------------------------------------------------

    def _decode_and_detect(self) -> Iterator[tuple[Any, Any]]:
        """(frame, faces or None) in order; runs on the decode thread.

        Detection runs there, ahead of the frame the main thread is swapping; MediaPipe releases
        the GIL, so the two overlap on a 2-core machine. Frames before a resume point are
        replayed from the checkpoint, never detected."""
        from likeness.media.video import iter_video_frames

        options, detector = self.options, self.renderer.detector
        frames = iter_video_frames(
            self.target, autorotate=True, limits=DecodeLimits.of(self.workspace.settings), exact=True, deinterlace=True
        )
        try:
            for frame in frames:
                if frame.index >= self.start_index:
                    fresh: Iterator[Any] = itertools.chain([frame], frames)
                    break
                yield frame, None
            else:
                return
            if not options.detect_ahead:
                for frame in fresh:
                    yield frame, None
            elif options.interpolate_landmarks:
                for frame, faces, interpolated in detect_alternate_frames(fresh, detector.detect):
                    self.report.landmark_frames_interpolated += interpolated
                    yield frame, faces
            else:
                for frame in fresh:
                    yield frame, detector.detect(frame.rgb)
        except MediaError as exc:
            self.report.decode_error = exc.reason

    def _encode(self, video: Any, item: _EncodeItem) -> None:
        # On the encode thread, which keeps taking frames after a failure, so the main thread
        # never blocks on a full queue; the video itself is closed or aborted only by the main
        # thread, after this thread has stopped touching it.
        rgb, pts_s, swapped, others = item
        # nothing reads a frame once queued; the face tag follows the swapped faces
        video.write(rgb, pts_s=pts_s, owned=True, faces=swapped, other_faces=others)

    def _render_frames(self, video: Any) -> Any:
        """Render every frame into ``video`` and close it; the writer's result."""
        from likeness.provenance.writer import failure_reason

        options = self.options
        decoder = Prefetch(self._decode_and_detect(), depth=8, name="render-decode")
        self.encoder: WriteBehind[_EncodeItem] = WriteBehind(
            lambda item: self._encode(video, item), depth=8, name="render-encode"
        )
        finished = False
        abort_reason = "aborted"
        try:
            for frame, faces in decoder:
                if self.encoder.failure is not None:
                    break
                index = frame.index
                # Decoded frames belong to this loop: faces are pasted into them and the writer labels
                # them in place, so no frame-sized copy is made per frame.
                if index < self.start_index:
                    self._replay(frame)
                    continue
                # The renderer rechecks both authorizations every options.recheck_every frames.
                self.batch.append((frame, faces, frame.rgb.copy() if index in self.strip_at else None))
                if len(self.batch) >= options.swap_batch or (index + 1) % options.checkpoint_every == 0:
                    self._render_batch()
            if self.batch and self.encoder.failure is None:
                self._render_batch()
            self.encoder.close()
            self.encoder.raise_failure()
            self._check_something_rendered(video)
            self.authz.recheck()
            self.release.recheck()
            result = video.close()
            finished = True
        except BaseException as exc:
            abort_reason = failure_reason(exc)
            if isinstance(exc, LikenessError):
                # Consent withdrawn, or a failure a rerun would repeat (model, media, signing): the
                # job ends and no synthetic material stays. An interruption keeps it for the resume.
                self.checkpoint.remove()
            raise
        finally:
            self.encoder.cancel()
            self.encoder.close()  # the encoder drains, so this cannot block for long
            if not finished:
                video.abort(reason=abort_reason)  # gives the render slot back
            if decoder.close(timeout_s=30.0):  # never close MediaPipe under a running detect()
                self.renderer.detector.close()
            self.quality.close()
        return result

    def _replay(self, frame: Any) -> None:
        """A frame before the resume point: the checkpoint's recipes pasted onto the decoded source."""
        rendered = frame.rgb
        recipes = self.recipes.get(frame.index, [])
        for affine, crop, mask in recipes:
            rendered = paste_face(rendered, crop, mask, affine, method=self.options.refine.blend, in_place=True)
        self.report.frames_with_swaps += bool(recipes)
        self._emit(rendered, frame.pts_s)

    def _render_batch(self) -> None:
        """One swap-model call for the batch's faces; everything else stays frame by frame, in order."""
        batch, options, report = self.batch, self.options, self.report
        # The faces as they were, on the frames quality samples (the swap pastes in place).
        regions = {
            f.index: source_regions(f.rgb, faces) for f, faces, _ in batch if f.index % options.expression_every == 0
        }
        results = self.renderer.process_batch(
            [FrameInput(f.rgb, f.index, f.pts_s, faces) for f, faces, _ in batch], in_place=True
        )
        for (frame, _, before), (rendered, outcomes) in zip(batch, results):
            report.frames_with_swaps += any(o.swapped for o in outcomes)
            self.quality.observe(frame.index, rendered, outcomes, regions.get(frame.index))
            self.checkpoint.add(frame.index, outcomes)
            if before is not None:
                self.strip.append((before, rendered.copy(), self.job.job_id))
            self.next_index = frame.index + 1
        # Batches end at checkpoint boundaries, so the saved state is exactly that of next_index.
        if self.next_index % options.checkpoint_every == 0:
            self.checkpoint.commit(self.next_index, self.renderer.state())
        for (frame, _, _), (rendered, outcomes) in zip(batch, results):
            self._emit(
                rendered,
                frame.pts_s,
                [o.bbox for o in outcomes if o.swapped],
                [o.bbox for o in outcomes if not o.swapped],
            )
        batch.clear()

    def _emit(self, rendered: np.ndarray, pts_s: float, swapped: list | None = None, others: tuple | list = ()) -> None:
        # Face boxes of the frame for the writer's face tag (None: not known, the tag holds).
        self.encoder.put((rendered, self.clock.next(pts_s), swapped, others))
        self.report.frames_rendered += 1
        if self.progress:
            self.progress(self.report.frames_rendered, self.expected)

    def _check_something_rendered(self, video: Any) -> None:
        report = self.report
        if report.frames_rendered == 0:
            raise MediaError(self.target, report.decode_error or "no frame could be decoded")
        if report.frames_with_swaps == 0:
            # Nothing synthetic to label: refuse, write nothing, and give the render slot back.
            video.abort(reason="no_face_swapped")
            self.checkpoint.remove()
            raise FaceError(
                f"{self.target}: nothing to render (no face of the released performer was swapped "
                f"in {report.frames_rendered} frames); no output was written and the render was not counted"
            )

    # -- after the last frame ---------------------------------------------------------------

    def _finish(self, result: Any) -> RenderReport:
        report = self.report
        report.variable_frame_rate = self.clock.variable
        self.checkpoint.remove()
        report.seconds = time.perf_counter() - self.started
        report.fps = report.frames_rendered / report.seconds if report.seconds else 0.0
        report.faces.update(self.renderer.counts)
        report.thin_rims_skipped_faces = self.renderer.thin_rims_skipped
        report.shots = self.quality.summaries()
        report.tracks = self.renderer.track_summaries()
        report.outputs.append(
            {
                "path": str(result.path),
                "job_id": self.job.job_id,
                "sha256": result.sha256,
                "watermark_payload": result.watermark_payload_hex,
                "frames": result.frames,
            }
        )
        if self.options.write_report:
            write_report(report, self.out.parent, self.out.stem, self.strip, self.quality.picked_frames())
        return report


class _OutputClock:
    """Source presentation times for the output, kept strictly increasing.

    The source's timestamps are copied (variable frame rate and the audio offset survive);
    a repeated or backwards timestamp (broken muxers) is replaced by the previous one plus one
    frame period, and a negative start is clamped to 0.
    """

    def __init__(self, fps: float) -> None:
        self.period = 1.0 / float(fps) if float(fps) > 0 else 0.04
        self.last: float | None = None
        self.variable = False
        self._steps: set[int] = set()

    def next(self, pts_s: float) -> float:
        pts = max(float(pts_s), 0.0)
        if self.last is not None:
            if not pts > self.last + 2e-5:
                pts = self.last + self.period
            # Steps in 1 ms units: more than one distinct step means the source is VFR.
            self._steps.add(round((pts - self.last) * 1000))
            self.variable = len(self._steps) > 1 and (max(self._steps) - min(self._steps)) > 1
        self.last = pts
        return pts
