"""Decode -> RGB -> H.264 round trip: the floor any per-frame render can reach.

Usage:
    .venv/bin/python benchmarks/transcode.py [MEDIA_DIR] [--frames 90] [--repeats 3]
    # MEDIA_DIR defaults to ../shared/media; every MEDIA_DIR/video/*.mp4 is measured

Compares, side by side in the same run and on the same frames:

* ``baseline``: the textbook PyAV loop (``container.decode`` with default threading,
  ``to_ndarray("rgb24")``, ``VideoFrame.from_ndarray`` and ``stream.encode`` with PyAV's
  implicit reformat; libx264 veryfast CRF 20, no audio);
* ``likeness``: ``likeness.media.transcode`` (threaded decode, the stream's declared YUV matrix
  on read, explicit BT.709 tagged encode, audio copied, faststart, atomic rename);
* ``decode``: ``iter_video_frames`` alone (decode + RGB conversion).

Columns: median wall seconds over the repeats, frames per second, the ratio baseline/likeness
(> 1 means likeness is faster), and colour fidelity: the mean absolute per-channel shift of the
output's frames against the source's frames, both read back with ``iter_video_frames`` (which
uses the matrix each stream declares, and BT.709 for untagged HD as players do).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from likeness.media import iter_video_frames, probe_video, transcode


def baseline_transcode(src: Path, dst: Path, *, crf: int, max_frames: int) -> int:
    written = 0
    with av.open(str(src)) as source, av.open(str(dst), "w") as output:
        in_stream = source.streams.video[0]
        rate = in_stream.average_rate or Fraction(25)
        stream = output.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": "veryfast"})
        stream.width = in_stream.codec_context.width
        stream.height = in_stream.codec_context.height
        stream.pix_fmt = "yuv420p"
        for frame in source.decode(in_stream):
            if written >= max_frames:
                break
            rgb = frame.to_ndarray(format="rgb24")
            output.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            written += 1
        output.mux(stream.encode(None))
    return written


def decode_only(src: Path, *, max_frames: int) -> int:
    count = 0
    for frame in iter_video_frames(src):
        if frame.index >= max_frames:
            break
        count += 1
    return count


def colour_shift(src: Path, out: Path, *, frames: int) -> float:
    shifts = []
    for original, encoded in zip(iter_video_frames(src), iter_video_frames(out)):
        if original.index >= frames:
            break
        shifts.append(np.abs((encoded.rgb.astype(np.float64) - original.rgb).mean(axis=(0, 1))))
    return float(np.mean(shifts)) if shifts else float("nan")


def timed(run, repeats: int) -> tuple[float, int]:  # noqa: ANN001
    seconds, count = [], 0
    for _ in range(repeats):
        began = time.perf_counter()
        count = run()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("media", nargs="?", default="../shared/media", type=Path)
    parser.add_argument("--frames", type=int, default=90, help="frames per run (default 90)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per method (default 3)")
    parser.add_argument("--crf", type=int, default=20)
    args = parser.parse_args(argv)

    videos = sorted((args.media / "video").glob("*.mp4")) if args.media.is_dir() else [args.media]
    if not videos:
        print(f"no videos under {args.media}/video", file=sys.stderr)
        return 2
    header = (
        f"{'video':42} {'size':>9} {'frames':>6} | {'baseline s':>10} {'likeness s':>10} "
        f"{'decode s':>8} | {'base fps':>8} {'like fps':>8} {'ratio':>6} | "
        f"{'shift base':>10} {'shift like':>10}"
    )
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as scratch:
        for video in videos:
            info = probe_video(video)
            base_out = Path(scratch) / f"base_{video.stem}.mp4"
            like_out = Path(scratch) / f"like_{video.stem}.mp4"
            base_s, n = timed(
                lambda: baseline_transcode(video, base_out, crf=args.crf, max_frames=args.frames), args.repeats
            )
            like_s, m = timed(lambda: transcode(video, like_out, crf=args.crf, max_frames=args.frames), args.repeats)
            dec_s, _ = timed(lambda: decode_only(video, max_frames=args.frames), args.repeats)
            assert n == m, (n, m)
            shift_base = colour_shift(video, base_out, frames=min(n, 30))
            shift_like = colour_shift(video, like_out, frames=min(n, 30))
            print(
                f"{video.name[:42]:42} {info.width:>4}x{info.height:<4} {n:>6} | {base_s:>10.2f} "
                f"{like_s:>10.2f} {dec_s:>8.2f} | {n / base_s:>8.1f} {n / like_s:>8.1f} "
                f"{base_s / like_s:>6.2f} | {shift_base:>10.2f} {shift_like:>10.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
