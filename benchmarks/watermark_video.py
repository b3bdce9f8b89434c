"""Benchmark: the labelled writer's video output after what platforms do to re-uploads, every frame.

Default mode (``platform``): for each render size (360p, 480p, 720p, 1080p) and source clip
(animated package portraits; clips under ``--media`` when given), a labelled clip of
``--seconds`` at 25 fps is made as the labelled writer makes it (visible label, mark added to
the Y plane with ``WatermarkEmbedder.luma_offset``, ``VideoEncoder`` with
``video_encoder_options``), decoded, and put through every transform of :func:`transforms`:
re-encodes with H.264, H.265 and VP9 at CRF 23-35, downscales kept small, letterbox to 9:16
and 1:1, 20 % crops per side, mirroring, a frame-rate change, a screen-recording chain and a
combination, each followed by the platform's re-encode. Every frame is read on its own
(``extract_watermark``) and the whole clip once (``extract_watermark_frames``). Reported per
size and transform: frames read exactly, wrong frame reads, clips read exactly, wrong clip
reads, and the read time per frame. dwtDctSvd and rivaGan run on the same clips and
transforms (embedded per frame in RGB, a clip read by majority vote over its frames); they
take 0.2-7 s per frame, so they run on ``--baseline-frames`` frames of the first clip.

``--mode encoding`` keeps the earlier table of the writer's own encoding of small frames
(CRF 20 with x264's deadzones against CRF 18 without), many payloads per clip.

Usage (from the repository root)::

    .venv/bin/python benchmarks/watermark_video.py                             # full platform run
    .venv/bin/python benchmarks/watermark_video.py --resolutions 360p --seconds 1 --no-baselines
    .venv/bin/python benchmarks/watermark_video.py --media ../shared/media/video
    .venv/bin/python benchmarks/watermark_video.py --mode encoding --payloads 200
    # the fixed-grid and the anchored mark on the same clips (and the clips unmarked), with a
    # camera pan over the first --media clip; single frames by picture type:
    .venv/bin/python benchmarks/watermark_video.py --resolutions 720p --clips 3 --pan --no-baselines \
        --media ../shared/media/video --compare-embedder --unmarked --frame-types --only "H.265 CRF 28"
    # the pan and a handheld camera (drift, sway, tremor, roll) only, every transform, both marks:
    .venv/bin/python benchmarks/watermark_video.py --resolutions 720p --clips 4 --pan --shake \
        --clip-names pan:,shake: --media ../shared/media/video --no-baselines --compare-embedder
    # two clip readers on the same clips, marked as the video writer marks them (anchored) and
    # unmarked: the previous watermark.py (from git) read after this one, per clip:
    .venv/bin/python benchmarks/watermark_video.py --resolutions 360p --clips 4 --pan --shake \
        --clip-names pan:,shake: --media ../shared/media/video --no-baselines --anchored --unmarked \
        --clips-only --compare-reader /tmp/old_watermark.py
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from likeness.media import iter_video_frames
from likeness.media.synthetic import animate_portrait, astronaut, grace_hopper
from likeness.media.video import VideoEncoder
from likeness.provenance import watermark as tiled_ss
from likeness.provenance.visible_label import VisibleLabel
from likeness.provenance.watermark import (
    SMALL_FRAME_CRF,
    SMALL_FRAME_DEADZONES,
    WATERMARK_ALGORITHM,
    WatermarkEmbedder,
    extract_watermark,
    extract_watermark_frames,
    video_encoder_options,
)
from likeness.provenance.watermark_code import encode_payload
from likeness.provenance.writer import watermark_payload_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from watermark import (  # noqa: E402  (the stills benchmark's picture operations)
    crop_frame,
    fit_frame,
    imwatermark_method,
    load_watermark_module,
    mirror_frame,
    pad_frame,
    scale_frame,
    screen_recording,
    short_side,
)


@dataclass(frozen=True)
class Clip:
    name: str
    portrait: str
    size: tuple[int, int]
    fps: int
    frames: int
    seed: int


CLIPS = (
    Clip("320x240 1 s 12 fps", "astronaut", (320, 240), 12, 12, 0),
    Clip("320x240 1 s 25 fps", "astronaut", (320, 240), 25, 25, 0),
    Clip("320x240 1.2 s 25 fps (grace)", "grace_hopper", (320, 240), 25, 30, 3),
    Clip("480x270 1 s 25 fps", "astronaut", (480, 270), 25, 25, 0),
    Clip("640x360 1 s 25 fps", "astronaut", (640, 360), 25, 25, 0),
)
# name -> (crf, deadzones); None deadzones = x264's own.
VARIANTS = {"default": (20, None), "small-frame": (SMALL_FRAME_CRF, SMALL_FRAME_DEADZONES)}


def labelled_frames(clip: Clip) -> list[np.ndarray]:
    portrait = astronaut() if clip.portrait == "astronaut" else grace_hopper()
    label = VisibleLabel(*clip.size, "bottom-right")
    return [label.apply(f) for f in animate_portrait(portrait, n_frames=clip.frames, size=clip.size, seed=clip.seed)]


def encode_marked(
    frames: list[np.ndarray],
    payload: bytes,
    out: Path,
    fps: int,
    crf: int,
    deadzones: tuple[int, int] | None,
    path: str,
) -> None:
    height, width = frames[0].shape[:2]
    embedder = WatermarkEmbedder(payload, width, height)
    out.unlink(missing_ok=True)
    with VideoEncoder(out, width=width, height=height, fps=fps, crf=crf, deadzones=deadzones) as encoder:
        for frame in frames:
            if path == "Y plane":
                encoder.write(frame, luma_offset=embedder.luma_offset(frame))
            else:
                encoder.write(embedder.embed(frame))


def coded_agreement(frames: list[np.ndarray], payload: bytes) -> float:
    """Share of the 204 coded bits whose soft value has the right sign at the true tile phase."""
    folded = sum(tiled_ss._fold(f)[0] for f in frames)
    soft = tiled_ss._soft_coded_bits(tiled_ss._remove_block_component(folded), (0, 0))
    return float(np.mean((soft > 0) == encode_payload(payload).astype(bool)))


def measure(
    clip: Clip, crf: int, deadzones: tuple[int, int] | None, path: str, payloads: int, offset: int, work: Path
) -> dict[str, float]:
    frames = labelled_frames(clip)
    out = work / "clip.mp4"
    read = wrong = 0
    agreements, sizes = [], []
    for index in range(payloads):
        payload = watermark_payload_for(uuid.UUID(int=offset + index).hex)
        encode_marked(frames, payload, out, clip.fps, crf, deadzones, path)
        sizes.append(out.stat().st_size)
        decoded = [f.rgb for f in iter_video_frames(out)]
        found = extract_watermark_frames(decoded).payload
        read += found == payload
        wrong += found is not None and found != payload
        agreements.append(coded_agreement(decoded, payload))
    return {
        "read": read / payloads,
        "wrong": wrong,
        "agreement": statistics.median(agreements),
        "worst": min(agreements),
        "bytes": statistics.median(sizes),
    }


def encoding_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="--mode encoding: the writer's encoding of small frames")
    parser.add_argument("--mode", choices=("platform", "encoding"))
    parser.add_argument("--payloads", type=int, default=200, help="payloads (encodes) per cell")
    parser.add_argument(
        "--paths",
        choices=("writer", "both"),
        default="writer",
        help="'both' adds the RGB embed path beside the writer's Y-plane path",
    )
    parser.add_argument("--only", default="", help="comma-separated clip names to run")
    parser.add_argument("--seed", type=int, default=0, help="offset of the payload sequence")
    args = parser.parse_args(argv)
    if args.payloads < 1:
        parser.error("--payloads must be >= 1")
    clips = [c for c in CLIPS if not args.only or c.name in args.only.split(",")]
    if not clips:
        parser.error(f"--only matches no clip; names: {', '.join(c.name for c in CLIPS)}")
    paths = ["Y plane"] + (["RGB embed"] if args.paths == "both" else [])
    print(
        f"{args.payloads} payloads per cell; tiles per frame: "
        + ", ".join(f"{c.name.split()[0]} {c.size[0] * c.size[1] / tiled_ss.TILE_SIZE**2:.1f}" for c in clips)
    )
    print("| clip | mark path | encoding | read | wrong | coded-bit agreement median / worst | bytes vs default |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="likeness-wm-video-") as tmp:
        for clip in clips:
            for path in paths:
                baseline_bytes = None
                for name, (crf, deadzones) in VARIANTS.items():
                    row = measure(clip, crf, deadzones, path, args.payloads, args.seed * 1_000_003, Path(tmp))
                    baseline_bytes = baseline_bytes or row["bytes"]
                    print(
                        f"| {clip.name} | {path} | {name}: CRF {crf}, {deadzones or (21, 11)} | {row['read']:.1%} "
                        f"| {row['wrong']} | {row['agreement']:.3f} / {row['worst']:.3f} "
                        f"| {row['bytes'] / baseline_bytes:.2f} ({row['bytes'] / 1e3:.0f} kB) |",
                        flush=True,
                    )
    return 0


# ---------------------------------------------------------------- platform re-uploads (default mode)

RESOLUTIONS = {"360p": (640, 360), "480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}


def platform_encode(frames: list[np.ndarray], codec: str, crf: int, fps: float = 25.0) -> list[np.ndarray]:
    """Encode ``frames`` the way a platform re-encodes an upload and decode them again.

    ``codec``: "h264" (libx264, preset medium), "h265" (libx265, preset fast) or "vp9"
    (libvpx-vp9, constant quality, cpu-used 4); x264/x265 keep their default deadzones and
    psychovisual tuning, which is what removes low-amplitude detail from P and B frames.
    """
    height, width = frames[0].shape[:2]
    if width % 2 or height % 2:
        frames = [np.ascontiguousarray(f[: height - height % 2, : width - width % 2]) for f in frames]
        height, width = frames[0].shape[:2]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        if codec == "h264":
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.options = {"crf": str(crf), "preset": "medium"}
        elif codec == "h265":
            stream = container.add_stream("libx265", rate=Fraction(fps).limit_denominator(1001))
            stream.options = {"crf": str(crf), "preset": "fast", "x265-params": "log-level=error"}
        elif codec == "vp9":
            stream = container.add_stream("libvpx-vp9", rate=Fraction(fps).limit_denominator(1001))
            stream.bit_rate = 0
            stream.options = {"crf": str(crf), "b": "0", "cpu-used": "4", "row-mt": "1", "deadline": "good"}
        else:
            raise ValueError(codec)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    buffer.seek(0)
    return decode_with_types(buffer)


class Decoded(list):
    """Decoded RGB frames (uint8 (H, W, 3)) with ``intra``: whether each was an intra frame, and
    ``types``: each frame's picture type as the decoder reports it ("I", "P", "B", ...)."""

    intra: list[bool]
    types: list[str]


def decode_with_types(source: io.BytesIO | Path) -> Decoded:
    frames = Decoded()
    frames.intra = []
    frames.types = []
    with av.open(source if isinstance(source, io.BytesIO) else str(source)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            # An enum member in some PyAV versions, FFmpeg's AVPictureType number in others.
            kind = getattr(frame.pict_type, "name", None) or {1: "I", 2: "P", 3: "B"}.get(int(frame.pict_type), "?")
            frames.intra.append(bool(frame.key_frame) or kind.endswith("I"))
            frames.types.append("I" if frames.intra[-1] else kind)
    return frames


@dataclass(frozen=True)
class Transform:
    """What a platform (or a re-poster) does to an upload: a per-frame picture operation, an
    optional frame-rate change, then a re-encode."""

    name: str
    frame_op: Callable[[np.ndarray], np.ndarray]
    codec: str | None = "h264"
    crf: int = 23
    keep_every: float = 1.0  # > 1 drops frames (25 fps -> 25 / keep_every)


def transforms(seed: int) -> list[Transform]:
    rng = np.random.default_rng(seed)
    fractions = tuple(float(v) for v in rng.uniform(0.0, 0.1, 4))
    same = lambda rgb: rgb  # noqa: E731
    return [
        Transform("writer output", same, codec=None),
        Transform("H.264 CRF 23", same, "h264", 23),
        Transform("H.264 CRF 35", same, "h264", 35),
        Transform("H.265 CRF 28", same, "h265", 28),
        Transform("H.265 CRF 35", same, "h265", 35),
        Transform("VP9 CRF 35", same, "vp9", 35),
        Transform("75 % + H.264 23", lambda x: scale_frame(x, 0.75)),
        Transform("50 % + H.264 23", lambda x: scale_frame(x, 0.5)),
        Transform("360 p + H.264 23", lambda x: short_side(x, 360)),
        Transform("9:16 pad 720x1280 + H.264 23", lambda x: pad_frame(x, 720, 1280)),
        Transform("1:1 pad 720x720 + H.264 23", lambda x: pad_frame(x, 720, 720)),
        Transform("crop 20 % per side + H.264 23", lambda x: crop_frame(x, (0.2, 0.2, 0.2, 0.2))),
        Transform("mirror + H.264 23", mirror_frame),
        Transform("25 -> 15 fps + H.264 28", same, "h264", 28, keep_every=25 / 15),
        Transform("screen recording", screen_recording, "h264", 28),
        Transform(
            "combined: mirror, crop, 9:16, H.264 30",
            lambda x: pad_frame(crop_frame(mirror_frame(x), fractions), 720, 1280),
            "h264",
            30,
        ),
    ]


def apply_transform(frames: Decoded, transform: Transform) -> Decoded:
    if transform.keep_every > 1.0:
        count = int(len(frames) / transform.keep_every)
        frames = [frames[int(i * transform.keep_every)] for i in range(count)]
    if transform.codec is None:
        return frames
    changed = [np.ascontiguousarray(transform.frame_op(rgb)) for rgb in frames]
    return platform_encode(changed, transform.codec, transform.crf, 25.0 / transform.keep_every)


# ---------------------------------------------------------------- platform mode: measurement


def camera_pan(source: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """A camera pan over ``source`` frames: a window of about 70 % of the source that sweeps
    sideways (up to 0.4 % of the source width a frame, 6 px a frame at 720p), drifts down,
    zooms in slowly (0.1 % a frame) and rolls by under a degree, resampled to ``size``."""

    def path(t: int) -> tuple[float, float, float, float]:
        window = 0.72 * max(0.6, 1.0 - 0.001 * t)  # window height / source height
        centre_x = 0.5 - 0.16 * np.cos(2.0 * np.pi * t / 250.0)
        centre_y = 0.5 + 0.04 * np.sin(2.0 * np.pi * t / 300.0)
        return centre_x, centre_y, window, 0.6 * np.sin(2.0 * np.pi * t / 150.0)

    return camera_move(source, size, path)


def handheld_shake(source: list[np.ndarray], size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """A handheld camera over ``source`` frames: a fixed window of 72 % of the source that
    drifts, sways and trembles (sums of sines at 0.2-7 Hz with random phases; at 720p about
    ±14 px of drift, ±6 px of sway and ±2.5 px of tremor: a median of 3 px a frame, up to 7),
    rolls by ±0.5° and breathes in scale by ±0.4 %, resampled to ``size``."""
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0.0, 2.0 * np.pi, 12)
    # (amplitude as a fraction of the window, frequency in Hz) per axis: drift, sway, tremor.
    waves = ((0.011, 0.2), (0.005, 1.3), (0.002, 7.0))

    def wave(t: int, axis: int) -> float:
        seconds = t / 25.0
        return sum(a * np.sin(2.0 * np.pi * f * seconds + phases[3 * axis + i]) for i, (a, f) in enumerate(waves))

    def path(t: int) -> tuple[float, float, float, float]:
        seconds = t / 25.0
        window = 0.72 * (1.0 + 0.004 * np.sin(2.0 * np.pi * 0.5 * seconds + phases[6]))
        roll = 0.35 * np.sin(2.0 * np.pi * 0.4 * seconds + phases[7]) + 0.15 * np.sin(
            2.0 * np.pi * 3.0 * seconds + phases[8]
        )
        return 0.5 + 0.72 * wave(t, 0), 0.5 + 0.72 * wave(t, 1), window, roll

    return camera_move(source, size, path)


def camera_move(
    source: list[np.ndarray], size: tuple[int, int], path: Callable[[int], tuple[float, float, float, float]]
) -> list[np.ndarray]:
    """``source`` filmed by a camera that follows ``path``: frame t -> (window centre x, y as
    fractions of the source, window height as a fraction of the source height, roll in
    degrees), resampled to ``size``."""
    width, height = size
    # The source brought to the window's scale first: the warp below then only enlarges.
    factor = height / (0.72 * source[0].shape[0])
    src_w, src_h = round(source[0].shape[1] * factor), round(source[0].shape[0] * factor)
    frames = []
    for t, native in enumerate(source):
        rgb = cv2.resize(native, (src_w, src_h), interpolation=cv2.INTER_AREA)
        fx, fy, window, roll = path(t)
        centre_x, centre_y = src_w * fx, src_h * fy
        scale = height / (window * src_h)
        affine = cv2.getRotationMatrix2D((float(centre_x), float(centre_y)), float(roll), float(scale))
        affine[:, 2] += np.array([width / 2.0 - centre_x, height / 2.0 - centre_y])
        frames.append(cv2.warpAffine(rgb, affine, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return frames


def source_clips(
    media: Path | None, count: int, frames: int, size: tuple[int, int], *, pan: bool = False, shake: bool = False
) -> dict[str, list[np.ndarray]]:
    """Natural clips at ``size``: an animated package portrait (the whole frame moves: rotation,
    zoom and translation), with ``pan`` a camera pan over the first clip under ``media``
    (:func:`camera_pan`), with ``shake`` a handheld camera over it (:func:`handheld_shake`), the clips under ``media`` (first ``frames`` frames, fitted to
    ``size``), then a second animated portrait."""
    clips = {"astronaut": list(animate_portrait(astronaut(), n_frames=frames, size=size, seed=1))}
    if media is not None and media.is_dir():
        for path in sorted(media.glob("*.mp4")):
            decoded, native = [], []
            for frame in iter_video_frames(path):
                decoded.append(fit_frame(frame.rgb, *size))
                if (pan or shake) and len(clips) == 1:
                    native.append(frame.rgb)
                if len(decoded) >= frames:
                    break
            if len(decoded) == frames:
                if native and pan:
                    clips[f"pan:{path.stem}"] = camera_pan(native, size)
                if native and shake:
                    clips[f"shake:{path.stem}"] = handheld_shake(native, size)
                clips[f"media:{path.stem}"] = decoded
    if len(clips) < count:
        clips["grace_hopper"] = list(animate_portrait(grace_hopper(), n_frames=frames, size=size, seed=2))
    return dict(list(clips.items())[:count])


def writer_output(
    frames: list[np.ndarray], payload: bytes | None, out: Path, *, anchored: bool = False
) -> list[np.ndarray]:
    """The labelled writer's video path: label, mark on the Y plane, its encoder settings;
    ``anchored``: the mark drawn moved with the content (``WatermarkEmbedder(anchored=True)``);
    ``payload`` None: the same clip unmarked."""
    height, width = frames[0].shape[:2]
    label = VisibleLabel(width, height, "bottom-right")
    embedder = None if payload is None else WatermarkEmbedder(payload, width, height, anchored=anchored)
    out.unlink(missing_ok=True)
    with VideoEncoder(out, width=width, height=height, fps=25, **video_encoder_options(width, height)) as encoder:
        for rgb in frames:
            labelled = label.apply(rgb)
            encoder.write(labelled, luma_offset=None if embedder is None else embedder.luma_offset(labelled))
    return decode_with_types(out)


def baseline_output(frames: list[np.ndarray], embed: Callable, bits: np.ndarray, out: Path) -> list[np.ndarray]:
    """A baseline's marked clip: label, its RGB embedding per frame, the writer's encoder."""
    height, width = frames[0].shape[:2]
    label = VisibleLabel(width, height, "bottom-right")
    out.unlink(missing_ok=True)
    with VideoEncoder(out, width=width, height=height, fps=25, **video_encoder_options(width, height)) as encoder:
        for rgb in frames:
            encoder.write(embed(label.apply(rgb), bits))
    return decode_with_types(out)


@dataclass
class Row:
    frames: int = 0
    frames_read: int = 0
    frames_wrong: int = 0
    intra: int = 0
    intra_read: int = 0
    clips: int = 0
    clips_read: int = 0
    clips_wrong: int = 0
    read_ms: list[float] = field(default_factory=list)
    clip_ms: list[float] = field(default_factory=list)

    def text(self) -> str:
        frame_rate = f"{self.frames_read / self.frames:.1%}" if self.frames else "-"
        intra_rate = f"{self.intra_read}/{self.intra}" if self.intra else "-"
        clip_rate = f"{self.clips_read}/{self.clips}" if self.clips else "-"
        ms = f"{statistics.median(self.read_ms):.0f}" if self.read_ms else "-"
        return f"{frame_rate} | {intra_rate} | {self.frames_wrong} | {clip_rate} | {self.clips_wrong} | {ms}"


def read_clip(
    frames: list[np.ndarray], payload: bytes | None, row: Row, reader: Callable = extract_watermark_frames
) -> None:
    """One read of the whole clip with ``reader`` (an ``extract_watermark_frames``)."""
    start = time.perf_counter()
    found = reader(frames).payload
    row.clip_ms.append((time.perf_counter() - start) * 1e3)
    row.clips += 1
    row.clips_read += found == payload
    row.clips_wrong += found is not None and found != payload


@dataclass
class FrameTypeRow:
    """Single-frame reads of one picture type (I, P, B) under one size and transform: frames
    read exactly and each read's pilot peak (z; for a still the screen refused, the screen's),
    by this reader and, when one is compared, by the other."""

    read: list[bool] = field(default_factory=list)
    z: list[float] = field(default_factory=list)
    compared_read: list[bool] = field(default_factory=list)
    compared_z: list[float] = field(default_factory=list)

    def text(self) -> str:
        def cell(read: list[bool], z: list[float]) -> str:
            if not read:
                return "- | -"
            return f"{sum(read)}/{len(read)} | {statistics.median(z):.1f} [{min(z):.1f}, {max(z):.1f}]"

        return f"{cell(self.read, self.z)} | {cell(self.compared_read, self.compared_z)}"


def read_ours(
    frames: Decoded,
    payload: bytes | None,
    row: Row,
    *,
    every_frame: bool = True,
    by_type: dict[str, FrameTypeRow] | None = None,
    compared_still: Callable | None = None,
) -> None:
    """Every frame on its own (then the clip). ``by_type``: also record each frame's read and
    pilot peak by picture type, with ``compared_still`` (another ``extract_watermark``) too."""
    if not every_frame:
        read_clip(frames, payload, row)
        return
    for index, (rgb, intra) in enumerate(zip(frames, frames.intra)):
        start = time.perf_counter()
        reading = extract_watermark(rgb)
        found = reading.payload
        row.read_ms.append((time.perf_counter() - start) * 1e3)
        if by_type is not None:
            kind = by_type.setdefault(getattr(frames, "types", ["?"] * len(frames))[index], FrameTypeRow())
            kind.read.append(found == payload)
            kind.z.append(reading.sync_score)
            if compared_still is not None:
                other = compared_still(rgb)
                kind.compared_read.append(other.payload == payload)
                kind.compared_z.append(other.sync_score)
        row.frames += 1
        row.frames_read += found == payload
        row.frames_wrong += found is not None and found != payload
        if intra:
            row.intra += 1
            row.intra_read += found == payload
    read_clip(frames, payload, row)


def merge(total: Row, part: Row) -> None:
    for name in ("frames", "frames_read", "frames_wrong", "intra", "intra_read", "clips", "clips_read", "clips_wrong"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.read_ms.extend(part.read_ms)
    total.clip_ms.extend(part.clip_ms)


def read_baseline(frames: Decoded, decode: Callable, bits: np.ndarray, row: Row) -> None:
    votes = []
    for rgb, intra in zip(frames, frames.intra):
        start = time.perf_counter()
        found = decode(rgb)
        row.read_ms.append((time.perf_counter() - start) * 1e3)
        votes.append(found)
        row.frames += 1
        exact = found is not None and bool(np.array_equal(found, bits))
        row.frames_read += exact
        row.frames_wrong += found is not None and not exact
        if intra:
            row.intra += 1
            row.intra_read += exact
    votes = [v for v in votes if v is not None]
    row.clips += 1
    if votes:
        exact = bool(np.array_equal((np.mean(votes, axis=0) > 0.5).astype(np.uint8), bits))
        row.clips_read += exact
        row.clips_wrong += not exact


def platform_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("platform", "encoding"), default="platform")
    parser.add_argument("--resolutions", default=",".join(RESOLUTIONS), help="of: " + ", ".join(RESOLUTIONS))
    parser.add_argument("--clips", type=int, default=2, help="source clips per resolution")
    parser.add_argument("--seconds", type=float, default=3.0, help="clip length at 25 fps")
    parser.add_argument("--media", type=Path, default=None, help="folder of extra .mp4 clips (benchmark only)")
    parser.add_argument("--only", default="", help="comma-separated substrings of transform names to run")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--no-riva", action="store_true", help="skip rivaGan (seconds per frame)")
    parser.add_argument("--baseline-frames", type=int, default=10, help="frames of the first clip for dwtDctSvd")
    parser.add_argument("--riva-frames", type=int, default=3, help="frames of the first clip for rivaGan")
    parser.add_argument("--baseline-resolutions", default="360p,720p", help="sizes dwtDctSvd runs at")
    parser.add_argument("--riva-resolutions", default="720p", help="sizes rivaGan runs at")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--clips-only", action="store_true", help="read each clip as a whole only (no single-frame reads)"
    )
    parser.add_argument(
        "--compare-reader",
        type=Path,
        help="another watermark.py whose extract_watermark_frames reads every clip too (same clips, same run)",
    )
    parser.add_argument(
        "--frame-types",
        action="store_true",
        help="single-frame reads and pilot peaks per picture type (I, P, B); with --compare-reader, "
        "that reader's extract_watermark reads every frame too",
    )
    parser.add_argument(
        "--pan",
        action="store_true",
        help="add a camera pan (sideways sweep, slow zoom, slight roll) over the first --media clip",
    )
    parser.add_argument(
        "--shake",
        action="store_true",
        help="add a handheld camera (drift, sway, tremor, roll, breathing zoom) over the first --media clip",
    )
    parser.add_argument(
        "--clip-names",
        default="",
        help="comma-separated substrings of clip names to keep (astronaut, pan:, shake:, media:, grace_hopper)",
    )
    parser.add_argument(
        "--compare-embedder",
        action="store_true",
        help="write every clip twice, with the fixed-grid mark and with the anchored one "
        "(WatermarkEmbedder(anchored=True)), read both, and time both embedders per frame, interleaved",
    )
    parser.add_argument(
        "--anchored",
        action="store_true",
        help="write the clips with the anchored mark, as the video writer does (default: the fixed grid); "
        "--compare-embedder writes both",
    )
    parser.add_argument(
        "--unmarked", action="store_true", help="also write every clip unmarked: any payload read is a false mark"
    )
    parser.add_argument(
        "--clip-stride",
        type=int,
        default=0,
        help="also read each clip from every Nth frame only (N > 1), as verify samples a clip sparsely",
    )
    args = parser.parse_args(argv)
    compared_module = load_watermark_module(args.compare_reader) if args.compare_reader else None
    compared = None if compared_module is None else compared_module.extract_watermark_frames
    compared_still = None if compared_module is None else compared_module.extract_watermark
    by_type: dict[tuple[str, str, str], dict[str, FrameTypeRow]] = {}
    resolutions = [r.strip() for r in args.resolutions.split(",") if r.strip()]
    if any(r not in RESOLUTIONS for r in resolutions):
        parser.error(f"resolutions must be among {', '.join(RESOLUTIONS)}")
    n_frames = max(1, int(round(args.seconds * 25)))
    chosen = [t for t in transforms(args.seed) if not args.only or any(o in t.name for o in args.only.split(","))]
    rng = np.random.default_rng(args.seed)
    print(
        f"cv2 threads: {cv2.getNumThreads()}, cpu count: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}; "
        f"{args.clips} clip(s) of {n_frames} frames at 25 fps per size; every frame read"
    )
    baselines: list[tuple[str, int, Callable, Callable, int, str]] = []
    if not args.no_baselines:
        embed, decode = imwatermark_method("dwtDctSvd", 64)
        baselines.append(("dwtDctSvd", 64, embed, decode, args.baseline_frames, args.baseline_resolutions))
        if not args.no_riva:
            embed, decode = imwatermark_method("rivaGan", 32)
            baselines.append(("rivaGan", 32, embed, decode, args.riva_frames, args.riva_resolutions))
    rows: dict[tuple[str, str, str], Row] = {}
    # How each clip is written: the writer's mark; to compare, the fixed grid then the anchored
    # mark; and unmarked, for false marks.
    marks = ["fixed grid", "anchored"] if args.compare_embedder else ["writer"]
    marks += ["unmarked"] if args.unmarked else []
    embed_ms: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="likeness-wm-platform-") as tmp:
        out = Path(tmp) / "clip.mp4"
        for resolution in resolutions:
            size = RESOLUTIONS[resolution]
            clips = source_clips(args.media, args.clips, n_frames, size, pan=args.pan, shake=args.shake)
            if args.clip_names:
                wanted = args.clip_names.split(",")
                clips = {name: c for name, c in clips.items() if any(w in name for w in wanted)}
            for clip_index, (source_name, frames) in enumerate(clips.items()):
                marked = watermark_payload_for(uuid.UUID(int=int(rng.integers(1 << 62))).hex)
                if args.compare_embedder:
                    time_embedders(frames, marked, embed_ms.setdefault(resolution, {}))
                for mark in marks:
                    # An unmarked clip must read as no mark: None is its payload (a payload is wrong).
                    payload = None if mark == "unmarked" else marked
                    method = WATERMARK_ALGORITHM if len(marks) == 1 else f"{WATERMARK_ALGORITHM}, {mark}"
                    clip_name = source_name if len(marks) == 1 else f"{source_name}, {mark}"
                    anchored = mark == "anchored" or (mark == "writer" and args.anchored)
                    written = writer_output(frames, payload, out, anchored=anchored)
                    marked_baselines = []
                    if clip_index == 0 and mark == marks[0]:
                        for name, bits_count, embed, decode, count, at in baselines:
                            if resolution not in at.split(","):
                                continue
                            bits = rng.integers(0, 2, bits_count).astype(np.uint8)
                            marked_baselines.append(
                                (name, decode, bits, baseline_output(frames[:count], embed, bits, out))
                            )
                    for transform in chosen:
                        row = rows.setdefault((resolution, transform.name, method), Row())
                        clip_row = rows.setdefault((resolution, transform.name, f"{method} [{source_name}]"), Row())
                        transformed = apply_transform(written, transform)
                        read_ours(
                            transformed,
                            payload,
                            clip_row,
                            every_frame=not args.clips_only,
                            by_type=by_type.setdefault((resolution, transform.name, clip_name), {})
                            if args.frame_types
                            else None,
                            compared_still=compared_still,
                        )
                        merge(row, clip_row)
                        strided = transformed[:: args.clip_stride] if args.clip_stride > 1 else None
                        if strided is not None:
                            sparse = f"{method}, every {args.clip_stride}th frame"
                            read_clip(strided, payload, rows.setdefault((resolution, transform.name, sparse), Row()))
                        if compared is not None:
                            other = f"compared reader ({args.compare_reader}), {mark}"
                            compared_row = rows.setdefault(
                                (resolution, transform.name, f"{other} [{source_name}]"), Row()
                            )
                            read_clip(transformed, payload, compared_row, compared)
                            merge(rows.setdefault((resolution, transform.name, other), Row()), compared_row)
                            if strided is not None:
                                other += f", every {args.clip_stride}th frame"
                                read_clip(
                                    strided,
                                    payload,
                                    rows.setdefault((resolution, transform.name, other), Row()),
                                    compared,
                                )
                        for name, decode, bits, marked in marked_baselines:
                            base_row = rows.setdefault((resolution, transform.name, name), Row())
                            read_baseline(apply_transform(marked, transform), decode, bits, base_row)
                        compared_text = "" if compared is None else f"; compared reader: {compared_row.text()}"
                        print(
                            f"    {resolution} {clip_name} {transform.name}: {clip_row.text()}{compared_text}",
                            file=sys.stderr,
                            flush=True,
                        )
    print(
        "\n| size | transform | method | frames read | intra frames read | wrong frames | clips read | wrong clips "
        "| read ms/frame |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (resolution, transform_name, method), row in rows.items():
        print(f"| {resolution} | {transform_name} | {method} | {row.text()} |")
    totals = dict.fromkeys(m for (_, _, m) in rows if m.startswith(WATERMARK_ALGORITHM) and "[" not in m)
    print("\n(unmarked clips: 'read' = no mark found, 'wrong' = a false mark)")
    for total in totals:
        ours = [row for (_, _, method), row in rows.items() if method == total]
        frames = sum(r.frames for r in ours)
        print(
            f"{total}: {sum(r.frames_read for r in ours)}/{frames} frames read, "
            f"{sum(r.frames_wrong for r in ours)} wrong; {sum(r.clips_read for r in ours)}/{sum(r.clips for r in ours)} "
            f"clips read, {sum(r.clips_wrong for r in ours)} wrong; load average {os.getloadavg()[0]:.1f}"
        )
    if by_type:
        print(
            "\nsingle frames by picture type: frames read exactly | pilot peak z, median [min, max] "
            "(this reader; then the compared reader, if any)"
        )
        print(
            "| size | transform | clip | type | read | z | compared: read | compared: z |\n|---|---|---|---|---|---|---|---|"
        )
        for (resolution, transform_name, clip_name), kinds in by_type.items():
            for kind in sorted(kinds):
                print(f"| {resolution} | {transform_name} | {clip_name} | {kind} | {kinds[kind].text()} |")
    print("\n| clip reader | size | clips read | wrong clips | clip read ms (median) |\n|---|---|---|---|---|")
    methods = dict.fromkeys(m for (_, _, m) in rows if m.startswith((WATERMARK_ALGORITHM, "compared")) and "[" not in m)
    for method in methods:
        for resolution in resolutions:
            cells = [r for (size, _, m), r in rows.items() if m == method and size == resolution]
            ms = [t for r in cells for t in r.clip_ms]
            print(
                f"| {method} | {resolution} | {sum(r.clips_read for r in cells)}/{sum(r.clips for r in cells)} "
                f"| {sum(r.clips_wrong for r in cells)} | {statistics.median(ms) if ms else float('nan'):.0f} |"
            )
    if embed_ms:
        print("\nembedding ms per frame, fixed grid and anchored interleaved on the same frames, median [IQR]:")
        for resolution, times in embed_ms.items():
            for path in ("luma_offset", "embed"):
                fixed, anchored = times[f"fixed grid, {path}"], times[f"anchored, {path}"]
                cells = [
                    f"{statistics.median(v):.2f} [{np.percentile(v, 25):.2f}, {np.percentile(v, 75):.2f}]"
                    for v in (fixed, anchored)
                ]
                ratio = statistics.median(anchored) / statistics.median(fixed)
                print(f"  {resolution} {path}: fixed grid {cells[0]} / anchored {cells[1]} ({ratio:.2f}x)")
    return 0


def time_embedders(frames: list[np.ndarray], payload: bytes, times: dict[str, list[float]]) -> None:
    """Each frame marked by the fixed-grid and the anchored embedder in turn, on the writer's
    Y-plane path (``luma_offset``) and the RGB path (``embed``), one embedder each (an anchored
    one follows its own frame sequence): ms per frame, appended to ``times[name]``."""
    height, width = frames[0].shape[:2]
    embedders = {
        f"{name}, {path}": (WatermarkEmbedder(payload, width, height, anchored=anchored), path)
        for path in ("luma_offset", "embed")
        for name, anchored in (("fixed grid", False), ("anchored", True))
    }
    for rgb in frames:
        for name, (embedder, path) in embedders.items():
            mark = embedder.luma_offset if path == "luma_offset" else embedder.embed
            start = time.perf_counter()
            mark(rgb)
            times.setdefault(name, []).append((time.perf_counter() - start) * 1e3)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "encoding" in argv and "--mode" in argv:
        return encoding_main(argv)
    return platform_main(argv)


if __name__ == "__main__":
    sys.exit(main())
