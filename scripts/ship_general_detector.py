"""Package a trained general detector into the product: ``src/likeness/detector/general/``.

    PYTHONPATH=src .venv/bin/python scripts/train_detector.py --real ../shared/media/portraits/congress_pd \
        --from-imagenet --out detector-general --work work-general --steps 700 --threads 1
    PYTHONPATH=src .venv/bin/python scripts/ship_general_detector.py --trained detector-general \
        --work work-general --real ../shared/media/portraits/congress_pd --out src/likeness/detector/general
    PYTHONPATH=src .venv/bin/python -m likeness.cli detector export-general --out general-export
    PYTHONPATH=src .venv/bin/python benchmarks/detector.py --media ../shared/media --detector general-export \
        --scratch detector-scratch --segments 4 --frames 32 --train-minutes 1.5 --json general-gates.json
    PYTHONPATH=src .venv/bin/python scripts/ship_general_detector.py --trained detector-general \
        --work work-general --real ../shared/media/portraits/congress_pd --out src/likeness/detector/general \
        --gate-figures general-gates.json

(``detector-scratch``: ``scripts/train_detector.py ... --scratch``, the benchmark's baseline.)
Then put the two sha256 and sizes it prints into ``likeness.assets``. Writes two files:

- ``detector.weights.pt``: the trained state dict without MobileNetV2's ImageNet classifier (never
  run by the detector, never changed by training: checked here), stored half precision as
  ``likeness.detector.general.HALF_PRECISION_RULE`` says (4.5 MB instead of 9.1 MB; no optimiser);
- ``detector.card.json``: the trained card with its ``calibration`` and ``validation`` measured
  again on the shipped (rounded) weights, the same held-out faces and code as training, plus the
  weights' sha256, how they are stored and how far rounding moved the held-out logits, the intended
  use, the gates worked out from a benchmark run on it and the rerun commands.

The shipped model is the rounded weights: nothing of the float32 ones is kept.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from likeness.detector.general import HALF_PRECISION_RULE, UNUSED_IMAGENET_HEAD, WEIGHTS_FILE
from likeness.detector.train import CARD_FILE
from likeness.digests import sha256_file

#: The module docstring's two commands (its line continuations are joined by Python already).
RERUN = [" ".join(line.split()) for line in (__doc__ or "").split("\n\n")[1].splitlines()]
INTENDED_USE = "base for agency fine-tunes; not used by verify: fails the gates, see docs/detector.md"


def gate_figures(benchmark: dict[str, Any], calibration: dict[str, Any], source: str) -> dict[str, Any]:
    """The gates of ``likeness.detector.evaluation`` per condition and footage of a ``benchmarks/detector.py
    --json`` run whose ``--detector`` was this model (its first model, checked by calibration).
    The false-positive figure is the largest video rate of any authentic group (actor, generated,
    portrait) under that condition; a gate holds only if it holds in every row (the worst case)."""
    from likeness.detector.evaluation import gate_results

    name, measured = next(iter(benchmark["models"].items()))
    if measured["calibration"] != calibration:
        raise SystemExit(
            f"{source}: its first model is not this one (calibration differs): run the benchmark on "
            "the folder likeness detector export-general writes"
        )
    conditions, holds = [], {}
    for condition, per_footage in benchmark["swaps"].items():
        if name in per_footage:  # a run from before the generated footage: the actor's only
            per_footage = {"actor": per_footage}
        flagged = {
            group: round(figures[name]["video_fpr"], 3)
            for group, figures in benchmark["authentic_fpr"][condition].items()
        }
        for footage, swaps in per_footage.items():
            figures = {
                "footage": footage,
                "condition": condition,
                "video_auc": round(swaps[name]["video_auc"], 3),
                "face_size_video_auc": round(swaps["face size"]["video_auc"], 3),
                "high_frequency_energy_video_auc": round(swaps["high-frequency energy"]["video_auc"], 3),
                "authentic_clips_flagged": flagged,
            }
            gates = gate_results(
                video_auc=swaps[name]["video_auc"],
                face_size_video_auc=swaps["face size"]["video_auc"],
                high_frequency_video_auc=swaps["high-frequency energy"]["video_auc"],
                authentic_video_fpr=max(flagged.values()),
                fake_video_recall=float("nan"),  # not in the benchmark's output
                target_fpr=float(calibration["target_false_positive_rate"]),
            )
            for gate in gates:
                if gate["gate"] != "fake_recall":
                    holds[gate["gate"]] = holds.get(gate["gate"], True) and gate["holds"]
            conditions.append(figures)
    return {
        "run": f"benchmarks/detector.py --json {Path(source).name} on the folder likeness detector export-general wrote "
        f"from these weights (ONNX sha256 {measured['sha256']}): the product's own swaps onto the actor and onto a "
        "generated talking clip, each against its own untouched segments, re-encoded per condition; "
        "docs/detector.md, *Gate figures of the shipped model*",
        "limits": {
            "video_auc": ">= 0.90 on unseen swaps, on each footage",
            "beats_face_size": ">= +0.10 video AUC",
            "beats_high_frequency_energy": ">= +0.10 video AUC",
            "authentic_false_positive_rate": "<= 1.5 x the target false-positive rate, every authentic group",
        },
        "conditions": conditions,
        "holds": holds,
    }


def shipped_state(state: dict[str, Any]) -> dict[str, Any]:
    """The trained state dict less the ImageNet classifier, refused if training changed it."""
    import torch

    from likeness.detector.network import imagenet_weights_path

    imagenet = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    for key in UNUSED_IMAGENET_HEAD:
        if not torch.equal(state[key], imagenet[key.removeprefix("backbone.")]):
            raise SystemExit(f"{key} differs from the ImageNet weights: ship the whole state dict")
    return {k: v for k, v in state.items() if k not in UNUSED_IMAGENET_HEAD}


def held_out_faces(real: list[Path]) -> list[Any]:
    """The validation faces of training: the held-out identities, aligned as training aligns them."""
    from likeness.detector.train import align_paths, held_out_identities, image_paths

    paths = image_paths(real)
    held_out = held_out_identities([p.stem for p in paths])
    return align_paths([p for p in paths if p.stem in held_out])


def logits_of(net: Any, faces: list[Any], config: Any) -> np.ndarray:
    from likeness.detector.train import _predict_logits, validation_set

    crops, _ = validation_set(faces, options=config.sbi)
    return np.asarray(_predict_logits(net, crops), np.float64)


def main(argv: list[str] | None = None) -> int:
    from likeness.detector.general import half_precision, network_from_weights
    from likeness.detector.sbi import SbiOptions
    from likeness.detector.train import DetectorTrainConfig, calibrate
    from likeness.train.checkpoint import load_checkpoint, save_checkpoint

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trained", type=Path, required=True, help="scripts/train_detector.py --out folder")
    parser.add_argument("--work", type=Path, required=True, help="its --work folder (checkpoint.pt)")
    parser.add_argument("--real", type=Path, nargs="+", required=True, help="the --real folders it trained on")
    parser.add_argument("--out", type=Path, default=Path("src/likeness/detector/general"))
    parser.add_argument(
        "--gate-figures",
        type=Path,
        help="benchmarks/detector.py --json output of a run on this model: ship once without it, run "
        "likeness detector export-general and the benchmark, then ship again with it (the weights come out the same)",
    )
    args = parser.parse_args(argv)

    card = json.loads((args.trained / CARD_FILE).read_text())
    training = card["training"]
    if training.get("start", "imagenet") != "imagenet" or training.get("init_checkpoint"):
        raise SystemExit("the general model is trained from the ImageNet backbone (--from-imagenet)")
    if not training.get("files_sha256"):
        raise SystemExit("the trained card lists no training files (training.files_sha256): retrain")
    checkpoint = load_checkpoint(args.work / "checkpoint.pt")
    if checkpoint["step"] != training["steps"]:
        raise SystemExit(f"{args.work}: checkpoint at step {checkpoint['step']}, card says {training['steps']}")
    config = DetectorTrainConfig(
        target_fpr=float(training["target_fpr"]), sbi=SbiOptions(**training["sbi"]), seed=int(training["seed"])
    )

    faces = held_out_faces(args.real)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / WEIGHTS_FILE
        trained_state = shipped_state(checkpoint["net"])
        save_checkpoint(staged, {"net": trained_state})
        before = logits_of(network_from_weights(staged), faces, config)
        save_checkpoint(staged, {"net": half_precision(trained_state)})
        shipped_net = network_from_weights(staged)
        after = logits_of(shipped_net, faces, config)
        calibration, validation = calibrate(shipped_net, faces, config)
        weights = staged.read_bytes()

    moved = np.abs(after - before)
    print(
        f"rounding moved the {len(after)} held-out logits by median {np.median(moved):.4f}, at most {moved.max():.4f}; "
        f"SBI AUC {card['validation']['sbi_auc']} -> {validation['sbi_auc']}"
    )
    shipped = {k: v for k, v in card.items() if k not in ("file", "sha256")}  # no ONNX ships
    shipped["calibration"] = calibration
    shipped["validation"] = validation
    shipped["files"] = {WEIGHTS_FILE: None}  # filled in below, once written
    shipped["storage"] = {
        "weights": f"{WEIGHTS_FILE}: the network's state dict without the ImageNet classifier "
        f"({', '.join(sorted(UNUSED_IMAGENET_HEAD))}: never run by the detector, never trained, taken from the "
        f"ImageNet weights at load); {HALF_PRECISION_RULE}; no optimiser state",
        "onnx": "not shipped: likeness detector export-general writes one from the weights",
        "the_shipped_model": "the rounded weights, computed in float32: calibration and validation above were "
        "measured on them, the same held-out faces and code as training",
        "rounding_moved_held_out_logits": {
            "median": round(float(np.median(moved)), 5),
            "max": round(float(moved.max()), 5),
            "crops": len(after),
        },
        "float32_training_end": {"calibration": card["calibration"], "validation": card["validation"]},
    }
    shipped["intended_use"] = INTENDED_USE
    shipped["gate_figures"] = (
        gate_figures(json.loads(args.gate_figures.read_text()), calibration, str(args.gate_figures))
        if args.gate_figures
        else None  # the tests refuse a shipped card without them
    )
    shipped["rerun"] = RERUN

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / WEIGHTS_FILE).write_bytes(weights)
    shipped["files"] = {WEIGHTS_FILE: sha256_file(args.out / WEIGHTS_FILE)}
    (args.out / CARD_FILE).write_text(json.dumps(shipped, indent=2) + "\n")
    for name in (WEIGHTS_FILE, CARD_FILE):
        print(f"{args.out / name}: {sha256_file(args.out / name)} ({(args.out / name).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
