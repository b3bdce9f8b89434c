"""Train the learned manipulation detector (Self-Blended Images on pristine faces).

    PYTHONPATH=src .venv/bin/python scripts/train_detector.py --real ../shared/media/portraits/congress_pd \
        --out DIR [--steps 700] [--work detector-work] [--train-only ARTIST_FRAMES...] \
        [--from-imagenet | --scratch | --init CHECKPOINT]

Training starts from the general detector shipped in the package (``likeness.detector.general``:
an agency fine-tune) unless ``--from-imagenet`` (the ImageNet backbone: how the general model
itself is trained, then packaged by scripts/ship_general_detector.py), ``--scratch`` (random
initialisation, the benchmark's baseline) or ``--init`` (another detector's checkpoint) says
otherwise.

Every image under ``--real`` must be an authentic (unmanipulated) photo or frame; one face per
file is used, and each file is its own identity unless ``--identity-from-folder`` says the folder
name is. One identity in seven, by name order, is held out for the card's validation figures,
calibration and threshold. Resumes from WORK/checkpoint.pt when it exists. Trains on the CPU with
``--threads`` threads at 128 px. ``likeness detector train`` runs the same function.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from likeness.detector.train import CARD_FILE, MODEL_FILE, DetectorTrainConfig, train_from_folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, nargs="+", required=True, help="folders of authentic face images")
    parser.add_argument("--out", type=Path, required=True, help="where detector.onnx and its card go")
    parser.add_argument("--steps", type=int, default=DetectorTrainConfig.steps)
    parser.add_argument("--batch", type=int, default=DetectorTrainConfig.batch)
    parser.add_argument("--threads", type=int, default=1)
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--from-imagenet",
        action="store_true",
        help="start from the ImageNet backbone (how the general model is trained)",
    )
    start.add_argument("--scratch", action="store_true", help="random initialisation (the benchmark's baseline)")
    start.add_argument("--init", type=Path, help="fine-tune from this detector checkpoint.pt")
    parser.add_argument("--target-fpr", type=float, default=DetectorTrainConfig.target_fpr)
    parser.add_argument("--identity-from-folder", action="store_true")
    parser.add_argument(
        "--train-only",
        type=Path,
        nargs="*",
        default=[],
        help="folders of authentic faces used for training only, never held out (e.g. frames of "
        "an artist's own footage for a fine-tune)",
    )
    parser.add_argument("--work", type=Path, default=Path("detector-work"), help="checkpoint folder")
    args = parser.parse_args(argv)
    config = DetectorTrainConfig(
        steps=args.steps,
        batch=args.batch,
        threads=args.threads,
        start="scratch" if args.scratch else "imagenet" if args.from_imagenet else "general",
        target_fpr=args.target_fpr,
        init_checkpoint=str(args.init) if args.init else None,
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[note]}"),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("align", total=None, note="")
        card = train_from_folders(
            args.real,
            args.work,
            train_only=args.train_only,
            identity_from_folder=args.identity_from_folder,
            config=config,
            progress=lambda stage, d, t, loss: bar.update(
                task, description=stage, completed=d, total=t, note=f"loss {loss:.3f}" if stage == "train" else ""
            ),
        )
    args.out.mkdir(parents=True, exist_ok=True)
    for name in (MODEL_FILE, CARD_FILE):
        shutil.copyfile(args.work / name, args.out / name)
    print(card["validation"], card["calibration"])
    return 0


if __name__ == "__main__":
    from likeness.cli.native_logs import filter_native_stderr

    filter_native_stderr()  # MediaPipe's TFLite/absl lines, as the CLI drops them
    raise SystemExit(main())
