"""Pretrain the demo's base swap model (df_tiny, 64 px) on people composed by code, DeepFaceLab-style.

    PYTHONPATH=src .venv/bin/python scripts/train_base_model.py --out base-work [--people 24] [--minutes 20]

The training set is a seeded population of synthetic people (likeness.media.synthetic_identities:
random recipes over the two package portraits), each animated like the demo's footage
(``synthetic.animate_portrait``) and aligned with the product's detector. Members within
``--exclude-distance`` of the demo's Mina or Jun (dlib) are left out, so the demo's identities are
not in the pretraining set. Half the people train ``decoder_source``, the other half
``decoder_target``: both decoders learn to draw any such face, and a fine-tune on one subject
specialises them. Training runs through the product's own loop under a real grant and release in a
throw-away workspace (the population is nobody, but nothing trains without an Authorization).

Writes BASE/df_tiny_64_base.pt (the weight average's state dict) and df_tiny_64_base.card.json
(data, steps, figures, date, sha256); copy both to src/likeness/train/weights/ and update the
sha256 and size in likeness.assets.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

WEIGHTS_FILE = "df_tiny_64_base.pt"
CARD_FILE = "df_tiny_64_base.card.json"


def _population(people: int, frames: int, seed: int, exclude: float):
    from likeness.faces import FaceDetector, FaceEmbedder, align_face
    from likeness.media import synthetic
    from likeness.media.synthetic_identities import compose_recipe, population_recipe, synthetic_identity
    from likeness.train import FaceSamples

    detector, embedder = FaceDetector(max_faces=1), FaceEmbedder()

    def embedding(rgb: np.ndarray) -> np.ndarray | None:
        found = detector.detect(rgb)
        return embedder.embed(rgb, found[0].landmarks) if found else None

    demo = {name: embedding(synthetic_identity(name)) for name in ("mina", "jun")}
    kept: list[dict] = []
    halves: list[tuple[list, list]] = [([], []), ([], [])]
    index = 0
    while len(kept) < people and index < people * 3:
        recipe = population_recipe(index, seed=seed)
        index += 1
        portrait = compose_recipe(recipe)
        vector = embedding(portrait)
        if vector is None:
            continue
        nearest = {name: float(np.linalg.norm(vector - ref)) for name, ref in demo.items() if ref is not None}
        if min(nearest.values()) <= exclude:
            print(f"left out {recipe.name}: {nearest}", flush=True)
            continue
        images, points = halves[len(kept) % 2]
        for frame in synthetic.animate_portrait(portrait, n_frames=frames, size=(640, 360), seed=index):
            found = detector.detect(frame)
            if found:
                aligned = align_face(frame, found[0].landmarks, size=128)
                images.append(aligned.image)
                points.append(aligned.landmarks)
        kept.append({"name": recipe.name, "distance_to_demo": nearest})
        print(f"{recipe.name}: {nearest}", flush=True)
    samples = [FaceSamples(np.stack(i), np.stack(p).astype(np.float32)) for i, p in halves]
    return samples[0], samples[1], kept


def _consent(root: Path):
    from likeness.config import Settings
    from likeness.consent.canonical import now_utc
    from likeness.workspace import Workspace

    workspace = Workspace.init(Settings(home=root / "home"))
    registry = workspace.registry
    registry.add_org("likeness", "likeness (base model)")
    registry.add_subject("population-a", "Composed people, half A", kind="virtual_idol", owner_org="likeness")
    registry.add_subject("population-b", "Composed people, half B", kind="performer")
    until = now_utc() + timedelta(days=1)
    registry.issue_grant("population-a", "likeness", ["training"], valid_until=until, purpose="base model pretraining")
    registry.issue_release("population-b", "likeness", valid_until=until, purpose="base model pretraining")
    return (
        workspace,
        workspace.policy.authorize("population-a", "training", "likeness"),
        workspace.policy.authorize_release("population-b", "likeness"),
    )


def main(argv: list[str] | None = None) -> int:
    import torch

    from likeness.digests import sha256_file
    from likeness.train import TrainConfig, train_swap_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--people", type=int, default=24)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exclude-distance", type=float, default=0.5)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    half_a, half_b, people = _population(args.people, args.frames, args.seed, args.exclude_distance)
    print(f"faces: {half_a.count} + {half_b.count} from {len(people)} people in {time.time() - started:.0f} s")
    workspace, authz, release = _consent(args.out)
    config = TrainConfig(
        model="df_tiny",
        resolution=64,
        iterations=None,
        minutes=args.minutes,
        learning_rate=args.learning_rate,
        checkpoint_every=1000,
        preview_every=1000,
        identity_metrics=False,
        expression_metrics=False,
        threads=args.threads,
    )

    def show(event) -> None:
        if event.event != "step" or event.iteration % 100 == 0:
            print(
                f"it {event.iteration} {event.it_per_s:.2f} it/s loss {event.loss_source:.3f}/{event.loss_target:.3f}"
            )

    try:
        result = train_swap_model(
            authz, release, half_a, half_b, args.out / "run", config, workspace=workspace, progress=show
        )
    finally:
        workspace.close()
    state = torch.load(result.checkpoint_path, map_location="cpu", weights_only=False)
    weights = args.out / WEIGHTS_FILE
    torch.save(state.get("ema_state") or state["model_state"], weights)
    card = {
        "name": "df-tiny-64-base",
        "architecture": {"model": "df_tiny", "resolution": 64, "options": "registry defaults"},
        "data": {
            "what": "people composed by code from the two package portraits (likeness.media.synthetic_identities."
            "population_recipe), animated like the demo's footage, aligned by likeness.faces",
            "people": len(people),
            "frames_per_person": args.frames,
            "faces": {"decoder_source": half_a.count, "decoder_target": half_b.count},
            "seed": args.seed,
            "excluded_if_dlib_distance_to_demo_identities_at_most": args.exclude_distance,
            "members": people,
        },
        "training": {
            "iterations": result.iterations,
            "seconds": round(result.training_seconds),
            "batch_size": result.batch_size,
            "learning_rate": args.learning_rate,
            "device": result.device,
            "final_metrics": {k: v for k, v in result.metrics.items() if isinstance(v, float)},
        },
        "weights": {
            "file": WEIGHTS_FILE,
            "holds": "the weight average (EMA) of the final checkpoint",
            "dtype": "float32",
        },
        "sha256": sha256_file(weights),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "licence": "the product's own (trained by scripts/train_base_model.py)",
        "consent": "a fine-tune from these weights is a training run like any other: it needs a training "
        "Authorization for its subject and a release for its performer (likeness.train.base_model)",
    }
    (args.out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps({k: card[k] for k in ("training", "sha256")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
