"""Named training recipes: option sets measured in docs/training.md, which explicit options override.

A recipe only fills in :class:`~likeness.train.TrainConfig` keyword arguments; nothing about
consent, data or checkpoints changes with it. Torch-free, so the CLI can resolve one cheaply.
"""

from __future__ import annotations

import copy
from typing import Any

from likeness.errors import ConfigError

#: Options merged key by key rather than replaced whole.
_MERGED = ("augment", "model_options")

#: Given as the value of a merged key, sets that key to None over the recipe's value (None itself
#: means "not given"): ``--warp-until never`` keeps the warp on despite a recipe's stop.
CLEARED: Any = object()

RECIPES: dict[str, dict[str, Any]] = {
    # The best-measured recipe for identity within 30 minutes at 64 px on a 2-core CPU
    # (docs/training.md, "Batch 4 instead of 8" and "The warp fix"): with the warp stopped at 5000
    # and true face 0.01, identity transfer 0.9 was reached on all six seeds measured (11.7-24.4
    # minutes, median 17.6); without true face on four of six. Batch 4 runs about 1.5x the
    # iterations of batch 8. Its decoder, twice as wide as d_dims=16, costs the render about 7 fps
    # at 720p in float (docs/render.md, run 8).
    "cpu-64": {
        "model": "df",
        "resolution": 64,
        "batch_size": 4,
        "learning_rate": 5e-4,
        "augment": {"flip": True, "warp_until": 5000},
        "true_face_power": 0.01,
        "model_options": {"ae_dims": 128, "d_dims": 32, "d_mask_dims": 8},
    },
}


def recipe_options(name: str | None, **given: Any) -> dict[str, Any]:
    """``TrainConfig`` keyword arguments: recipe ``name``'s values (none for None), each replaced by
    the ``given`` value where that is not None; ``augment`` and ``model_options`` merge key by
    key, so ``--model-option d_dims=16`` changes one width and keeps the others, and a merged key
    given as :data:`CLEARED` becomes None.

    Example:
        >>> recipe_options("cpu-64", learning_rate=None, batch_size=16)["batch_size"]
        16
        >>> recipe_options(None, learning_rate=None)
        {}
    """
    if name is None:
        base: dict[str, Any] = {}
    elif name in RECIPES:
        base = copy.deepcopy(RECIPES[name])
    else:
        raise ConfigError(f"unknown training recipe {name!r} (known: {', '.join(sorted(RECIPES))})")
    options = dict(base)
    for key, value in given.items():
        if key in _MERGED:
            given_keys = {k: None if v is CLEARED else v for k, v in (value or {}).items() if v is not None}
            merged = {**base.get(key, {}), **given_keys}
            if merged:
                options[key] = merged
        elif value is not None:
            options[key] = value
    return options


def describe_recipe(name: str) -> str:
    """One line naming a recipe's values, for help text (``cpu-64: df 64 px, batch 4, ...``)."""
    recipe = RECIPES[name]
    parts = [
        f"{recipe['model']} {recipe['resolution']} px",
        f"batch {recipe['batch_size']}",
        f"lr {recipe['learning_rate']:g}",
    ]
    augment = recipe.get("augment", {})
    if augment.get("flip"):
        parts.append("flip")
    if augment.get("warp_until") is not None:
        parts.append(f"warp until {augment['warp_until']}")
    if recipe.get("true_face_power"):
        parts.append(f"true face {recipe['true_face_power']:g}")
    parts.append(" ".join(f"{k}={v}" for k, v in recipe.get("model_options", {}).items()))
    return f"{name}: {', '.join(parts)}"
