"""Train the occlusion mask: a small U-Net that finds what covers a face in an aligned crop.

Self-supervised (Nirkin et al. 2018; DeepFaceLab's XSeg without hand labels): aligned faces get
synthetic occluders from ``likeness.faces.occluders`` (glasses frames, hands, microphones, hair
strands), whose pixels are known, and the network learns to segment them at 64 and 128 px
(one fully convolutional network for both render sizes: it runs at the size of the crop). The product
ships the weights it trained this way (``likeness/faces/weights/occlusion_mask.onnx`` and its
card); ``scripts/train_occlusion_mask.py`` reruns the training.

Training state is checkpointed atomically and resumes exactly (same data order and occluders).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from likeness.digests import sha256_file
from likeness.errors import FaceError, ModelError
from likeness.faces.align import Coverage
from likeness.faces.occluders import OCCLUDERS, occlude
from likeness.onnx_export import onnx_from_torch

logger = logging.getLogger(__name__)

#: Sides the network is trained at (a 128 px crop is no longer shrunk to 64, where a thin rim
#: of a large face is under a pixel). Crops of other sizes are resized to the nearest.
MASK_SIZES: tuple[int, ...] = (64, 128)
#: The size of the validation figures' first table, and of the examples in the docstrings.
MASK_INPUT = 64
#: Crops are aligned at this size, occluders drawn on them, then area-downscaled to the training
#: size (antialiased thin rims and strands).
DRAW_SIZE = 128
COVERAGES: tuple[Coverage, ...] = ("f", "wf", "head")


@dataclass(frozen=True)
class AlignedSample:
    """One face aligned at DRAW_SIZE: uint8 RGB crop and its (478, 2) landmarks."""

    image: np.ndarray
    landmarks: np.ndarray


@dataclass(frozen=True)
class OcclusionTrainConfig:
    steps: int = 3000
    batch: int = 32
    learning_rate: float = 2e-3
    seed: int = 0
    checkpoint_every: int = 250
    threads: int = 1
    #: Steps alternate between the sizes; a 128 px batch holds half the crops (twice the pixels).
    sizes: tuple[int, ...] = MASK_SIZES
    #: Start from these ONNX weights (the shipped mask) rather than from scratch; their batch
    #: norms are folded into the convolutions, so the fine-tune keeps them frozen at identity.
    init_onnx: str = ""


def align_faces(paths: Sequence[Path], *, progress: Callable[[int, int], None] | None = None) -> list[AlignedSample]:
    """Detect the largest face of each image and align it at DRAW_SIZE in every coverage.

    Images without a face are skipped (logged); unreadable files raise ``MediaError``.
    """
    from likeness.faces.align import align_face
    from likeness.faces.detect import FaceDetector
    from likeness.media.images import read_image

    detector = FaceDetector(mode="image")
    samples: list[AlignedSample] = []
    for k, path in enumerate(paths):
        rgb = read_image(path)
        faces = detector.detect(rgb)
        if not faces:
            logger.info("no face in %s: skipped", path)
        else:
            face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
            for coverage in COVERAGES:
                aligned = align_face(rgb, face.landmarks, size=DRAW_SIZE, coverage=coverage)
                samples.append(AlignedSample(aligned.image, aligned.landmarks))
        if progress:
            progress(k + 1, len(paths))
    return samples


def _photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting, blur and compression a stage clip has, applied after the occluder is drawn."""
    lit = image.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25)
    gamma = rng.uniform(0.75, 1.35)
    out = np.clip(255.0 * (np.clip(lit, 0, 255) / 255.0) ** gamma, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.2))
    if rng.random() < 0.3:
        ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 90))])
        decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else None
        if decoded is not None:
            out = decoded
    return out


def make_example(
    sample: AlignedSample, rng: np.random.Generator, size: int = MASK_INPUT
) -> tuple[np.ndarray, np.ndarray]:
    """One training pair at ``size``: (uint8 RGB crop, float32 occluder mask).

    A fifth of the examples carry no occluder (the mask must stay empty on a clear face), most
    one, some two of different kinds.
    """
    image, landmarks = sample.image, sample.landmarks
    if rng.random() < 0.5:
        image = image[:, ::-1].copy()
        landmarks = landmarks.copy()
        landmarks[:, 0] = DRAW_SIZE - 1 - landmarks[:, 0]
        # Mirrored landmarks swap sides; the occluders only use symmetric pairs, so the
        # right/left labels swapping is harmless.
    mask = np.zeros((DRAW_SIZE, DRAW_SIZE), np.float32)
    count = rng.choice([0, 1, 1, 1, 2])
    kinds = rng.choice(list(OCCLUDERS), size=count, replace=False) if count else []
    for kind in kinds:
        image, drawn = occlude(image, landmarks, rng, kind=str(kind))
        mask = np.maximum(mask, drawn)
    return _photometric(_resized(image, size), rng), _resized(mask, size)


def _resized(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size:
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def build_network():  # -> torch.nn.Module
    """The U-Net: any side that is a multiple of 8 in (64 and 128 trained), 4 scales (16-32-64-96 channels), one logit per pixel out."""
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class OcclusionUNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            widths = (16, 32, 64, 96)
            self.down = nn.ModuleList([block(3, widths[0])] + [block(a, b) for a, b in zip(widths, widths[1:])])
            self.up = nn.ModuleList([nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in zip(widths, widths[1:])])
            self.merge = nn.ModuleList([block(2 * a, a) for a in widths[:-1]])
            self.head = nn.Conv2d(widths[0], 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for k, stage in enumerate(self.down):
                x = stage(x if k == 0 else nn.functional.max_pool2d(x, 2))
                skips.append(x)
            for k in reversed(range(len(self.up))):
                x = self.merge[k](torch.cat([self.up[k](x), skips[k]], dim=1))
            return self.head(x)

    return OcclusionUNet()


def init_from_onnx(net, path: Path) -> None:
    """Load ONNX weights exported from this network (batch norms folded into the convolutions)
    and set every batch norm to identity, so ``net`` in eval mode computes what the file does."""
    import onnx
    import torch

    weights = {name: torch.from_numpy(array) for name, array in _weights_by_parameter(onnx.load(str(path))).items()}
    state = net.state_dict()
    missing = [name for name in state if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    for name in missing:
        if name in weights:
            state[name] = weights[name]
        elif name.endswith(".weight"):  # a batch norm's scale
            state[name] = torch.ones_like(state[name])
        elif name.endswith(".bias"):
            state[name] = torch.zeros_like(state[name])
    for name in state:
        if name.endswith("running_mean"):
            state[name] = torch.zeros_like(state[name])
        elif name.endswith("running_var"):
            state[name] = torch.ones_like(state[name])
    unused = set(weights) - set(state)
    if unused:
        raise ModelError(f"{path}: weights this network does not have: {sorted(unused)[:3]}")
    net.load_state_dict(state)


def network_onnx(net) -> bytes:
    """The ONNX file of ``net``: input ``crop`` (N, 3, S, S), output ``occluder_logit`` (N, 1, S, S).
    Fully convolutional: any side that is a multiple of 8 runs (the U-Net pools three times)."""
    return onnx_from_torch(
        net,
        (2, 3, MASK_INPUT, MASK_INPUT),
        what="occlusion mask",
        input_name="crop",
        output_names=["occluder_logit"],
        dynamic_sides=True,
    )


def _weights_by_parameter(model) -> dict[str, np.ndarray]:
    """The file's weights under the network's parameter names. The torch.export-based exporter
    (the shipped files) names a convolution's folded weights after its parameters; the TorchScript
    exporter (``likeness.onnx_export``) calls them ``onnx::Conv_<n>`` and names the node after the
    module (``/down.0/down.0.0/Conv``), so those take the module's name."""
    from onnx import numpy_helper

    arrays = {i.name: numpy_helper.to_array(i).copy() for i in model.graph.initializer}
    named = {name: array for name, array in arrays.items() if not name.startswith("onnx::")}
    for node in model.graph.node:
        scope = node.name.split("/")
        if node.op_type not in ("Conv", "ConvTranspose") or len(scope) < 3:
            continue
        for kind, value in zip(("weight", "bias"), node.input[1:]):
            if value.startswith("onnx::") and value in arrays:
                named[f"{scope[-2]}.{kind}"] = arrays[value]
    return named


def _freeze_batch_norms(net) -> None:
    from torch import nn

    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()


def _batch(samples: Sequence[AlignedSample], rng: np.random.Generator, count: int, size: int = MASK_INPUT):
    import torch

    pairs = [make_example(samples[int(i)], rng, size) for i in rng.integers(0, len(samples), count)]
    images = np.stack([p[0] for p in pairs]).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    targets = np.stack([p[1] for p in pairs])[:, None]
    return torch.from_numpy(images), torch.from_numpy(targets)


def _loss(logits, targets):
    import torch

    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    probs = torch.sigmoid(logits)
    inter = (probs * targets).sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + 1) / (probs.sum(dim=(1, 2, 3)) + targets.sum(dim=(1, 2, 3)) + 1)
    return bce + 0.5 * dice.mean()


def evaluate(
    predict: Callable[[np.ndarray], np.ndarray],
    samples: Sequence[AlignedSample],
    *,
    seed: int = 1234,
    per_kind: int = 2,
    size: int = MASK_INPUT,
) -> dict:
    """Validation figures on ``samples`` with fixed occluders at ``size``: per kind, the share of
    occluder pixels found (recall at 0.5), the share of clear face pixels wrongly flagged, and IoU.

    ``predict``: uint8 RGB ``(N, S, S, 3)`` -> float32 occluder probability ``(N, S, S)``.
    """
    figures: dict = {}
    for kind in OCCLUDERS:
        rng = np.random.default_rng(seed)
        images, targets, faces = [], [], []
        for sample in samples:
            for _ in range(per_kind):
                image, mask = occlude(sample.image, sample.landmarks, rng, kind=kind)
                images.append(_resized(image, size))
                targets.append(_resized(mask, size) >= 0.5)
                faces.append(_face_area(sample.landmarks, size))
        predicted = predict(np.stack(images)) >= 0.5
        target = np.stack(targets)
        face = np.stack(faces)
        on_face = target & face
        clear = face & ~target
        inter = (predicted & on_face).sum()
        figures[kind] = {
            "occluder_recall": round(float(inter / max(on_face.sum(), 1)), 4),
            "clear_face_flagged": round(float((predicted & clear).sum() / max(clear.sum(), 1)), 4),
            "iou_on_face": round(float(inter / max((predicted & face | on_face).sum(), 1)), 4),
        }
    clean = predict(np.stack([_resized(s.image, size) for s in samples])) >= 0.5
    face = np.stack([_face_area(s.landmarks, size) for s in samples])
    figures["no_occluder"] = {"clear_face_flagged": round(float((clean & face).sum() / max(face.sum(), 1)), 4)}
    return figures


def _face_area(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The landmark hull at ``size``, as bool (where an occluder matters to a swap)."""
    from likeness.render.mask import landmark_hull

    return landmark_hull(landmarks * (size / DRAW_SIZE), size=size) > 0


def run_record(
    config: OcclusionTrainConfig, train: Sequence[AlignedSample], validation: Sequence[AlignedSample]
) -> str:
    """What a training run is (settings but threads, the start's bytes, the faces of each split),
    as JSON kept in its checkpoint: a resume must be the same run."""
    return json.dumps(
        {
            "settings": {k: v for k, v in asdict(config).items() if k != "threads"},
            "init_sha256": sha256_file(Path(config.init_onnx)) if config.init_onnx else "",
            "faces": {"train": _faces_sha256(train), "validation": _faces_sha256(validation)},
        },
        sort_keys=True,
    )


def _faces_sha256(samples: Sequence[AlignedSample]) -> str:
    digest = hashlib.sha256()
    for sample in samples:
        digest.update(np.ascontiguousarray(sample.image, dtype=np.uint8).tobytes())
        digest.update(np.ascontiguousarray(sample.landmarks, dtype=np.float64).tobytes())
    return digest.hexdigest()


def train_occlusion_mask(
    train: Sequence[AlignedSample],
    validation: Sequence[AlignedSample],
    out_dir: Path,
    *,
    config: OcclusionTrainConfig = OcclusionTrainConfig(),
    data_note: str = "",
    progress: Callable[[int, int, float], None] | None = None,
) -> dict:
    """Train, checkpoint to ``out_dir/checkpoint.pt`` (atomic; resumed only by the same run,
    ``run_record``), export ``out_dir/occlusion_mask.onnx`` and write its card. Returns the card."""
    import torch

    from likeness.train.checkpoint import load_checkpoint, loop_state, refuse_other_run, resume_loop, save_checkpoint

    if not train or not validation:
        raise FaceError("train_occlusion_mask: needs training and validation faces")
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    torch.set_num_threads(max(1, config.threads))
    net = build_network()
    if config.init_onnx:
        init_from_onnx(net, Path(config.init_onnx))
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.learning_rate, total_steps=config.steps)
    checkpoint = out_dir / "checkpoint.pt"
    step, seconds = 0, 0.0
    rng = np.random.default_rng(config.seed)
    run = run_record(config, train, validation)
    if checkpoint.exists():
        state = load_checkpoint(checkpoint)
        refuse_other_run(checkpoint, state.get("run"), run, elsewhere="another --work folder")
        step, seconds = resume_loop(state, net, optimiser, schedule, rng)
        logger.info("resumed occlusion-mask training at step %d", step)
    started = time.perf_counter() - seconds  # the card's time is the whole run's
    net.train()
    if config.init_onnx:
        _freeze_batch_norms(net)
    while step < config.steps:
        size = config.sizes[step % len(config.sizes)]
        images, targets = _batch(train, rng, max(1, config.batch * MASK_INPUT // size), size)
        loss = _loss(net(images), targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        step += 1
        if progress:
            progress(step, config.steps, loss.item())
        if step % config.checkpoint_every == 0 or step == config.steps:
            state = loop_state(net, optimiser, schedule, rng, step, seconds=time.perf_counter() - started)
            save_checkpoint(checkpoint, {**state, "run": run})
    seconds = time.perf_counter() - started
    net.eval()

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(batch.astype(np.float32).transpose(0, 3, 1, 2) / 255.0)
            return torch.sigmoid(net(x))[:, 0].numpy()

    figures = {str(size): evaluate(predict, validation, size=size) for size in config.sizes}
    onnx_path = out_dir / "occlusion_mask.onnx"
    onnx_path.write_bytes(network_onnx(net))
    card = {
        "model": "likeness.occlusion-mask.v2",
        "file": onnx_path.name,
        "sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "sizes": list(config.sizes),
        "input": "float32 (N, 3, S, S) RGB in [0, 1], an aligned face crop at S in sizes (others resized)",
        "output": "float32 (N, 1, S, S) logit that a pixel is an occluder in front of the face",
        "training": {
            **asdict(config),
            "faces": len(train),
            "seconds": round(seconds, 1),
            "data": data_note,
            "occluders": list(OCCLUDERS),
            "method": "synthetic occluders on aligned faces (Nirkin et al. 2018), BCE + 0.5 soft Dice, AdamW one-cycle"
            + (
                f"; fine-tuned from {Path(config.init_onnx).name} {sha256_file(Path(config.init_onnx))[:16]}…"
                if config.init_onnx
                else ""
            ),
        },
        "validation": {"faces": len(validation), "figures": figures},
        "trained": time.strftime("%Y-%m-%d", time.gmtime()),
        "licence": "weights trained by likeness; training faces are public-domain portraits",
    }
    (out_dir / "occlusion_mask.card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card
