"""Benchmark: likeness.tiled-ss.v2 against invisible-watermark's dwtDctSvd and rivaGan on stills,
under what platforms do to re-uploads.

Stills are natural frames (package portraits, skimage pictures, and images under ``--media``)
fitted to 16:9 renders of 360p, 480p, 720p and 1080p (and one 9:16 render), labelled with the
visible label and marked as the labelled writer marks stills (``WatermarkEmbedder.embed``).
Each is read after every transform of :data:`STILL_TRANSFORMS` (re-uploads kept at their new
size: downscales to 75 %, 50 % and 360 px, letterbox / pillarbox to 9:16 and 1:1, 20 % crops
per side, mirroring, JPEG, a screen-recording chain, a combination). Reported per method,
resolution and transform: share of stills whose payload read back exactly, and wrong reads
(a payload that is not the embedded one; baselines have no check, so every inexact read of
theirs is a wrong read). Then timings (embed per 720p frame, read per frame at each
resolution) and a false-mark check on thousands of unmarked images, some of them transformed.

Usage (from the repository root)::

    .venv/bin/python benchmarks/watermark.py                        # full run
    .venv/bin/python benchmarks/watermark.py --quick                # one resolution, no rivaGan
    .venv/bin/python benchmarks/watermark.py --media ../shared/media/portraits --false-mark 5000

Video (every frame of labelled clips, re-encoded by H.264 / H.265 / VP9): ``watermark_video.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
from skimage import data as skdata

from likeness.media.synthetic import grace_hopper
from likeness.provenance import watermark as tiled_ss
from likeness.provenance.visible_label import VisibleLabel
from likeness.provenance.watermark import (
    MAX_DECODES,
    SYNC_THRESHOLD,
    WATERMARK_ALGORITHM,
    WatermarkEmbedder,
    extract_watermark,
)

RESOLUTIONS = {
    "360p": (640, 360),
    "480p": (854, 480),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "9:16 1080x1920": (1080, 1920),
}


# ---------------------------------------------------------------- media


def fit_frame(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop ``rgb`` to the aspect of ``width`` x ``height`` and resize to it."""
    h, w = rgb.shape[:2]
    target_h = int(round(w * height / width))
    if target_h <= h:
        y0 = (h - target_h) // 2
        rgb = rgb[y0 : y0 + target_h]
    else:
        target_w = int(round(h * width / height))
        x0 = (w - target_w) // 2
        rgb = rgb[:, x0 : x0 + target_w]
    interpolation = cv2.INTER_AREA if rgb.shape[1] > width else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(rgb, (width, height), interpolation=interpolation))


def read_rgb(path: Path) -> np.ndarray | None:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def generated_texture(rng: np.random.Generator, size: tuple[int, int], sigma: float, gain: float) -> np.ndarray:
    height, width = size
    noise = cv2.GaussianBlur(rng.normal(0, 1, (height, width, 3)).astype(np.float32), (0, 0), sigma)
    return np.clip(128 + noise * gain, 0, 255).astype(np.uint8)


def source_pictures(media: Path | None, count: int) -> dict[str, np.ndarray]:
    """Natural pictures to render stills from: package portraits and skimage pictures, then
    pictures under ``media`` (benchmark only)."""
    pictures = {
        "astronaut": skdata.astronaut(),
        "grace_hopper": grace_hopper(),
        "coffee": skdata.coffee(),
        "chelsea": skdata.chelsea(),
        "rocket": skdata.rocket(),
    }
    if media is not None and media.is_dir():
        for path in sorted(p for p in media.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}):
            rgb = read_rgb(path)
            if rgb is not None and min(rgb.shape[:2]) >= 256:
                pictures[f"media:{path.stem}"] = rgb
    return dict(list(pictures.items())[:count])


# ---------------------------------------------------------------- what platforms do


def jpeg(rgb: np.ndarray, quality: int = 50) -> np.ndarray:
    _, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _even(value: float) -> int:
    return max(2, int(round(value / 2.0)) * 2)


def scale_frame(rgb: np.ndarray, factor: float) -> np.ndarray:
    """A copy at ``factor`` of the size (even sides), kept at that size."""
    h, w = rgb.shape[:2]
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, (_even(w * factor), _even(h * factor)), interpolation=interpolation)


def short_side(rgb: np.ndarray, side: int) -> np.ndarray:
    """A copy whose short side is ``side`` px (only ever a downscale)."""
    return scale_frame(rgb, min(1.0, side / min(rgb.shape[:2])))


def pad_frame(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``rgb`` fitted into a black ``width`` x ``height`` frame (letterbox or pillarbox)."""
    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    size = (min(width, _even(w * scale)), min(height, _even(h * scale)))
    inner = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - size[1]) // 2, (width - size[0]) // 2
    out[y0 : y0 + size[1], x0 : x0 + size[0]] = inner
    return out


def crop_frame(rgb: np.ndarray, fractions: tuple[float, float, float, float]) -> np.ndarray:
    """Remove (top, bottom, left, right) fractions of the frame (even sides kept)."""
    h, w = rgb.shape[:2]
    top, bottom = int(h * fractions[0]), int(h * fractions[1])
    left, right = int(w * fractions[2]), int(w * fractions[3])
    out = rgb[top : h - bottom, left : w - right]
    return np.ascontiguousarray(out[: out.shape[0] // 2 * 2, : out.shape[1] // 2 * 2])


def mirror_frame(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, ::-1])


def screen_recording(rgb: np.ndarray) -> np.ndarray:
    """A phone screen recording of a played video: the player shows it at 80 % size, the
    display gamma differs (0.9), the capture is slightly soft (Gaussian sigma 0.7 px), then
    JPEG 80 (a video chain adds its own re-encode after this)."""
    shown = scale_frame(rgb, 0.8)
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** 0.9 + 0.5, 0, 255).astype(np.uint8)
    return jpeg(cv2.GaussianBlur(cv2.LUT(shown, lut), (0, 0), 0.7), 80)


STILL_TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda x: x,
    "JPEG 50": lambda x: jpeg(x, 50),
    "75 %": lambda x: scale_frame(x, 0.75),
    "50 %": lambda x: scale_frame(x, 0.5),
    "360 p": lambda x: short_side(x, 360),
    "9:16 pad 1080x1920": lambda x: pad_frame(x, 1080, 1920),
    "9:16 pad 720x1280": lambda x: pad_frame(x, 720, 1280),
    "16:9 pad 1280x720": lambda x: pad_frame(x, 1280, 720),
    "1:1 pad 720": lambda x: pad_frame(x, 720, 720),
    "crop 20 %/side": lambda x: crop_frame(x, (0.2, 0.2, 0.2, 0.2)),
    "mirror": mirror_frame,
    "screen rec.": screen_recording,
    "mirror+crop 10 %+9:16+JPEG 70": lambda x: jpeg(
        pad_frame(crop_frame(mirror_frame(x), (0.1, 0.05, 0.0, 0.1)), 720, 1280), 70
    ),
    "360 p+crop 20 %+JPEG 70": lambda x: jpeg(crop_frame(short_side(x, 360), (0.2, 0.2, 0.2, 0.2)), 70),
}


# ---------------------------------------------------------------- methods


def load_watermark_module(path: Path) -> ModuleType:
    """Another copy of ``likeness/provenance/watermark.py`` (say main's, from ``git show``),
    loaded beside this one, so both readers read the same media in the same run."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"compared_watermark_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@dataclass
class Method:
    """One watermark under test: bits in, marked frame out; frame in, bits (or None) out."""

    name: str
    bits: int
    embed: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (rgb, bits) -> rgb
    decode: Callable[[np.ndarray], np.ndarray | None]  # rgb -> bits or None ("no mark")
    max_stills: int | None = None


def bits_to_payload(bits: np.ndarray) -> bytes:
    return np.packbits(bits).tobytes()


def payload_to_bits(payload: bytes | None) -> np.ndarray | None:
    return None if payload is None else np.unpackbits(np.frombuffer(payload, np.uint8))


class Ours:
    """The labelled writer's still path: one embedder per job and frame size; read back by
    ``reader`` (this checkout's ``extract_watermark`` unless another is compared)."""

    def __init__(self, reader: Callable[[np.ndarray], tiled_ss.WatermarkReading] = extract_watermark) -> None:
        self._embedders: dict[tuple[bytes, int, int], WatermarkEmbedder] = {}
        self.reader = reader

    def embedder(self, bits: np.ndarray, width: int, height: int) -> WatermarkEmbedder:
        key = (bits_to_payload(bits), width, height)
        if key not in self._embedders:
            self._embedders = {key: WatermarkEmbedder(key[0], width, height)}
        return self._embedders[key]

    def embed(self, rgb: np.ndarray, bits: np.ndarray) -> np.ndarray:
        return self.embedder(bits, rgb.shape[1], rgb.shape[0]).embed(rgb)

    def decode(self, rgb: np.ndarray) -> np.ndarray | None:
        return payload_to_bits(self.reader(rgb).payload)


def imwatermark_method(method: str, bits: int) -> tuple[Callable, Callable]:
    from imwatermark import WatermarkDecoder, WatermarkEncoder

    if method == "rivaGan":
        WatermarkEncoder.loadModel()

    def embed(rgb: np.ndarray, payload_bits: np.ndarray) -> np.ndarray:
        encoder = WatermarkEncoder()
        encoder.set_watermark("bits", [int(b) for b in payload_bits])
        bgr = encoder.encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), method)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def decode(rgb: np.ndarray) -> np.ndarray | None:
        decoder = WatermarkDecoder("bits", bits)
        try:
            return np.asarray(decoder.decode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), method), dtype=np.uint8)
        except RuntimeError:  # "image too small, should be larger than 256x256": no read
            return None

    return embed, decode


def methods(
    include_riva: bool, riva_stills: int, dwt_stills: int | None, compared: ModuleType | None = None
) -> list[Method]:
    ours = Ours()
    listed = [Method(WATERMARK_ALGORITHM, 64, ours.embed, ours.decode)]
    if compared is not None:
        theirs = Ours(compared.extract_watermark)
        listed.append(Method(f"{WATERMARK_ALGORITHM}, compared reader", 64, theirs.embed, theirs.decode))
    embed, decode = imwatermark_method("dwtDctSvd", 64)
    listed.append(Method("dwtDctSvd", 64, embed, decode, max_stills=dwt_stills))
    if include_riva:
        embed, decode = imwatermark_method("rivaGan", 32)
        listed.append(Method("rivaGan", 32, embed, decode, max_stills=riva_stills))
    return listed


# ---------------------------------------------------------------- measurement


@dataclass
class Cell:
    """Reads of one method, resolution and transform."""

    reads: int = 0
    exact: int = 0
    wrong: int = 0
    bit_accuracy: list[float] = field(default_factory=list)

    def add(self, truth: np.ndarray, bits: np.ndarray | None) -> None:
        self.reads += 1
        if bits is None:
            self.bit_accuracy.append(0.5)
            return
        ok = bool(np.array_equal(bits, truth))
        self.exact += ok
        self.wrong += not ok
        self.bit_accuracy.append(float(np.mean(bits == truth)))

    def text(self) -> str:
        if not self.reads:
            return "-"
        return f"{self.exact / self.reads:.0%}" + (f" ({self.wrong} wrong)" if self.wrong else "")


def timed(function: Callable, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, (time.perf_counter() - start) * 1e3


def measure_stills(
    method: Method,
    pictures: dict[str, np.ndarray],
    resolutions: list[str],
    seed: int,
    cells: dict[tuple[str, str], Cell],
    read_ms: dict[str, list[float]],
    psnrs: list[float],
) -> None:
    rng = np.random.default_rng(seed)
    for resolution in resolutions:
        width, height = RESOLUTIONS[resolution]
        label = VisibleLabel(width, height, "bottom-right")
        for name, picture in list(pictures.items())[: method.max_stills]:
            frame = label.apply(fit_frame(picture, width, height))
            truth = rng.integers(0, 2, method.bits).astype(np.uint8)
            marked = method.embed(frame, truth)
            psnrs.append(psnr(frame, marked))
            for transform, op in STILL_TRANSFORMS.items():
                bits, ms = timed(method.decode, np.ascontiguousarray(op(marked)))
                if transform == "none":
                    read_ms.setdefault(resolution, []).append(ms)
                cells.setdefault((resolution, transform), Cell()).add(truth, bits)
            print(f"    {method.name} {resolution} {name}", file=sys.stderr, flush=True)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def false_mark_images(count: int, media: Path | None, seed: int) -> Iterable[tuple[str, np.ndarray]]:
    """Unmarked images: generated fields, textures, stripes, noise; skimage pictures; crops of
    the package portraits (and of ``media`` when given), a third of them transformed as a
    re-upload would be (downscaled, letterboxed, mirrored, JPEG). Sizes 128..1280 px."""
    rng = np.random.default_rng(seed)
    sources = [
        skdata.astronaut(),
        grace_hopper(),
        skdata.coffee(),
        skdata.chelsea(),
        skdata.rocket(),
        np.repeat(skdata.camera()[..., None], 3, axis=2),
        skdata.immunohistochemistry(),
        np.repeat(skdata.moon()[..., None], 3, axis=2),
        skdata.retina(),
    ]
    if media is not None and media.is_dir():
        for path in sorted(p for p in media.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}):
            rgb = read_rgb(path)
            if rgb is not None and min(rgb.shape[:2]) >= 128:
                sources.append(
                    rgb
                    if max(rgb.shape[:2]) <= 1600
                    else cv2.resize(rgb, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
                )
    for index in range(count):
        height, width = int(rng.integers(128, 721)), int(rng.integers(128, 1281))
        kind = index % 6
        if kind in (0, 1, 2):
            source = sources[int(rng.integers(len(sources)))]
            scale = float(rng.uniform(0.5, 2.5))
            scaled = cv2.resize(source, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
            height, width = min(height, scaled.shape[0]), min(width, scaled.shape[1])
            y0 = int(rng.integers(0, scaled.shape[0] - height + 1))
            x0 = int(rng.integers(0, scaled.shape[1] - width + 1))
            rgb = np.ascontiguousarray(scaled[y0 : y0 + height, x0 : x0 + width])
            if kind == 1 and min(rgb.shape[:2]) >= 256:
                op = ("downscale", "letterbox", "mirror")[index // 6 % 3]
                rgb = {
                    "downscale": lambda x: scale_frame(x, 0.6),
                    "mirror": mirror_frame,
                    "letterbox": lambda x: pad_frame(x, _even(x.shape[0] * 9 / 16) + 2, _even(x.shape[0])),
                }[op](rgb)
                yield f"transformed crop ({op})", rgb
                continue
            if kind == 2:
                rgb = jpeg(rgb, int(rng.integers(30, 95)))
            yield "portrait crop", rgb
        elif kind == 3:
            yield (
                "texture",
                generated_texture(rng, (height, width), float(rng.uniform(0.5, 6)), float(rng.uniform(10, 250))),
            )
        elif kind == 4:
            coarse = rng.uniform(0, 255, (int(rng.integers(2, 12)), int(rng.integers(2, 12)), 3))
            field_rgb = cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
            yield (
                "smooth field",
                np.clip(field_rgb + rng.normal(0, rng.uniform(0, 4), field_rgb.shape), 0, 255).astype(np.uint8),
            )
        else:
            if rng.random() < 0.5:
                yield "noise", rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            else:
                yy, xx = np.mgrid[0:height, 0:width] / 64.0
                wave = 127 + 120 * np.sin(2 * np.pi * (xx * rng.uniform(0.2, 8) + yy * rng.uniform(0.2, 8)))
                yield "stripes", np.repeat(np.clip(wave, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def read_timing(
    readers: dict[str, Callable[[np.ndarray], tiled_ss.WatermarkReading]],
    pictures: dict[str, np.ndarray],
    resolutions: list[str],
    repeats: int,
) -> dict[tuple[str, str, str], float]:
    """Median read ms per (reader, resolution, "unmarked" | "marked") of the labelled stills of
    each resolution, the readers taking turns on every image (so load affects them alike)."""
    samples: dict[tuple[str, str, str], list[float]] = {}
    for resolution in resolutions:
        width, height = RESOLUTIONS[resolution]
        label = VisibleLabel(width, height, "bottom-right")
        embedder = WatermarkEmbedder(b"timing!!", width, height)
        for picture in pictures.values():
            frame = label.apply(fit_frame(picture, width, height))
            for kind, rgb in (("unmarked", frame), ("marked", embedder.embed(frame))):
                for _ in range(repeats):
                    for name, reader in readers.items():
                        samples.setdefault((name, resolution, kind), []).append(timed(reader, rgb)[1])
    return {key: statistics.median(values) for key, values in samples.items()}


@contextlib.contextmanager
def sync_gate_removed() -> Iterator[list[int]]:
    """Within the block, reads decode every candidate peak whatever its pilot score (up to the
    reader's cap of MAX_DECODES CRC-32 trials; a still's screen is removed too) and count the
    trials in the yielded list: this exercises the check itself, which alone bounds the
    false-mark rate. Patches the module's internals on purpose (a diagnostic, not an API)."""
    trials = [0]
    original_sync, original_decode = tiled_ss._sync_candidates, tiled_ss.decode_payload
    original_screen = getattr(tiled_ss, "SCREEN_THRESHOLD", None)

    def any_peak(folded: np.ndarray, threshold: float = 0.0, count: int = 3):
        return original_sync(folded, threshold=-np.inf, count=count)

    def counted(soft: np.ndarray):
        trials[0] += 1
        return original_decode(soft)

    tiled_ss._sync_candidates, tiled_ss.decode_payload = any_peak, counted
    if original_screen is not None:
        tiled_ss.SCREEN_THRESHOLD = -np.inf
    try:
        yield trials
    finally:
        tiled_ss._sync_candidates, tiled_ss.decode_payload = original_sync, original_decode
        if original_screen is not None:
            tiled_ss.SCREEN_THRESHOLD = original_screen


# ---------------------------------------------------------------- report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--media",
        type=Path,
        default=Path("../shared/media/portraits"),
        help="folder of extra images (benchmark only; never copied)",
    )
    parser.add_argument("--stills", type=int, default=8, help="pictures per resolution")
    parser.add_argument(
        "--resolutions", default=",".join(RESOLUTIONS), help="comma-separated, of: " + ", ".join(RESOLUTIONS)
    )
    parser.add_argument("--quick", action="store_true", help="720p, 3 pictures, no rivaGan, 300 unmarked images")
    parser.add_argument("--no-riva", action="store_true", help="skip rivaGan (seconds per frame)")
    parser.add_argument("--riva-stills", type=int, default=1, help="pictures per resolution rivaGan runs on")
    parser.add_argument("--dwt-stills", type=int, default=3, help="pictures per resolution dwtDctSvd runs on")
    parser.add_argument("--false-mark", type=int, default=3000, help="unmarked images to read")
    parser.add_argument("--timing-reps", type=int, default=200, help="repetitions of the embed timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compare-reader",
        type=Path,
        help="another watermark.py (say main's, from git show) whose extract_watermark reads the same stills, "
        "transforms and unmarked images in the same run",
    )
    parser.add_argument("--read-reps", type=int, default=3, help="repetitions of the read timing per still")
    args = parser.parse_args(argv)
    compared = load_watermark_module(args.compare_reader) if args.compare_reader else None
    resolutions = [r.strip() for r in args.resolutions.split(",") if r.strip()]
    if args.quick:
        resolutions, args.stills, args.false_mark, args.no_riva = ["720p"], 3, min(args.false_mark, 300), True
        args.timing_reps = min(args.timing_reps, 50)
    unknown = [r for r in resolutions if r not in RESOLUTIONS]
    if unknown:
        parser.error(f"unknown resolution(s) {unknown}; choose from {', '.join(RESOLUTIONS)}")

    media = args.media if args.media.is_dir() else None
    pictures = source_pictures(media, args.stills)
    print(f"cv2 threads: {cv2.getNumThreads()}, cpu count: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    print(
        f"stills: {', '.join(pictures)} at {', '.join(resolutions)}, labelled and marked as the writer "
        f"marks stills; every transform keeps its new size"
    )

    table: list[tuple[Method, dict[tuple[str, str], Cell], dict[str, list[float]], list[float]]] = []
    for method in methods(not args.no_riva, args.riva_stills, args.dwt_stills, compared):
        cells: dict[tuple[str, str], Cell] = {}
        read_ms: dict[str, list[float]] = {}
        psnrs: list[float] = []
        print(f"... {method.name}", file=sys.stderr, flush=True)
        measure_stills(method, pictures, resolutions, args.seed, cells, read_ms, psnrs)
        table.append((method, cells, read_ms, psnrs))

    print("\nexact payload read back, share of stills (wrong reads in brackets); per resolution")
    print("| method | stills | PSNR min | read ms | " + " | ".join(STILL_TRANSFORMS) + " |")
    print("|---" * (4 + len(STILL_TRANSFORMS)) + "|")
    for resolution in resolutions:
        for method, cells, read_ms, psnrs in table:
            stills = cells.get((resolution, "none"), Cell()).reads
            ms = statistics.median(read_ms.get(resolution, [float("nan")]))
            print(
                f"| {method.name} {resolution} | {stills} | {min(psnrs):.1f} | {ms:.0f} | "
                + " | ".join(cells.get((resolution, t), Cell()).text() for t in STILL_TRANSFORMS)
                + " |"
            )
    for method, cells, _, _ in table:
        reads = sum(c.reads for c in cells.values())
        exact = sum(c.exact for c in cells.values())
        wrong = sum(c.wrong for c in cells.values())
        accuracy = statistics.fmean(v for c in cells.values() for v in c.bit_accuracy)
        print(
            f"{method.name}: {exact}/{reads} exact ({exact / reads:.1%}), {wrong} wrong, "
            f"mean bit accuracy {accuracy:.3f}"
        )

    # Per-frame embedding cost of a render job (embedder built once) next to a frame copy in
    # the same loop (exposes machine load); read cost per resolution of an untouched frame.
    frame = fit_frame(skdata.astronaut(), 1280, 720)
    embedder = WatermarkEmbedder(b"timing!!", 1280, 720)
    embed_times, offset_times, copy_times = [], [], []
    for _ in range(args.timing_reps):
        embed_times.append(timed(embedder.embed, frame)[1])
        offset_times.append(timed(embedder.luma_offset, frame)[1])
        copy_times.append(timed(np.copy, frame)[1])
    print(
        f"\n1280x720, {args.timing_reps} reps: embed median {statistics.median(embed_times):.2f} ms "
        f"(p90 {np.percentile(embed_times, 90):.2f}); luma_offset (the writer's video path) median "
        f"{statistics.median(offset_times):.2f} ms; frame copy {statistics.median(copy_times):.2f} ms; "
        f"load average {os.getloadavg()[0]:.1f}"
    )

    readers = {"this reader": extract_watermark}
    if compared is not None:
        readers["compared reader"] = compared.extract_watermark
    if args.read_reps > 0:
        timing = read_timing(readers, pictures, resolutions, args.read_reps)
        print(
            f"\nread ms of the labelled stills (median of {len(pictures)} stills x {args.read_reps} reps, "
            f"readers taking turns; load average {os.getloadavg()[0]:.1f})"
        )
        print("| resolution | " + " | ".join(f"{n}: unmarked | {n}: marked" for n in readers) + " |")
        print("|---" * (1 + 2 * len(readers)) + "|")
        for resolution in resolutions:
            cells = [f"{timing[(n, resolution, k)]:.1f}" for n in readers for k in ("unmarked", "marked")]
            print(f"| {resolution} | " + " | ".join(cells) + " |")

    if args.false_mark > 0:
        start = time.perf_counter()
        hits: dict[tuple[str, str], int] = {}
        counts: dict[str, int] = {}
        sync_passed = dict.fromkeys(readers, 0)
        with_gate_ms: dict[str, list[float]] = {name: [] for name in readers}
        images = list(false_mark_images(args.false_mark, media, args.seed + 7))
        for kind, rgb in images:
            counts[kind] = counts.get(kind, 0) + 1
            for name, reader in readers.items():
                reading, ms = timed(reader, rgb)
                with_gate_ms[name].append(ms)
                if reading.payload is not None:
                    hits[(name, kind)] = hits.get((name, kind), 0) + 1
                sync_passed[name] += reading.sync_score >= SYNC_THRESHOLD
        total = len(images)
        for name in readers:
            false_marks = sum(v for (n, _), v in hits.items() if n == name)
            print(
                f"\n{name}: false marks on {total} unmarked images (128..1280 px): {false_marks} "
                f"({', '.join(f'{k} {hits.get((name, k), 0)}/{n}' for k, n in counts.items())}); "
                + (f"95% upper bound on the rate {3.0 / total:.1e}; " if false_marks == 0 else "")
                + f"design bound {MAX_DECODES * 2.0**-32:.1e} (docs/watermark.md); "
                f"read median {statistics.median(with_gate_ms[name]):.1f} ms, "
                f"mean {statistics.fmean(with_gate_ms[name]):.1f} ms per image; "
                f"reported pilot peak >= {SYNC_THRESHOLD} on {sync_passed[name]}/{total}"
            )
        ungated_passes = 0
        with sync_gate_removed() as trials:
            for _, rgb in images:
                ungated_passes += extract_watermark(rgb).payload is not None
        print(
            f"this reader with the sync gate and the screen removed: {trials[0]} Viterbi decodes "
            f"(at most {MAX_DECODES} per image) passed the CRC-32 {ungated_passes} times "
            f"(expected {trials[0] * 2.0**-32:.1e}); {(time.perf_counter() - start) / total * 1e3:.0f} ms per image in all"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
