"""Cost and fidelity of deinterlacing 1080i in the render's decode path.

Usage:
    .venv/bin/python benchmarks/deinterlace.py [--frames 24] [--repeats 3]

Generates, in a temporary folder, a 1080i clip (each frame woven from two instants of a
portrait panning 4 px a field, top field first) and a 1080p25 clip of the first field's
instants, then measures in one run, on the same machine load:

* ``decode``: ``iter_video_frames(exact=True)`` ms per frame (decode + accurate RGB conversion,
  the render's decode thread): the progressive clip (the baseline), the 1080i clip woven (what
  a render did before), and the 1080i clip with ``deinterlace=True`` (bwdif, what it does now);
* ``filter``: the deinterlacer alone on decoded frames, ms per frame: bwdif, yadif (FFmpeg,
  through ``likeness.media.video.deinterlace.Deinterlacer``) and a pure-numpy linear field
  interpolation (the first field kept, the other field's lines averaged from their neighbours);
* ``error``: mean absolute RGB difference of each deinterlaced picture against the true
  instant of its first field (smaller is better; the woven frame's figure for scale).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from likeness.media import iter_video_frames, synthetic
from likeness.media.video.decode import _rgb_options
from likeness.media.video.deinterlace import Deinterlacer
from tests.media.crafted_clips import comb_energy, interlaced_clip

SIZE = (1920, 1080)


def linear_fields(woven: np.ndarray) -> np.ndarray:
    """The top field kept, the bottom field's lines the mean of the lines above and below."""
    picture = woven.astype(np.uint16)
    out = woven.copy()
    out[1:-1:2] = ((picture[0:-2:2] + picture[2::2] + 1) // 2).astype(np.uint8)
    out[-1] = woven[-2] if woven.shape[0] % 2 == 0 else out[-1]
    return out


def progressive_clip(path: Path, pictures: list[np.ndarray]) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for rgb in pictures:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def median_ms(run: Callable[[], int], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        count = run()
        times.append((time.perf_counter() - started) / count * 1000)
    return statistics.median(times)


def decoded(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(container.streams.video[0]))


def through(name: str, frames: list[av.VideoFrame]) -> list[np.ndarray]:
    deinterlacer = Deinterlacer(name, "tt")
    pictures = [p for frame in frames for p, _ in deinterlacer.push(frame, None)]
    pictures += [p for p, _ in deinterlacer.flush()]
    return [p.to_ndarray(**_rgb_options(p, None, exact=True)) for p in pictures]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    portrait = synthetic.grace_hopper()
    moving = synthetic.animate_portrait(portrait, n_frames=2 * args.frames, size=SIZE, seed=11)
    instants = [np.roll(rgb, 4 * n, axis=1) for n, rgb in enumerate(moving)]
    with tempfile.TemporaryDirectory() as folder:
        interlaced = interlaced_clip(Path(folder) / "1080i.mp4", instants)
        progressive = progressive_clip(Path(folder) / "1080p.mp4", instants[0::2])

        def decode(path: Path, deinterlace: bool) -> Callable[[], int]:
            return lambda: sum(1 for _ in iter_video_frames(path, exact=True, deinterlace=deinterlace))

        rows = [
            ("decode 1080p25 progressive (baseline)", median_ms(decode(progressive, False), args.repeats)),
            ("decode 1080i25 woven (before)", median_ms(decode(interlaced, False), args.repeats)),
            ("decode 1080i25 + bwdif (now)", median_ms(decode(interlaced, True), args.repeats)),
        ]
        frames = decoded(interlaced)
        woven = [f.to_ndarray(**_rgb_options(f, None, exact=True)) for f in frames]
        for name in ("bwdif", "yadif"):

            def filter_only(name: str = name) -> int:
                deinterlacer = Deinterlacer(name, "tt")
                count = sum(1 for frame in frames for _ in deinterlacer.push(frame, None))
                return count + sum(1 for _ in deinterlacer.flush())

            rows.append((f"filter {name} alone", median_ms(filter_only, args.repeats)))
        rows.append(
            ("filter numpy linear alone (RGB)", median_ms(lambda: len([linear_fields(w) for w in woven]), args.repeats))
        )
        truth = instants[0::2]
        results = {
            "woven": woven,
            "bwdif": through("bwdif", frames),
            "yadif": through("yadif", frames),
            "numpy linear": [linear_fields(w) for w in woven],
        }

    print(f"1080i: {args.frames} frames of 1920x1080, median of {args.repeats} runs")
    print(f"{'measure':42s} {'ms/frame':>9s}")
    for label, ms in rows:
        print(f"{label:42s} {ms:9.2f}")
    print(f"\n{'pictures':14s} {'error vs instant':>17s} {'comb energy':>12s}")
    for label, pictures in results.items():
        error = statistics.mean(float(np.abs(p.astype(np.int16) - t).mean()) for p, t in zip(pictures, truth))
        comb = statistics.mean(comb_energy(p) for p in pictures)
        print(f"{label:14s} {error:17.2f} {comb:12.2f}")
    print(f"{'true instants':14s} {0.0:17.2f} {statistics.mean(comb_energy(t) for t in truth):12.2f}")


if __name__ == "__main__":
    main()
