"""Detector training's alignment stage: a full alignment, a rerun after a stop, and a rerun with
everything kept, in seconds.

    PYTHONPATH=src .venv/bin/python benchmarks/detector_align_resume.py \
        --portraits ../shared/media/portraits/congress_pd [--count 60] [--stopped-after 45]

Each row aligns the first ``--count`` portraits (by name, as ``likeness detector train`` lists
them) with ``likeness.detector.train.align_each`` into a store (``aligned-faces/``):

- ``full``: an empty store, every image aligned (and kept);
- ``rerun after a stop``: a store holding what a run stopped after ``--stopped-after`` images keeps
  (made by aligning those first, as the stopped run did), then the whole set again;
- ``rerun, all kept``: the whole set once more: hashing and reading the store only;
- ``no store``: every image aligned, nothing hashed or kept (the stage before this change).

The face detector is built inside each timed call (as in training), so its start-up counts; the
imports and the models' first load happen once before the rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from likeness.detector.aligned_store import ALIGNED_FOLDER, AlignedFaceStore  # noqa: E402
from likeness.detector.train import IMAGE_SUFFIXES, align_each, align_recipe  # noqa: E402


def _timed(paths: list[Path], store: AlignedFaceStore | None) -> tuple[float, int]:
    started = time.perf_counter()
    aligned = align_each(paths, [p.stem for p in paths], store=store)
    return time.perf_counter() - started, sum(s is not None for s in aligned)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--portraits", type=Path, required=True)
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--stopped-after", type=int, default=45)
    args = parser.parse_args()
    paths = sorted(p for p in args.portraits.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[: args.count]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "full").mkdir()
        full = AlignedFaceStore.open(Path(work) / "full" / ALIGNED_FOLDER, recipe=align_recipe())
        (Path(work) / "stopped").mkdir()
        stopped = AlignedFaceStore.open(Path(work) / "stopped" / ALIGNED_FOLDER, recipe=align_recipe())
        _timed(paths[:1], None)  # imports and the face models' first load, outside every row
        rows.append(("no store", len(paths), *_timed(paths, None)))
        rows.append(("full", len(paths), *_timed(paths, full)))
        align_each(paths[: args.stopped_after], [p.stem for p in paths[: args.stopped_after]], store=stopped)
        rows.append(
            (f"rerun after a stop at {args.stopped_after}", len(paths) - args.stopped_after, *_timed(paths, stopped))
        )
        rows.append(("rerun, all kept", 0, *_timed(paths, stopped)))
    print(f"{len(paths)} images from {args.portraits}")
    print(f"{'run':<28} {'aligned':>8} {'seconds':>8} {'faces':>6}")
    for name, aligned, seconds, faces in rows:
        print(f"{name:<28} {aligned:>8} {seconds:>8.2f} {faces:>6}")


if __name__ == "__main__":
    main()
