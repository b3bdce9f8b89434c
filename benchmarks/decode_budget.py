"""What a crafted clip costs the sampler, with the per-file decode limits (trial finding 3).

The clips are made here (``tests.media.crafted_clips``): one 1080p keyframe, then N copies of a
25-byte "nothing changed" P-frame, every one a reference frame; ``padded`` adds a filler NAL so
that the file holds more than ``video_min_frame_bytes`` a frame and passes the size check. Per
case: wall seconds until ``sample_video_frames`` (the verifier's call: 1 frame a second, at most
16) returns or raises, frames sampled, and the reason. ``ordinary`` is a 60 s 1080p clip with a
keyframe every 2 s, for the cost of the checks on real footage.

    .venv/bin/python benchmarks/decode_budget.py                 # this tree
    PYTHONPATH=/tmp/base/src .venv/bin/python benchmarks/decode_budget.py --cases ordinary crafted-20k

A tree without ``likeness.media.DecodeLimits`` (before the change) runs with no limits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.media.crafted_clips

CASES = ("ordinary", "crafted-20k", "trial-200k", "padded-200k")


def make(case: str, folder: Path) -> Path:
    from tests.media.crafted_clips import skip_frame_clip

    if case == "ordinary":
        return ordinary_clip(folder / "ordinary.mp4")
    frames = 20_000 if case == "crafted-20k" else 200_000
    return skip_frame_clip(folder / f"{case}.mp4", frames, padding=40 if case == "padded-200k" else 0)


def ordinary_clip(path: Path, seconds: int = 60) -> Path:
    """Moving noise at 1080p, 25 fps, a keyframe every 2 s (x264 ultrafast)."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (1080 // 8, 1920 // 8, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "50"}
        for index in range(seconds * 25):
            picture = np.roll(base, index, axis=1).repeat(8, axis=0).repeat(8, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def sample(path: Path) -> tuple[float, int, str]:
    from likeness.errors import MediaError
    from likeness.media import sample_video_frames

    started = time.perf_counter()
    frames = 0
    reason = "sampled"
    try:
        for _ in sample_video_frames(path, every_s=1.0, max_frames=16):
            frames += 1
    except MediaError as exc:
        reason = exc.reason
    return time.perf_counter() - started, frames, reason


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    args = parser.parse_args()
    try:
        from likeness.media import DecodeLimits

        print(f"limits: {DecodeLimits()}")
    except ImportError:
        print("limits: none (a tree before the change)")
    print("| case | file MB | sample s | frames sampled | outcome |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            path = make(case, Path(tmp))
            seconds, frames, reason = sample(path)
            print(
                f"| {case} | {path.stat().st_size / 1e6:.1f} | {seconds:.2f} | {frames} | {reason[:110]} |", flush=True
            )
            path.unlink()


if __name__ == "__main__":
    main()
