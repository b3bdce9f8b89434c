"""One registry for face-swap architectures: ``register_model`` / ``create_model`` / ``list_models``.

Each registered name maps to a factory and a default configuration; ``create_model(name, **cfg)``
overrides defaults, validates them and returns a :class:`SwapAutoencoder`. Models are described as
data (``model.config``) so checkpoints and model cards can rebuild exactly the same network.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from likeness.errors import ModelError

#: Resolutions the full-size families are built and documented for.
SUPPORTED_RESOLUTIONS = (64, 96, 128, 256)

#: Default widths (e_dims, ae_dims, d_dims, d_mask_dims) per resolution for the full families.
#: Narrower at 64/96 px so a CPU-only studio can still train in tens of minutes (see docs/training.md).
DIMS_BY_RESOLUTION: dict[int, tuple[int, int, int, int]] = {
    64: (32, 256, 32, 12),
    96: (48, 256, 48, 16),
    128: (64, 256, 64, 22),
    256: (64, 256, 64, 22),
}

#: Resolutions whose default is DeepFaceLab's ``-d`` decoder (work at R/2, pixel-shuffle to R):
#: the CPU resolutions, where it makes a training step about 4x cheaper (docs/training.md).
DOUBLE_RES_BY_DEFAULT = frozenset({64, 96})

LICENCE = "Proprietary (likeness); weights trained by the product from consented facesets"


@dataclass(frozen=True)
class SwapModelConfig:
    """Everything needed to rebuild a network; stored in checkpoints and model cards.

    ``resolution`` is the side in pixels of the square aligned face; the networks downscale 16x,
    so it must be a multiple of 16 (of 32 with ``double_res``, DeepFaceLab's ``-d``: decoders work
    at half the resolution and pixel-shuffle their output up).
    """

    name: str
    family: str
    resolution: int
    e_dims: int
    ae_dims: int
    d_dims: int
    d_mask_dims: int
    double_res: bool = False
    licence: str = LICENCE
    provenance: str = "architecture after DeepFaceLab SAEHD (GPL-3.0 ideas, independent PyTorch code)"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def low_res(self) -> int:
        """Side of the dense bottleneck's feature map: R/16, or R/32 with ``double_res``."""
        return self.resolution // (32 if self.double_res else 16)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SwapAutoencoder(nn.Module):
    """Common interface of every face-swap family.

    Inputs are ``float32 (N, 3, R, R)`` RGB in ``[0, 1]``; every method returns
    ``(rgb (N, 3, R, R), mask (N, 1, R, R))`` in ``[0, 1]``. ``forward`` is the swap path that
    is exported to ONNX: a target-performer face rendered as the source subject.
    """

    config: SwapModelConfig

    def reconstruct_source(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def reconstruct_target(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def swap(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def reconstruct_pair(
        self, source_face: torch.Tensor, target_face: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """``(reconstruct_source(source_face), reconstruct_target(target_face))`` in one call.

        The training step's entry point; families whose encoder path is shared override it to run
        both batches through the encoder as one (fewer, larger convolutions on a CPU).
        """
        return self.reconstruct_source(source_face), self.reconstruct_target(target_face)

    def reconstruct_pair_with_codes(
        self, source_face: torch.Tensor, target_face: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """``reconstruct_pair`` plus the two batches' codes ``(N, *code_shape)``: what the decoders
        read. Only families whose swap decodes a code shared by both identities have one."""
        raise ModelError(f"{self.config.name} has no code shared by both identities (true-face training needs df)")

    @property
    def code_shape(self) -> tuple[int, int, int] | None:
        """``(channels, height, width)`` of the shared code, or None for families without one."""
        return None

    def forward(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.swap(face)

    @property
    def resolution(self) -> int:
        return self.config.resolution


#: Keyword arguments ``create_model`` accepts (everything else in a config is descriptive).
ARCHITECTURE_OPTIONS = ("resolution", "e_dims", "ae_dims", "d_dims", "d_mask_dims", "double_res")

ModelFactory = Callable[[SwapModelConfig], SwapAutoencoder]


@dataclass(frozen=True)
class _Entry:
    factory: ModelFactory
    default: SwapModelConfig
    resolutions: tuple[int, ...] | None
    description: str


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    name: str,
    *,
    default: SwapModelConfig,
    description: str,
    resolutions: tuple[int, ...] | None = SUPPORTED_RESOLUTIONS,
) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator adding ``factory`` under ``name``; ``resolutions=None`` accepts any multiple of 16."""

    def decorate(factory: ModelFactory) -> ModelFactory:
        if name in _REGISTRY:
            raise ModelError(f"model {name!r} is already registered")
        _REGISTRY[name] = _Entry(factory, default, resolutions, description)
        return factory

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered names matching a shell-style ``pattern``, e.g. ``list_models("df*")``."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def model_description(name: str) -> str:
    return _entry(name).description


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None


def resolve_config(name: str, **cfg: Any) -> SwapModelConfig:
    """Defaults of ``name`` overridden by ``cfg``, validated; raises :class:`ModelError`."""
    entry = _entry(name)
    unknown = set(cfg) - set(ARCHITECTURE_OPTIONS)
    if unknown:
        raise ModelError(
            f"model {name!r}: unknown option(s) {sorted(unknown)}; expected some of {sorted(ARCHITECTURE_OPTIONS)}"
        )
    for key, value in cfg.items():
        if key == "double_res":
            if not isinstance(value, bool):
                raise ModelError(f"model {name!r}: double_res must be True or False, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ModelError(f"model {name!r}: {key} must be a positive int, got {value!r}")
    res = cfg.get("resolution", entry.default.resolution)
    if entry.resolutions is not None and res in DIMS_BY_RESOLUTION:
        e_dims, ae_dims, d_dims, d_mask_dims = DIMS_BY_RESOLUTION[res]
        cfg = {
            "e_dims": e_dims,
            "ae_dims": ae_dims,
            "d_dims": d_dims,
            "d_mask_dims": d_mask_dims,
            "double_res": res in DOUBLE_RES_BY_DEFAULT,
        } | cfg
    config = replace(entry.default, **cfg)
    if entry.resolutions is not None and res not in entry.resolutions:
        raise ModelError(f"model {name!r}: resolution must be one of {list(entry.resolutions)}, got {res}")
    if res % 16 or res < 16:
        raise ModelError(f"model {name!r}: resolution must be a multiple of 16 (>= 16), got {res}")
    if config.double_res and res % 32:
        raise ModelError(f"model {name!r}: double_res needs a resolution that is a multiple of 32, got {res}")
    return config


def architecture_options(config: SwapModelConfig | dict[str, Any]) -> dict[str, Any]:
    """The ``create_model`` keyword arguments that rebuild ``config`` (from a checkpoint or card).

    Configurations saved before an option existed get that option's old default (``double_res``
    off), so older checkpoints still load.
    """
    raw = config.to_dict() if isinstance(config, SwapModelConfig) else dict(config)
    options = {key: raw[key] for key in ARCHITECTURE_OPTIONS if key in raw}
    options.setdefault("double_res", False)
    return options


def create_model(name: str, **cfg: Any) -> SwapAutoencoder:
    """Build a freshly initialised network, e.g. ``create_model("df", resolution=64)``.

    Weights are initialised from torch's current RNG, so seed it first for reproducible runs.
    """
    config = resolve_config(name, **cfg)
    model = _entry(name).factory(config)
    model.config = config
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
