"""Diagnostic: how a still's half-resolution screen scores against the full-resolution fold.

For every copy of the stills benchmark (``watermark.py``: its pictures, render sizes and
transforms, marked as the writer marks stills) and for unmarked images from its false-mark
generator, the strongest pilot peak (z) over the reader's candidate periods and the pilot
search's grid, once on the screen (``_screen_strength``) and once on full folds at the same
periods. Reports the per-image gap, the weakest marked copies on the screen, and how many
unmarked images reach ``SCREEN_THRESHOLD`` (those are read in full). Uses the reader's private
functions on purpose (a diagnostic, not an API).

Usage (from the repository root)::

    .venv/bin/python benchmarks/watermark_screen.py --stills 5 --unmarked 400
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from likeness.provenance import watermark as wm  # noqa: E402
from likeness.provenance.visible_label import VisibleLabel  # noqa: E402
from watermark import (  # noqa: E402  (the stills benchmark's media and transforms)
    RESOLUTIONS,
    STILL_TRANSFORMS,
    Ours,
    false_mark_images,
    fit_frame,
    source_pictures,
)


def best_peaks(rgb: np.ndarray) -> tuple[float, float]:
    """(screen, full): the strongest pilot z over the candidate periods and the search grid."""
    geometry = wm._geometry(rgb)
    work = wm._work_luma(rgb, geometry)
    whitened = wm._whiten(work)
    screen = wm._screen_strength([wm._screen_image(whitened)])
    periods = wm._candidate_periods(work, whitened, geometry.uncropped_period)
    periods += wm._search_grid(geometry.uncropped_period)
    full = [max(wm._pilot_strengths([wm._fold_at_period(work, p, whitened)[0]])) for p in periods]
    return max(screen(p) for p in periods), max(full)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stills", type=int, default=5, help="pictures per resolution")
    parser.add_argument("--unmarked", type=int, default=400, help="unmarked images from the false-mark generator")
    parser.add_argument("--media", type=Path, default=None, help="extra pictures for both (benchmark only)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    marked: list[tuple[float, float, str]] = []
    ours = Ours()
    rng = np.random.default_rng(args.seed)
    for resolution, (width, height) in RESOLUTIONS.items():
        label = VisibleLabel(width, height, "bottom-right")
        for name, picture in source_pictures(args.media, args.stills).items():
            frame = label.apply(fit_frame(picture, width, height))
            copy = ours.embed(frame, rng.integers(0, 2, 64).astype(np.uint8))
            for transform, op in STILL_TRANSFORMS.items():
                screen, full = best_peaks(np.ascontiguousarray(op(copy)))
                marked.append((screen, full, f"{resolution} {name} {transform}"))
    unmarked = [best_peaks(rgb) for _, rgb in false_mark_images(args.unmarked, args.media, args.seed + 7)]
    gaps = [full - screen for screen, full, _ in marked] + [full - screen for screen, full in unmarked]
    print(
        f"per image, best full z - best screen z: mean {statistics.fmean(gaps):.2f}, "
        f"s.d. {statistics.pstdev(gaps):.2f}, range [{min(gaps):.2f}, {max(gaps):.2f}] over {len(gaps)} images"
    )
    print(f"marked copies: {len(marked)}; weakest on the screen (screen z, full z):")
    for screen, full, name in sorted(marked)[:5]:
        print(f"  {screen:.2f}  {full:.2f}  {name}")
    screens = sorted(screen for screen, _ in unmarked)
    passed = sum(screen >= wm.SCREEN_THRESHOLD for screen in screens)
    print(
        f"unmarked: {len(screens)} images; screen z median {statistics.median(screens):.2f}, "
        f"max {screens[-1]:.2f}; {passed} ({passed / len(screens):.1%}) reach SCREEN_THRESHOLD "
        f"{wm.SCREEN_THRESHOLD} and are read in full; full-fold z >= {wm.SYNC_THRESHOLD} on "
        f"{sum(full >= wm.SYNC_THRESHOLD for _, full in unmarked)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
