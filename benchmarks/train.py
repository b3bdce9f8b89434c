"""Training benchmarks: speed per family, ONNX inference, time to identity-transfer quality.

    .venv/bin/python benchmarks/train.py speed            # it/s and faces/s vs a plain autoencoder
    .venv/bin/python benchmarks/train.py onnx             # ONNX Runtime (2 threads) vs PyTorch eager
    .venv/bin/python benchmarks/train.py quality --minutes 30 [--media ../shared/media]

``quality`` trains ``df`` at 64 px on two synthetic people (DigiFace-1M id1_variety as the source
subject, id2_variety as the target performer; faces detected and aligned with likeness.faces), in a
throw-away workspace with a real grant and release, and prints identity transfer (dlib, calibrated
threshold) on held-out faces at every checkpoint. Reads media from ``--media`` only; writes to a
temporary folder (or ``--out``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from torch import nn

from likeness.models import count_parameters, create_model


def _median_step_seconds(step, *, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class PlainAutoencoder(nn.Module):
    """Reference: plain strided-conv encoder / transposed-conv decoder, width scaled to match params."""

    def __init__(self, resolution: int, width: int) -> None:
        super().__init__()
        low = resolution // 16
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 5, 2, 2), nn.LeakyReLU(0.1), nn.Conv2d(width, width * 2, 5, 2, 2), nn.LeakyReLU(0.1),
            nn.Conv2d(width * 2, width * 4, 5, 2, 2), nn.LeakyReLU(0.1), nn.Conv2d(width * 4, width * 8, 5, 2, 2),
            nn.LeakyReLU(0.1), nn.Flatten(), nn.Linear(width * 8 * low * low, 256),
            nn.Linear(256, width * 8 * low * low), nn.Unflatten(1, (width * 8, low, low)),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(width * 8, width * 8, 4, 2, 1), nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(width * 8, width * 4, 4, 2, 1), nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(width * 4, width * 2, 4, 2, 1), nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(width * 2, 4, 4, 2, 1), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _matched_plain(resolution: int, params: int) -> PlainAutoencoder:
    best = None
    for width in range(8, 257, 4):
        model = PlainAutoencoder(resolution, width)
        gap = abs(count_parameters(model) - params)
        if best is None or gap < best[0]:
            best = (gap, width)
        if count_parameters(model) > params:
            break
    return PlainAutoencoder(resolution, best[1])


def bench_speed(args: argparse.Namespace) -> None:
    from likeness.train.losses import reconstruction_loss

    torch.set_num_threads(args.threads)
    print(f"# training step speed, CPU, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"median of {args.repeats} steps after {args.warmup} warm-up; one iteration = B source + B target faces")
    print("| model | res | batch | params (M) | it/s | faces/s | plain AE it/s | plain AE params (M) | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("df", "liae"):
        for res in (64, 128):
            torch.manual_seed(0)
            model = create_model(name, resolution=res)
            plain = _matched_plain(res, count_parameters(model))
            for batch in (8, 16):
                x = torch.rand(batch, 3, res, res)
                mask = torch.ones(batch, 1, res, res)
                opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

                def ours() -> None:
                    a, am = model.reconstruct_source(x)
                    b, bm = model.reconstruct_target(x)
                    la, _ = reconstruction_loss(a, am, x, mask, mask)
                    lb, _ = reconstruction_loss(b, bm, x, mask, mask)
                    opt.zero_grad(set_to_none=True)
                    (la + lb).backward()
                    opt.step()

                plain_opt = torch.optim.AdamW(plain.parameters(), lr=1e-4)
                x2 = torch.cat([x, x])

                def reference() -> None:
                    out = plain(x2)
                    loss = ((out[:, :3] - x2) ** 2).mean() + ((out[:, 3:] - 1) ** 2).mean()
                    plain_opt.zero_grad(set_to_none=True)
                    loss.backward()
                    plain_opt.step()

                t_ours = _median_step_seconds(ours, warmup=args.warmup, repeats=args.repeats)
                t_ref = _median_step_seconds(reference, warmup=args.warmup, repeats=args.repeats)
                print(f"| {name} | {res} | {batch} | {count_parameters(model) / 1e6:.1f} | {1 / t_ours:.2f} | "
                      f"{2 * batch / t_ours:.1f} | {1 / t_ref:.2f} | {count_parameters(plain) / 1e6:.1f} | "
                      f"{t_ref / t_ours:.2f} |", flush=True)


def bench_onnx(args: argparse.Namespace) -> None:
    import onnxruntime as ort

    from likeness.train.export import _onnx_bytes

    torch.set_num_threads(2)
    print("# swap-path inference per face, batch 8, median of "
          f"{args.repeats} runs; onnxruntime CPU 2 threads vs PyTorch eager 2 threads")
    print("| model | res | onnx ms/face | torch ms/face | torch/onnx | max abs diff |")
    print("|---|---|---|---|---|---|")
    for name in ("df", "liae"):
        for res in (64, 128):
            torch.manual_seed(0)
            model = create_model(name, resolution=res).eval()
            options = ort.SessionOptions()
            options.intra_op_num_threads = 2
            session = ort.InferenceSession(_onnx_bytes(model, res), sess_options=options,
                                           providers=["CPUExecutionProvider"])
            faces = np.random.default_rng(0).random((8, 3, res, res), dtype=np.float32)
            tensor = torch.from_numpy(faces)
            with torch.no_grad():
                t_torch = _median_step_seconds(lambda: model(tensor), warmup=2, repeats=args.repeats)
                want = model(tensor)[0].numpy()
            t_onnx = _median_step_seconds(lambda: session.run(None, {"face": faces}), warmup=2, repeats=args.repeats)
            got = session.run(None, {"face": faces})[0]
            print(f"| {name} | {res} | {t_onnx / 8 * 1000:.2f} | {t_torch / 8 * 1000:.2f} | {t_torch / t_onnx:.2f} | "
                  f"{np.abs(got - want).max():.1e} |", flush=True)


def _aligned_faces(folder: Path, *, size: int):
    from likeness.faces import FaceDetector, align_face
    from likeness.media import read_image
    from likeness.train import FaceSamples

    detector = FaceDetector(max_faces=1)
    images, landmarks, skipped = [], [], []
    for path in sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png")):
        rgb = read_image(path)
        found = detector.detect(rgb)
        if not found:
            skipped.append(path.name)
            continue
        aligned = align_face(rgb, found[0].landmarks, size=size)
        images.append(aligned.image)
        landmarks.append(aligned.landmarks)
    if len(images) < 4:
        sys.exit(f"{folder}: only {len(images)} faces detected; need at least 4")
    return FaceSamples(np.stack(images), np.stack(landmarks).astype(np.float32)), skipped


def bench_quality(args: argparse.Namespace) -> None:
    from likeness.config import Settings
    from likeness.consent import USES
    from likeness.consent.canonical import now_utc
    from likeness.train import TrainConfig, train_swap_model
    from likeness.workspace import Workspace

    media = Path(args.media) / "synthetic_people" / "digiface1m"
    source, skipped_s = _aligned_faces(media / "id1_variety", size=128)
    target, skipped_t = _aligned_faces(media / "id2_variety", size=128)
    print(f"# faces: source id1_variety {source.count} (skipped {skipped_s}), target id2_variety {target.count} "
          f"(skipped {skipped_t})", flush=True)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="likeness-train-bench-"))
    workspace = Workspace.init(Settings(home=root / "home"))
    registry = workspace.registry
    registry.add_org("studio", "Studio")
    registry.add_subject("idol", "Synthetic idol", kind="virtual_idol", owner_org="studio")
    registry.add_subject("performer", "Synthetic performer", kind="performer")
    until = now_utc() + timedelta(days=1)
    registry.issue_grant("idol", "studio", USES, valid_until=until, purpose="benchmark")
    registry.issue_release("performer", "studio", valid_until=until, purpose="benchmark")
    authz = workspace.policy.authorize("idol", "training", "studio")
    release = workspace.policy.authorize_release("performer", "studio")
    config = TrainConfig(model=args.model, resolution=args.res, iterations=None, minutes=args.minutes,
                         batch_size=args.batch, checkpoint_every=args.checkpoint_every,
                         preview_every=args.checkpoint_every, validation_fraction=0.25, seed=0,
                         learning_rate=args.lr, threads=args.threads)
    start = time.monotonic()

    def show(event) -> None:
        if event.event == "checkpoint":
            print(f"  checkpoint at iteration {event.iteration}, {(time.monotonic() - start) / 60:.1f} min", flush=True)

    result = train_swap_model(authz, release, source, target, root / "model", config, progress=show)
    print(f"# {args.model} {args.res}px, batch {result.batch_size}, {result.iterations} iterations in "
          f"{result.training_seconds / 60:.1f} min; model folder {root / 'model'}")
    print("| minutes | iteration | identity transfer | median dist to source | val DSSIM src | val DSSIM dst | eye corr | mouth corr |")
    print("|---|---|---|---|---|---|---|---|")
    from likeness.train import load_checkpoint

    history = load_checkpoint(root / "model" / "checkpoint.pt")["history"]
    reached = None
    for row in history:
        if row.get("identity_transfer") is None:
            continue
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"| {row['seconds'] / 60:.1f} | {row['iteration']} | {fmt(row.get('identity_transfer'))} | "
              f"{fmt(row.get('swap_distance_to_source_median'))} | {fmt(row.get('val_dssim_source'))} | "
              f"{fmt(row.get('val_dssim_target'))} | {fmt(row.get('expression_eye_corr'))} | "
              f"{fmt(row.get('expression_mouth_corr'))} |")
        if reached is None and row["identity_transfer"] >= 0.9:
            reached = row["seconds"] / 60
    print(f"time to identity transfer >= 0.9: {'not reached' if reached is None else f'{reached:.1f} min'}")
    workspace.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "onnx", "quality", "all"], nargs="?", default="all")
    parser.add_argument("--media", default="../shared/media", help="development media folder")
    parser.add_argument("--minutes", type=float, default=30.0, help="quality: training minutes")
    parser.add_argument("--model", default="df", help="quality: architecture")
    parser.add_argument("--res", type=int, default=64, help="quality: resolution")
    parser.add_argument("--batch", type=int, default=None, help="quality: batch size (default automatic)")
    parser.add_argument("--lr", type=float, default=2e-4, help="quality: learning rate")
    parser.add_argument("--checkpoint-every", type=int, default=150, help="quality: iterations between checkpoints")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--warmup", type=int, default=2, help="speed: warm-up steps")
    parser.add_argument("--repeats", type=int, default=5, help="speed/onnx: timed repeats")
    parser.add_argument("--out", default=None, help="quality: keep the workspace and model here")
    args = parser.parse_args()
    if args.what in ("speed", "all"):
        bench_speed(args)
    if args.what in ("onnx", "all"):
        bench_onnx(args)
    if args.what in ("quality", "all"):
        bench_quality(args)


if __name__ == "__main__":
    main()
