"""Train the occlusion mask the product ships (likeness/faces/weights/occlusion_mask.*).

    .venv/bin/python scripts/train_occlusion_mask.py ../shared/media/portraits/congress_pd \
        --exclude-list benchmarks/occlusion_glasses_congress_pd.txt \
        --out src/likeness/faces/weights [--steps 3000] [--init OLD.onnx]

The folder holds pristine, public-domain portraits (this project used the development media's
official congressional portraits without glasses; real glasses would be labelled "face" and
contradict the synthetic ones). One face in seven, by file name order, is held out for the
card's validation figures. Resumes from WORK/checkpoint.pt when it exists. ``--init`` starts
from earlier weights of this network (a copy of the shipped ONNX file) and fine-tunes them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from likeness.errors import LikenessError
from likeness.train.occlusion import OcclusionTrainConfig, align_faces, train_occlusion_mask

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("faces", type=Path, help="folder of portraits")
    parser.add_argument("--out", type=Path, required=True, help="where the ONNX file and its card go")
    parser.add_argument(
        "--exclude-list", type=Path, help="file names to leave out, one per line (e.g. wearing glasses)"
    )
    parser.add_argument("--steps", type=int, default=OcclusionTrainConfig.steps)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=OcclusionTrainConfig.learning_rate)
    parser.add_argument("--init", type=Path, help="ONNX weights of this network to fine-tune (a copy, not --out's)")
    parser.add_argument("--work", type=Path, default=Path("occlusion-work"), help="checkpoint folder")
    args = parser.parse_args(argv)
    try:
        return train(args)
    except (LikenessError, OSError) as exc:  # a refused checkpoint, a missing folder: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def train(args: argparse.Namespace) -> int:
    if not args.faces.is_dir():
        raise FileNotFoundError(f"{args.faces}: not a folder of portraits")
    excluded = set(args.exclude_list.read_text().split()) if args.exclude_list else set()
    paths = sorted(p for p in args.faces.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.name not in excluded)
    if len(paths) < 14:
        print(f"{args.faces}: need at least 14 portraits, found {len(paths)}", file=sys.stderr)
        return 2
    held_out = paths[::7]
    training = [p for p in paths if p not in set(held_out)]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[note]}"),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("align", total=len(paths), note="")
        train = align_faces(training, progress=lambda d, t: bar.update(task, completed=d))
        validation = align_faces(held_out, progress=lambda d, t: bar.update(task, completed=len(training) + d))
        bar.update(task, description="train", completed=0, total=args.steps)
        card = train_occlusion_mask(
            train,
            validation,
            args.work,
            config=OcclusionTrainConfig(
                steps=args.steps,
                threads=args.threads,
                learning_rate=args.learning_rate,
                init_onnx=str(args.init or ""),
            ),
            data_note=f"{len(training)} portraits of {args.faces.name} (public domain), {len(excluded)} excluded "
            f"(glasses); {len(held_out)} held out; every face aligned in coverages f, wf and head",
            progress=lambda d, t, loss: bar.update(task, completed=d, note=f"loss {loss:.3f}"),
        )
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("occlusion_mask.onnx", "occlusion_mask.card.json"):
        shutil.copyfile(args.work / name, args.out / name)
    for size, table in card["validation"]["figures"].items():
        for kind, figures in table.items():
            print(f"{size:>4s} px {kind:12s} {figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
