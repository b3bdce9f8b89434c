"""Base models the product pretrained itself and ships, to fine-tune from (DeepFaceLab's pretrain).

A base model is a starting point for the weights only. A run that starts from one is a new
training run like any other: ``train_swap_model`` checks the training Authorization of its subject
and the release of its performer before the base weights are even read, binds the checkpoints to
them, and records the base's name and SHA-256 in the checkpoint and the model card. There is no
path that fine-tunes without that consent.

The weights ship in ``likeness/train/weights/`` with a card beside them (data, steps, figures,
date, sha256) and are registered in :mod:`likeness.assets`: loading checks their SHA-256 first
(:func:`likeness.assets.checked_asset`), so an altered file is refused, not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from likeness import strict_json
from likeness.errors import ConfigError, ModelError


@dataclass(frozen=True)
class BaseModel:
    """A shipped base: ``asset`` names its weights in the asset table; ``model``/``resolution``/
    ``options`` are the architecture a run must use to start from it."""

    name: str
    asset: str
    card: str
    model: str
    resolution: int
    options: tuple[tuple[str, int], ...] = ()


BASE_MODELS: dict[str, BaseModel] = {
    "df-tiny-64-base": BaseModel(
        "df-tiny-64-base",
        asset="df-tiny-64-base",
        card="weights/df_tiny_64_base.card.json",
        model="df_tiny",
        resolution=64,
    ),
}


def base_model(name: str) -> BaseModel:
    """The shipped base called ``name`` (``ConfigError`` naming the known ones otherwise)."""
    try:
        return BASE_MODELS[name]
    except KeyError:
        raise ConfigError(f"no base model {name!r}; shipped: {', '.join(BASE_MODELS)}") from None


def check_base_matches(name: str, *, model: str, resolution: int, options: dict[str, int]) -> BaseModel:
    """The base ``name``, if a run of ``model`` at ``resolution`` with ``options`` can start from it."""
    base = base_model(name)
    if (model, resolution, options) != (base.model, base.resolution, dict(base.options)):
        raise ConfigError(
            f"base model {name} is {base.model} at {base.resolution} px"
            f"{' with ' + str(dict(base.options)) if base.options else ''}; "
            f"this run is {model} at {resolution} px{' with ' + str(options) if options else ''} "
            f"(train it with --model {base.model} --res {base.resolution}"
            f"{''.join(f' --model-option {k}={v}' for k, v in base.options)})"
        )
    return base


def base_card(name: str) -> dict[str, Any]:
    """The base model's card (what it was trained on, how long, with which figures)."""
    from importlib.resources import files

    return dict(strict_json.loads(files("likeness.train").joinpath(base_model(name).card).read_text(encoding="utf-8")))


def load_base_weights(name: str, model: Any) -> str:
    """Load the base ``name`` into ``model`` (strictly: every tensor, same shapes); returns the
    weights' SHA-256, checked against the asset table before the file is read."""
    import torch

    from likeness.assets import asset, checked_asset

    path = checked_asset(base_model(name).asset)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: base model {name} does not load into {type(model).__name__} ({exc})") from None
    return asset(base_model(name).asset).sha256
