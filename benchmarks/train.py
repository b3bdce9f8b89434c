"""Training benchmarks: speed per family, ONNX inference, time to identity-transfer quality.

    .venv/bin/python benchmarks/train.py speed            # it/s and faces/s vs a plain autoencoder
    .venv/bin/python benchmarks/train.py loop [--device cuda]  # the whole loop, data workers included
    .venv/bin/python benchmarks/train.py onnx             # ONNX Runtime (2 threads) vs PyTorch eager
    .venv/bin/python benchmarks/train.py quality --minutes 30 [--media ../shared/media]
    # a GPU machine without dlib and MediaPipe: the first --faces-file run here aligns and saves the
    # faces; there, train and record the held-out swaps; back here, embed and score them
    python benchmarks/train.py quality --faces-file faces.npz --device cuda --iterations 13500 --record-swaps SW
    .venv/bin/python benchmarks/train.py score-swaps --swaps SW
    .venv/bin/python benchmarks/train.py memory [--faces 50000]   # peak RSS, lazy vs parsed faceset index
    .venv/bin/python benchmarks/train.py ceiling [--res 64]       # what real photos score on the identity metric
    .venv/bin/python benchmarks/train.py threads [--compete 1]    # it/s by thread count and OpenMP wait policy
    .venv/bin/python benchmarks/train.py gate [--media ../shared/media]  # the coverage gate on the issue's case
    .venv/bin/python benchmarks/train.py recipes [--rounds 3]     # each named recipe's step, interleaved; overnight extrapolation
    .venv/bin/python benchmarks/train.py quality --recipe cpu-overnight-128 --minutes 13  # a recipe's time to quality
    .venv/bin/python benchmarks/train.py priority --iterations 1500 --checkpoint-every 250  # eyes/mouth priority curve

``quality`` trains ``df`` at 64 px on two synthetic people (DigiFace-1M id1_variety as the source
subject, id2_variety as the target performer; faces detected and aligned with likeness.faces), in a
throw-away workspace with a real grant and release, and prints identity transfer (dlib, calibrated
threshold) on held-out faces at every checkpoint. Reads media from ``--media`` only; writes to a
temporary folder (or ``--out``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
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
from likeness.train import TrainConfig

TRAIN_DEFAULTS = TrainConfig()


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
            nn.Conv2d(3, width, 5, 2, 2),
            nn.LeakyReLU(0.1),
            nn.Conv2d(width, width * 2, 5, 2, 2),
            nn.LeakyReLU(0.1),
            nn.Conv2d(width * 2, width * 4, 5, 2, 2),
            nn.LeakyReLU(0.1),
            nn.Conv2d(width * 4, width * 8, 5, 2, 2),
            nn.LeakyReLU(0.1),
            nn.Flatten(),
            nn.Linear(width * 8 * low * low, 256),
            nn.Linear(256, width * 8 * low * low),
            nn.Unflatten(1, (width * 8, low, low)),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(width * 8, width * 8, 4, 2, 1),
            nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(width * 8, width * 4, 4, 2, 1),
            nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(width * 4, width * 2, 4, 2, 1),
            nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(width * 2, 4, 4, 2, 1),
            nn.Sigmoid(),
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


#: Rows of the speed table: (label, family, resolution, architecture options).
_SPEED_ROWS = (
    ("df", "df", 64, {}),
    ("df (full-res decoder)", "df", 64, {"double_res": False}),
    ("df (CPU recipe)", "df", 64, {"ae_dims": 128, "d_dims": 16, "d_mask_dims": 8}),
    ("liae", "liae", 64, {}),
    ("df", "df", 128, {}),
    ("liae", "liae", 128, {}),
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_speed(args: argparse.Namespace) -> None:
    from likeness.train.loop import (
        autocast_dtype,
        cpu_supports_bfloat16,
        hardware_description,
        make_optimizer,
        resolve_device,
    )
    from likeness.train.losses import reconstruction_loss

    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    # The training loop's arithmetic: autocast dtype and, for float16, a gradient scaler.
    dtype = autocast_dtype(args.precision, device, cpu_bfloat16=cpu_supports_bfloat16())
    autocast = dict(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
    print(
        f"# training step speed, {hardware_description(device, dtype)}, torch {torch.__version__}; "
        f"median of {args.repeats} steps after {args.warmup} warm-up; one iteration = B source + B target faces; "
        f"load average at start {os.getloadavg()[0]:.1f}"
    )
    print(
        "| model | res | batch | params (M) | it/s | faces/s | plain AE it/s | plain AE params (M) | plain/ours time |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, name, res, options in _SPEED_ROWS:
        torch.manual_seed(0)
        model = create_model(name, resolution=res, **options).to(device)
        plain = _matched_plain(res, count_parameters(model)).to(device)
        for batch in args.batches:
            x = torch.rand(batch, 3, res, res, device=device)
            mask = torch.ones(batch, 1, res, res, device=device)
            opt = make_optimizer(model, learning_rate=1e-4, weight_decay=1e-4, device=device)
            scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)

            def ours() -> None:
                with torch.autocast(**autocast):
                    (a, am), (b, bm) = model.reconstruct_pair(x, x)
                la, _ = reconstruction_loss(a.float(), am.float(), x, mask, mask)
                lb, _ = reconstruction_loss(b.float(), bm.float(), x, mask, mask)
                opt.zero_grad(set_to_none=True)
                scaler.scale(la + lb).backward()
                scaler.step(opt)
                scaler.update()
                _sync(device)

            plain_opt = make_optimizer(plain, learning_rate=1e-4, weight_decay=1e-4, device=device)
            plain_scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
            x2 = torch.cat([x, x])

            def reference() -> None:
                with torch.autocast(**autocast):
                    out = plain(x2).float()
                loss = ((out[:, :3] - x2) ** 2).mean() + ((out[:, 3:] - 1) ** 2).mean()
                plain_opt.zero_grad(set_to_none=True)
                plain_scaler.scale(loss).backward()
                plain_scaler.step(plain_opt)
                plain_scaler.update()
                _sync(device)

            # Interleave so both see the same machine load.
            t_ours, t_ref = [], []
            for _ in range(args.warmup):
                ours()
                reference()
            for _ in range(args.repeats):
                t_ours.append(_median_step_seconds(ours, warmup=0, repeats=1))
                t_ref.append(_median_step_seconds(reference, warmup=0, repeats=1))
            m_ours, m_ref = statistics.median(t_ours), statistics.median(t_ref)
            print(
                f"| {label} | {res} | {batch} | {count_parameters(model) / 1e6:.1f} | {1 / m_ours:.2f} | "
                f"{2 * batch / m_ours:.1f} | {1 / m_ref:.2f} | {count_parameters(plain) / 1e6:.1f} | "
                f"{m_ref / m_ours:.2f} |",
                flush=True,
            )


def bench_onnx(args: argparse.Namespace) -> None:
    import onnxruntime as ort

    from likeness.train.export import _onnx_bytes

    torch.set_num_threads(2)
    print(
        "# swap-path inference per face, batch 8, median of "
        f"{args.repeats} runs; onnxruntime CPU 2 threads vs PyTorch eager 2 threads"
    )
    print("| model | res | onnx ms/face | torch ms/face | torch/onnx | max abs diff |")
    print("|---|---|---|---|---|---|")
    for name in ("df", "liae"):
        for res in (64, 128):
            torch.manual_seed(0)
            model = create_model(name, resolution=res).eval()
            options = ort.SessionOptions()
            options.intra_op_num_threads = 2
            session = ort.InferenceSession(
                _onnx_bytes(model, res), sess_options=options, providers=["CPUExecutionProvider"]
            )
            faces = np.random.default_rng(0).random((8, 3, res, res), dtype=np.float32)
            tensor = torch.from_numpy(faces)
            with torch.no_grad():
                t_torch = _median_step_seconds(lambda: model(tensor), warmup=2, repeats=args.repeats)
                want = model(tensor)[0].numpy()
            t_onnx = _median_step_seconds(lambda: session.run(None, {"face": faces}), warmup=2, repeats=args.repeats)
            got = session.run(None, {"face": faces})[0]
            print(
                f"| {name} | {res} | {t_onnx / 8 * 1000:.2f} | {t_torch / 8 * 1000:.2f} | {t_torch / t_onnx:.2f} | "
                f"{np.abs(got - want).max():.1e} |",
                flush=True,
            )


def _aligned_faces(folder: Path, *, size: int):
    from likeness.media import read_image

    paths = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png"))
    return _aligned_pictures(((path.name, read_image(path)) for path in paths), size=size, where=str(folder))


def _aligned_pictures(named, *, size: int, where: str):
    """(FaceSamples of the main face of each ``(name, rgb)``, names with no face)."""
    from likeness.faces import FaceDetector, align_face
    from likeness.train import FaceSamples

    detector = FaceDetector(max_faces=1)
    images, landmarks, skipped = [], [], []
    for name, rgb in named:
        found = detector.detect(rgb)
        if not found:
            skipped.append(name)
            continue
        aligned = align_face(rgb, found[0].landmarks, size=size)
        images.append(aligned.image)
        landmarks.append(aligned.landmarks)
    if len(images) < 4:
        sys.exit(f"{where}: only {len(images)} faces detected; need at least 4")
    return FaceSamples(np.stack(images), np.stack(landmarks).astype(np.float32)), skipped


def bench_priority(args: argparse.Namespace) -> None:
    """Does the eyes/mouth priority (a landmark-weighted L1 on eyes, brows and lips) move the
    mouth metric? The ``preview`` recipe trained for the same iterations and seed with each
    ``--priorities`` weight (0 = off; 1.0 is the default), on faces that talk on both sides: a
    model cannot draw an open mouth it never saw, so here the source idols (seeprettyface, from
    ``--media``) talk too (``talking_portrait``), as does the performer (grace_hopper). At every
    checkpoint the loop's own held-out metrics: mouth-opening correlation between the performer's
    validation faces and their swaps, eye correlation, identity transfer."""
    from likeness.media import read_image
    from likeness.media.synthetic import grace_hopper, talking_portrait
    from likeness.train import TrainConfig, load_checkpoint, train_swap_model
    from likeness.train.recipes import recipe_options

    idols = sorted((Path(args.media) / "synthetic_people" / "seeprettyface_1024").glob("*.png"))[:3]
    if not idols:
        sys.exit(f"{args.media}: no synthetic_people/seeprettyface_1024/*.png")
    resolution = int(recipe_options("preview")["resolution"])
    talking = (
        (f"{path.stem}-{i}", rgb)
        for n, path in enumerate(idols)
        for i, rgb in enumerate(talking_portrait(read_image(path), n_frames=args.frames, size=(512, 512), seed=10 + n))
    )
    source, _ = _aligned_pictures(talking, size=resolution, where="talking idols")
    performer = talking_portrait(grace_hopper(), n_frames=2 * args.frames, size=(512, 512), seed=3)
    target, _ = _aligned_pictures(
        ((str(i), rgb) for i, rgb in enumerate(performer)), size=resolution, where="performer"
    )
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="likeness-priority-bench-"))
    print(
        f"# {source.count} talking idol faces, {target.count} performer faces; preview recipe, "
        f"{args.iterations} iterations, seed {args.seed}, {args.threads} thread(s); load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    curves: dict[float, list[dict]] = {}
    for weight in args.priorities:
        workspace, authz, release = _benchmark_consent(root / f"priority-{weight:g}")
        config = TrainConfig(
            **recipe_options("preview"),
            iterations=args.iterations,
            checkpoint_every=args.checkpoint_every,
            preview_every=0,
            log_every=args.checkpoint_every,
            validation_fraction=0.25,
            eyes_mouth_priority=weight,
            expression_metrics=True,
            threads=args.threads,
            workers=1,
            seed=args.seed,
        )
        started = time.monotonic()
        train_swap_model(authz, release, source, target, root / f"model-{weight:g}", config, workspace=workspace)
        workspace.close()
        history = load_checkpoint(root / f"model-{weight:g}" / "checkpoint.pt")["history"]
        curves[weight] = [row for row in history if row.get("expression_mouth_corr", "absent") != "absent"]
        print(f"  priority {weight:g}: {(time.monotonic() - started) / 60:.1f} min", file=sys.stderr, flush=True)
    weights = list(curves)
    print(
        "\n| iteration | "
        + " | ".join(f"mouth r, priority {w:g}" for w in weights)
        + " | "
        + " | ".join(f"eyes r, priority {w:g}" for w in weights)
        + " | "
        + " | ".join(f"identity, priority {w:g}" for w in weights)
        + " |"
    )
    print("|---|" + "---|" * (3 * len(weights)))
    rows = {w: {row["iteration"]: row for row in curves[w]} for w in weights}
    for iteration in sorted(set().union(*(r.keys() for r in rows.values()))):
        cells = []
        for key in ("expression_mouth_corr", "expression_eye_corr", "identity_transfer"):
            cells += [_cell(rows[w].get(iteration, {}).get(key)) for w in weights]
        print(f"| {iteration} | " + " | ".join(cells) + " |")
    sheet = _mouth_sheet(root, performer_frames=target, weights=weights)
    print(f"\n# the performer's widest, median and closed mouths, then each weight's swap of them: {sheet}")
    print(f"# models and workspaces in {root}")


def _mouth_sheet(root: Path, *, performer_frames, weights) -> Path:
    """A picture to judge the table by: the performer's faces at their widest openings (4), the
    median and the most closed (top row), then each priority's final swap of those faces."""
    import cv2

    from likeness.models import architecture_options, create_model
    from likeness.render.quality import mouth_opening
    from likeness.train import load_checkpoint

    order = np.argsort([-mouth_opening(points) for points in performer_frames.landmarks])
    picked = order[[0, 2, 4, 6, len(order) // 2, len(order) - 1]]
    faces = performer_frames.images[picked]
    rows = [np.concatenate(list(faces), axis=1)]
    batch = torch.from_numpy(faces.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    for weight in weights:
        state = load_checkpoint(root / f"model-{weight:g}" / "checkpoint.pt")
        model = create_model(state["model_name"], **architecture_options(state["model_config"]))
        model.load_state_dict(state["ema_state"] or state["model_state"])
        model.eval()
        with torch.no_grad():
            swapped, _ = model.swap(batch)
        swapped_u8 = (swapped.float().numpy().transpose(0, 2, 3, 1).clip(0, 1) * 255 + 0.5).astype(np.uint8)
        rows.append(np.concatenate(list(swapped_u8), axis=1))
    sheet = cv2.resize(np.concatenate(rows, axis=0), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    path = root / "priority_mouths.png"
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def _cell(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def _benchmark_consent(root: Path, *, reopen: bool = False):
    """A throw-away workspace under ``root`` with a real grant (subject ``idol``) and release
    (performer ``performer``) to ``studio``; returns it with the two authorizations training needs."""
    from likeness.config import Settings
    from likeness.consent import USES
    from likeness.consent.canonical import now_utc
    from likeness.consent.holder import HolderMachine
    from likeness.workspace import Workspace

    if reopen:
        workspace = Workspace.open(Settings(home=root / "home"))
    else:
        workspace = Workspace.init(Settings(home=root / "home"))
        registry = workspace.registry
        registry.add_org("studio", "Studio")
        holders = HolderMachine.beside(root / "home")  # the rights holders sign on their own machine
        holders.enrol(registry, "idol", "Synthetic idol", kind="virtual_idol", owner_org="studio")
        holders.enrol(registry, "performer", "Synthetic performer", kind="performer")
        until = now_utc() + timedelta(days=1)
        holders.grant(registry, "idol", "studio", USES, valid_until=until, purpose="benchmark")
        holders.release(registry, "performer", "studio", valid_until=until, purpose="benchmark")
    authz = workspace.policy.authorize("idol", "training", "studio")
    release = workspace.policy.authorize_release("performer", "studio")
    return workspace, authz, release


def bench_loop(args: argparse.Namespace) -> None:
    """Whole training loop (data workers, augmentation, steps, checkpoints) on generated faces."""
    from likeness.train import TrainConfig, generated_face_samples, train_swap_model
    from likeness.train.loop import (
        autocast_dtype,
        available_cores,
        cpu_supports_bfloat16,
        data_loading,
        hardware_description,
        resolve_device,
    )

    device = resolve_device(args.device)
    dtype = autocast_dtype(args.precision, device, cpu_bfloat16=cpu_supports_bfloat16())
    print(
        f"# whole training loop on generated faces (1000 per identity, warp + colour augmentation), "
        f"{hardware_description(device, dtype)}; "
        f"{args.loop_seconds:.0f} s per row, timed after its first fifth; "
        f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.1f}"
    )
    print("| model | res | batch | loader | workers | it/s | faces/s |")
    print("|---|---|---|---|---|---|---|")
    for name, res in ((args.model, 64), (args.model, 128)):
        source = generated_face_samples(1000, identity=1, size=res, seed=0)
        target = generated_face_samples(1000, identity=2, size=res, seed=1)
        for loader, workers in itertools.product(args.loaders, args.loop_workers):
            root = Path(tempfile.mkdtemp(prefix="likeness-loop-bench-"))
            workspace, authz, release = _benchmark_consent(root)
            marks: list[tuple[float, int]] = []

            def show(event, marks=marks) -> None:
                if event.event == "step":
                    marks.append((time.monotonic(), event.iteration))

            config = TrainConfig(
                model=name,
                resolution=res,
                iterations=None,
                minutes=args.loop_seconds / 60,
                batch_size=args.batch,
                preview_every=0,
                identity_metrics=False,
                expression_metrics=False,
                threads=args.threads,
                workers=workers,
                loader=loader,
                device=args.device,
                precision=args.precision,
            )
            result = train_swap_model(
                authz, release, source, target, root / "model", config, progress=show, workspace=workspace
            )
            # Skip the first fifth (start-up, cuDNN autotuning, the auto batch trial); checkpoints count.
            if len(marks) < 10:
                sys.exit(
                    f"{name} {res}px: only {len(marks)} steps in {args.loop_seconds:.0f} s "
                    "(worker start-up takes seconds); give a longer --loop-seconds"
                )
            (t0, i0), (t1, i1) = marks[len(marks) // 5], marks[-1]
            rate = (i1 - i0) / (t1 - t0)
            processes, used = data_loading(loader, workers, device=device, cores=available_cores())
            kind = "processes" if processes else "threads"
            print(
                f"| {name} | {res} | {result.batch_size} | {kind} | {used} | {rate:.2f} | "
                f"{2 * result.batch_size * rate:.0f} |",
                flush=True,
            )
            workspace.close()
            shutil.rmtree(root)  # a model folder and workspace per row, nothing worth keeping


class SwapRecorder:
    """Stands in for the identity embedder where dlib and MediaPipe cannot go (a borrowed GPU
    machine): keeps every face the training loop would embed (its upscaled chip and landmarks)
    and writes them at each checkpoint, for ``score-swaps`` to embed later with the real one."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.started = time.monotonic()

    def embed(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        self.pending.append((np.array(rgb, np.uint8), np.array(landmarks, np.float32)))
        return np.zeros(128, np.float32)

    def flush(self, iteration: int) -> None:
        chips, landmarks = zip(*self.pending)
        np.savez_compressed(
            self.folder / f"checkpoint-{iteration:07d}.npz",
            chips=np.stack(chips),
            landmarks=np.stack(landmarks),
            iteration=iteration,
            seconds=time.monotonic() - self.started,
        )
        self.pending.clear()


def _quality_faces(args: argparse.Namespace):
    """The benchmark pair, aligned here, or read from (and first written to) ``--faces-file``."""
    from likeness.train import FaceSamples

    cached = Path(args.faces_file) if args.faces_file else None
    if cached is not None and cached.exists():
        with np.load(cached) as saved:
            source = FaceSamples(saved["source_images"], saved["source_landmarks"])
            target = FaceSamples(saved["target_images"], saved["target_landmarks"])
        print(f"# faces from {cached}: source {source.count}, target {target.count}", flush=True)
        return source, target
    media = Path(args.media) / "synthetic_people" / "digiface1m"
    source, skipped_s = _aligned_faces(media / "id1_variety", size=128)
    target, skipped_t = _aligned_faces(media / "id2_variety", size=128)
    print(
        f"# faces: source id1_variety {source.count} (skipped {skipped_s}), target id2_variety {target.count} "
        f"(skipped {skipped_t})",
        flush=True,
    )
    if cached is not None:
        np.savez_compressed(
            cached,
            source_images=source.images,
            source_landmarks=source.landmarks,
            target_images=target.images,
            target_landmarks=target.landmarks,
        )
    return source, target


def bench_quality(args: argparse.Namespace) -> None:
    from likeness.train import TrainConfig, train_swap_model
    from likeness.train.data import split_indices
    from likeness.train.loop import identity_reference_count

    source, target = _quality_faces(args)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="likeness-train-bench-"))
    # --resume continues an earlier benchmark run kept with --out: same workspace, grant and faces.
    workspace, authz, release = _benchmark_consent(root, reopen=args.resume)
    model_options = {k: _option_value(v) for k, v in (item.split("=", 1) for item in args.model_option)}
    augment = {k: _option_value(v) for k, v in (item.split("=", 1) for item in args.augment)}
    minutes = None if args.iterations else args.minutes
    if args.recipe:
        from likeness.train.recipes import recipe_options

        named = recipe_options(args.recipe)
        args.model, args.res, args.batch, args.lr = (
            named["model"],
            named["resolution"],
            named["batch_size"],
            named["learning_rate"],
        )
        args.true_face_power = named.get("true_face_power", 0.0)
        augment = {**named.get("augment", {}), **augment}
        model_options = {**named.get("model_options", {}), **model_options}
    recorder = None
    if args.record_swaps:
        recorder = SwapRecorder(Path(args.record_swaps))
        recorder.folder.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(
        model=args.model,
        resolution=args.res,
        iterations=args.iterations,
        minutes=minutes,
        batch_size=args.batch,
        checkpoint_every=args.checkpoint_every,
        preview_every=args.checkpoint_every,
        validation_fraction=0.25,
        seed=args.seed,
        learning_rate=args.lr,
        ema_decay=args.ema_decay,
        threads=args.threads,
        lr_decay_iters=args.lr_decay_iters,
        true_face_power=args.true_face_power,
        precision=args.precision,
        device=args.device,
        workers=args.workers,
        expression_metrics=recorder is None,
        model_options=model_options,
        augment=augment,
    )
    if recorder is not None:
        # What score-swaps needs to tell the references (first evaluation only) from the swaps.
        splits = [
            split_indices(
                faces.count,
                seed=args.seed,
                stream=stream,
                fraction=config.validation_fraction,
                max_validation=config.validation_max,
            )
            for stream, faces in enumerate((source, target))
        ]
        meta = {
            "references_source": identity_reference_count(len(splits[0].train)),
            "references_target": identity_reference_count(len(splits[1].train)),
            "validation_target": len(splits[1].validation),
            "config": config.to_dict(),
        }
        (recorder.folder / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    if args.resume:
        more = f"up to iteration {args.iterations}" if args.iterations else f"{args.minutes} more minutes"
        print(f"# resuming the saved recipe (model, lr, batch, options from train_config.json); {more}", flush=True)
    else:
        print(f"# config: {config.to_dict()}", flush=True)
    print(f"# load average at start: {os.getloadavg()}", flush=True)
    start = time.monotonic()

    def show(event) -> None:
        if event.event == "checkpoint":
            if recorder is not None:
                recorder.flush(event.iteration)
            print(f"  checkpoint at iteration {event.iteration}, {(time.monotonic() - start) / 60:.1f} min", flush=True)

    # With --record-swaps the loop's own identity column is meaningless (zero embeddings).
    tools = {"embedder": recorder, "identity_threshold": 1.0} if recorder is not None else {}
    if args.resume:
        override = TrainConfig(iterations=args.iterations, minutes=minutes, threads=args.threads)
        result = train_swap_model(
            authz,
            release,
            source,
            target,
            root / "model",
            override,
            resume=True,
            workspace=workspace,
            progress=show,
            **tools,
        )
    else:
        result = train_swap_model(
            authz, release, source, target, root / "model", config, progress=show, workspace=workspace, **tools
        )
    print(
        f"# {args.model} {args.res}px, batch {result.batch_size}, {result.iterations} iterations in "
        f"{result.training_seconds / 60:.1f} min; model folder {root / 'model'}"
    )
    workspace.close()
    if recorder is not None:
        print(f"# held-out swaps recorded in {recorder.folder}; score them with: score-swaps --swaps {recorder.folder}")
        return
    print(
        "| minutes | iteration | identity transfer | median dist to source | worst dist to source | nearer performer | "
        "val DSSIM src | val DSSIM dst | eye corr | mouth corr |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    from likeness.train import load_checkpoint

    history = load_checkpoint(root / "model" / "checkpoint.pt")["history"]
    reached = None
    for row in history:
        if row.get("identity_transfer") is None:
            continue
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(
            f"| {row['seconds'] / 60:.1f} | {row['iteration']} | {fmt(row.get('identity_transfer'))} | "
            f"{fmt(row.get('swap_distance_to_source_median'))} | {fmt(row.get('swap_distance_to_source_max'))} | "
            f"{row.get('swap_faces_nearer_performer', '-')} | {fmt(row.get('val_dssim_source'))} | "
            f"{fmt(row.get('val_dssim_target'))} | {fmt(row.get('expression_eye_corr'))} | "
            f"{fmt(row.get('expression_mouth_corr'))} |"
        )
        if reached is None and row["identity_transfer"] >= 0.9:
            reached = row["seconds"] / 60
    print(f"time to identity transfer >= 0.9: {'not reached' if reached is None else f'{reached:.1f} min'}")


def bench_score_swaps(args: argparse.Namespace) -> None:
    """Identity transfer of swaps recorded by ``quality --record-swaps``, embedded here."""
    from likeness.faces import IDENTITY_THRESHOLD, FaceEmbedder
    from likeness.train.metrics import identity_transfer

    if not args.swaps:
        sys.exit("score-swaps: give --swaps FOLDER (written by quality --record-swaps)")
    folder = Path(args.swaps)
    try:
        meta = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError) as exc:
        sys.exit(f"score-swaps: {folder / 'run.json'}: not a folder written by quality --record-swaps ({exc})")
    n_src, n_dst, n_val = meta["references_source"], meta["references_target"], meta["validation_target"]
    embedder = FaceEmbedder()
    references = None
    print(
        f"# {folder}: {meta['config']['model']} {meta['config']['resolution']} px, seed {meta['config']['seed']}, "
        f"model options {meta['config']['model_options']}, threshold {IDENTITY_THRESHOLD}"
    )
    print(
        "| iteration | minutes (of its session) | identity transfer | median dist to source | median dist to target |"
    )
    print("|---|---|---|---|---|")
    reached = None
    for path in sorted(folder.glob("checkpoint-*.npz")):
        with np.load(path) as saved:
            chips, landmarks = saved["chips"], saved["landmarks"]
            iteration, seconds = int(saved["iteration"]), float(saved["seconds"])
        vectors = np.stack([embedder.embed(chip, points) for chip, points in zip(chips, landmarks)])
        # The loop embeds its references once per session (first checkpoint, and after a resume).
        if len(vectors) == n_src + n_dst + n_val:
            references = (vectors[:n_src], vectors[n_src : n_src + n_dst])
            vectors = vectors[n_src + n_dst :]
        if references is None or len(vectors) != n_val:
            sys.exit(f"{path}: expected {n_val} swaps (plus {n_src}+{n_dst} references first), got {len(chips)} faces")
        transfer = identity_transfer(vectors, *references, threshold=IDENTITY_THRESHOLD)
        print(
            f"| {iteration} | {seconds / 60:.1f} | {transfer.share:.2f} | {transfer.median_distance_to_source:.3f} | "
            f"{np.median(transfer.distance_to_target):.3f} |",
            flush=True,
        )
        if reached is None and transfer.share >= 0.9:
            reached = iteration
    print(f"first iteration with identity transfer >= 0.9: {'not reached' if reached is None else reached}")


_MEMORY_PROBE = r"""
import json, sys, time
from pathlib import Path
import numpy as np

def high_water_mb():
    # VmHWM is per address space and starts afresh at exec (ru_maxrss would inherit the parent's).
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

mode, root = sys.argv[1], Path(sys.argv[2])
from likeness.faceset import Faceset, load_faceset
from likeness.faceset.format import FaceRecord, read_manifest
from likeness.train import faceset_samples
base = high_water_mb()
start = time.perf_counter()
if mode == "lazy":
    faceset = load_faceset(root)
    loaded = time.perf_counter() - start
    faceset_samples(faceset).yaw_range()
    for i in np.random.default_rng(0).integers(0, len(faceset), 2000):  # what 125 batch-8 steps read
        faceset[int(i)].landmarks
    count = sum(1 for _ in faceset)
else:  # the previous loader: every record parsed and kept
    records = [FaceRecord.from_mapping(json.loads(line)) for line in open(root / "index.jsonl", encoding="utf-8")
               if line.strip()]
    faceset = Faceset(root, read_manifest(root), records)
    loaded = time.perf_counter() - start
    count = len(faceset)
print(json.dumps({"faces": count, "peak_mb": high_water_mb(), "import_mb": base, "load_s": loaded,
                  "total_s": time.perf_counter() - start}))
"""


def bench_memory(args: argparse.Namespace) -> None:
    """Peak RSS of opening and sampling a synthetic ``--faces``-record faceset (one-byte crops)."""
    import json
    import subprocess

    from likeness.faceset.format import FaceRecord, FacesetManifest, index_sha256

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="likeness-faceset-memory-"))
    rng = np.random.default_rng(0)
    (root / "faces").mkdir(parents=True)
    template = FaceRecord(
        file="",
        source="clip.mp4",
        frame_index=0,
        timestamp_s=0.0,
        track_id=1,
        landmarks=rng.uniform(0, 256, (478, 2)).astype(np.float32),
        affine=np.eye(2, 3),
        yaw=0.0,
        pitch=0.0,
        roll=0.0,
        sharpness=100.0,
        face_size=200.0,
        eye_openness=0.2,
        mouth_openness=0.1,
        brightness=0.5,
        identity_distance=0.3,
        grant_id="grant-1",
    ).as_dict()
    with open(root / "index.jsonl", "w", encoding="utf-8") as handle:
        for i in range(args.faces):
            name = f"faces/{i:06d}.png"
            (root / name).write_bytes(b"\0")
            template.update(file=name, frame_index=i, yaw=round(float(rng.uniform(-60, 60)), 4))
            handle.write(json.dumps(template, separators=(",", ":")) + "\n")
    manifest = FacesetManifest(
        faceset_sha256=index_sha256(root / "index.jsonl"),
        subject_id="s",
        subject_slug="s",
        grant_id="g",
        release_id=None,
        org_id="o",
        created_at="2025-01-01T00:00:00Z",
        counts={"faces": args.faces},
        size=256,
    )
    (root / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    size_mb = (root / "index.jsonl").stat().st_size / 2**20
    print(
        f"# faceset memory: {args.faces} records, index.jsonl {size_mb:.0f} MB, one-byte crops; peak RSS "
        "(VmHWM) of a fresh process: load_faceset + yaw range + 2000 random records + one full iteration "
        f"(lazy) vs parsing and keeping every record (the previous loader); load average {os.getloadavg()[0]:.1f}"
    )
    print("| loader | faces | peak RSS (MB) | RSS after imports (MB) | growth (MB) | load s | total s |")
    print("|---|---|---|---|---|---|---|")
    for mode in ("lazy", "parsed"):
        done = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, mode, str(root)], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"| {mode} | failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode} |")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {mode} | {row['faces']} | {row['peak_mb']:.0f} | {row['import_mb']:.0f} | "
            f"{row['peak_mb'] - row['import_mb']:.0f} | {row['load_s']:.1f} | {row['total_s']:.1f} |",
            flush=True,
        )
    if not args.out:
        shutil.rmtree(root)  # the generated faceset: one file per face


def bench_ceiling(args: argparse.Namespace) -> None:
    """What *real* faces score on the identity-transfer metric at ``--res`` (the best a swap could do).

    Same split, references and threshold as the training loop: held-out id1 photos (downscaled to
    the model resolution, upscaled for dlib) against id1's and id2's training faces.
    """
    import cv2

    from likeness.faces import IDENTITY_THRESHOLD, FaceEmbedder
    from likeness.train.data import split_indices
    from likeness.train.metrics import embed_faces, identity_transfer

    media = Path(args.media) / "synthetic_people" / "digiface1m"
    embedder = FaceEmbedder()
    print(f"# identity-transfer ceiling: real DigiFace faces scored like swaps (threshold {IDENTITY_THRESHOLD})")
    print(
        "| res | held-out id1 photos as id1 | their distance to id1 refs | held-out id2 photos as id1 | "
        "leave-one-out id1 within threshold | median nearest same / other |"
    )
    print("|---|---|---|---|---|---|")
    faces = {name: _aligned_faces(media / f"{name}_variety", size=128)[0] for name in ("id1", "id2")}
    for res in (128, args.res):
        embeddings, splits = {}, {}
        for stream, (name, samples) in enumerate(faces.items()):
            images = np.stack([cv2.resize(im, (res, res), interpolation=cv2.INTER_AREA) for im in samples.images])
            embeddings[name] = embed_faces(embedder, images, samples.landmarks * (res / samples.size))
            splits[name] = split_indices(samples.count, seed=0, stream=stream, fraction=0.25, max_validation=32)
        refs_1 = embeddings["id1"][splits["id1"].train]
        refs_2 = embeddings["id2"][splits["id2"].train]
        own = identity_transfer(
            embeddings["id1"][splits["id1"].validation], refs_1, refs_2, threshold=IDENTITY_THRESHOLD
        )
        other = identity_transfer(
            embeddings["id2"][splits["id2"].validation], refs_1, refs_2, threshold=IDENTITY_THRESHOLD
        )
        all_1, all_2 = embeddings["id1"], embeddings["id2"]
        nearest_same = np.array(
            [np.linalg.norm(np.delete(all_1, i, 0) - all_1[i], axis=1).min() for i in range(len(all_1))]
        )
        nearest_other = np.array([np.linalg.norm(all_2 - e, axis=1).min() for e in all_1])
        print(
            f"| {res} | {own.share:.2f} | {', '.join(f'{d:.3f}' for d in own.distance_to_source)} | {other.share:.2f} | "
            f"{np.mean(nearest_same <= IDENTITY_THRESHOLD):.2f} | {np.median(nearest_same):.3f} / "
            f"{np.median(nearest_other):.3f} |",
            flush=True,
        )


def _option_value(text: str):
    """``key=value`` command-line values: ints, floats, true/false, else the string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


#: ``threads`` rows: (label, --threads or None for the product's choice, OMP_WAIT_POLICY or None).
_THREAD_ROWS = (
    ("old default: all cores, OpenMP default wait", "cores", None),
    ("1 thread, OpenMP default wait", 1, None),
    ("1 thread, passive wait", 1, "PASSIVE"),
    ("all cores, passive wait", "cores", "PASSIVE"),
    ("new default: threads from the load, passive wait", None, "PASSIVE"),
)


def bench_threads_step(args: argparse.Namespace) -> None:
    """Child of ``threads``: time the cpu-64 recipe's step with the thread count the arguments ask
    for (``--threads 0``: the product's choice from the load average); prints one JSON line."""
    from likeness.train.loop import configure_cpu_threads

    choice = configure_cpu_threads(args.threads or None)
    step, _, _ = _recipe_step("cpu-64", threads=None)  # the threads just chosen
    seconds = _median_step_seconds(step, warmup=args.warmup, repeats=args.repeats)
    print(
        json.dumps(
            {
                "threads": choice.threads,
                "reason": choice.reason,
                "step_s": seconds,
                "wait": os.environ.get("OMP_WAIT_POLICY"),
            }
        )
    )


def bench_threads(args: argparse.Namespace) -> None:
    """it/s of the cpu-64 recipe's step (batch 4, 64 px, the loop's arithmetic) by thread count and
    OpenMP wait policy, each row in a fresh process (OpenMP reads the policy when torch loads),
    rows interleaved round by round so all see the same load; median over ``--rounds``.
    ``--compete N`` runs N busy-looping processes meanwhile, standing in for other people's jobs."""
    import subprocess

    from likeness.train.loop import available_cores

    cores = available_cores()
    competitors = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.compete)]
    try:
        time.sleep(5 if competitors else 0)
        load_start = os.getloadavg()[0]
        results: dict[str, list[dict]] = {label: [] for label, _, _ in _THREAD_ROWS}
        for _ in range(args.rounds):
            for label, threads, wait in _THREAD_ROWS:
                env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
                if wait:
                    env["OMP_WAIT_POLICY"] = wait
                count = cores if threads == "cores" else (threads or 0)
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "threads-step",
                        "--threads",
                        str(count),
                        "--warmup",
                        str(args.warmup),
                        "--repeats",
                        str(args.repeats),
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
        load_end = os.getloadavg()[0]
    finally:
        for competitor in competitors:
            competitor.kill()
            competitor.wait()
    print(
        f"# cpu-64 recipe step (df 64 px, batch 4), {cores} cores, {args.compete} busy-looping competitor(s); "
        f"median of {args.rounds} rounds x {args.repeats} steps after {args.warmup} warm-up; "
        f"load average {load_start:.1f} at start, {load_end:.1f} at end"
    )
    print("| setting | threads used | it/s (median) | it/s per round | vs old default |")
    print("|---|---|---|---|---|")
    old = statistics.median(1 / r["step_s"] for r in results[_THREAD_ROWS[0][0]])
    for label, _, _ in _THREAD_ROWS:
        rates = [1 / r["step_s"] for r in results[label]]
        used = ", ".join(sorted({str(r["threads"]) for r in results[label]}))
        print(
            f"| {label} | {used} | {statistics.median(rates):.2f} | {' / '.join(f'{v:.2f}' for v in rates)} | "
            f"{statistics.median(rates) / old:.1f}x |",
            flush=True,
        )


#: The preview (cpu-64) recipe's whole loop on an idle 2-core CPU: 15 500-16 400 iterations in
#: 30-minute runs (docs/training.md, "The warp fix"), about 8.9 it/s. The reference the CPU
#: figures of ``recipes`` are scaled by, since this shared machine is rarely idle.
PREVIEW_LOOP_IT_S_IDLE = 8.9
#: The df 128 px step (full widths, fp16) measured on one H200 (docs/training.md, "GPU"): it/s by batch.
H200_DF128_IT_S = {16: 40.6, 64: 13.7}
OVERNIGHT_HOURS = 8.0


def _recipe_step(name: str, *, threads: int | None):
    """(step function, parameter count, batch) of recipe ``name``'s model on random faces, with the
    loop's arithmetic (bfloat16 autocast where native), reconstruction loss and fused AdamW; no data
    loading and no true-face discriminator (a small share of the step). ``threads``: torch's
    intra-op threads (None keeps the process's)."""
    from likeness.train.loop import autocast_dtype, cpu_supports_bfloat16, make_optimizer
    from likeness.train.losses import reconstruction_loss
    from likeness.train.recipes import RECIPES

    recipe = RECIPES[name]
    if threads is not None:  # None: keep the process's thread count
        torch.set_num_threads(threads)
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = create_model(recipe["model"], resolution=recipe["resolution"], **recipe["model_options"])
    batch, res = recipe["batch_size"], recipe["resolution"]
    x = torch.rand(batch, 3, res, res)
    mask = torch.ones(batch, 1, res, res)
    opt = make_optimizer(model, learning_rate=1e-4, weight_decay=1e-4, device=device)
    dtype = autocast_dtype("auto", device, cpu_bfloat16=cpu_supports_bfloat16())

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            (a, am), (b, bm) = model.reconstruct_pair(x, x)
        la, _ = reconstruction_loss(a.float(), am.float(), x, mask, mask)
        lb, _ = reconstruction_loss(b.float(), bm.float(), x, mask, mask)
        opt.zero_grad(set_to_none=True)
        (la + lb).backward()
        opt.step()

    return step, count_parameters(model), batch


def bench_recipes(args: argparse.Namespace) -> None:
    """Step time of each named recipe on this CPU, one step of each in turn (``--rounds`` x
    ``--repeats`` turns, so neighbouring steps see the same load), and what that makes of each
    recipe's time on an idle 2-core CPU: the median of the per-turn ratios against ``preview``
    times the preview loop's idle speed. ``gpu-256`` is timed on the CPU too (``--rounds-256``
    steps after the others) to show why it is refused there; its GPU time is an extrapolation
    from the 128 px step measured on an H200, marked as such."""
    from likeness.train.recipes import RECIPES, recipe_names

    names = [n for n in recipe_names() if n != "gpu-256"]
    steps = {name: _recipe_step(name, threads=args.threads) for name in names}
    for name in names:
        for _ in range(args.warmup):
            steps[name][0]()
    times: dict[str, list[float]] = {name: [] for name in names}
    load_start = os.getloadavg()[0]
    for _turn in range(args.rounds * args.repeats):
        for name in names:
            start = time.perf_counter()
            steps[name][0]()
            times[name].append(time.perf_counter() - start)
    if args.rounds_256 > 0:
        names.append("gpu-256")
        steps["gpu-256"] = _recipe_step("gpu-256", threads=args.threads)
        steps["gpu-256"][0]()  # warm-up
        times["gpu-256"] = []
        for _ in range(args.rounds_256):
            start = time.perf_counter()
            steps["gpu-256"][0]()
            times["gpu-256"].append(time.perf_counter() - start)
    load_end = os.getloadavg()[0]
    turns = args.rounds * args.repeats
    print(
        f"# recipe steps on this CPU ({os.cpu_count()} cores, {args.threads} threads): {turns} turns of one step "
        f"each after {args.warmup} warm-up; gpu-256: {args.rounds_256} step(s) after one warm-up, after the "
        f"others; load average {load_start:.1f} at start, {load_end:.1f} at end"
    )
    print(
        "| recipe | res | batch | params (M) | fastest ms/step here | median ms/step here | step vs preview "
        f"(median per turn) | idle 2-core loop it/s (extrapolated) | iterations in {OVERNIGHT_HOURS:.0f} h "
        "(extrapolated) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        if name == "gpu-256":  # not timed in turns: against the fastest preview step
            ratio = min(times[name]) / min(times["preview"])
        else:
            ratio = statistics.median(t / p for t, p in zip(times[name], times["preview"]))
        idle_rate = PREVIEW_LOOP_IT_S_IDLE / ratio
        _, params, batch = steps[name]
        print(
            f"| {name} | {RECIPES[name]['resolution']} | {batch} | {params / 1e6:.1f} | {min(times[name]) * 1000:.0f} "
            f"| {statistics.median(times[name]) * 1000:.0f} | {ratio:.2f}x | {idle_rate:.2f} | "
            f"{idle_rate * OVERNIGHT_HOURS * 3600:,.0f} |",
            flush=True,
        )
    if "gpu-256" not in names:
        return
    # 256 px: 4x the pixels of 128 px per face; the H200 step is taken to scale with pixels x batch,
    # from the 128 px step at batch 16 (as small a batch as the recipe's) and at batch 64.
    batch_256 = RECIPES["gpu-256"]["batch_size"]
    hours = {b: 100_000 * 2 * batch_256 / (rate * 2 * b / 4) / 3600 for b, rate in H200_DF128_IT_S.items()}
    print(
        f"# gpu-256 on one H200 (EXTRAPOLATED, not measured: no GPU in this run): the df 128 px step at full "
        f"widths ran {H200_DF128_IT_S[16]} it/s at batch 16 and {H200_DF128_IT_S[64]} at batch 64; at 4x the "
        f"pixels, batch {batch_256}, 100 000 iterations take about {hours[64]:.1f}-{hours[16]:.1f} h "
        f"(on this CPU, from the measured step above: {100_000 * statistics.median(times['gpu-256']) / 3600 / 24:.0f} "
        "days at this load)"
    )


def bench_gate(args: argparse.Namespace) -> None:
    """The coverage gate on the issue's case: a handful of photos of one synthetic East Asian
    identity (seeprettyface ``wanghong``: two edit strips and two portraits) as the source, the
    consenting actor's talking clip (every ``--every``-th frame) as the performer. Extracts both
    in a throw-away workspace (real grant and release) and prints what the gate says."""
    from likeness.faceset import ExtractOptions, enroll_reference_photos, extract_faceset, load_faceset
    from likeness.faceset.report import CoverageRefused, coverage_check, coverage_summary

    media = Path(args.media)
    photos = media / "synthetic_people" / "seeprettyface_1024"
    source_inputs = [
        photos / "edit_strips" / "wanghong_edit_angle.jpg",
        photos / "edit_strips" / "wanghong_edit_smile.jpg",
        photos / "wanghong_example1.png",
        photos / "wanghong_example2.png",
    ]
    clip = media / "video" / "dfdc_consenting_actor_lynaeydofd.mp4"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        workspace, authz, release = _benchmark_consent(root)
        try:
            enroll_reference_photos(
                workspace, "idol", [photos / "wanghong_example1.png", photos / "wanghong_example2.png"]
            )
            enroll_reference_photos(workspace, "performer", [clip])
            start = time.perf_counter()
            report = extract_faceset(workspace, authz, source_inputs, root / "source", options=ExtractOptions())
            print(
                "source extraction: rejected",
                {k: v for k, v in report.rejected.items() if v},
                "near-duplicates:",
                [(Path(d["face"]).name, d["reason"]) for d in report.duplicates_dropped],
            )
            extract_faceset(
                workspace, release, [clip], root / "performer", options=ExtractOptions(frame_step=args.every)
            )
            seconds = time.perf_counter() - start
            source, performer = list(load_faceset(root / "source")), list(load_faceset(root / "performer"))
            print(
                f"# coverage gate: source {len(source)} faces from {len(source_inputs)} photos, performer "
                f"{len(performer)} faces from every {args.every}. frame of {clip.name}; extraction {seconds:.0f} s"
            )
            for name, records in (("source", source), ("performer", performer)):
                share = coverage_summary(records)["share"]
                print(
                    f"{name}: mouth open {share['mouth_open']:.0%}, eyes closed {share['eyes_closed']:.0%}, "
                    f"left {share['looking_subject_left']:.0%}, right {share['looking_subject_right']:.0%}, "
                    f"up {share['looking_up']:.0%}, down {share['looking_down']:.0%}"
                )
            try:
                checked = coverage_check(performer, source, accept_gaps=False)
                print("not refused; gaps:", [gap["sentence"] for gap in checked["gaps"]])
            except CoverageRefused as refused:
                print(refused)
        finally:
            workspace.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "what",
        choices=[
            "speed",
            "loop",
            "onnx",
            "quality",
            "score-swaps",
            "memory",
            "ceiling",
            "threads",
            "threads-step",
            "gate",
            "recipes",
            "priority",
            "all",
        ],
        nargs="?",
        default="all",
    )
    parser.add_argument("--media", default="../shared/media", help="development media folder")
    parser.add_argument("--minutes", type=float, default=30.0, help="quality: training minutes")
    parser.add_argument(
        "--iterations", type=int, default=None, help="quality: train this many iterations instead of --minutes"
    )
    parser.add_argument("--workers", type=int, default=None, help="quality: data workers (default automatic)")
    parser.add_argument(
        "--faces-file",
        default=None,
        help="quality: aligned faces (.npz); read if it exists, else written after aligning "
        "(for machines without MediaPipe)",
    )
    parser.add_argument(
        "--record-swaps",
        default=None,
        metavar="FOLDER",
        help="quality: record the held-out swaps at every checkpoint instead of embedding them "
        "(for machines without dlib); score them with score-swaps",
    )
    parser.add_argument("--swaps", default=None, metavar="FOLDER", help="score-swaps: folder from --record-swaps")
    parser.add_argument("--model", default="df", help="quality: architecture")
    parser.add_argument("--res", type=int, default=64, help="quality: resolution")
    parser.add_argument("--batch", type=int, default=None, help="quality: batch size (default automatic)")
    parser.add_argument("--lr", type=float, default=2e-4, help="quality: learning rate")
    parser.add_argument(
        "--seed", type=int, default=0, help="quality: seed (held-out split, batches, augmentation, initial weights)"
    )
    parser.add_argument(
        "--ema-decay",
        type=float,
        default=TRAIN_DEFAULTS.ema_decay,
        help="quality: weight-average decay (0 = evaluate the live weights)",
    )
    parser.add_argument(
        "--lr-decay-iters",
        type=int,
        default=None,
        help="quality: cosine learning-rate decay to 0.1x over this many iterations (default: constant)",
    )
    parser.add_argument(
        "--true-face-power",
        type=float,
        default=0.0,
        help="quality: weight of the code discriminator (df only; 0 = off)",
    )
    parser.add_argument("--checkpoint-every", type=int, default=150, help="quality: iterations between checkpoints")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="speed/loop/quality: training arithmetic, as likeness train --precision "
        "(auto: float16 on CUDA, bfloat16 on CPUs with native support)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--faces", type=int, default=50_000, help="memory: records in the synthetic faceset")
    parser.add_argument("--warmup", type=int, default=2, help="speed: warm-up steps")
    parser.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda", "auto"], help="speed/loop/quality: where to train"
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 16], help="speed: batch sizes")
    parser.add_argument("--loop-seconds", type=float, default=60.0, help="loop: seconds timed per row")
    parser.add_argument(
        "--loop-workers",
        type=int,
        nargs="+",
        default=[None],
        help="loop: data worker counts to compare (default: the automatic count)",
    )
    parser.add_argument(
        "--loaders",
        nargs="+",
        default=["auto"],
        choices=["auto", "threads", "processes"],
        help="loop: batch loaders to compare",
    )
    parser.add_argument("--repeats", type=int, default=5, help="speed/onnx: timed repeats")
    parser.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="quality: architecture option, e.g. d_dims=16 (repeatable)",
    )
    parser.add_argument(
        "--augment",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="quality: augmentation option, e.g. warp_strength=0.15 (repeatable)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="quality: continue the run kept in --out for --minutes more (saved recipe wins)",
    )
    parser.add_argument("--out", default=None, help="quality: keep the workspace and model here")
    parser.add_argument("--compete", type=int, default=0, help="threads: busy-looping processes to run meanwhile")
    parser.add_argument("--rounds", type=int, default=3, help="threads/recipes: interleaved rounds")
    parser.add_argument(
        "--rounds-256",
        type=int,
        default=1,
        help="recipes: rounds of the gpu-256 step on the CPU (one step each; 0 leaves it out)",
    )
    parser.add_argument(
        "--recipe",
        default=None,
        help="quality: start from this named recipe (its model, res, batch, lr, warp, true face and "
        "widths replace those options)",
    )
    parser.add_argument("--every", type=int, default=2, help="gate: use every n-th frame of the performer's clip")
    parser.add_argument(
        "--priorities", type=float, nargs="+", default=[0.0, 1.0, 3.0], help="priority: eyes/mouth weights compared"
    )
    parser.add_argument("--frames", type=int, default=60, help="priority: talking frames per idol (performer: twice)")
    args = parser.parse_args()
    if args.what == "threads":
        bench_threads(args)
    if args.what == "threads-step":
        bench_threads_step(args)
    if args.what == "gate":
        bench_gate(args)
    if args.what == "recipes":
        bench_recipes(args)
    if args.what == "priority":
        bench_priority(args)
    if args.what in ("speed", "all"):
        bench_speed(args)
    if args.what == "loop":
        bench_loop(args)
    if args.what in ("onnx", "all"):
        bench_onnx(args)
    if args.what in ("ceiling", "all"):
        bench_ceiling(args)
    if args.what in ("memory", "all"):
        bench_memory(args)
    if args.what in ("quality", "all"):
        bench_quality(args)
    if args.what == "score-swaps":
        bench_score_swaps(args)


if __name__ == "__main__":
    main()
