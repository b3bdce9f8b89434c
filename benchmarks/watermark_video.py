"""Benchmark: how often the labelled writer's own video output reads back, by frame size.

Short clips of small frames are the hard case for the tiled mark: a 320x240 frame holds under
five tiles, so the reader has little host image to average away, and x264's default inter
deadzone rounds most of the mark's low-amplitude residual out of P and B frames.

For each generated clip (an animated package portrait with the visible label, as the labelled
writer makes it) and each encoding variant, the clip is marked with many different payloads,
encoded, decoded and read with ``extract_watermark_frames``. Variants, measured side by side:

* ``default``: CRF 20 with x264's deadzones (21, 11), the baseline and what the writer uses
  for frames of at least :data:`SMALL_FRAME_TILES` tiles;
* ``small-frame``: CRF 18 without deadzones, what ``video_encoder_options`` gives the writer
  for smaller frames;
* either with the mark added to the Y plane after the YUV conversion (the writer's path) or
  to R, G and B before it (``embed``), with ``--paths both``.

Columns: read (share of payloads read back exactly; a wrong payload is counted separately and
should be 0), median and worst agreement of the coded bits before Viterbi decoding, and the
median file size relative to the baseline's.

Usage (from the repository root)::

    .venv/bin/python benchmarks/watermark_video.py                  # 200 payloads per cell
    .venv/bin/python benchmarks/watermark_video.py --payloads 1000 --paths both
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from likeness.media import iter_video_frames
from likeness.media.synthetic import animate_portrait, astronaut, grace_hopper
from likeness.media.video import VideoEncoder
from likeness.provenance import watermark as tiled_ss
from likeness.provenance.visible_label import VisibleLabel
from likeness.provenance.watermark import (
    SMALL_FRAME_CRF,
    SMALL_FRAME_DEADZONES,
    WatermarkEmbedder,
    extract_watermark_frames,
)
from likeness.provenance.watermark_code import encode_payload
from likeness.provenance.writer import watermark_payload_for


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


def encode_marked(frames: list[np.ndarray], payload: bytes, out: Path, fps: int, crf: int,
                  deadzones: tuple[int, int] | None, path: str) -> None:
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


def measure(clip: Clip, crf: int, deadzones: tuple[int, int] | None, path: str, payloads: int,
            offset: int, work: Path) -> dict[str, float]:
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
    return {"read": read / payloads, "wrong": wrong, "agreement": statistics.median(agreements),
            "worst": min(agreements), "bytes": statistics.median(sizes)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payloads", type=int, default=200, help="payloads (encodes) per cell")
    parser.add_argument("--paths", choices=("writer", "both"), default="writer",
                        help="'both' adds the RGB embed path beside the writer's Y-plane path")
    parser.add_argument("--only", default="", help="comma-separated clip names to run")
    parser.add_argument("--seed", type=int, default=0, help="offset of the payload sequence")
    args = parser.parse_args(argv)
    if args.payloads < 1:
        parser.error("--payloads must be >= 1")
    clips = [c for c in CLIPS if not args.only or c.name in args.only.split(",")]
    if not clips:
        parser.error(f"--only matches no clip; names: {', '.join(c.name for c in CLIPS)}")
    paths = ["Y plane"] + (["RGB embed"] if args.paths == "both" else [])
    print(f"{args.payloads} payloads per cell; tiles per frame: "
          + ", ".join(f"{c.name.split()[0]} {c.size[0] * c.size[1] / tiled_ss.TILE_SIZE**2:.1f}" for c in clips))
    print("| clip | mark path | encoding | read | wrong | coded-bit agreement median / worst | bytes vs default |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="likeness-wm-video-") as tmp:
        for clip in clips:
            for path in paths:
                baseline_bytes = None
                for name, (crf, deadzones) in VARIANTS.items():
                    row = measure(clip, crf, deadzones, path, args.payloads, args.seed * 1_000_003, Path(tmp))
                    baseline_bytes = baseline_bytes or row["bytes"]
                    print(f"| {clip.name} | {path} | {name}: CRF {crf}, {deadzones or (21, 11)} | {row['read']:.1%} "
                          f"| {row['wrong']} | {row['agreement']:.3f} / {row['worst']:.3f} "
                          f"| {row['bytes'] / baseline_bytes:.2f} ({row['bytes'] / 1e3:.0f} kB) |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
