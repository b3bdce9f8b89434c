"""Package a trained general detector into the product: ``src/likeness/detector/general/``.

    PYTHONPATH=src .venv/bin/python scripts/train_detector.py --real ../shared/media/portraits/congress_pd \
        --from-imagenet --out detector-general --work work-general --steps 700 --threads 1
    PYTHONPATH=src .venv/bin/python scripts/ship_general_detector.py --trained detector-general \
        --work work-general --real ../shared/media/portraits/congress_pd --out src/likeness/detector/general

Writes three files:

- ``detector.weights.pt``: the network's float32 state dict (no optimiser, schedule or RNG)
  without MobileNetV2's ImageNet classifier, which the detector never runs and training never
  changes (checked here): what ``likeness detector train`` starts a fine-tune from;
- ``detector.onnx``: the trained ONNX file, unchanged;
- ``detector.card.json``: the trained card plus the shipped files' sha256, the storage, the
  intended use, the gate figures measured for the general model and the rerun command.

Float16 storage was measured and rejected: it moves held-out logits by up to 0.094 (state dict) and
0.02 (ONNX), against a tolerance of 1e-3. The script measures, on the held-out faces (the same
one-in-seven split as training, each pristine and self-blended), how far the network loaded from
the shipped weights scores from the trained ONNX, and writes nothing beyond ``--tolerance``. Then
put the two sha256 it prints into ``likeness.assets``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from likeness.detector.general import UNUSED_IMAGENET_HEAD, WEIGHTS_FILE
from likeness.detector.train import CARD_FILE, MODEL_FILE
from likeness.digests import sha256_file

#: The module docstring's two commands (its line continuations are joined by Python already).
RERUN = [" ".join(line.split()) for line in (__doc__ or "").split("\n\n")[1].splitlines()]
INTENDED_USE = "base for agency fine-tunes; not used by verify: fails the gates, see docs/detector.md"

#: The general model's figures from docs/detector.md, *Evaluation* (tables 2 and 3): the product's
#: own swaps of the idols onto the actor, 8 fake and 4 real clips per condition (video AUC), and
#: the share of authentic clips over the threshold (target 0.05, gate <= 0.075).
GATE_FIGURES: dict[str, Any] = {
    "run": "benchmarks/detector.py of 2026-12-06 (docs/detector.md, Evaluation, tables 2 and 3), on the "
    "general model trained 2026-12-05 by the same command (ONNX sha256 "
    "1e525a49007799c53d5c5ffc030eba759376efc59d3d3dfb348fffd868e73112). The model shipped on 2026-12-06 was "
    "retrained by the same command, data and seed: its ONNX initializers are bit-identical to that file's "
    "(the bytes differ in the graph's serialisation only), so the figures are of these weights",
    "limits": {
        "video_auc": ">= 0.90 on unseen swaps",
        "beats_face_size": ">= +0.10 video AUC",
        "beats_high_frequency_energy": ">= +0.10 video AUC",
        "authentic_false_positive_rate": "<= 1.5 x target 0.05 = 0.075",
    },
    "conditions": [
        {
            "condition": "CRF 23",
            "video_auc": 0.312,
            "face_size_video_auc": 0.781,
            "high_frequency_energy_video_auc": 0.594,
            "actor_clips_flagged": 1.00,
            "portrait_clips_flagged": 0.33,
        },
        {
            "condition": "CRF 28",
            "video_auc": 0.469,
            "face_size_video_auc": 0.750,
            "high_frequency_energy_video_auc": 0.562,
            "actor_clips_flagged": 1.00,
            "portrait_clips_flagged": 0.33,
        },
        {
            "condition": "CRF 35",
            "video_auc": 0.406,
            "face_size_video_auc": 0.781,
            "high_frequency_energy_video_auc": 0.531,
            "actor_clips_flagged": 1.00,
            "portrait_clips_flagged": 0.33,
        },
        {
            "condition": "0.5x, CRF 23",
            "video_auc": 0.469,
            "face_size_video_auc": 0.750,
            "high_frequency_energy_video_auc": 0.688,
            "actor_clips_flagged": 1.00,
            "portrait_clips_flagged": 0.33,
        },
    ],
    "holds": {
        "video_auc": False,
        "beats_face_size": False,
        "beats_high_frequency_energy": False,
        "authentic_false_positive_rate": False,
    },
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


def onnx_logits(path: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: batch})[0][:, 0], np.float64)


def held_out_crops(real: list[Path]) -> np.ndarray:
    """The validation crops of training: held-out identities, each pristine and self-blended."""
    from likeness.detector.train import align_paths, held_out_identities, image_paths, to_tensor_batch, validation_set

    paths = image_paths(real)
    held_out = held_out_identities([p.stem for p in paths])
    samples = align_paths([p for p in paths if p.stem in held_out])
    crops, _ = validation_set(samples)
    return to_tensor_batch(list(crops))


def main(argv: list[str] | None = None) -> int:
    import torch

    from likeness.detector.network import build_detector
    from likeness.train.checkpoint import load_checkpoint, save_checkpoint

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trained", type=Path, required=True, help="scripts/train_detector.py --out folder")
    parser.add_argument("--work", type=Path, required=True, help="its --work folder (checkpoint.pt)")
    parser.add_argument("--real", type=Path, nargs="+", required=True, help="the --real folders it trained on")
    parser.add_argument("--out", type=Path, default=Path("src/likeness/detector/general"))
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest logit difference accepted")
    args = parser.parse_args(argv)

    card = json.loads((args.trained / CARD_FILE).read_text())
    if card["training"].get("start", "imagenet") != "imagenet" or card["training"].get("init_checkpoint"):
        raise SystemExit("the general model is trained from the ImageNet backbone (--from-imagenet)")
    if not card["training"].get("files_sha256"):
        raise SystemExit("the trained card lists no training files (training.files_sha256): retrain")
    checkpoint = load_checkpoint(args.work / "checkpoint.pt")
    if checkpoint["step"] != card["training"]["steps"]:
        raise SystemExit(f"{args.work}: checkpoint at step {checkpoint['step']}, card says {card['training']['steps']}")

    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        weights = shipped_state(checkpoint["net"])
        save_checkpoint(staged / WEIGHTS_FILE, {"net": weights})
        shutil.copyfile(args.trained / MODEL_FILE, staged / MODEL_FILE)
        if sha256_file(staged / MODEL_FILE) != card["sha256"]:
            raise SystemExit(f"{args.trained / MODEL_FILE} is not the file its card names")

        batch = held_out_crops(args.real)
        trained = onnx_logits(args.trained / MODEL_FILE, batch)
        net = build_detector(pretrained=True)  # the ImageNet head the file leaves out
        net.load_state_dict(weights, strict=False)
        net.eval()
        with torch.no_grad():
            reloaded = net(torch.from_numpy(batch))[:, 0].double().numpy()
        difference = float(np.abs(reloaded - trained).max())
        print(
            f"largest |logit difference|, shipped weights against the trained ONNX on {len(batch)} crops: {difference}"
        )
        if difference > args.tolerance:
            raise SystemExit(f"the shipped weights move a logit by more than {args.tolerance}: not shipped")

        shipped = dict(card)
        shipped["files"] = {name: sha256_file(staged / name) for name in (MODEL_FILE, WEIGHTS_FILE)}
        shipped["storage"] = {
            "onnx": f"{MODEL_FILE}: the trained file, unchanged (sha256 above)",
            "weights": f"{WEIGHTS_FILE}: the network's float32 state dict without the ImageNet classifier "
            f"({', '.join(sorted(UNUSED_IMAGENET_HEAD))}: never run by the detector, never trained, taken from the "
            "ImageNet weights at load); no optimiser state",
            "largest_abs_logit_difference_weights_vs_onnx": round(difference, 7),
            "measured_on": f"{len(batch)} crops: the held-out faces, each pristine and self-blended "
            "(PyTorch on the loaded weights against ONNX Runtime on the ONNX file)",
            "float16_rejected": "float16 storage moved these logits by up to 0.094 (state dict) and 0.020 (ONNX initializers), "
            "over the 1e-3 tolerance",
        }
        shipped["intended_use"] = INTENDED_USE
        shipped["gate_figures"] = GATE_FIGURES
        shipped["rerun"] = RERUN
        (staged / CARD_FILE).write_text(json.dumps(shipped, indent=2) + "\n")

        args.out.mkdir(parents=True, exist_ok=True)
        for name in (MODEL_FILE, WEIGHTS_FILE, CARD_FILE):
            shutil.copyfile(staged / name, args.out / name)
    for name in (WEIGHTS_FILE, CARD_FILE):
        print(f"{args.out / name}: {sha256_file(args.out / name)} ({(args.out / name).stat().st_size} bytes)")
    print(f"{args.out / MODEL_FILE}: {(args.out / MODEL_FILE).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
