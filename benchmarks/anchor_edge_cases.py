"""The anchored embedder (``WatermarkEmbedder(anchored=True)``, the labelled video writer's) on
edge-case sequences (trial 7): for each, the worst mark RMS (grey levels, after rounding to
uint8), whether two embedders give the same bytes, and the pattern windows the anchor chose.
Then pans of 4..40 px a frame at 640x360 (is each followed?), and a resume's replayed frames
(the same pan with a +-1 grey-level jitter: same windows, and does each read?).

    PYTHONPATH=src python benchmarks/anchor_edge_cases.py

Seeded generated media and the package portrait only; docs/watermark.md "Anchored marks, edge
cases" holds the figures.
"""

from __future__ import annotations

import cv2
import numpy as np

from likeness.media.synthetic import astronaut
from likeness.provenance.watermark import WatermarkEmbedder, extract_watermark

PAYLOAD = bytes.fromhex("a11c4ed0b0a7f00d")


def marked(frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """The frames marked by one anchored embedder, and the window (x, y) it took for each."""
    height, width = frames[0].shape[:2]
    embedder = WatermarkEmbedder(PAYLOAD, width, height, anchored=True)
    out, windows = [], []
    for rgb in frames:
        out.append(embedder.embed(rgb))
        windows.append(embedder._pattern_offset)
    return out, windows


def edge_case(name: str, frames: list[np.ndarray]) -> None:
    first, windows = marked(frames)
    again, _ = marked(frames)
    same = all(np.array_equal(a, b) for a, b in zip(first, again))
    rms = max(float(np.sqrt(np.mean((m.astype(float) - f.astype(float)) ** 2))) for m, f in zip(first, frames))
    height, width = frames[0].shape[:2]
    print(f"| {name} | {width}x{height} | {len(frames)} | {rms:.2f} | {same} | {sorted(set(windows))[:4]} |")


def pan(base: np.ndarray, size: tuple[int, int], step: tuple[float, float], n: int) -> list[np.ndarray]:
    """A camera moving ``step`` px a frame over ``base`` (the content moves the other way)."""
    return [
        cv2.warpAffine(
            base,
            np.array([[1.0, 0.0, 10 + step[0] * t], [0.0, 1.0, 10 + step[1] * t]]),
            size,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        )
        for t in range(n)
    ]


def zoom(base: np.ndarray, size: tuple[int, int], rate: float, n: int) -> list[np.ndarray]:
    width, height = size
    centre = (base.shape[1] / 2, base.shape[0] / 2)
    frames = []
    for t in range(n):
        grown = cv2.warpAffine(base, cv2.getRotationMatrix2D(centre, 0, 1 + rate * t), base.shape[1::-1])
        y, x = (base.shape[0] - height) // 2, (base.shape[1] - width) // 2
        frames.append(np.ascontiguousarray(grown[y : y + height, x : x + width]))
    return frames


def main() -> None:
    rng = np.random.default_rng(7)
    size = (320, 240)
    texture = cv2.GaussianBlur((rng.random((480, 640, 3)) * 255).astype(np.uint8), (0, 0), 3)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    flat = [np.full((240, 320, 3), v, np.uint8) for v in (0, 128, 255)]
    print("| sequence | size | frames | worst RMS | same bytes twice | windows (first 4) |\n|---|---|---|---|---|---|")
    for name, value in zip(("black", "flat grey", "white"), flat):
        edge_case(name, [value] * 6)
    edge_case("noise", [(rng.random((240, 320, 3)) * 255).astype(np.uint8) for _ in range(6)])
    cuts = [
        flat[1] if i % 2 else np.ascontiguousarray(texture[(37 * i) % 240 :][:240, (53 * i) % 320 :][:, :320])
        for i in range(8)
    ]
    edge_case("a hard cut every frame", cuts)
    for step in ((3.0, 0.0), (40.0, 0.0), (25.0, 25.0)):
        edge_case(f"pan {step[0]:g},{step[1]:g} px/frame", pan(texture, size, step, 9))
    edge_case("black, then a 3 px pan", flat[:1] * 3 + pan(texture, size, (3.0, 0.0), 9))
    edge_case("zoom 3 %/frame", zoom(texture, size, 0.03, 12))
    for width, height in ((1, 1), (2, 2), (1080, 8), (8, 1080), (3, 700)):
        small = cv2.resize(texture, (width, height), interpolation=cv2.INTER_AREA).reshape(height, width, 3)
        edge_case("rolled 1 px/frame", [np.ascontiguousarray(np.roll(small, i, axis=1)) for i in range(6)])

    portrait = cv2.resize(astronaut(), (960, 540), interpolation=cv2.INTER_AREA)
    print("\n| pan at 640x360 (px/frame) | window x, frames 0-9 | followed (window moves by the step) |\n|---|---|---|")
    for step in (4, 8, 16, 24, 32, 40):
        _, windows = marked(pan(portrait, (640, 360), (float(step), 0.0), 10))
        xs = [x for x, _ in windows]
        period = WatermarkEmbedder(PAYLOAD, 640, 360).period
        moves = [(b - a) % period for a, b in zip(xs[2:], xs[3:])]
        print(f"| {step} | {xs} | {all(abs(m - step % period) <= 1 for m in moves)} |")

    frames = pan(portrait, (640, 360), (7.0, -3.0), 24)
    jittered = [np.clip(f.astype(int) + rng.integers(-1, 2, f.shape), 0, 255).astype(np.uint8) for f in frames]
    straight, windows = marked(frames)
    replayed, replayed_windows = marked(jittered)
    same = sum(a == b for a, b in zip(windows, replayed_windows))
    reads = [
        extract_watermark(straight[i]).payload == PAYLOAD and extract_watermark(replayed[i]).payload == PAYLOAD
        for i in (0, 3, 8, 15, 23)
    ]
    print(f"\nresume (+-1 jitter, 7,-3 px/frame pan, 640x360): same windows {same}/24; frames 0,3,8,15,23 read {reads}")


if __name__ == "__main__":
    main()
