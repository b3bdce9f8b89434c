"""The training loop: consent-bound, deterministic, checkpointed, resumable.

>>> result = train_swap_model(authz, release_authz, source, target, "models/mina-jun",  # doctest: +SKIP
...                           TrainConfig(model="df", resolution=64, iterations=2000))
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import logging
import math
import os
import platform
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from likeness.errors import ConfigError, ConsentError, ModelError
from likeness.models import architecture_options, create_model, resolve_config
from likeness.models.discriminator import CodeDiscriminator
from likeness.models.registry import SwapAutoencoder
from likeness.train.augment import AugmentOptions
from likeness.train.checkpoint import (
    CHECKPOINT_NAME,
    checkpoint_bytes,
    discard_unstarted_run,
    load_bound_checkpoint,
    record_checkpoint,
    remove_stale_temp_files,
    write_bytes_atomic,
)
from likeness.train.cpu_threads import ThreadChoice, choose_cpu_threads
from likeness.train.data import Batch, PairLoader, split_indices, validation_batch
from likeness.train.losses import (
    code_discriminator_loss,
    per_face_dssim,
    reconstruction_loss,
    true_face_loss,
)
from likeness.train.metrics import (
    IdentityEmbedder,
    Landmarker,
    detector_landmarker,
    embed_faces,
    expression_fidelity,
    identity_transfer,
)
from likeness.train.preview import metrics_plot, preview_grid, write_training_preview
from likeness.train.samples import FacesetFaces, FaceSource, as_face_source

logger = logging.getLogger(__name__)

CONFIG_NAME = "train_config.json"
METRICS_CSV = "metrics.csv"
METRICS_PNG = "metrics.png"
PREVIEW_DIR = "previews"
METRIC_COLUMNS = (
    "iteration",
    "seconds",
    "loss_source",
    "loss_target",
    "val_dssim_source",
    "val_dssim_target",
    "identity_transfer",
    "swap_distance_to_source_median",
    "expression_eye_corr",
    "expression_mouth_corr",
    # Why held-out swaps fail: the worst one's distance to the artist (over the threshold?) and how
    # many are still nearer the performer's references than the artist's.
    "swap_distance_to_source_max",
    "swap_faces_nearer_performer",
)


@dataclass
class TrainConfig:
    """Resolved training options; saved as ``train_config.json`` beside the checkpoint.

    Stop after ``iterations`` total iterations or ``minutes`` of wall time in this session,
    whichever comes first (at least one must be set). ``batch_size=None`` picks one for the
    device. ``eyes_mouth_priority`` is the extra loss weight on eyes and mouth (0 = off).
    ``ema_decay`` keeps an exponential moving average of the weights (0 = off); evaluation,
    previews and export use the average, which damps the step-to-step wobble of small batches.
    ``lr_decay_iters`` lowers the learning rate along a half cosine from ``learning_rate`` to
    ``learning_rate * lr_floor`` over that many iterations, then holds it (None = constant).
    The rate depends only on the iteration, so a resumed run follows the same schedule.
    ``true_face_power`` (0 = off; ``df`` only) weighs a code discriminator's loss that pulls the
    source codes towards the target codes' distribution (DeepFaceLab SAEHD's "true face").
    """

    model: str = "df"
    resolution: int = 64
    iterations: int | None = 1000
    minutes: float | None = None
    batch_size: int | None = None
    learning_rate: float = 2e-4
    weight_decay: float = 1e-4
    ema_decay: float = 0.999
    lr_decay_iters: int | None = None
    lr_floor: float = 0.1
    true_face_power: float = 0.0
    seed: int = 0
    checkpoint_every: int = 250
    preview_every: int = 250
    log_every: int = 10
    eyes_mouth_priority: float = 1.0
    validation_fraction: float = 0.1
    validation_max: int = 32
    workers: int | None = None
    loader: str = "auto"
    prefetch: int = 4
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    identity_metrics: bool = True
    expression_metrics: bool = True
    augment: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, int] = field(default_factory=dict)

    def validate(self) -> None:
        if self.iterations is None and self.minutes is None:
            raise ConfigError("set iterations or minutes (or both) to bound training")
        if self.iterations is not None and self.iterations < 1:
            raise ConfigError(f"iterations must be >= 1, got {self.iterations}")
        if self.minutes is not None and not (self.minutes > 0 and math.isfinite(self.minutes)):
            raise ConfigError(f"minutes must be a positive number, got {self.minutes}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1 or unset, got {self.workers}")
        if self.loader not in DATA_LOADERS:
            raise ConfigError(f"loader must be one of {', '.join(DATA_LOADERS)}, got {self.loader!r}")
        for name in ("checkpoint_every", "log_every", "prefetch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.lr_decay_iters is not None and self.lr_decay_iters < 1:
            raise ConfigError(f"lr_decay_iters must be >= 1 or unset, got {self.lr_decay_iters}")
        if not 0 <= self.lr_floor <= 1:
            raise ConfigError(f"lr_floor must be in [0, 1], got {self.lr_floor}")
        if not 0 <= self.true_face_power <= 1:
            raise ConfigError(f"true_face_power must be in [0, 1], got {self.true_face_power}")
        if self.preview_every < 0:
            raise ConfigError(f"preview_every must be >= 0, got {self.preview_every}")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in TRAIN_PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(TRAIN_PRECISIONS)}, got {self.precision!r}")
        try:
            AugmentOptions(**self.augment)
        except (TypeError, ConfigError) as exc:
            raise ConfigError(f"augment: {exc}") from None
        try:
            architecture = resolve_config(self.model, resolution=self.resolution, **self.model_options)
        except ModelError as exc:
            raise ConfigError(str(exc)) from None
        if self.true_face_power > 0 and architecture.family != "df":
            raise ConfigError(
                f"true_face_power needs a df model (one code shared by both identities), "
                f"not {self.model} ({architecture.family}); set it to 0 (--true-face-power 0)"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass(frozen=True)
class TrainProgress:
    """What a progress display needs after each iteration. ``total`` is None for time-bounded runs;
    the losses are those of the last logged iteration (every ``log_every``)."""

    iteration: int
    total: int | None
    loss_source: float
    loss_target: float
    it_per_s: float
    eta_s: float | None
    event: str = "step"  # "step", "checkpoint", "preview", "interrupted"
    #: CPU threads of the step and why, e.g. "1 thread (load 2.3 on 2 cores; OpenMP wait passive)".
    cpu_threads: str = ""


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    iterations: int
    stop_reason: str  # "iterations" or "minutes"
    metrics: dict[str, Any]
    training_seconds: float
    batch_size: int
    device: str
    checkpoint_path: Path
    #: The coverage gate's result (gaps, whether severe ones were accepted); None for in-memory faces.
    coverage_check: dict[str, Any] | None = None


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training after the step in flight, and a checkpoint was saved.

    A ``KeyboardInterrupt`` still (callers that know nothing of it stop as before); the CLI says
    where the checkpoint is and exits 130. ``checkpoint_path``: the saved checkpoint;
    ``iteration``: the iterations it holds. Resume with ``train_swap_model(..., resume=True)``
    (``likeness train --resume MODEL_DIR``).
    """

    def __init__(self, checkpoint_path: Path, iteration: int) -> None:
        super().__init__(f"training interrupted at iteration {iteration}; checkpoint saved to {checkpoint_path}")
        self.checkpoint_path = Path(checkpoint_path)
        self.iteration = iteration


class _InterruptRequest:
    """While entered (on the main thread), the first SIGINT only asks training to stop after the
    step in flight and save a checkpoint; a second one interrupts at once (``KeyboardInterrupt``,
    no checkpoint). Elsewhere (a worker thread, where Python delivers no signals) it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self._installed = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            # None: a handler not set from Python; the default is the closest we can restore.
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False


def resolve_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' requested but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


#: Arithmetic of the forward pass (autocast); weights, optimizer state and losses stay float32.
TRAIN_PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def cpu_supports_bfloat16() -> bool:
    """Whether oneDNN has native bfloat16 kernels here (AVX-512 BF16 or AMX); elsewhere they are emulated and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(precision: str, device: torch.device, *, cpu_bfloat16: bool) -> torch.dtype | None:
    """The autocast dtype of a run (None: plain float32).

    "auto": float16 with a gradient scaler on CUDA; bfloat16 on a CPU with native bfloat16
    kernels, where a training step of ``df`` 64 px ran 1.3-1.6x and at 128 px 3x faster than in
    float32 (docs/training.md); float32 on other CPUs.
    """
    if precision == "float32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_bfloat16 else None
    if precision == "float16" and device.type != "cuda":
        raise ConfigError("precision float16 needs CUDA; on a CPU use bfloat16 or float32")
    if precision == "bfloat16" and device.type == "cpu" and not cpu_bfloat16:
        raise ConfigError("precision bfloat16: this CPU has no native bfloat16 kernels (AVX-512 BF16 or AMX)")
    return torch.float16 if precision == "float16" else torch.bfloat16


def identity_reference_count(training_faces: int) -> int:
    """How many training faces per identity the identity metric embeds as references (spread evenly)."""
    return min(16, training_faces)


#: How training batches are prepared: "auto" is processes on CUDA, threads on CPU (see PairLoader).
DATA_LOADERS = ("auto", "threads", "processes")


def data_loading(loader: str, workers: int | None, *, device: torch.device, cores: int) -> tuple[bool, int]:
    """(use worker processes?, how many workers) for a run.

    Unset ``workers``: 2 threads on CPU, where the step is the bottleneck and workers compete with
    it for cores; on CUDA one process per core left after the training process and the GPU
    feeder, at most 8.
    """
    processes = loader == "processes" or (loader == "auto" and device.type == "cuda")
    if workers is None:
        workers = min(8, max(2, cores - 2)) if processes else 2
    return processes, workers


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def configure_cpu_threads(threads: int | None = None, *, load: float | None = None) -> ThreadChoice:
    """Intra-op threads: ``threads``, else one per core the load average leaves free
    (:func:`likeness.train.cpu_threads.choose_cpu_threads`); OpenCV single-threaded.

    ``load``: the 1-minute load average (default: ``os.getloadavg()`` now). Never more threads
    than cores, and on a loaded machine fewer: OpenMP threads wait for each other at every
    barrier, and a thread that shares a core with another process holds up the whole step (on
    the busy 2-core development machine 2 threads ran 7-20x slower than 1).

    The data workers run OpenCV concurrently, so letting OpenCV spawn its own pool per call would
    oversubscribe a small CPU.
    """
    import cv2

    if load is None and threads is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average on this system
            load = None
    choice = choose_cpu_threads(threads, cores=available_cores(), load=load)
    torch.set_num_threads(choice.threads)
    cv2.setNumThreads(1)
    return choice


def openmp_wait_policy() -> str | None:
    """The ``OMP_WAIT_POLICY`` OpenMP started with, for display (None: its default, active).

    OpenMP read it when PyTorch loaded; ``likeness train`` sets it before that
    (:func:`likeness.train.cpu_threads.prefer_passive_openmp_wait`).
    """
    return os.environ.get("OMP_WAIT_POLICY")


def cpu_thread_settings() -> tuple[int, int]:
    """The process's (torch intra-op, OpenCV) thread counts, to put back with
    :func:`restore_cpu_thread_settings` after :func:`configure_cpu_threads`."""
    import cv2

    return torch.get_num_threads(), cv2.getNumThreads()


def restore_cpu_thread_settings(settings: tuple[int, int]) -> None:
    import cv2

    torch.set_num_threads(settings[0])
    cv2.setNumThreads(settings[1])


#: CPU batch sizes by resolution: large enough for stable AdamW steps, small enough to keep a step
#: around a second on a laptop-class CPU.
_CPU_BATCH = {16: 16, 32: 16, 48: 16, 64: 16, 96: 8, 128: 8, 256: 4}


def auto_batch_size(model: SwapAutoencoder, device: torch.device) -> int:
    """Batch size for this model on this device.

    CPU: a table by resolution. CUDA: the largest power of two (<= 64) whose forward+backward
    through both reconstructions fits in 80 % of free memory, measured with a trial step.
    """
    res = model.resolution
    if device.type != "cuda":
        return _CPU_BATCH.get(res, max(2, 16 * 64 * 64 // (res * res)))
    free, _ = torch.cuda.mem_get_info(device)
    best = 2
    for batch in (4, 8, 16, 32, 64):
        try:
            torch.cuda.reset_peak_memory_stats(device)
            x = torch.rand(batch, 3, res, res, device=device)
            with torch.autocast("cuda", dtype=torch.float16):
                a, _ = model.reconstruct_source(x)
                b, _ = model.reconstruct_target(x)
                (a.float().mean() + b.float().mean()).backward()
            model.zero_grad(set_to_none=True)
            # AdamW state adds two copies of the weights; peak covers activations.
            if torch.cuda.max_memory_allocated(device) > 0.8 * free:
                break
            best = batch
        except torch.cuda.OutOfMemoryError:
            model.zero_grad(set_to_none=True)
            break
        finally:
            torch.cuda.empty_cache()
    return best


def make_optimizer(
    model: torch.nn.Module, *, learning_rate: float, weight_decay: float, device: torch.device
) -> torch.optim.AdamW:
    """AdamW with the fused kernel: on CPU the per-tensor update loop was about a tenth of a step,
    and on CUDA one kernel replaces a launch per tensor.

    Fused and unfused AdamW keep the same state, so checkpoints move between them.
    """
    return torch.optim.AdamW(
        model.parameters(), lr=learning_rate, weight_decay=weight_decay, fused=device.type in ("cpu", "cuda")
    )


class TrueFace:
    """True-face training's own parts: the code discriminator, its optimizer and its side of the
    step, so the training step only asks it for a loss and to take its step."""

    def __init__(
        self,
        code_shape: tuple[int, int, int],
        power: float,
        *,
        learning_rate: float,
        weight_decay: float,
        device: torch.device,
    ) -> None:
        self.power = power
        self.discriminator = CodeDiscriminator(code_shape).to(device)
        self.optimizer = make_optimizer(
            self.discriminator, learning_rate=learning_rate, weight_decay=weight_decay, device=device
        )

    def model_loss(self, source_code: torch.Tensor) -> torch.Tensor:
        """``power`` times the model's loss; the discriminator gets no gradients from it."""
        self.discriminator.requires_grad_(False)
        try:
            return self.power * true_face_loss(self.discriminator(source_code.float()))
        finally:
            self.discriminator.requires_grad_(True)

    def step(self, target_code: torch.Tensor, source_code: torch.Tensor, rate: float) -> None:
        """One discriminator step on the detached codes, in float32 outside autocast and the loss
        scaler: a small network on small codes."""
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        self.optimizer.zero_grad(set_to_none=True)
        code_discriminator_loss(
            self.discriminator(target_code.detach().float()), self.discriminator(source_code.detach().float())
        ).backward()
        self.optimizer.step()

    def state(self) -> dict[str, Any]:
        return {
            "code_discriminator_state": {k: v.detach().cpu() for k, v in self.discriminator.state_dict().items()},
            "code_optimizer_state": self.optimizer.state_dict(),
        }

    def load(self, state: dict[str, Any]) -> None:
        if state.get("code_discriminator_state"):  # none saved: true face switched on at resume, starts fresh
            self.discriminator.load_state_dict(state["code_discriminator_state"])
            self.optimizer.load_state_dict(state["code_optimizer_state"])


def learning_rate_at(base: float, iteration: int, decay_iters: int | None, floor: float) -> float:
    """Learning rate of step ``iteration`` (0-based): ``base`` without a schedule, else a half
    cosine from ``base`` down to ``base * floor`` at ``decay_iters``, held after that."""
    if decay_iters is None:
        return base
    progress = min(iteration, decay_iters) / decay_iters
    return base * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def ema_decay_at(decay: float, updates: int) -> float:
    """Averaging rate after ``updates`` steps: ramps up so the first steps are not averaged with the init."""
    return min(decay, (1 + updates) / (10 + updates))


@torch.no_grad()
def update_ema(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``average <- decay * average + (1 - decay) * model`` for parameters; buffers are copied."""
    ema_params: list[torch.Tensor] = list(average.parameters())
    params = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    for ema_buffer, buffer in zip(average.buffers(), model.buffers()):
        ema_buffer.copy_(buffer)


def hardware_description(device: torch.device, dtype: torch.dtype | None = None) -> str:
    arithmetic = "float32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA, {arithmetic})"
    return (
        f"{platform.machine()} CPU, {torch.get_num_threads()} threads ({platform.processor() or platform.system()}), "
        f"{arithmetic}"
    )


def _to_tensor(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    tensor = array if isinstance(array, torch.Tensor) else torch.from_numpy(array)
    return tensor.to(device, non_blocking=True)


def _to_uint8_images(rgb: torch.Tensor) -> np.ndarray:
    """float (N,3,R,R) in [0,1] -> uint8 (N,R,R,3)."""
    return (rgb.detach().float().clamp(0, 1).cpu().numpy().transpose(0, 2, 3, 1) * 255 + 0.5).astype(np.uint8)


def require_training_consent(authz: Any, release_authz: Any) -> None:
    """Training needs a live ``training`` Authorization and the performer's ReleaseAuthorization."""
    from likeness.consent import require_authorization, require_release

    require_authorization(authz, step="train")
    require_release(release_authz, step="train")


def faceset_consent(workspace: Any, faces: FaceSource) -> dict[str, Any] | None:
    """Whose faces a faceset holds and under which grant or release, from its signed
    ``faceset.created`` ledger event (never from the editable manifest); None for in-memory faces.

    Raises ``ConsentError`` (``artefact_altered``/``artefact_unsigned``) for a manifest that does
    not match its event, ``ConfigError`` when a faceset comes without the workspace to check it in.
    """
    if not isinstance(faces, FacesetFaces):
        return None
    if workspace is None:
        raise ConfigError(
            f"{faces.faceset.path}: training from a faceset needs workspace= to check its manifest "
            "against its ledger event"
        )
    from likeness.faceset.format import verify_faceset

    return dict(verify_faceset(workspace, faces.faceset).payload)


def _consent_binding(
    authz: Any, release_authz: Any, source: FaceSource, target: FaceSource, workspace: Any = None
) -> dict[str, Any]:
    require_training_consent(authz, release_authz)
    source_event, target_event = faceset_consent(workspace, source), faceset_consent(workspace, target)
    if source_event is not None and source_event.get("subject_id") != authz.subject_id:
        raise ConsentError(
            "no_grant",
            f"the source faceset is of subject {source_event.get('subject_slug')!r}, "
            f"but the authorization is for {authz.subject_slug!r}",
        )
    if source_event is not None and source_event.get("grant_id") != authz.grant_id:
        # The checkpoint's sealed event must name the faceset's grant (checkpoint_lineage_problem).
        raise ConsentError(
            "no_grant",
            f"the source faceset was extracted under grant {str(source_event.get('grant_id'))[:8]}, "
            f"but the authorization is under grant {authz.grant_id[:8]}",
        )
    if target_event is not None and (
        target_event.get("subject_id") != release_authz.performer_id or target_event.get("release_id") is None
    ):
        raise ConsentError(
            "no_release",
            f"the target faceset is of {target_event.get('subject_slug')!r}"
            f"{'' if target_event.get('release_id') else ' (extracted under no performer release)'}, "
            f"but the release is for performer {release_authz.performer_slug!r}",
        )
    return {
        "subject_id": authz.subject_id,
        "subject_slug": authz.subject_slug,
        "grant_id": authz.grant_id,
        "org_id": authz.org_id,
        "performer_id": release_authz.performer_id,
        "performer_slug": release_authz.performer_slug,
        "release_id": release_authz.release_id,
    }


class _Trainer:
    def __init__(
        self,
        *,
        authz: Any,
        release_authz: Any,
        source: FaceSource,
        target: FaceSource,
        out_dir: Path,
        config: TrainConfig,
        consent: dict[str, Any],
        workspace: Any,
        progress: Callable[[TrainProgress], None] | None,
        embedder: IdentityEmbedder | None,
        landmarker: Landmarker | None,
        identity_threshold: float | None,
    ) -> None:
        self.authz, self.release_authz = authz, release_authz
        self.source, self.target = source, target
        self.out_dir, self.config, self.consent = out_dir, config, consent
        self.workspace = workspace
        self.progress = progress
        self.embedder, self.landmarker = embedder, landmarker
        self.identity_threshold = identity_threshold
        self.device = resolve_device(config.device)
        # On CUDA too: the main process still decodes, evaluates and writes previews on the CPU.
        self.thread_choice = configure_cpu_threads(config.threads)
        self.cpu_threads = self.thread_choice.describe(openmp_wait_policy())
        self.source_split = split_indices(
            source.count,
            seed=config.seed,
            stream=0,
            fraction=config.validation_fraction,
            max_validation=config.validation_max,
        )
        self.target_split = split_indices(
            target.count,
            seed=config.seed,
            stream=1,
            fraction=config.validation_fraction,
            max_validation=config.validation_max,
        )
        self.history: list[dict[str, Any]] = []
        self.metrics: dict[str, Any] = {}
        self.iteration = 0
        self.checkpoint_sha256: str | None = None  # of the checkpoint on disk, as its ledger event records
        self.prior_seconds = 0.0
        self.coverage_check: dict[str, Any] | None = None
        self._references: tuple[np.ndarray, np.ndarray] | None = None

    # -- state ------------------------------------------------------------------------------
    def build(self, state: dict[str, Any] | None) -> None:
        config = self.config
        seed = config.seed
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        if state is None:
            self.model = create_model(config.model, resolution=config.resolution, **config.model_options)
        else:
            # Rebuild exactly what was saved: defaults may have changed since (e.g. double_res).
            self.model = create_model(state["model_name"], **architecture_options(state["model_config"]))
        self.model = self.model.to(self.device)
        self.ema_model: SwapAutoencoder | None = None
        if config.ema_decay > 0:
            self.ema_model = copy.deepcopy(self.model).requires_grad_(False)
        self.optimizer = make_optimizer(
            self.model, learning_rate=config.learning_rate, weight_decay=config.weight_decay, device=self.device
        )
        self.true_face: TrueFace | None = None
        code_shape = self.model.code_shape
        if config.true_face_power > 0:
            if code_shape is None:  # TrainConfig.validate allows true face for df models only
                raise ConfigError("true_face_power needs a df model (one code shared by both identities)")
            self.true_face = TrueFace(
                code_shape,
                config.true_face_power,
                learning_rate=config.learning_rate,
                weight_decay=config.weight_decay,
                device=self.device,
            )
        self.autocast = autocast_dtype(config.precision, self.device, cpu_bfloat16=cpu_supports_bfloat16())
        # float16 needs loss scaling against underflowing gradients; bfloat16 has float32's range.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast == torch.float16)  # CUDA only
        if state is None:
            self.batch_size = config.batch_size or auto_batch_size(self.model, self.device)
            return
        self.model.load_state_dict(state["model_state"])
        if self.ema_model is not None:
            # A checkpoint from before averaging existed starts its average at the current weights.
            self.ema_model.load_state_dict(state.get("ema_state") or state["model_state"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        if self.true_face is not None:
            self.true_face.load(state)
        if state.get("scaler_state"):
            self.scaler.load_state_dict(state["scaler_state"])
        self.batch_size = int(state["batch_size"])
        self.iteration = int(state["iteration"])
        self.prior_seconds = float(state["training_seconds"])
        self.history = list(state["history"])
        self.metrics = dict(state["metrics"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"])
        random.setstate(_python_rng_from_lists(state["python_rng"]))
        np.random.set_state(_numpy_rng_from_lists(state["numpy_rng"]))

    def state(self, seconds: float) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "model_name": self.config.model,
            "model_config": self.model.config.to_dict(),
            "model_state": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "ema_state": (
                None
                if self.ema_model is None
                else {k: v.detach().cpu() for k, v in self.ema_model.state_dict().items()}
            ),
            "optimizer_state": self.optimizer.state_dict(),
            **(
                self.true_face.state()
                if self.true_face is not None
                else {"code_discriminator_state": None, "code_optimizer_state": None}
            ),
            "scaler_state": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if self.device.type == "cuda" else None,
            "python_rng": _python_rng_to_lists(random.getstate()),
            # numpy's stub says get_state() returns a dict; by default (legacy=True) it is the tuple.
            "numpy_rng": _numpy_rng_to_lists(np.random.get_state()),  # type: ignore[arg-type]
            "train_config": self.config.to_dict(),
            "batch_size": self.batch_size,
            "training_seconds": seconds,
            "history": self.history,
            "metrics": self.metrics,
            "consent": self.consent,
            "data": {
                "source_sha256": self.source.content_sha256(),
                "target_sha256": self.target.content_sha256(),
                "source_faces": self.source.count,
                "target_faces": self.target.count,
                "yaw_range": self.source.yaw_range(),
            },
            "device": self.device.type,
            "hardware": hardware_description(self.device, self.autocast),
            "coverage": getattr(getattr(self.source, "manifest", None), "coverage", "wf"),
            "coverage_check": self.coverage_check,
        }

    # -- one step ---------------------------------------------------------------------------
    def step(self, source_batch: Batch, target_batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step; returns the two detached losses (reading them waits for the device)."""
        self.model.train()
        dev = self.device
        s_in, s_tgt, s_mask, s_pri = (
            _to_tensor(a, dev)
            for a in (source_batch.warped, source_batch.target, source_batch.mask, source_batch.priority)
        )
        t_in, t_tgt, t_mask, t_pri = (
            _to_tensor(a, dev)
            for a in (target_batch.warped, target_batch.target, target_batch.mask, target_batch.priority)
        )
        true_face = self.true_face
        with torch.autocast(dev.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None):
            if true_face is None:
                (s_rgb, s_pred_mask), (t_rgb, t_pred_mask) = self.model.reconstruct_pair(s_in, t_in)
            else:
                (s_rgb, s_pred_mask), (t_rgb, t_pred_mask), (s_code, t_code) = self.model.reconstruct_pair_with_codes(
                    s_in, t_in
                )
        loss_s, _ = reconstruction_loss(s_rgb.float(), s_pred_mask.float(), s_tgt, s_mask, s_pri)
        loss_t, _ = reconstruction_loss(t_rgb.float(), t_pred_mask.float(), t_tgt, t_mask, t_pri)
        loss = loss_s + loss_t
        if true_face is not None:
            loss = loss + true_face.model_loss(s_code)
        self.optimizer.zero_grad(set_to_none=True)
        rate = learning_rate_at(
            self.config.learning_rate, self.iteration, self.config.lr_decay_iters, self.config.lr_floor
        )
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if true_face is not None:
            true_face.step(t_code, s_code, rate)
        if self.ema_model is not None:
            # self.iteration still counts the steps before this one.
            update_ema(self.ema_model, self.model, ema_decay_at(self.config.ema_decay, self.iteration))
        return loss_s.detach(), loss_t.detach()

    # -- evaluation -------------------------------------------------------------------------
    @torch.no_grad()
    def _outputs(self, which: str, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.ema_model if self.ema_model is not None else self.model
        model.eval()
        x = _to_tensor(batch.target, self.device)
        rgbs, masks = [], []
        for start in range(0, len(x), 16):
            fn = getattr(model, which)
            rgb, mask = fn(x[start : start + 16])
            rgbs.append(rgb.float())
            masks.append(mask.float())
        return torch.cat(rgbs), torch.cat(masks)

    def _landmarks_at(self, faces: FaceSource, indices: np.ndarray) -> np.ndarray:
        scale = self.config.resolution / faces.size
        return np.stack([faces.face(int(i))[1] * scale for i in indices]).astype(np.float32)

    def evaluate(self) -> dict[str, Any]:
        res = self.config.resolution
        src_val = validation_batch(self.source, self.source_split.validation, resolution=res)
        dst_val = validation_batch(self.target, self.target_split.validation, resolution=res)
        src_rec, _ = self._outputs("reconstruct_source", src_val)
        dst_rec, _ = self._outputs("reconstruct_target", dst_val)
        swapped, _ = self._outputs("swap", dst_val)
        src_mask = torch.from_numpy(src_val.mask).to(self.device)
        dst_mask = torch.from_numpy(dst_val.mask).to(self.device)
        metrics: dict[str, Any] = {
            "val_dssim_source": float(
                per_face_dssim(src_rec * src_mask, _to_tensor(src_val.target, self.device) * src_mask).mean()
            ),
            "val_dssim_target": float(
                per_face_dssim(dst_rec * dst_mask, _to_tensor(dst_val.target, self.device) * dst_mask).mean()
            ),
            "validation_faces": {
                "source": len(self.source_split.validation),
                "target": len(self.target_split.validation),
            },
        }
        swapped_u8 = _to_uint8_images(swapped)
        dst_landmarks = self._landmarks_at(self.target, self.target_split.validation)
        if self.embedder is not None and self.identity_threshold is not None:
            src_refs, dst_refs = self._identity_references()
            transfer = identity_transfer(
                embed_faces(self.embedder, swapped_u8, dst_landmarks),
                src_refs,
                dst_refs,
                threshold=float(self.identity_threshold),
            )
            metrics["identity_transfer"] = transfer.share
            metrics["identity_threshold"] = transfer.threshold
            metrics["swap_distance_to_source_median"] = transfer.median_distance_to_source
            metrics["swap_distance_to_source_max"] = transfer.worst_distance_to_source
            metrics["swap_faces_nearer_performer"] = transfer.nearer_target
        if self.landmarker is not None:
            from likeness.faces import eye_openness, mouth_openness

            fidelity = expression_fidelity(
                swapped_u8,
                dst_landmarks,
                landmarker=self.landmarker,
                eye_openness=eye_openness,
                mouth_openness=mouth_openness,
            )
            metrics["expression_eye_corr"] = fidelity.eye_correlation
            metrics["expression_mouth_corr"] = fidelity.mouth_correlation
            metrics["expression_faces_measured"] = fidelity.faces_measured
        self._last_preview = (src_val, src_rec, dst_val, swapped)
        return metrics

    def _identity_references(self) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of ``identity_reference_count`` training faces per identity, at the model
        resolution (same blur as swaps)."""
        if self._references is None:
            refs = []
            for faces, split in ((self.source, self.source_split), (self.target, self.target_split)):
                count = identity_reference_count(len(split.train))
                picks = split.train[np.linspace(0, len(split.train) - 1, count).astype(int)]
                clean = validation_batch(faces, picks, resolution=self.config.resolution)
                images = (clean.target.transpose(0, 2, 3, 1) * 255 + 0.5).astype(np.uint8)
                refs.append(embed_faces(self.embedder, images, self._landmarks_at(faces, picks)))  # type: ignore[arg-type]
            self._references = (refs[0], refs[1])
        return self._references

    # -- artefacts --------------------------------------------------------------------------
    def write_preview(self) -> Path | None:
        if not hasattr(self, "_last_preview"):
            self.evaluate()
        src_val, src_rec, dst_val, swapped = self._last_preview
        n = min(4, len(src_val.target), len(dst_val.target))
        to_u8 = lambda a: (np.asarray(a)[:n].transpose(0, 2, 3, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
        grid = preview_grid(
            [
                to_u8(src_val.target),
                _to_uint8_images(src_rec)[:n],
                to_u8(dst_val.target),
                _to_uint8_images(swapped)[:n],
            ],
            titles=["source", "src recon", "target", "target as source"],
        )
        folder = self.out_dir / PREVIEW_DIR
        folder.mkdir(exist_ok=True)
        path = folder / f"preview_{self.iteration:07d}.png"
        # Marked like a render: visible label plus the watermark of a ledger-recorded preview job.
        write_training_preview(self.authz, grid, [path, self.out_dir / "preview_latest.png"], iteration=self.iteration)
        return path

    def write_metrics_files(self) -> None:
        from likeness.media import write_image

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(METRIC_COLUMNS), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in self.history:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in METRIC_COLUMNS})
        write_bytes_atomic(self.out_dir / METRICS_CSV, buffer.getvalue().encode("utf-8"))
        if self.history:
            write_image(self.out_dir / METRICS_PNG, metrics_plot(self.history))

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> TrainResult:
        config = self.config
        total = config.iterations
        session_start = time.monotonic()
        deadline = session_start + config.minutes * 60 if config.minutes is not None else None
        processes, workers = data_loading(config.loader, config.workers, device=self.device, cores=available_cores())
        loader = PairLoader(
            self.source,
            self.target,
            source_split=self.source_split,
            target_split=self.target_split,
            seed=config.seed,
            batch_size=self.batch_size,
            resolution=config.resolution,
            options=AugmentOptions(**config.augment),
            priority_weight=config.eyes_mouth_priority,
            workers=workers,
            prefetch=config.prefetch,
            processes=processes,
            pin_memory=processes and self.device.type == "cuda",
        )
        stop_reason = "iterations"
        rate_window: list[float] = []
        last = time.monotonic()
        interrupt = _InterruptRequest()
        if total is not None and self.iteration >= total:
            stop_reason = "iterations"
        else:
            loss_s = loss_t = math.nan
            saved_at = -1
            done_iters = done_time = False
            with interrupt:
                for iteration, source_batch, target_batch in loader.iterate(self.iteration):
                    step_losses = self.step(source_batch, target_batch)
                    self.iteration = iteration + 1
                    now = time.monotonic()
                    rate_window = (rate_window + [now - last])[-20:]
                    last = now
                    it_per_s = len(rate_window) / max(sum(rate_window), 1e-9)
                    logged = self.iteration % config.log_every == 0
                    done_iters = total is not None and self.iteration >= total
                    done_time = deadline is not None and now >= deadline
                    saving = self.iteration % config.checkpoint_every == 0 or done_iters or done_time
                    if logged or saving or interrupt.requested or math.isnan(loss_s):
                        # Reading a loss waits for the GPU; between logged steps the next batch is
                        # queued while this one runs, and the progress shows the last logged losses.
                        loss_s, loss_t = (float(v) for v in step_losses)
                    if logged:
                        self.history.append(
                            {
                                "iteration": self.iteration,
                                "loss_source": loss_s,
                                "loss_target": loss_t,
                                "seconds": round(self.prior_seconds + now - session_start, 3),
                            }
                        )
                    if self.progress is not None:
                        eta = None
                        if total is not None:
                            eta = (total - self.iteration) / it_per_s
                        if deadline is not None:
                            eta = min(eta if eta is not None else math.inf, max(0.0, deadline - now))
                        self.progress(
                            TrainProgress(
                                self.iteration, total, loss_s, loss_t, it_per_s, eta, cpu_threads=self.cpu_threads
                            )
                        )
                    if saving:
                        self.checkpoint(session_start, loss_s, loss_t)
                        saved_at = self.iteration
                    elif config.preview_every and self.iteration % config.preview_every == 0:
                        self.evaluate_preview_only()
                    if done_iters or done_time:
                        stop_reason = "iterations" if done_iters else "minutes"
                        break
                    if interrupt.requested:
                        break
                if interrupt.requested and not (done_iters or done_time):
                    # Ctrl-C: keep what was learnt since the last checkpoint. The step in flight
                    # was finished first, so the checkpoint resumes exactly like a planned one.
                    if self.progress is not None:
                        self.progress(
                            TrainProgress(
                                self.iteration,
                                total,
                                loss_s,
                                loss_t,
                                0.0,
                                None,
                                "interrupted",
                                cpu_threads=self.cpu_threads,
                            )
                        )
                    if saved_at != self.iteration:
                        self.checkpoint(session_start, loss_s, loss_t)
                    raise TrainingInterrupted(self.out_dir / CHECKPOINT_NAME, self.iteration)
        seconds = self.prior_seconds + time.monotonic() - session_start
        self.authz.record(
            "model.trained",
            {
                "model_dir": str(self.out_dir),
                "checkpoint_sha256": self.checkpoint_sha256,
                "architecture": config.model,
                "resolution": config.resolution,
                "iterations": self.iteration,
                "source_faceset_sha256": self.source.content_sha256(),
                "target_faceset_sha256": self.target.content_sha256(),
                "performer_id": self.consent["performer_id"],
                "release_id": self.consent["release_id"],
                "metrics": {k: v for k, v in self.metrics.items() if isinstance(v, (int, float)) or v is None},
            },
        )
        return TrainResult(
            self.out_dir,
            self.iteration,
            stop_reason,
            dict(self.metrics),
            seconds,
            self.batch_size,
            self.device.type,
            self.out_dir / CHECKPOINT_NAME,
            self.coverage_check,
        )

    def evaluate_preview_only(self) -> None:
        self.evaluate()
        self.write_preview()
        if self.progress is not None:
            self.progress(
                TrainProgress(
                    self.iteration,
                    self.config.iterations,
                    math.nan,
                    math.nan,
                    0.0,
                    None,
                    "preview",
                    cpu_threads=self.cpu_threads,
                )
            )

    def save_bound_checkpoint(self, state: dict[str, Any]) -> None:
        """Seal the checkpoint's SHA-256 and consent with the organisation's key, record them as
        ``model.checkpointed``, then write the file.

        The event comes first: a checkpoint on disk always has its event (a kill in between
        leaves the previous checkpoint, which has its own), and export and resume take the
        consent from that sealed event rather than from the file.
        """
        payload = checkpoint_bytes(state)
        digest = hashlib.sha256(payload).hexdigest()
        self.release_authz.recheck()
        record_checkpoint(
            self.workspace,
            self.authz,
            self.out_dir,
            state,
            digest,
            iteration=self.iteration,
            subject_slug=self.consent["subject_slug"],
            performer_slug=self.consent["performer_slug"],
        )
        write_bytes_atomic(self.out_dir / CHECKPOINT_NAME, payload)
        self.checkpoint_sha256 = digest

    def checkpoint(self, session_start: float, loss_s: float, loss_t: float) -> None:
        # Consent first: after a revocation no further work is persisted; the previous
        # checkpoint stays as it was and the ConsentError propagates to the caller.
        self.authz.recheck()
        self.release_authz.recheck()
        self.metrics = self.evaluate()
        row = {
            "iteration": self.iteration,
            "loss_source": loss_s,
            "loss_target": loss_t,
            "seconds": round(self.prior_seconds + time.monotonic() - session_start, 3),
        }
        row.update({k: v for k, v in self.metrics.items() if k in METRIC_COLUMNS})
        if self.history and self.history[-1]["iteration"] == self.iteration:
            self.history[-1].update(row)
        else:
            self.history.append(row)
        seconds = self.prior_seconds + time.monotonic() - session_start
        self.save_bound_checkpoint(self.state(seconds))
        logger.info("%s: checkpoint at iteration %d", self.out_dir, self.iteration)
        self.write_metrics_files()
        if self.config.preview_every:
            self.write_preview()
        if self.progress is not None:
            self.progress(
                TrainProgress(
                    self.iteration,
                    self.config.iterations,
                    loss_s,
                    loss_t,
                    0.0,
                    None,
                    "checkpoint",
                    cpu_threads=self.cpu_threads,
                )
            )


def _python_rng_to_lists(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_rng_from_lists(raw: list) -> tuple:
    return (raw[0], tuple(raw[1]), raw[2])


def _numpy_rng_to_lists(state: tuple) -> list:
    name, keys, pos, has_gauss, cached = state
    return [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)]


def _numpy_rng_from_lists(raw: list) -> tuple:
    return (raw[0], raw[1].numpy().astype(np.uint32), raw[2], raw[3], raw[4])


def _default_metric_tools(config: TrainConfig, embedder: Any, landmarker: Any, threshold: float | None):
    """The metric tools to use, made where not given: ``(embedder, landmarker, threshold,
    detector)``; ``detector`` is the FaceDetector made here (None if none was), for the caller
    to close."""
    detector = None
    if config.identity_metrics and embedder is None:
        from likeness.faces import FaceEmbedder

        embedder = FaceEmbedder()
    if config.identity_metrics and threshold is None:
        from likeness.faces import IDENTITY_THRESHOLD

        threshold = IDENTITY_THRESHOLD
    if config.expression_metrics and landmarker is None:
        from likeness.faces import FaceDetector

        detector = FaceDetector(max_faces=1)
        landmarker = detector_landmarker(detector)
    return (
        embedder if config.identity_metrics else None,
        landmarker if config.expression_metrics else None,
        threshold,
        detector,
    )


def train_swap_model(
    authz: Any,
    release_authz: Any,
    source: Any,
    target: Any,
    out_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    workspace: Any = None,
    resume: bool = False,
    progress: Callable[[TrainProgress], None] | None = None,
    embedder: IdentityEmbedder | None = None,
    landmarker: Landmarker | None = None,
    identity_threshold: float | None = None,
    coverage_check: dict[str, Any] | None = None,
) -> TrainResult:
    """Train (or with ``resume=True`` continue) a face-swap model from ``source`` to ``target``.

    ``coverage_check``: the coverage gate's result for a new run (gaps found, whether severe ones
    were accepted); kept in every checkpoint and copied into the model card at export. A resumed
    run keeps the one saved.

    ``authz``: a ``likeness.consent.Authorization`` for use ``training`` of the source subject;
    ``release_authz``: a ``ReleaseAuthorization`` for the target performer. Both are rechecked at
    the start and at every checkpoint; a revocation raises ``ConsentError`` and keeps the previous
    checkpoint. ``source``/``target``: :class:`FaceSamples` or a ``Faceset``.

    ``workspace``: every checkpoint is sealed with its organisation's key and recorded as
    ``model.checkpointed`` before it is written; a faceset's manifest is checked against its
    signed ``faceset.created`` event (which says whose faces it holds, and under which grant: the
    authorization must be under the same one); on resume the checkpoint must be the one its sealed
    event records, and that event, not the file, says whose model it is.

    On resume the saved configuration is used; only ``iterations`` and ``minutes`` of ``config``
    (when given) replace the saved stopping rule, and ``threads`` (when set) the thread count. Same seed, same machine: N straight iterations
    give the same weights as N/2 + resume + N/2.
    """
    source_faces, target_faces = as_face_source(source), as_face_source(target)
    out = Path(out_dir)
    consent = _consent_binding(authz, release_authz, source_faces, target_faces, workspace)
    if workspace is None:
        raise ConfigError(f"{out}: training needs workspace= to seal its checkpoints with the organisation's key")
    state = bound = None
    if resume:
        state, bound = load_bound_checkpoint(workspace, out / CHECKPOINT_NAME)
        saved = TrainConfig.from_dict(state["train_config"])
        if config is not None and (config.iterations is not None or config.minutes is not None):
            saved.iterations, saved.minutes = config.iterations, config.minutes
        # Threads are about this machine now, not the run: a resumed run may use fewer cores.
        if config is not None and config.threads is not None:
            saved.threads = config.threads
        config = saved
        # Whose model this is comes from the checkpoint's ledger event (the file matched it).
        if bound["subject_id"] != consent["subject_id"]:
            raise ConsentError("no_grant", f"{out}: this model was trained for subject {bound['subject_slug']!r}")
        if bound["performer_id"] != consent["performer_id"]:
            raise ConsentError("no_release", f"{out}: this model was trained on performer {bound['performer_slug']!r}")
        for which, faces in (("source", source_faces), ("target", target_faces)):
            if bound[f"{which}_faceset_sha256"] != faces.content_sha256():
                raise ModelError(f"{out}: {which} faces differ from the ones this model was trained on")
        remove_stale_temp_files(out)
    else:
        config = config or TrainConfig()
        if (out / CHECKPOINT_NAME).exists():
            raise ModelError(f"{out}: already holds a checkpoint; resume it or choose a new folder")
    config.validate()
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    embedder, landmarker, identity_threshold, detector = _default_metric_tools(
        config, embedder, landmarker, identity_threshold
    )
    # Training sets torch's and OpenCV's thread counts for its own run; the caller's are put back.
    thread_settings = cpu_thread_settings()
    try:
        trainer = _Trainer(
            authz=authz,
            release_authz=release_authz,
            source=source_faces,
            target=target_faces,
            out_dir=out,
            config=config,
            consent=consent,
            workspace=workspace,
            progress=progress,
            embedder=embedder,
            landmarker=landmarker,
            identity_threshold=identity_threshold,
        )
        trainer.build(state)
        trainer.coverage_check = (state or {}).get("coverage_check") if resume else coverage_check
        trainer.checkpoint_sha256 = bound["checkpoint_sha256"] if bound else None
        if config.batch_size is None:
            config.batch_size = trainer.batch_size
        write_bytes_atomic(out / CONFIG_NAME, (json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n").encode())
        return trainer.run()
    except BaseException:
        # A run refused before it wrote anything (too few faces, no memory for a batch) leaves
        # no empty model folder behind.
        discard_unstarted_run(out, created=created)
        raise
    finally:
        restore_cpu_thread_settings(thread_settings)
        if detector is not None:  # MediaPipe graphs: released on success and on every error
            detector.close()
