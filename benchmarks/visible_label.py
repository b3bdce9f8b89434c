"""Benchmark the visible label: what it costs the writer per frame, and how well verify finds it.

Usage::

    .venv/bin/python benchmarks/visible_label.py [--media ../shared/media] [--repeats 200]
        [--compare-detector OLD_label_detect.py]

Cost: ms per 720p frame for the writer's label, before (the previous corner label: one patch
blended) and after (the safe-area label plus the face tag that follows a face), measured side by
side on the same frames; and ms per picture for ``detect_visible_label`` at 360p, 720p, 1080p.

Detection: every source picture is labelled the way the writer labels it (safe placement; video
frames also get the face tag) and then transformed as re-uploads do: kept downscale to 360p,
9:16 letterbox (black bars), crops of 10 % and 20 % on several side combinations, JPEG at 50-75,
mirroring, and combinations. The detection rate is the share of labelled copies found. False
positives: the same transforms of the unlabelled pictures, generated clip frames, and pictures
with other text drawn the same way (white on a 60 % dark box): captions in the label's own font,
another product's "AI-generated" label in DejaVu Sans, a news ticker. Sources: the package
portraits and frames of generated clips (always), plus the development media under ``--media``
(synthetic people, portraits, paintings, group photos, frames of the DFDC clip).

``--compare-detector``: another copy of ``label_detect.py`` (say main's, from ``git show``)
searches every picture too, the two taking turns to go first; the tables get its columns, the
CPU ms per picture of both, and every picture on which they decide differently.
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from likeness.media import synthetic
from likeness.provenance.label_detect import PRESENT_SCORE, detect_visible_label
from likeness.provenance.visible_label import FaceTag, VisibleLabel, label_font_path


def short_side(rgb: np.ndarray, short: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = short / min(height, width)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def letterbox_9x16(rgb: np.ndarray, width: int = 720) -> np.ndarray:
    height = width * 16 // 9
    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    content = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - content.shape[0]) // 2, (width - content.shape[1]) // 2
    canvas[top : top + content.shape[0], left : left + content.shape[1]] = content
    return canvas


def crop(rgb: np.ndarray, sides: str, fraction: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    dx, dy = round(w * fraction), round(h * fraction)
    return np.ascontiguousarray(
        rgb[
            dy if "t" in sides else 0 : h - dy if "b" in sides else h,
            dx if "l" in sides else 0 : w - dx if "r" in sides else w,
        ]
    )


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1])


TRANSFORMS = {
    "as written": lambda x: x,
    "downscale to 360p": lambda x: short_side(x, 360),
    "9:16 letterbox (720x1280)": letterbox_9x16,
    "crop 10 % all sides": lambda x: crop(x, "lrtb", 0.10),
    "crop 10 % right+bottom": lambda x: crop(x, "rb", 0.10),
    "crop 20 % all sides": lambda x: crop(x, "lrtb", 0.20),
    "crop 20 % left+top": lambda x: crop(x, "lt", 0.20),
    "crop 20 % right+bottom": lambda x: crop(x, "rb", 0.20),
    "crop 20 % top+bottom": lambda x: crop(x, "tb", 0.20),
    "JPEG 50": lambda x: jpeg(x, 50),
    "mirrored": lambda x: np.ascontiguousarray(x[:, ::-1]),
    "crop 15 % + 360p + JPEG 70": lambda x: jpeg(short_side(crop(x, "lrtb", 0.15), 360), 70),
    "letterbox + 360p + JPEG 70": lambda x: jpeg(short_side(letterbox_9x16(x), 360), 70),
    "crop 20 % + mirror + JPEG 60": lambda x: jpeg(np.ascontiguousarray(crop(x, "lrtb", 0.20)[:, ::-1]), 60),
}


def sources(media: Path | None) -> list[tuple[str, np.ndarray, bool]]:
    """(name, RGB, is a video frame). Package portraits and generated clip frames always."""
    found: list[tuple[str, np.ndarray, bool]] = [
        ("astronaut", synthetic.astronaut(), False),
        ("grace_hopper", synthetic.grace_hopper(), False),
    ]
    for name, face in (("astronaut", synthetic.astronaut()), ("grace_hopper", synthetic.grace_hopper())):
        for size in ((640, 360), (1280, 720), (1920, 1080), (720, 1280)):
            for index, frame in enumerate(synthetic.animate_portrait(face, n_frames=40, size=size, seed=7)):
                if index % 20 == 0:
                    found.append((f"clip {name} {size[0]}x{size[1]} #{index}", frame, True))
    if media is not None and media.is_dir():
        patterns = [
            "synthetic_people/*/*.png",
            "synthetic_people/*/*.jpg",
            "portraits/single/*",
            "portraits/pd_paintings/*",
            "portraits/group/*",
            "portraits/congress_pd/*",
        ]
        for pattern in patterns:
            for path in sorted(glob.glob(str(media / pattern)))[:8]:
                try:
                    rgb = np.asarray(Image.open(path).convert("RGB"))
                except OSError:
                    continue
                found.append((Path(path).name, short_side(rgb, 1080), False))
        clip = media / "video" / "dfdc_consenting_actor_lynaeydofd.mp4"
        if clip.is_file():
            from likeness.media import iter_video_frames

            for frame in iter_video_frames(clip):
                if frame.index % 75 == 0:
                    found.append((f"dfdc #{frame.index}", frame.rgb, True))
                if frame.index >= 225:
                    break
    return found


def labelled(rgb: np.ndarray, video: bool) -> np.ndarray:
    height, width = rgb.shape[:2]
    label = VisibleLabel(width, height)
    out = label.apply(rgb)
    if video:
        # The face tag next to a face where generated clips put it (focus 0.5, 0.35).
        side = 0.3 * min(width, height)
        face = (width / 2 - side / 2, 0.35 * height - side / 2, width / 2 + side / 2, 0.35 * height + side / 2)
        FaceTag(width, height, label_box=label.geometry.box).apply(out, [face], in_place=True)
    return out


def other_text(rgb: np.ndarray, text: str, font_path: str, at: tuple[float, float]) -> np.ndarray:
    picture = Image.fromarray(rgb).convert("RGBA")
    height, width = rgb.shape[:2]
    font = ImageFont.truetype(font_path, max(14, round(0.045 * min(height, width))))
    overlay = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    x, y = at[0] * width, at[1] * height
    left, top, right, bottom = draw.textbbox((x, y), text, font=font)
    pad = round(0.35 * font.size)
    draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=(16, 16, 16, 153))
    draw.text((x, y), text, font=font, fill=(255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(picture, overlay).convert("RGB"))


def cost(repeats: int, compared: ModuleType | None = None) -> None:
    frames = list(synthetic.animate_portrait(synthetic.astronaut(), n_frames=8, size=(1280, 720), seed=1))
    before = VisibleLabel(1280, 720, "bottom-right")
    after = VisibleLabel(1280, 720)
    tag = FaceTag(1280, 720, fps=25, label_box=after.geometry.box)

    def run(step) -> float:
        work = [f.copy() for f in frames]
        for i in range(8):
            step(work[i % 8], i)
        started = time.perf_counter()
        for i in range(repeats):
            step(work[i % 8], i)
        return (time.perf_counter() - started) / repeats * 1e3

    face = np.array([560.0, 140.0, 740.0, 320.0])
    old = run(lambda f, i: before.apply(f, in_place=True))
    new = run(
        lambda f, i: (after.apply(f, in_place=True), tag.apply(f, [tuple(face + [i % 7, 0, i % 7, 0])], in_place=True))
    )
    print(
        f"writer label cost per 720p frame: before (corner label) {old:.3f} ms, "
        f"after (safe-area label + face tag) {new:.3f} ms  [{repeats} frames each, in place]"
    )
    detectors = {"this": detect_visible_label}
    if compared is not None:
        detectors["compared"] = compared.detect_visible_label
    for size in ((640, 360), (1280, 720), (1920, 1080)):
        frame = next(iter(synthetic.animate_portrait(synthetic.astronaut(), n_frames=1, size=size, seed=2)))
        for kind, picture in (("labelled", labelled(frame, False)), ("unlabelled", frame)):
            cpu: dict[str, list[float]] = {key: [] for key in detectors}
            wall: dict[str, list[float]] = {key: [] for key in detectors}
            for detect in detectors.values():
                detect(picture)
            for turn in range(6):  # the detectors take turns to go first
                for key, detect in list(detectors.items())[:: 1 if turn % 2 == 0 else -1]:
                    started, started_cpu = time.perf_counter(), time.process_time()
                    detect(picture)
                    wall[key].append(time.perf_counter() - started)
                    cpu[key].append(time.process_time() - started_cpu)
            print(
                f"detect_visible_label {size[0]}x{size[1]} {kind}: "
                + "; ".join(
                    f"{key} {statistics.median(wall[key]) * 1e3:.0f} ms wall, "
                    f"{statistics.median(cpu[key]) * 1e3:.0f} ms CPU"
                    for key in detectors
                )
                + " (medians of 6)"
            )


def detection(media: Path | None, compared: ModuleType | None = None) -> None:
    pictures = sources(media)
    print(f"{len(pictures)} source pictures ({sum(v for _, _, v in pictures)} video frames)")
    detectors = {"this": detect_visible_label}
    if compared is not None:
        detectors["compared"] = compared.detect_visible_label
    # Per detector: transform -> scores of the labelled copies / of the unlabelled ones.
    found_rates: dict[str, dict[str, list[float]]] = {name: {} for name in detectors}
    clean_scores: dict[str, dict[str, list[float]]] = {name: {} for name in detectors}
    text_scores: dict[str, dict[str, list[float]]] = {name: {} for name in detectors}
    cpu_ms: dict[str, list[float]] = {name: [] for name in detectors}
    differ: list[str] = []

    def search(what: str, name: str, picture: np.ndarray) -> dict[str, float]:
        order = list(detectors.items())
        if len(cpu_ms["this"]) % 2:
            order.reverse()  # taking turns to go first
        scores = {}
        for key, detect in order:
            started = time.process_time()
            scores[key] = detect(picture).score
            cpu_ms[key].append(1000 * (time.process_time() - started))
        if len({s >= PRESENT_SCORE for s in scores.values()}) > 1:
            differ.append(f"{what}, {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
        return scores

    font = str(label_font_path())
    dejavu = next(
        iter(glob.glob(str(Path(np.__file__).parents[1] / "matplotlib/mpl-data/fonts/ttf/DejaVuSans-Bold.ttf"))), None
    )
    texts = {
        "caption in the label's font": ("오늘의 무대 · Today's stage", font, (0.3, 0.72)),
        "Korean + English words, label's font": ("AI 기술 세미나 · AI seminar", font, (0.25, 0.7)),
        "'AI 생성 콘텐츠', label's font": ("AI 생성 콘텐츠", font, (0.35, 0.1)),
    }
    if dejavu:
        texts["another product's 'AI-generated' (DejaVu)"] = ("AI-generated", dejavu, (0.6, 0.85))
        texts["news ticker (DejaVu)"] = ("BREAKING NEWS 속보 | LIVE", dejavu, (0.05, 0.85))
    for source, rgb, video in pictures:
        marked = labelled(rgb, video)
        for name, transform in TRANSFORMS.items():
            for key, score in search(f"{source} labelled", name, transform(marked)).items():
                found_rates[key].setdefault(name, []).append(score)
            for key, score in search(f"{source} unlabelled", name, transform(rgb)).items():
                clean_scores[key].setdefault(name, []).append(score)
        for name, (text, path, at) in texts.items():
            for key, score in search(source, name, other_text(rgb, text, path, at)).items():
                text_scores[key].setdefault(name, []).append(score)

    for key in detectors:
        print(f"\n[{key} detector] threshold PRESENT_SCORE = {PRESENT_SCORE}")
        print(f"{'transform':32s} {'labelled found':>15s} {'min score':>10s} {'unlabelled FP':>14s} {'max score':>10s}")
        for name in TRANSFORMS:
            p, n = np.array(found_rates[key][name]), np.array(clean_scores[key][name])
            print(
                f"{name:32s} {np.mean(p >= PRESENT_SCORE):15.3f} {p.min():10.3f} "
                f"{int((n >= PRESENT_SCORE).sum()):>7d}/{n.size:<6d} {n.max():10.3f}"
            )
        all_pos = np.concatenate([np.array(v) for v in found_rates[key].values()])
        all_neg = np.concatenate([np.array(v) for v in clean_scores[key].values()])
        print(
            f"{'all labelled copies':32s} {np.mean(all_pos >= PRESENT_SCORE):15.3f} {all_pos.min():10.3f} "
            f"{int((all_neg >= PRESENT_SCORE).sum()):>7d}/{all_neg.size:<6d} {all_neg.max():10.3f}"
        )
        print("other text drawn like the label (false positives):")
        for name, scores in text_scores[key].items():
            s = np.array(scores)
            print(f"  {name:44s} {int((s >= PRESENT_SCORE).sum())}/{s.size} found, max score {s.max():.3f}")
        neg = np.concatenate([all_neg, *[np.array(v) for v in text_scores[key].values()]])
        print("threshold sweep (found / false positives):")
        for threshold in (0.45, 0.5, 0.55, PRESENT_SCORE, 0.6, 0.65):
            print(
                f"  {threshold:.2f}: {np.mean(all_pos >= threshold):.3f} found, "
                f"{int((neg >= threshold).sum())}/{neg.size} false positives"
            )
        times = np.array(cpu_ms[key])
        print(f"CPU ms per picture: median {np.median(times):.1f}, mean {times.mean():.1f} ({times.size} searches)")
    if compared is not None:
        print(f"\npictures the two detectors decide differently: {len(differ)}")
        for line in differ:
            print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--skip-detection", action="store_true")
    parser.add_argument(
        "--compare-detector", type=Path, help="another label_detect.py searching the same pictures, side by side"
    )
    args = parser.parse_args(argv)
    compared = None
    if args.compare_detector:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from watermark import load_watermark_module

        compared = load_watermark_module(args.compare_detector)
    cost(args.repeats, compared)
    if not args.skip_detection:
        detection(args.media if args.media.is_dir() else None, compared)
    return 0


if __name__ == "__main__":
    sys.exit(main())
