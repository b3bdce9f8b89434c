"""Benchmark `likeness verify`: speed per stage (1080p JPEGs, 1080p videos) and recognition quality.

Usage::

    .venv/bin/python benchmarks/verify.py [--media ../shared/media] [--images 12] [--workers 2]

The workspace enrolls three synthetic people from MEDIA as artists (one reference photo each),
so the artist gallery is not empty and every detected face is embedded, as in an agency's scan.

Speed, stills: 1080p JPEGs are composed from two synthetic people each (half of them labelled
renders, so the C2PA and watermark stages do real work). The baseline measured side by side is
plain JPEG decoding (`read_image`), the floor any verifier pays. CPU ms (all threads of this
process) says what a file costs on a busy machine, where wall time depends on other jobs; the
"capacity" line is 2 cores divided by that CPU time.

Speed, video: the 1080p DFDC clip and a generated 1080p clip (10 s, 25 fps, x264 defaults: one
keyframe per 250 frames). Baseline measured side by side: the previous video path (decode every
frame and keep one per second, detect and embed on every sampled frame), against `verify_path`
(sparse sampling with seeks and non-reference frames skipped, decoding one frame ahead in a
thread, each face track embedded on its 3 best views).

Speed with a registered manipulation detector (``--skip detector`` leaves it out): 1080p JPEGs of
two *enrolled* artists each (half labelled renders), verified one after the other by a verifier
that scores their faces with the artists' registered detector and by one that does not (as where
none is registered), interleaved per image in the same process. The detector has the real one's
size: the full MobileNetV2 (ImageNet weights) at 128 px runs on every face, and its logit is the
tests' hand-built chroma statistic plus 1e-6 x the network's, so that it passes its gates on the
tests' generated media (``tests/detector/handmade.py``, made from each artist's reference photo,
three varied frames of which are enrolled beside it: ``register`` takes only an evaluation for
the subject) and can be registered at all. It times the cost, not the accuracy. Per face: ONNX Runtime, one face per call, 1 thread, median of 50.

Quality: the artist gallery is built from one reference photo per synthetic identity (DigiFace
id1/id2 main renders, the first frame of the seeprettyface angle strips); genuine probes are the
other photos of those identities, impostor probes every face in the portraits, paintings, group
photos and the other synthetic people. True match rate = genuine probes matched to the right
identity; false match rate = impostor faces matched to any identity. The gallery is also compared
with the baseline of a per-subject numpy scan (`likeness.faces.match_identity`).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np


def median_ms(samples: list[float]) -> float:
    return 1000.0 * statistics.median(samples)


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started


def make_world(home: Path, media: Path, *, artists: int = 3):
    from likeness.config import Settings
    from likeness.consent import USES
    from likeness.consent.canonical import now_utc
    from likeness.consent.holder import HolderMachine
    from likeness.faceset import enroll_reference_photos
    from likeness.workspace import Workspace

    workspace = Workspace.init(Settings(home=home))
    registry = workspace.registry
    registry.add_org("studio", "Benchmark Studio")
    holders = HolderMachine.beside(home)  # the rights holders sign on their own machine
    holders.enrol(registry, "idol", "Idol", kind="virtual_idol", owner_org="studio")
    holders.grant(registry, "idol", "studio", USES, valid_until=now_utc() + timedelta(days=1), purpose="benchmark")
    # Enrolled artists: the last synthetic people (the images below use the first ones).
    for number, photo in enumerate(synthetic_people(media)[-artists:]):
        slug = f"artist{number}"
        holders.enrol(registry, slug, f"Artist {number}", kind="virtual_idol", owner_org="studio")
        enroll_reference_photos(workspace, slug, [photo])
    return workspace


def synthetic_people(media: Path) -> list[Path]:
    folder = media / "synthetic_people"
    picks = sorted(folder.glob("stylegan*/*.png")) + sorted(folder.glob("seeprettyface_1024/*_example*.png"))
    return picks


def build_images(workspace, media: Path, out: Path, count: int) -> list[Path]:
    from likeness.media import read_image

    people = synthetic_people(media)
    pairs = [
        [read_image(people[(2 * i) % len(people)]), read_image(people[(2 * i + 1) % len(people)])] for i in range(count)
    ]
    return group_stills(workspace, pairs, out, "img")


def group_stills(workspace, pairs: list[list[np.ndarray]], out: Path, stem: str) -> list[Path]:
    """A 1920x1080 JPEG of each pair of faces side by side; every other one a labelled render."""
    from likeness.media import write_image
    from likeness.media.synthetic import compose_group
    from likeness.provenance.writer import LabelledWriter, RenderJob

    writer = LabelledWriter(workspace)
    paths = []
    for i, faces in enumerate(pairs):
        canvas = compose_group(faces, size=(1920, 1080))
        path = out / f"{stem}{i:02d}.jpg"
        if i % 2 == 0:
            authz = workspace.policy.authorize("idol", "music_video", "studio")
            writer.write_image(authz, RenderJob.new("image"), canvas, path, quality=90)
        else:
            write_image(path, canvas, quality=90)
        paths.append(path)
    return paths


def cpu_timed(fn, *args, **kwargs):
    """(value, wall s, CPU s of every thread of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - wall, time.process_time() - cpu


@contextlib.contextmanager
def watermark_reader(extract):
    """Within the block, the verifier reads watermarks with ``extract`` (another copy's
    ``extract_watermark``, to compare readers in one process; it looks the function up at call
    time)."""
    from likeness.provenance import watermark

    original = watermark.extract_watermark
    watermark.extract_watermark = extract
    try:
        yield
    finally:
        watermark.extract_watermark = original


def image_speed(
    workspace, paths: list[Path], workers: int, *, compared=None, repeats: int = 1, scan: bool = True
) -> list[tuple[str, float, float | None, float | None]]:
    """Rows (stage, median wall ms, ratio to decode, median CPU ms). ``compared``: another
    ``watermark.py`` module whose reader is timed beside this one's, image by image, the two
    taking turns to go first; ``repeats``: passes over the images."""
    from likeness.digests import sha256_file
    from likeness.media import read_image
    from likeness.provenance.c2pa_manifest import read_manifest
    from likeness.provenance.watermark import extract_watermark
    from likeness.verify.gallery import ArtistGallery
    from likeness.verify.pipeline import Verifier
    from likeness.verify.scan import verify_many

    verifier = Verifier(workspace)
    empty = Verifier(workspace, gallery=ArtistGallery.sync(Path(tempfile.mkdtemp()), [], threshold=0.4))
    verifier.verify(paths[0])  # warm up: models load once per worker
    empty.verify(paths[0])
    names = (
        "decode (baseline)",
        "sha256",
        "c2pa read",
        "watermark extract",
        "face detect",
        "face embed (all faces)",
        "gallery query",
        "verify total",
        "verify total, empty gallery",
    )
    if compared is not None:
        names += ("watermark extract, compared reader", "verify total, compared reader")
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}

    def measure(name, fn, *args, **kwargs):
        value, w, c = cpu_timed(fn, *args, **kwargs)
        wall[name].append(w)
        cpu[name].append(c)
        return value

    detector = verifier._detector("image")
    embedder = verifier._embedder_model()

    def both_readers(index: int, stage: str, ours, theirs, *args) -> None:
        """``stage`` with this reader and, when one is compared, with the other, taking turns
        to go first."""
        turns = [(stage, ours)]
        if compared is not None:
            turns.append((f"{stage}, compared reader", theirs))
        # Per pair of images, so labelled renders and unlabelled stills (every other image) each
        # get both orders.
        for name, fn in turns[:: 1 if index // 2 % 2 == 0 else -1]:
            measure(name, fn, *args)

    def verify_compared(path: Path):
        with watermark_reader(compared.extract_watermark):
            return verifier.verify(path)

    theirs_extract = None if compared is None else compared.extract_watermark
    faces_per_image = []
    for index, path in enumerate(paths * repeats):
        rgb = measure("decode (baseline)", read_image, path)
        measure("sha256", sha256_file, path)
        measure("c2pa read", read_manifest, path, trust_anchors_pem=verifier.anchors)
        both_readers(index, "watermark extract", extract_watermark, theirs_extract, rgb)
        faces = measure("face detect", detector.detect, rgb)
        faces_per_image.append(len(faces))
        emb = measure("face embed (all faces)", embedder.embed_many, rgb, [f.landmarks for f in faces])
        measure("gallery query", verifier.gallery.query_many, emb if len(emb) else np.zeros((1, 128), np.float32))
        both_readers(index, "verify total", verifier.verify, verify_compared, path)
        measure("verify total, empty gallery", empty.verify, path)
    verifier.close()
    empty.close()
    base = median_ms(wall["decode (baseline)"])
    rows = [(name, median_ms(wall[name]), median_ms(wall[name]) / base, median_ms(cpu[name])) for name in names]
    # build_images labels every other image (even indices): the watermark read costs the two
    # kinds very differently (a mark usually reads at the first period; no mark tries them all).
    labelled = [index % len(paths) % 2 == 0 for index in range(len(paths) * repeats)]
    for name in names:
        if name.startswith(("watermark extract", "verify total")) and "empty" not in name:
            for kind, keep in (("labelled renders", True), ("unlabelled", False)):
                w = [t for t, flag in zip(wall[name], labelled) if flag == keep]
                c = [t for t, flag in zip(cpu[name], labelled) if flag == keep]
                rows.append((f"  {name}: {kind}", median_ms(w), median_ms(w) / base, median_ms(c)))
    rows.append(
        (
            f"  (faces per image: median {statistics.median(faces_per_image):.0f}; capacity on 2 cores = 2 / CPU)",
            1000 * statistics.median(cpu["verify total"]) / 2,
            None,
            None,
        )
    )
    if not scan:
        return rows
    # A longer scan: the images again under other names (verify_many skips repeated paths).
    batch = list(paths)
    for copy in range(1, 4):
        for path in paths:
            twin = path.with_name(f"{path.stem}-copy{copy}{path.suffix}")
            if not twin.exists():
                os.link(path, twin)
            batch.append(twin)
    for count in (1, workers):
        done_at: list[float] = []
        _, t = timed(
            verify_many,
            workspace,
            batch,
            workers=count,
            force=True,
            progress=lambda d, n, r: done_at.append(time.perf_counter()),
        )
        label = f"verify_many {count} worker{'s' if count > 1 else ''}"
        rows.append((f"{label}, {len(batch)} files incl. start", 1000 * t / len(batch), None, None))
        # Steady state: once every worker has finished its first file (spawn, imports and model
        # loading are behind it), as in a long scan.
        skip = 2 * count
        if len(done_at) > skip + 1:
            rows.append(
                (
                    f"{label}, steady state (after the first {skip} files)",
                    1000 * (done_at[-1] - done_at[skip]) / (len(done_at) - 1 - skip),
                    None,
                    None,
                )
            )
    return rows


def sized_detector_onnx(path: Path) -> bytes:
    """ONNX of the full MobileNetV2 detector whose logit is the tests' chroma statistic plus
    1e-6 x the network's logit (see the module docstring: it times the real network's cost)."""
    import torch

    from likeness.detector.network import build_detector
    from likeness.detector.train import DETECTOR_INPUT, export_onnx

    lo, hi = DETECTOR_INPUT * 3 // 8, DETECTOR_INPUT * 5 // 8

    class SizedDetector(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = build_detector(pretrained=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            centre = x[:, :, lo:hi, lo:hi]
            chroma = (centre[:, 0] - centre[:, 1]).mean(dim=(1, 2))
            return (40.0 * (chroma - 0.03)).unsqueeze(1) + 1e-6 * self.net(x)

    export_onnx(SizedDetector(), path)
    return path.read_bytes()


def register_sized_detector(workspace, folder: Path, subjects: list[str], photos: list[Path]) -> tuple[float, int]:
    """Evaluate the sized detector for each of ``subjects`` on the tests' generated media of its
    reference photo in ``photos`` (``register`` takes only an evaluation for the subject: units
    verify recognises as it) and register it; returns (ms per face, ONNX bytes)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' generated media
    from likeness.detector.evaluation import evaluate_detector
    from likeness.detector.registered import register_detector
    from likeness.detector.score import load_detector
    from likeness.media import read_image
    from tests.detector.handmade import enrol_as_units, gate_media, write_detector

    folder.mkdir(parents=True, exist_ok=True)
    payload = sized_detector_onnx(folder / "sized.onnx")
    for subject, photo in zip(subjects, photos, strict=True):
        portrait = read_image(photo)
        generated = gate_media(folder / f"media-{subject}", portrait=portrait)
        detector = write_detector(folder / f"detector-{subject}", "chroma", generated.calibration, payload=payload)
        # three more references like the generated units (the one enrolment photo alone gives a
        # threshold the 256 px units sit at the edge of)
        evaluated_for = enrol_as_units(workspace, subject, folder / f"references-{subject}", portrait=portrait)
        evaluation = evaluate_detector(detector, generated.real, generated.fake, subject=evaluated_for)
        if not evaluation["passed"]:
            raise SystemExit(f"the sized detector fails its gates for {subject}: {evaluation['gates']}")
        register_detector(workspace, detector, subject)
    model = load_detector(detector)
    one = np.random.default_rng(0).integers(0, 256, (1, 128, 128, 3), dtype=np.uint8)
    model.logits(one)
    times = []
    for _ in range(50):
        started = time.perf_counter()
        model.logits(one)
        times.append(time.perf_counter() - started)
    return median_ms(times), len(payload)


def detector_speed(workspace, media: Path, tmp: Path, count: int) -> list[tuple[str, float, float]]:
    """Rows (what, median wall ms, median CPU ms) of verify with and without the registered detector."""
    from likeness.media import read_image
    from likeness.verify.pipeline import Verifier
    from likeness.verify.result import ManipulationEvidence

    class WithoutDetectors(Verifier):
        """The verifier where no detector is registered: no alignment for it, no scoring."""

        def _keep_detector_crop(self, *args, **kwargs) -> None:
            return None

        def _manipulation(self, tracks, faces):
            return ManipulationEvidence.not_analysed("benchmark: detectors off")

    artists = [f"artist{n}" for n in range(3)]
    face_ms, onnx_bytes = register_sized_detector(workspace, tmp / "detector", artists, synthetic_people(media)[-3:])
    photos = [read_image(p) for p in synthetic_people(media)[-3:]]
    folder = tmp / "artist-images"
    folder.mkdir()
    paths = group_stills(workspace, [[photos[i % 3], photos[(i + 1) % 3]] for i in range(count)], folder, "artists")
    with_detector, without = Verifier(workspace), WithoutDetectors(workspace)
    with_detector.verify(paths[0])  # warm up both
    without.verify(paths[0])
    wall: dict[str, list[float]] = {"with": [], "without": []}
    cpu: dict[str, list[float]] = {"with": [], "without": []}
    scored = []
    for path in paths:
        for name, verifier in (("without", without), ("with", with_detector)):
            (result, _), w, c = cpu_timed(verifier.verify, path)
            wall[name].append(w)
            cpu[name].append(c)
            if name == "with":
                scored.append(sum(len(t.face_scores) for t in result.manipulation.tracks))
    with_detector.close()
    without.close()
    return [
        ("verify, no registered detector", median_ms(wall["without"]), median_ms(cpu["without"])),
        ("verify, the artists' registered detector", median_ms(wall["with"]), median_ms(cpu["with"])),
        (
            f"  faces scored per image (median {statistics.median(scored):.0f}); ONNX {onnx_bytes / 1e6:.1f} MB",
            0.0,
            0.0,
        ),
        ("  detector per face (ONNX Runtime, 1 thread, median of 50)", face_ms, 0.0),
    ]


def video_sampling(
    *,
    fps: float,
    frame_count: int | None,
    duration_s: float,
    sample_fps: float | None = None,
    max_frames: int | None = None,
) -> int:
    """Frame step so that about ``sample_fps`` frames per second, and at most ``max_frames``
    frames over the whole clip, are analysed, for ``iter_video_frames(step=...)``.

    The verifier samples by time with :func:`likeness.media.sample_video_frames`, which does
    not decode the frames in between; this plan (moved here from ``likeness.verify.pipeline``)
    is the side-by-side baseline's: the previous full-decode path.

    >>> video_sampling(fps=30.0, frame_count=300, duration_s=10.0)
    30
    >>> video_sampling(fps=30.0, frame_count=None, duration_s=600.0)
    1125
    """
    from likeness.verify.pipeline import MAX_VIDEO_FRAMES, VIDEO_SAMPLE_FPS

    sample_fps = VIDEO_SAMPLE_FPS if sample_fps is None else sample_fps
    max_frames = MAX_VIDEO_FRAMES if max_frames is None else max_frames
    if fps <= 0:
        return 1
    total = frame_count if frame_count else max(1, int(round(duration_s * fps)))
    step = max(1, int(round(fps / sample_fps)))
    return max(step, int(math.ceil(total / max_frames)))


def previous_video_path(verifier, clip: Path) -> None:
    """The video path before sparse sampling, as the side-by-side baseline: decode every frame
    keeping one per second (``iter_video_frames(step=...)``), detect and embed on every sampled
    frame, fold the watermark over the sampled frames."""
    from likeness.faces import FaceTracker
    from likeness.media import iter_video_frames, probe_video
    from likeness.provenance.watermark import extract_watermark_frames
    from likeness.verify.pipeline import MAX_VIDEO_FRAMES

    info = probe_video(clip)
    step = video_sampling(fps=info.fps, frame_count=info.frame_count, duration_s=info.duration_s)
    detector, embedder = verifier._detector("video"), verifier._embedder_model()
    tracker = FaceTracker(iou_threshold=0.2, max_missed=2)
    embeddings: dict[int, list[np.ndarray]] = {}

    def frames():
        for frame, _ in zip(iter_video_frames(clip, step=step), range(MAX_VIDEO_FRAMES)):
            found = detector.detect(frame.rgb)
            vectors = embedder.embed_many(frame.rgb, [f.landmarks for f in found]) if found else []
            for track_id, vector in zip(tracker.update([f.bbox for f in found]), vectors):
                embeddings.setdefault(track_id, []).append(vector)
            yield frame.rgb

    extract_watermark_frames(frames())
    if embeddings:
        verifier.gallery.query_many(np.stack([np.mean(v, axis=0) for v in embeddings.values()]).astype(np.float32))


def video_speed(workspace, clip: Path, *, repeats: int = 3) -> list[tuple[str, float, float, float]]:
    """Rows (path, median wall ms, x real time, median CPU ms), baseline and candidate interleaved."""
    from likeness.media import iter_video_frames, probe_video, sample_video_frames
    from likeness.verify.pipeline import MAX_VIDEO_FRAMES, Verifier

    info = probe_video(clip)
    step = video_sampling(fps=info.fps, frame_count=info.frame_count, duration_s=info.duration_s)
    verifier = Verifier(workspace)
    verifier.verify(clip)  # warm up
    runs: dict[str, list[tuple[float, float]]] = {}

    def run(name, fn, *args, **kwargs):
        _, w, c = cpu_timed(fn, *args, **kwargs)
        runs.setdefault(name, []).append((w, c))

    def decode_all_keep_one_per_second():
        for _ in zip(iter_video_frames(clip, step=step), range(MAX_VIDEO_FRAMES)):
            pass

    def decode_sparse():
        for _ in sample_video_frames(clip, every_s=1.0, max_frames=MAX_VIDEO_FRAMES):
            pass

    for _ in range(repeats):
        run("decode: every frame, keep 1/s (baseline)", decode_all_keep_one_per_second)
        run("decode: sparse (seek + skip non-reference)", decode_sparse)
        run("previous video path (baseline)", previous_video_path, verifier, clip)
        run("verify_path video (sparse, 3 views per track)", verifier.verify, clip)
    verifier.close()
    d = info.duration_s
    rows = []
    for name, samples in runs.items():
        w = statistics.median(s[0] for s in samples)
        c = statistics.median(s[1] for s in samples)
        rows.append((name, 1000 * w, d / w, 1000 * c))
    return rows


def embedder_cost(folder: Path, *, repeats: int = 15) -> list[tuple[str, float]]:
    """Per-face descriptor cost, side by side: dlib's ResNet as shipped (baseline) and the
    product's default backend (the same weights run through onnxruntime, 1 thread each)."""
    from likeness.faces import FaceDetector, FaceEmbedder
    from likeness.media.synthetic import astronaut

    rgb = astronaut()
    with FaceDetector(max_faces=1) as detector:
        landmarks = detector.detect(rgb)[0].landmarks
    baseline, product = FaceEmbedder(backend="dlib"), FaceEmbedder()
    baseline.embed(rgb, landmarks)
    product.embed(rgb, landmarks)
    dlib_cpu, onnx_cpu = [], []
    for _ in range(repeats):
        dlib_cpu.append(cpu_timed(baseline.embed, rgb, landmarks)[2])
        onnx_cpu.append(cpu_timed(product.embed, rgb, landmarks)[2])
    return [
        ("dlib ResNet as shipped, CPU ms per face (baseline)", median_ms(dlib_cpu)),
        (f"FaceEmbedder() [{product.backend}], CPU ms per face", median_ms(onnx_cpu)),
    ]


def generated_clip(folder: Path) -> Path:
    """A 10 s 1080p clip animating a portrait, written with the product's encoder."""
    from likeness.media.synthetic import astronaut, write_clip

    return write_clip(
        folder / "generated_1080p.mp4", astronaut(), seconds=10.0, fps=25, size=(1920, 1080), with_audio=False, seed=3
    )


def recognition_quality(media: Path) -> dict[str, float]:
    from likeness.faces import IDENTITY_THRESHOLD, FaceDetector, FaceEmbedder, match_identity
    from likeness.media import read_image
    from likeness.verify.gallery import ArtistGallery, SubjectReferences

    detector = FaceDetector(max_faces=64, mode="image", max_side=1280, tile_side=960)
    embedder = FaceEmbedder()

    def embeddings(rgb: np.ndarray) -> np.ndarray:
        faces = detector.detect(rgb)
        return embedder.embed_many(rgb, [f.landmarks for f in faces]) if faces else np.zeros((0, 128), np.float32)

    def strip_frames(path: Path) -> list[np.ndarray]:
        strip = read_image(path)
        width = strip.shape[1] // 4
        return [np.ascontiguousarray(strip[:, i * width : (i + 1) * width]) for i in range(4)]

    sp = media / "synthetic_people"
    identities: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for ident in ("id1", "id2"):
        identities[ident] = (
            [read_image(sp / "digiface1m" / f"{ident}_main.jpg")],
            [read_image(p) for p in sorted((sp / "digiface1m" / f"{ident}_variety").glob("*.jpg"))],
        )
    for strip in ("model_edit_angle", "wanghong_edit_angle"):
        frames = strip_frames(sp / "seeprettyface_1024" / "edit_strips" / f"{strip}.jpg")
        identities[strip] = ([frames[0]], frames[1:])

    references = []
    for name, (refs, _) in identities.items():
        vectors = [e[0] for e in (embeddings(r) for r in refs) if len(e)]
        references.append(SubjectReferences(name, name, name, np.stack(vectors)))
    gallery = ArtistGallery.sync(Path(tempfile.mkdtemp()), references, threshold=IDENTITY_THRESHOLD)

    genuine_total = genuine_hit = genuine_missing_face = 0
    for name, (_, probes) in identities.items():
        for probe in probes:
            found = embeddings(probe)
            genuine_total += 1
            if len(found) == 0:
                genuine_missing_face += 1
                continue
            best = min(gallery.query_many(found), key=lambda q: q.nearest.distance if q.nearest else 9)
            genuine_hit += int(best.match is not None and best.match.slug == name)

    impostor_paths = (
        sorted((media / "portraits" / "single").glob("*"))
        + sorted((media / "portraits" / "group").glob("*"))
        + sorted((media / "portraits" / "pd_paintings").glob("*"))
        + sorted(sp.glob("stylegan*/*.png"))
        + sorted(sp.glob("diffusion_generated_sadtalker/*"))
        + sorted(sp.glob("facesynthetics/*"))
        + sorted(sp.glob("seeprettyface_1024/*_example*.png"))
    )
    impostor_faces = impostor_false = 0
    impostor_vectors = []
    for path in impostor_paths:
        found = embeddings(read_image(path))
        impostor_vectors.extend(found)
        for query in gallery.query_many(found) if len(found) else []:
            impostor_faces += 1
            impostor_false += int(query.match is not None)

    # Baseline side by side: per-subject numpy scan with the product's own matcher.
    stacked = np.stack(impostor_vectors) if impostor_vectors else np.zeros((0, 128), np.float32)
    started = time.perf_counter()
    for vector in stacked:
        for subject in references:
            match_identity(vector, subject.embeddings, threshold=IDENTITY_THRESHOLD)
    t_numpy = (time.perf_counter() - started) / max(1, len(stacked))
    started = time.perf_counter()
    gallery.query_many(stacked) if len(stacked) else None
    t_faiss = (time.perf_counter() - started) / max(1, len(stacked))
    detector.close()
    return {
        "identities": len(identities),
        "genuine probes": genuine_total,
        "genuine without a detected face": genuine_missing_face,
        "true match rate": genuine_hit / max(1, genuine_total),
        "impostor faces": impostor_faces,
        "false match rate": impostor_false / max(1, impostor_faces),
        "threshold": IDENTITY_THRESHOLD,
        "query ms/face, numpy match_identity (baseline)": 1000 * t_numpy,
        "query ms/face, FAISS gallery": 1000 * t_faiss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="video runs per path (median)")
    parser.add_argument(
        "--skip", choices=("images", "detector", "video", "quality", "embedder"), action="append", default=[]
    )
    parser.add_argument(
        "--compare-reader",
        type=Path,
        help="another watermark.py (say main's, from git show) whose reader is timed beside this one on the stills",
    )
    parser.add_argument("--image-repeats", type=int, default=1, help="passes over the stills (medians over all)")
    parser.add_argument("--no-scan", action="store_true", help="skip the verify_many rows (worker processes)")
    args = parser.parse_args()
    media = args.media.resolve()
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        workspace = make_world(Path(tmp) / "home", media)
        if "images" not in args.skip:
            images = Path(tmp) / "images"
            images.mkdir()
            paths = build_images(workspace, media, images, args.images)
            print(
                f"\n1080p JPEG verification ({len(paths)} images, half labelled renders), single process unless noted"
            )
            print(f"{'stage':62} {'wall ms':>9} {'x decode':>9} {'CPU ms':>8} {'images/s':>9}")
            compared = None
            if args.compare_reader:
                sys.path.insert(0, str(Path(__file__).resolve().parent))
                from watermark import load_watermark_module

                compared = load_watermark_module(args.compare_reader)
            rows = image_speed(
                workspace,
                paths,
                args.workers,
                compared=compared,
                repeats=args.image_repeats,
                scan=not args.no_scan,
            )
            for name, ms, ratio, cpu_ms in rows:
                print(
                    f"{name:62} {ms:9.1f} {'' if ratio is None else f'{ratio:9.2f}':>9} "
                    f"{'' if cpu_ms is None else f'{cpu_ms:8.1f}':>8} {1000 / ms:9.2f}"
                )
        if "detector" not in args.skip:
            print(
                f"\nManipulation detector cost: {args.images} 1080p JPEGs of two enrolled artists each, single process"
            )
            print(f"{'stage':62} {'wall ms':>9} {'CPU ms':>8} {'images/s':>9}")
            rows = detector_speed(workspace, media, Path(tmp), args.images)
            for name, ms, cpu_ms in rows:
                rate = f"{1000 / ms:9.2f}" if cpu_ms else ""
                print(f"{name:62} {ms:9.1f} {'' if not cpu_ms else f'{cpu_ms:8.1f}':>8} {rate:>9}")
            drop = 1 - rows[0][1] / rows[1][1]
            print(f"{'throughput drop with the detector (wall)':62} {100 * drop:8.1f} %")
        if "video" not in args.skip:
            clips = [media / "video" / "dfdc_consenting_actor_lynaeydofd.mp4", generated_clip(Path(tmp))]
            for clip in clips:
                print(f"\nVideo verification: {clip.name}, single process, median of {args.repeats}")
                print(f"{'path':62} {'wall ms':>9} {'x real time':>12} {'CPU ms':>8}")
                rows = video_speed(workspace, clip, repeats=args.repeats)
                for name, ms, speed, cpu_ms in rows:
                    print(f"{name:62} {ms:9.1f} {speed:12.2f} {cpu_ms:8.1f}")
                print(f"{'speed-up of verify_path over the previous path':62} {rows[2][1] / rows[3][1]:9.2f}x")
        if "embedder" not in args.skip:
            print("\nIdentity descriptor cost: dlib as shipped vs the product embedder (same weights via onnxruntime)")
            rows = embedder_cost(Path(tmp))
            for name, ms in rows:
                print(f"{name:62} {ms:9.1f}")
            print(f"{'ratio':62} {rows[0][1] / rows[1][1]:9.2f}x")
        if "quality" not in args.skip:
            print("\nRecognition quality on shared media (artist gallery, calibrated threshold)")
            for name, value in recognition_quality(media).items():
                print(f"{name:58} {value:10.4f}" if isinstance(value, float) else f"{name:58} {value:10}")
        print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
