"""Training options and what a run reports: :class:`TrainConfig` (saved as ``train_config.json``
beside the checkpoint), :class:`TrainProgress`, :class:`TrainResult`, and the file names of a
model folder's training artefacts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from likeness.errors import ConfigError, ModelError, OptionError
from likeness.models import resolve_config
from likeness.train.augment import AugmentOptions
from likeness.train.device import DATA_LOADERS, TRAIN_PRECISIONS

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


def _literal(value: object) -> str:
    """``value``'s repr as literal text in an ``OptionError`` template (its braces doubled)."""
    return repr(value).replace("{", "{{").replace("}", "}}")


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
    ``recipe`` records which named recipe the options started from and why
    (``likeness.train.recipes.RecipeChoice.to_dict()``; None: not recorded); export copies it
    into the model card. It changes nothing in training.
    ``base_model`` names a shipped base (``likeness.train.base_model.BASE_MODELS``) whose weights a
    new run starts from instead of random ones (a fine-tune; consent is checked as for any run);
    the model, resolution and options must be the base's.
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
    recipe: dict[str, Any] | None = None
    base_model: str | None = None

    def validate(self) -> None:
        # OptionError: each option by its field name here (the service's), by its flag in the CLI.
        if self.iterations is None and self.minutes is None:
            raise OptionError("set {iterations} or {minutes} (or both) to bound training")
        if self.iterations is not None and self.iterations < 1:
            raise OptionError(f"{{iterations}} must be >= 1, got {self.iterations}")
        if self.minutes is not None and not (self.minutes > 0 and math.isfinite(self.minutes)):
            raise OptionError(f"{{minutes}} must be a positive number, got {self.minutes}")
        if self.batch_size is not None and self.batch_size < 1:
            raise OptionError(f"{{batch_size}} must be >= 1, got {self.batch_size}")
        if self.threads is not None and self.threads < 1:
            raise OptionError(f"{{threads}} must be >= 1, got {self.threads}")
        if self.workers is not None and self.workers < 1:
            raise OptionError(f"{{workers}} must be >= 1 or unset, got {self.workers}")
        if self.loader not in DATA_LOADERS:
            raise OptionError(f"{{loader}} must be one of {', '.join(DATA_LOADERS)}, got {_literal(self.loader)}")
        for name in ("checkpoint_every", "log_every", "prefetch"):
            if getattr(self, name) < 1:
                raise OptionError(f"{{{name}}} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.ema_decay < 1:
            raise OptionError(f"{{ema_decay}} must be in [0, 1), got {self.ema_decay}")
        if self.lr_decay_iters is not None and self.lr_decay_iters < 1:
            raise OptionError(f"{{lr_decay_iters}} must be >= 1 or unset, got {self.lr_decay_iters}")
        if not 0 <= self.lr_floor <= 1:
            raise OptionError(f"{{lr_floor}} must be in [0, 1], got {self.lr_floor}")
        if not 0 <= self.true_face_power <= 1:
            raise OptionError(f"{{true_face_power}} must be in [0, 1], got {self.true_face_power}")
        if self.preview_every < 0:
            raise OptionError(f"{{preview_every}} must be >= 0, got {self.preview_every}")
        if not 0 < self.validation_fraction < 1:
            raise OptionError(f"{{validation_fraction}} must be in (0, 1), got {self.validation_fraction}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise OptionError(f"{{device}} must be auto, cpu or cuda, got {_literal(self.device)}")
        if self.precision not in TRAIN_PRECISIONS:
            raise OptionError(
                f"{{precision}} must be one of {', '.join(TRAIN_PRECISIONS)}, got {_literal(self.precision)}"
            )
        try:
            AugmentOptions(**self.augment)
        except (TypeError, ConfigError) as exc:
            raise ConfigError(f"augment: {exc}") from None
        try:
            architecture = resolve_config(self.model, resolution=self.resolution, **self.model_options)
        except ModelError as exc:
            raise ConfigError(str(exc)) from None
        if self.base_model is not None:
            from likeness.train.base_model import check_base_matches

            check_base_matches(
                self.base_model, model=self.model, resolution=self.resolution, options=self.model_options
            )
        if self.true_face_power > 0 and architecture.family != "df":
            raise OptionError(
                f"{{true_face_power}} needs a df model (one code shared by both identities), "
                f"not {self.model} ({architecture.family}); set it to 0"
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
