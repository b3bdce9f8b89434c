"""Train the learned manipulation detector (Self-Blended Images on pristine faces).

    PYTHONPATH=src .venv/bin/python scripts/train_detector.py --real ../shared/media/portraits/congress_pd \
        --out detector-general [--steps 800] [--scratch] [--work detector-work]

Every image in the ``--real`` folders must be an authentic (unmanipulated) photo or frame; one
face per file is used, and each file is its own identity unless ``--identity-from-folder`` says
the folder name is. One identity in seven, by name order, is held out for the card's validation
figures, calibration and threshold. Resumes from WORK/checkpoint.pt when it exists. Trains on the
CPU with ``--threads`` threads at 128 px.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from likeness.detector.train import CARD_FILE, MODEL_FILE, DetectorTrainConfig, align_paths, train_detector

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, nargs="+", required=True, help="folders of authentic face images")
    parser.add_argument("--out", type=Path, required=True, help="where detector.onnx and its card go")
    parser.add_argument("--steps", type=int, default=DetectorTrainConfig.steps)
    parser.add_argument("--batch", type=int, default=DetectorTrainConfig.batch)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scratch", action="store_true", help="random initialisation (the benchmark's baseline)")
    parser.add_argument("--target-fpr", type=float, default=DetectorTrainConfig.target_fpr)
    parser.add_argument("--identity-from-folder", action="store_true")
    parser.add_argument("--train-only", type=Path, nargs="*", default=[],
                        help="folders of authentic faces used for training only, never held out (e.g. frames of "
                             "an artist's own footage for a fine-tune)")
    parser.add_argument("--init", type=Path, help="fine-tune from this detector checkpoint.pt")
    parser.add_argument("--work", type=Path, default=Path("detector-work"), help="checkpoint folder")
    args = parser.parse_args(argv)
    paths = sorted(p for folder in args.real for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    identity = (lambda p: p.parent.name) if args.identity_from_folder else (lambda p: p.stem)
    identities = sorted({identity(p) for p in paths})
    if len(identities) < 14:
        print(f"need at least 14 identities, found {len(identities)}", file=sys.stderr)
        return 2
    held_out = set(identities[::7])
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("{task.fields[note]}"), TimeRemainingColumn()) as bar:
        task = bar.add_task("align", total=len(paths), note="")
        faces = align_paths(paths, identity_of=identity, progress=lambda d, t: bar.update(task, completed=d))
        extra = sorted(p for folder in args.train_only for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        own = align_paths(extra, identity_of=lambda p: f"train-only:{p.parent.name}")
        train = [f for f in faces if f.identity not in held_out] + own
        validation = [f for f in faces if f.identity in held_out]
        bar.update(task, description="train", completed=0, total=args.steps)
        card = train_detector(
            train, validation, args.work,
            config=DetectorTrainConfig(steps=args.steps, batch=args.batch, threads=args.threads,
                                       pretrained=not args.scratch, target_fpr=args.target_fpr,
                                       init_checkpoint=str(args.init) if args.init else None),
            model_id="likeness.detector.sbi-scratch" if args.scratch else
                     "likeness.detector.sbi-finetune" if args.init else "likeness.detector.sbi",
            data_note=f"{len(train) - len(own)} faces from {', '.join(f.name for f in args.real)}"
                      f"{f' and {len(own)} from ' + ', '.join(f.name for f in args.train_only) if own else ''}; "
                      f"{len(validation)} faces of {len(held_out)} held-out identities for validation",
            progress=lambda d, t, loss: bar.update(task, completed=d, note=f"loss {loss:.3f}"))
    args.out.mkdir(parents=True, exist_ok=True)
    for name in (MODEL_FILE, CARD_FILE):
        shutil.copyfile(args.work / name, args.out / name)
    print(card["validation"], card["calibration"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
