"""Train the manipulation detector on pristine faces only, with Self-Blended Images as fakes.

Each batch holds aligned pristine faces and, for the same faces, their self-blends
(``likeness.detector.sbi``); both go through the same platform degradations. The network is
MobileNetV2 with a one-logit head, trained with BCE and AdamW one-cycle, starting from the shipped
general detector (``likeness.detector.general``, the default: an agency fine-tune), from the
packaged ImageNet weights (how the general model is trained), from another detector's checkpoint,
or from scratch (the benchmark's baseline); the card records the start's name and sha256.
Training state (weights, optimiser, schedule, data RNG, step) is checkpointed atomically
(``likeness.train.checkpoint``) and a rerun resumes exactly where it stopped; a Ctrl-C stops
after the step in flight with a checkpoint of it (``TrainingInterrupted``). At the end the
logit is calibrated by temperature on held-out self-blends, the threshold is set at a fixed
false-positive rate on held-out pristine faces, the network is exported to ONNX and a card is
written beside it.

Alignment keeps each image's result as it is made (``likeness.detector.aligned_store``, in
``OUT/aligned-faces/``): a Ctrl-C there stops after the image in flight (``AlignmentInterrupted``)
and a rerun aligns only the images not kept yet. The folder goes once the card is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from likeness import __version__, strict_json
from likeness.detector.aligned_store import ALIGNED_FOLDER, NOT_KEPT, AlignedFaceStore
from likeness.detector.calibration import fit_temperature, roc_auc, threshold_at_fpr
from likeness.detector.sbi import SbiOptions, degrade, self_blend
from likeness.digests import sha256_file
from likeness.durable import write_atomic
from likeness.errors import ConfigError, FaceError, ModelError
from likeness.faces.align import Coverage

logger = logging.getLogger(__name__)

#: Side of the network input. Faces are aligned at this size in COVERAGE.
DETECTOR_INPUT = 128
#: "head" keeps a margin of hair and background around the face hull: the blend boundary of a
#: swap lies inside the crop, where the network can see it.
COVERAGE: Coverage = "head"
DEFAULT_SBI = SbiOptions()
MODEL_FILE = "detector.onnx"
CARD_FILE = "detector.card.json"
CHECKPOINT_FILE = "checkpoint.pt"
DetectorStart = Literal["general", "imagenet", "scratch"]
DETECTOR_STARTS: tuple[DetectorStart, ...] = ("general", "imagenet", "scratch")


@dataclass(frozen=True)
class AlignedFaceSample:
    """One pristine face aligned at DETECTOR_INPUT: uint8 RGB crop, (478, 2) crop landmarks and
    the identity it belongs to (splits never share identities)."""

    image: np.ndarray
    landmarks: np.ndarray
    identity: str


@dataclass(frozen=True)
class DetectorTrainConfig:
    steps: int = 800
    batch: int = 16  # half pristine, half their self-blends
    learning_rate: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 50
    threads: int = 1
    #: Where the weights start: ``general`` (the shipped general detector, ``likeness.detector.general``:
    #: an agency fine-tune), ``imagenet`` (torchvision's ImageNet MobileNetV2: how the general model
    #: itself is trained) or ``scratch`` (random initialisation, the benchmark's baseline).
    start: DetectorStart = "general"
    width: float = 1.0
    target_fpr: float = 0.05
    #: Start from this detector checkpoint's weights instead of ``start`` (a fine-tune of another
    #: detector, e.g. a retrained general model or an earlier fine-tune).
    init_checkpoint: str | None = None
    sbi: SbiOptions = field(default_factory=SbiOptions)


def detector_out_folder(out_dir: Path) -> Path:
    """``out_dir`` made ready for a detector's files (``ModelError`` naming it otherwise): never a
    folder of the installed package, whose shipped general model every fine-tune starts from (a
    file written there replaces a shipped one, or sits beside it as if shipped), and never a path
    that is a file or cannot be made. Called before any face is aligned."""
    from likeness.assets import asset_path, package_folder
    from likeness.detector.general import GENERAL_CARD_ASSET

    out_dir = Path(out_dir)
    general = asset_path(GENERAL_CARD_ASSET)
    installed = [f.resolve() for f in (package_folder("likeness"), general and general.parent) if f is not None]
    resolved = out_dir.resolve()
    inside = next((f for f in installed if resolved == f or resolved.is_relative_to(f)), None)
    if inside is not None:
        raise ModelError(f"{out_dir}: inside the installed likeness package ({inside}); write detectors elsewhere")
    if out_dir.exists() and not out_dir.is_dir():
        raise ModelError(f"{out_dir}: not a folder (give a folder for the detector's files)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"{out_dir}: cannot make this folder ({exc.strerror or type(exc).__name__})") from None
    return out_dir


class AlignmentInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the alignment of training images after ``done`` of ``total``; with a
    store, those are kept in ``folder`` and a rerun does not align them again (None: no store,
    nothing kept). A ``KeyboardInterrupt`` still; the CLI says what was kept and exits 130."""

    def __init__(self, done: int, total: int, folder: Path | None) -> None:
        kept = f"kept in {folder}" if folder is not None else "not kept"
        super().__init__(f"alignment interrupted after {done} of {total} image(s) ({kept})")
        self.done = done
        self.total = total
        self.folder = folder


def align_recipe() -> str:
    """What an aligned face depends on besides its image's bytes, as JSON: a store's entry made
    by another recipe is aligned again (``likeness.detector.aligned_store``)."""
    from importlib.metadata import version

    return json.dumps(
        {
            "size": DETECTOR_INPUT,
            "coverage": COVERAGE,
            "faces": f"mediapipe {version('mediapipe')}: FaceDetector(mode='image') defaults, the largest face",
            "likeness": __version__,
        },
        sort_keys=True,
    )


def align_paths(
    paths: Sequence[Path],
    *,
    identity_of: Callable[[Path], str] = lambda p: p.stem,
    progress: Callable[[int, int], None] | None = None,
) -> list[AlignedFaceSample]:
    """Detect the largest face of each image and align it for the detector.

    Images without a face are skipped (logged); unreadable files raise ``MediaError``.
    """
    aligned = align_each(paths, [identity_of(p) for p in paths], progress=progress)
    return [sample for sample in aligned if sample is not None]


def align_each(
    paths: Sequence[Path],
    identities: Sequence[str],
    *,
    progress: Callable[[int, int], None] | None = None,
    store: AlignedFaceStore | None = None,
) -> list[AlignedFaceSample | None]:
    """The largest face of each image aligned for the detector, as ``identities`` says whose it
    is; None for an image without a face (logged). Unreadable files raise ``MediaError``.

    With ``store``, an image whose result it keeps (same bytes, same :func:`align_recipe`) is not
    aligned again, and each new result is kept as soon as it is made. The first Ctrl-C stops
    after the image in flight, a second at once: ``AlignmentInterrupted`` says how many are done.
    """
    from likeness.faces.detect import FaceDetector
    from likeness.media.images import read_image
    from likeness.train.loop import InterruptRequest

    if len(identities) != len(paths):
        raise ValueError(f"align_each: {len(paths)} paths but {len(identities)} identities")
    aligned: list[AlignedFaceSample | None] = []
    with contextlib.ExitStack() as stack:
        stop = stack.enter_context(InterruptRequest())
        detector = None  # made at the first image the store does not keep
        try:
            for path, identity in zip(paths, identities, strict=True):
                # not a regular file: read_image names the reason
                digest = sha256_file(path) if store is not None and Path(path).is_file() else None
                kept = store.read(digest) if store is not None and digest is not None else NOT_KEPT
                if kept is NOT_KEPT:
                    if detector is None:
                        detector = stack.enter_context(FaceDetector(mode="image"))
                    sample = align_largest(detector, read_image(path), identity=identity)
                    if store is not None and digest is not None:
                        store.keep(digest, None if sample is None else (sample.image, sample.landmarks))
                else:
                    sample = None if kept is None else AlignedFaceSample(kept[0], kept[1], identity)
                if sample is None:
                    logger.info("no face in %s: skipped", path)
                aligned.append(sample)
                if progress:
                    progress(len(aligned), len(paths))
                if stop.requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt as stopped:
            kept_in = store.folder if store is not None else None
            raise AlignmentInterrupted(len(aligned), len(paths), kept_in) from stopped
    return aligned


def align_largest(detector: Any, rgb: np.ndarray, *, identity: str) -> AlignedFaceSample | None:
    """The largest face ``detector`` finds in ``rgb``, aligned for the detector (None if no face)."""
    from likeness.faces.align import align_face

    faces = detector.detect(rgb)
    if not faces:
        return None
    face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
    aligned = align_face(rgb, face.landmarks, size=DETECTOR_INPUT, coverage=COVERAGE)
    return AlignedFaceSample(aligned.image, aligned.landmarks, identity)


def training_pair(
    sample: AlignedFaceSample, rng: np.random.Generator, options: SbiOptions = DEFAULT_SBI
) -> tuple[np.ndarray, np.ndarray]:
    """(pristine, self-blended) uint8 RGB crops of one face, mirrored together and each degraded."""
    image, landmarks = sample.image, sample.landmarks
    if rng.random() < 0.5:
        image = image[:, ::-1].copy()
        landmarks = landmarks.copy()
        landmarks[:, 0] = image.shape[1] - 1 - landmarks[:, 0]
    fake, _ = self_blend(image, landmarks, rng, options=options)
    return degrade(image, rng), degrade(fake, rng)


def to_tensor_batch(crops: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 RGB ``(S, S, 3)`` crops -> float32 ``(N, 3, S, S)`` in [0, 1] (the ONNX input)."""
    return np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2) / 255.0


def validation_set(
    samples: Sequence[AlignedFaceSample], *, seed: int = 1234, options: SbiOptions = DEFAULT_SBI
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed (crops, labels) for validation: every face once pristine and once self-blended,
    without the random degradations (label 1 = manipulated)."""
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    for sample in samples:
        fake, _ = self_blend(sample.image, sample.landmarks, rng, options=options)
        crops += [sample.image, fake]
        labels += [0, 1]
    return np.stack(crops), np.array(labels, np.int64)


def _predict_logits(net: Any, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(crops), batch):
            out.append(net(torch.from_numpy(to_tensor_batch(list(crops[start : start + batch]))))[:, 0].numpy())
    return np.concatenate(out).astype(np.float64)


def train_detector(
    train: Sequence[AlignedFaceSample],
    validation: Sequence[AlignedFaceSample],
    out_dir: Path,
    *,
    config: DetectorTrainConfig = DetectorTrainConfig(),
    data_note: str = "",
    model_id: str = "likeness.detector.sbi",
    training_files: Sequence[str] = (),
    progress: Callable[[int, int, float], None] | None = None,
    initial: tuple[Any, dict[str, Any]] | None = None,
) -> dict:
    """Train, checkpoint to ``out_dir/checkpoint.pt`` (atomic; a rerun resumes exactly), calibrate,
    export ``out_dir/detector.onnx`` and write ``out_dir/detector.card.json``. Returns the card.

    ``training_files``: sha256 of every file the faces came from (training and calibration), kept
    in the card with those its start's card lists (a fine-tune has seen them too) so that
    ``likeness detector evaluate`` can refuse them as held-out media. ``initial``: the network
    and start :func:`initial_network` gave for ``config``, when the caller built it already."""
    import torch

    from likeness.train.checkpoint import (
        load_checkpoint,
        loop_state,
        refuse_other_run,
        remove_stale_temp_files,
        resume_loop,
        save_checkpoint,
    )
    from likeness.train.loop import InterruptRequest, TrainingInterrupted

    if len(train) < 2 or len(validation) < 2:
        raise FaceError(
            f"train_detector: needs at least 2 training and 2 validation faces, got {len(train)} and {len(validation)}"
        )
    overlap = {s.identity for s in train} & {s.identity for s in validation}
    if overlap:
        raise FaceError(f"train_detector: identities in both training and validation: {sorted(overlap)[:5]}")
    detector_out_folder(out_dir)
    remove_stale_temp_files(out_dir)
    torch.set_num_threads(max(1, config.threads))
    net, base = initial or initial_network(config)
    torch.manual_seed(config.seed)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.learning_rate, total_steps=config.steps, pct_start=0.15
    )
    checkpoint = out_dir / CHECKPOINT_FILE
    step, seconds = 0, 0.0
    rng = np.random.default_rng(config.seed)
    run = run_record(config, base, training_files, train, validation)
    if checkpoint.exists():
        state = load_checkpoint(checkpoint)
        refuse_other_run(checkpoint, state.get("run"), run, elsewhere="another --out folder")
        step, seconds = resume_loop(state, net, optimiser, schedule, rng)
        logger.info("resumed detector training at step %d", step)
    started = time.perf_counter() - seconds
    half = max(1, config.batch // 2)
    # The first Ctrl-C stops after the step in flight with a checkpoint of it (a second one at
    # once), as model training does: between checkpoints a stop lost up to 49 steps.
    with InterruptRequest() as stop:
        while step < config.steps:
            net.train()
            pairs = [training_pair(train[int(i)], rng, config.sbi) for i in rng.integers(0, len(train), half)]
            images = torch.from_numpy(to_tensor_batch([p[0] for p in pairs] + [p[1] for p in pairs]))
            targets = torch.cat([torch.zeros(half, 1), torch.ones(half, 1)])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(images), targets)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            if step % config.checkpoint_every == 0 or step == config.steps or stop.requested:
                save_checkpoint(
                    checkpoint,
                    {
                        **loop_state(net, optimiser, schedule, rng, step, seconds=time.perf_counter() - started),
                        "run": run,
                    },
                )
            if progress:
                progress(step, config.steps, float(loss.item()))
            if stop.requested and step < config.steps:
                raise TrainingInterrupted(checkpoint, step)
    seconds = time.perf_counter() - started

    onnx_path = out_dir / MODEL_FILE
    export_onnx(net, onnx_path)
    calibration, validation_figures = calibrate(net, validation, config)
    card = {
        "model": model_id,
        "file": onnx_path.name,
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "input": f"float32 (N, 3, {DETECTOR_INPUT}, {DETECTOR_INPUT}) RGB in [0, 1]: a face aligned with "
        f"likeness.faces.align_face(size={DETECTOR_INPUT}, coverage={COVERAGE!r})",
        "output": "float32 (N, 1) logit that the face was manipulated (blended into the frame)",
        "calibration": calibration,
        "training": {
            **{k: v for k, v in asdict(config).items() if k != "sbi"},
            "sbi": asdict(config.sbi),
            "faces": len(train),
            "identities": len({s.identity for s in train}),
            "seconds": round(seconds, 1),
            "data": data_note,
            "backbone": f"MobileNetV2 width {config.width}, {base['started_from']}",
            "base": {"name": base["name"], "sha256": base["sha256"]},
            "method": "Self-Blended Images (Shiohara & Yamasaki 2022) on pristine faces only; BCE, "
            "AdamW one-cycle; mirrored, brightness/blur/rescale/JPEG on both classes",
            "device": "cpu",
            "files_sha256": sorted(set(training_files) | set(inherited_training_files(config))),
        },
        "validation": validation_figures,
        "trained": time.strftime("%Y-%m-%d", time.gmtime()),
        "licence": "weights trained by likeness from torchvision's MobileNetV2 ImageNet weights (BSD-3-Clause); "
        "training faces as in training.data",
    }
    # replaced, never written through: a link planted at the card's name is not followed
    write_atomic(out_dir / CARD_FILE, (json.dumps(card, indent=2) + "\n").encode())
    return card


def calibrate(
    net: Any, validation: Sequence[AlignedFaceSample], config: DetectorTrainConfig
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The card's ``calibration`` and ``validation`` of ``net`` on the held-out faces: temperature
    fitted on their pristine and self-blended crops, the threshold at ``config.target_fpr`` of the
    pristine ones, the SBI AUC and the rates at that threshold."""
    crops, labels = validation_set(validation, options=config.sbi)
    logits = _predict_logits(net, crops)
    temperature = fit_temperature(logits, labels)
    real_scores = logits[labels == 0] / temperature
    threshold_logit = threshold_at_fpr(real_scores, config.target_fpr)
    calibration = {
        "method": "temperature scaling on held-out self-blended and pristine faces",
        "temperature": round(float(temperature), 6),
        "threshold_logit": round(float(threshold_logit), 6),
        "threshold_probability": round(float(1 / (1 + np.exp(-threshold_logit))), 6),
        "target_false_positive_rate": config.target_fpr,
        "threshold_set_on": f"{int((labels == 0).sum())} held-out pristine faces (calibrated logit quantile)",
    }
    figures = {
        "faces": len(validation),
        "identities": len({s.identity for s in validation}),
        "sbi_auc": round(roc_auc(labels, logits), 4),
        "sbi_recall_at_threshold": round(float((logits[labels == 1] / temperature >= threshold_logit).mean()), 4),
        "pristine_fpr_at_threshold": round(float((real_scores >= threshold_logit).mean()), 4),
    }
    return calibration, figures


def run_record(
    config: DetectorTrainConfig,
    base: dict[str, Any],
    training_files: Sequence[str],
    train: Sequence[AlignedFaceSample],
    validation: Sequence[AlignedFaceSample],
) -> str:
    """What a training run is (settings but threads, start, files, faces and split), as JSON kept
    in its checkpoint: a resume must be the same run, or the weights would be the old run's and
    the card would name the new one's start and files (e.g. not the artist frames trained on)."""
    settings = {k: v for k, v in asdict(config).items() if k != "threads"}
    return json.dumps(
        {
            "settings": settings,
            "base": {"name": base["name"], "sha256": base["sha256"]},
            "files_sha256": sorted(set(training_files)),
            "faces": {"train": len(train), "validation": len(validation)},
            "validation_identities": sorted({s.identity for s in validation}),
        },
        sort_keys=True,
    )


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})


def train_from_folders(
    real: Sequence[Path],
    out_dir: Path,
    *,
    train_only: Sequence[Path] = (),
    identity_from_folder: bool = False,
    config: DetectorTrainConfig = DetectorTrainConfig(),
    progress: Callable[[str, int, int, float], None] | None = None,
) -> dict:
    """Align every image under ``real`` and ``train_only``, hold out one identity in seven of
    ``real`` (by name order) for validation, calibration and the threshold, and train into
    ``out_dir`` (resuming its checkpoint). Returns the card.

    Identity is the file stem, or the parent folder's name with ``identity_from_folder``. Faces
    under ``train_only`` (e.g. an artist's own authentic footage) are used for training only.
    ``progress(stage, done, total, loss)``: stage "align" or "train". Aligned faces are kept
    in ``out_dir/aligned-faces`` until the card is written, so a rerun after a stop (Ctrl-C:
    ``AlignmentInterrupted`` during alignment, ``TrainingInterrupted`` during training) aligns
    only what is not kept yet.
    """
    paths, extra = image_paths(real), image_paths(train_only)

    def identity(path: Path) -> str:
        return path.parent.name if identity_from_folder else path.stem

    identities = sorted({identity(p) for p in paths})
    if len(identities) < 14:
        raise FaceError(
            f"detector training: need at least 14 identities under {', '.join(map(str, real))} "
            f"(one in seven is held out), found {len(identities)}"
        )
    held_out = held_out_identities(identities)
    # An edited shipped model, an unreadable checkpoint or an unusable --out is refused before
    # minutes of alignment.
    detector_out_folder(out_dir)
    inherited_training_files(config)
    initial = initial_network(config)
    store = AlignedFaceStore.open(Path(out_dir) / ALIGNED_FOLDER, recipe=align_recipe())
    aligned = align_each(
        [*paths, *extra],
        [identity(p) for p in paths] + [f"train-only:{p.parent.name}" for p in extra],
        progress=(lambda d, t: progress("align", d, t, 0.0)) if progress else None,
        store=store,
    )
    faces = [f for f in aligned[: len(paths)] if f is not None]
    own = [f for f in aligned[len(paths) :] if f is not None]
    train = [f for f in faces if f.identity not in held_out] + own
    validation = [f for f in faces if f.identity in held_out]
    note = f"{len(train) - len(own)} faces from {', '.join(Path(f).name for f in real)}"
    if own:
        note += f" and {len(own)} from {', '.join(Path(f).name for f in train_only)} (training only)"
    note += f"; {len(validation)} faces of {len(held_out)} held-out identities for validation"
    files = [sha256_file(p) for p in [*paths, *extra]]
    card = train_detector(
        train,
        validation,
        out_dir,
        config=config,
        data_note=note,
        model_id=model_id_of(config),
        training_files=files,
        progress=(lambda d, t, loss: progress("train", d, t, loss)) if progress else None,
        initial=initial,
    )
    store.remove()  # the card is written: nothing resumes from the crops, faces of real people
    return card


def model_id_of(config: DetectorTrainConfig) -> str:
    """The card's model id: a fine-tune of a detector, the general recipe, or the scratch baseline."""
    if config.init_checkpoint or config.start == "general":
        return "likeness.detector.sbi-finetune"
    return "likeness.detector.sbi" if config.start == "imagenet" else "likeness.detector.sbi-scratch"


def initial_network(config: DetectorTrainConfig) -> tuple[Any, dict[str, Any]]:
    """The network training starts from and what the card says of that start: ``name``,
    ``sha256`` (of the weights file; None for a random start) and ``started_from`` (prose).

    ``init_checkpoint`` wins over ``start``. Weights that do not fit the network (another width
    or architecture) and an edited shipped file are a ``ModelError`` naming the file."""
    import torch

    from likeness.assets import asset
    from likeness.detector.general import GENERAL_BASE_NAME, general_network
    from likeness.detector.network import IMAGENET_WEIGHTS_FILE, IMAGENET_WEIGHTS_PACKAGE, build_detector
    from likeness.train.checkpoint import read_checkpoint

    if config.start not in DETECTOR_STARTS:
        raise ConfigError(f"detector start {config.start!r}: expected one of {', '.join(DETECTOR_STARTS)}")
    torch.manual_seed(config.seed)  # a random start is the same on every run of a config
    if config.init_checkpoint:
        path = Path(config.init_checkpoint)
        state, digest = read_checkpoint(path)
        net = _load_strictly(build_detector(pretrained=False, width=config.width), state.get("net"), str(path))
        return net, {"name": str(path), "sha256": digest, "started_from": f"fine-tuned from {path}"}
    if config.start == "general":
        if config.width != 1.0:
            raise ConfigError(f"the general detector is MobileNetV2 width 1.0, not {config.width}: start elsewhere")
        net, digest = general_network()
        return net, {
            "name": GENERAL_BASE_NAME,
            "sha256": digest,
            "started_from": "fine-tuned from the shipped general detector (likeness.detector.general)",
        }
    if config.start == "imagenet":
        return build_detector(pretrained=True, width=config.width), {
            "name": "mobilenet-v2-imagenet",
            "sha256": asset("mobilenet-v2-imagenet").sha256,
            "started_from": f"from torchvision's ImageNet weights ({IMAGENET_WEIGHTS_PACKAGE}/{IMAGENET_WEIGHTS_FILE})",
        }
    return build_detector(pretrained=False, width=config.width), {
        "name": "random initialisation",
        "sha256": None,
        "started_from": "random initialisation",
    }


def _load_strictly(net: Any, state: Any, source: str) -> Any:
    if not isinstance(state, dict):
        raise ModelError(f"{source}: holds no detector network state ('net')")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ModelError(f"{source}: its weights do not fit this detector network ({first})") from None
    return net


def image_paths(folders: Sequence[Path]) -> list[Path]:
    """Every image under ``folders`` (recursively), in name order: the order the split relies on.
    ``FaceError`` naming one that is not a folder (a typo would otherwise read as "found 0")."""
    for folder in folders:
        if not Path(folder).is_dir():
            found = "is not a folder" if Path(folder).exists() else "not found"
            raise FaceError(f"{folder}: {found}; give folders of face images")
    return sorted(p for folder in folders for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def held_out_identities(identities: Sequence[str]) -> set[str]:
    """One identity in seven by name order (the first, the eighth, ...): validation, calibration
    and the threshold use these and training never sees them."""
    return set(sorted(identities)[::7])


def inherited_training_files(config: DetectorTrainConfig) -> list[str]:
    """A fine-tune has also seen what its starting model saw: the files listed by the shipped
    general model's card, or by the card beside ``init_checkpoint`` (none when there is no card
    there)."""
    if not config.init_checkpoint:
        if config.start == "general":
            from likeness.detector.general import general_training_files

            return general_training_files()
        return []
    card_path = Path(config.init_checkpoint).parent / CARD_FILE
    if not (card_path.exists() or card_path.is_symlink()):
        return []
    from likeness.detector.score import read_detector_file

    try:
        card = strict_json.loads(read_detector_file(card_path))
    except ValueError:
        raise ModelError(f"{card_path}: not a detector card (not JSON)") from None
    training = card.get("training", {}) if isinstance(card, dict) else None
    files = training.get("files_sha256", []) if isinstance(training, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ModelError(f"{card_path}: not a detector card (no list of sha256s at training.files_sha256)")
    return files


def export_onnx(net: Any, path: Path) -> None:
    """Export ``net`` (float32 ``(N, 3, S, S)`` -> ``(N, 1)``) with a dynamic batch axis."""
    write_atomic(path, onnx_bytes(net))


def onnx_bytes(net: Any) -> bytes:
    """The ONNX model :func:`export_onnx` writes for ``net``."""
    from likeness.onnx_export import onnx_from_torch

    return onnx_from_torch(
        net,
        (2, 3, DETECTOR_INPUT, DETECTOR_INPUT),
        what="detector",
        input_name="face",
        output_names=["manipulated_logit"],
    )
