"""Named training recipes: option sets measured in docs/training.md, which explicit options override.

A recipe only fills in :class:`~likeness.train.TrainConfig` keyword arguments; nothing about
consent, data or checkpoints changes with it. Torch-free, so the CLI can resolve one cheaply.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from likeness.errors import ConfigError

#: Most iterations a run may be asked for (the CLI's --iters, the API's ``iterations``): an
#: extra digit or two typed by mistake is refused rather than shown as a centuries-long ETA.
MAX_ITERATIONS = 10_000_000

#: Options merged key by key rather than replaced whole.
_MERGED = ("augment", "model_options")

#: Given as the value of a merged key, sets that key to None over the recipe's value (None itself
#: means "not given"): ``--warp-until never`` keeps the warp on despite a recipe's stop.
CLEARED: Any = object()

#: A 64 px face is enlarged about 2.5x over a 160 px face; from there a 128 px model is the default.
LARGE_FACE_PX = 160.0

_PREVIEW: dict[str, Any] = {
    # The best-measured recipe for identity within 30 minutes at 64 px on a 2-core CPU
    # (docs/training.md, "Time to quality"): with the warp stopped at 5000
    # and true face 0.01, identity transfer 0.9 was reached on all six seeds measured (11.7-24.4
    # minutes, median 17.6); without true face on four of six. Batch 4 runs about 1.5x the
    # iterations of batch 8. Its decoder, twice as wide as d_dims=16, costs the render about 7 fps
    # at 720p in float (docs/benchmarks.md, Render).
    "model": "df",
    "resolution": 64,
    "batch_size": 4,
    "learning_rate": 5e-4,
    "augment": {"flip": True, "warp_until": 5000},
    "true_face_power": 0.01,
    "model_options": {"ae_dims": 128, "d_dims": 32, "d_mask_dims": 8},
}

RECIPES: dict[str, dict[str, Any]] = {
    "preview": _PREVIEW,
    # The name this recipe had before recipes were named by intent (workspaces and scripts use it).
    "cpu-64": _PREVIEW,
    # The preview recipe's widths at 128 px with DeepFaceLab's -d decoder (it runs to 64 px and
    # predicts 2x2 blocks): a step measured at 2.3-2.8x the 64 px one, where the 128 px default
    # widths without -d cost about 10x (docs/training.md, "Resolution and recipes"). The warp stop
    # is about a third of a night's iterations, as the 64 px recipe's is of its 30 minutes; not
    # tuned at 128 px.
    "cpu-overnight-128": {
        "model": "df",
        "resolution": 128,
        "batch_size": 4,
        "learning_rate": 5e-4,
        "augment": {"flip": True, "warp_until": 30000},
        "true_face_power": 0.01,
        "model_options": {"ae_dims": 128, "d_dims": 32, "d_mask_dims": 8, "double_res": True},
    },
    # The full df widths at 256 px with the -d decoder, at a GPU batch. Not measured at 256 px:
    # its time is extrapolated from the 128 px step measured on an H200 (docs/training.md).
    "gpu-256": {
        "model": "df",
        "resolution": 256,
        "batch_size": 16,
        "learning_rate": 2e-4,
        "augment": {"flip": True, "warp_until": 60000},
        "true_face_power": 0.01,
        "model_options": {"double_res": True},
    },
}

#: When a recipe's run stops unless ``--iters`` or ``--minutes`` says otherwise (``TrainConfig``
#: ``iterations`` and ``minutes``); recipes not named here, and runs without one, stop after 1000
#: iterations, as before recipes existed.
RECIPE_STOPS: dict[str, dict[str, Any]] = {
    "cpu-overnight-128": {"iterations": None, "minutes": 480.0},
    "gpu-256": {"iterations": 100_000, "minutes": None},
}


def recipe_stop(name: str | None) -> dict[str, Any]:
    """``{"iterations": ..., "minutes": ...}`` for a run of recipe ``name`` given neither.

    Example:
        >>> recipe_stop("cpu-overnight-128")
        {'iterations': None, 'minutes': 480.0}
        >>> recipe_stop(None)
        {'iterations': 1000, 'minutes': None}
    """
    default = {"iterations": 1000, "minutes": None}
    return dict(RECIPE_STOPS.get(canonical_recipe(name), default)) if name is not None else default


#: Other names of a recipe (the first name of a recipe in :data:`RECIPES` is its own).
RECIPE_ALIASES: dict[str, str] = {"cpu-64": "preview"}


@dataclass(frozen=True)
class RecipeNote:
    """What a recipe is for: ``intent`` (a phrase), ``needs_cuda`` (refused without a CUDA
    device), and ``time`` (how long it takes and whether that was measured or extrapolated)."""

    intent: str
    needs_cuda: bool
    time: str


RECIPE_NOTES: dict[str, RecipeNote] = {
    "preview": RecipeNote(
        "fast previews and live use, faces under 160 px",
        False,
        "measured: identity transfer 0.9 in 11.7-24.4 min (median 17.6) on an idle 2-core CPU",
    ),
    "cpu-overnight-128": RecipeNote(
        "the default for faces of 160 px or more without a GPU",
        False,
        "extrapolated: about 100 000 iterations in 8 h on an idle 2-core CPU (3.1-3.9 it/s; its step "
        "measured at 2.3-2.8x the preview's); quality at 128 px measured only over its first 355 iterations",
    ),
    "gpu-256": RecipeNote(
        "full quality for large faces on a CUDA GPU",
        True,
        "extrapolated, not measured on a GPU: 100 000 iterations in about 2-3 h on one H200; 4-9 days on "
        "a 2-core CPU (its step measured at 26-67x the preview's)",
    ),
}


class RecipeUnavailable(ConfigError):
    """A recipe cannot run on this machine (``recipe`` names it, the message says why)."""

    def __init__(self, recipe: str, message: str) -> None:
        super().__init__(message)
        self.recipe = recipe


@dataclass(frozen=True)
class RecipeChoice:
    """The recipe a run starts from and why: ``name`` (None: no recipe, the options as given),
    ``reason`` (one sentence for the CLI output and the training state) and ``median_face_px``
    (the performer's median face size when the choice was made from it)."""

    name: str | None
    reason: str
    median_face_px: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "reason": self.reason, "median_face_px": self.median_face_px}


def canonical_recipe(name: str) -> str:
    """``name`` with aliases resolved (``cpu-64`` -> ``preview``); unknown names raise ``ConfigError``."""
    if name not in RECIPES:
        known = ", ".join(sorted(RECIPES))
        raise ConfigError(f"unknown training recipe {name!r} (known: {known})")
    return RECIPE_ALIASES.get(name, name)


def choose_recipe(face_sizes: Sequence[float], *, cuda: bool) -> RecipeChoice:
    """The recipe for a performer whose faces measure ``face_sizes`` (source pixels, the faceset's
    ``face_size``: the longer side of the landmark box), on a machine with or without a CUDA device.

    A median face of :data:`LARGE_FACE_PX` or more gets a 128 px model on a CPU
    (``cpu-overnight-128``) and a 256 px one on a GPU (``gpu-256``): a 64 px swap stretched over
    it is blurry and shows its pixel grid. Smaller faces, or none measured, get ``preview``.

    Example:
        >>> choose_recipe([200.0, 210.0, 90.0], cuda=False).name
        'cpu-overnight-128'
        >>> choose_recipe([120.0], cuda=True).name
        'preview'
    """
    sizes = [float(s) for s in face_sizes if math.isfinite(float(s)) and float(s) > 0]
    if not sizes:
        return RecipeChoice("preview", "no performer face sizes recorded; preview (64 px)")
    median = float(statistics.median(sizes))
    if median < LARGE_FACE_PX:
        return RecipeChoice(
            "preview",
            f"the performer's median face is {median:.0f} px (< {LARGE_FACE_PX:.0f} px): "
            "a 64 px model is enough; preview (64 px)",
            median,
        )
    if cuda:
        return RecipeChoice(
            "gpu-256",
            f"the performer's median face is {median:.0f} px (>= {LARGE_FACE_PX:.0f} px) "
            "and a CUDA device is available; gpu-256 (256 px)",
            median,
        )
    return RecipeChoice(
        "cpu-overnight-128",
        f"the performer's median face is {median:.0f} px "
        f"(>= {LARGE_FACE_PX:.0f} px), no CUDA device: cpu-overnight-128 "
        "(128 px; a night on a 2-core CPU)",
        median,
    )


def check_recipe_device(name: str, *, cuda: bool) -> None:
    """Refuse (``RecipeUnavailable``) a recipe that needs a CUDA device on a machine without one.

    Why refuse rather than warn: its step measured 26-67x the preview's on a 2-core CPU, so the
    100 000 iterations it plans would take 4-9 days there (docs/training.md); a run started by
    mistake, or by a default on a machine whose GPU went missing, would hold the machine for days
    while a warning scrolls away. ``--res 256`` with explicit
    options still trains at 256 px on a CPU for whoever means it.
    """
    canonical = canonical_recipe(name)
    if RECIPE_NOTES[canonical].needs_cuda and not cuda:
        raise RecipeUnavailable(
            name,
            f"recipe {name!r} needs a CUDA GPU and none is available: at 256 px a 2-core CPU would "
            "take 4-9 days for its 100 000 iterations (docs/training.md); use cpu-overnight-128 (128 px, about a night) or preview "
            "(64 px), or give --res 256 and the other options explicitly to train on the CPU anyway",
        )


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
    base: dict[str, Any] = {} if name is None else copy.deepcopy(RECIPES[canonical_recipe(name)])
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
    """One line naming a recipe's intent, values and time, for help text
    (``preview: fast previews ...; df 64 px, batch 4, ...; measured: ...``)."""
    canonical = canonical_recipe(name)
    recipe, note = RECIPES[canonical], RECIPE_NOTES[canonical]
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
    aliases = sorted(alias for alias, target in RECIPE_ALIASES.items() if target == canonical)
    title = canonical + (f" (also {', '.join(aliases)})" if aliases else "")
    needs = "; needs a CUDA GPU" if note.needs_cuda else ""
    return f"{title}: {recipe['resolution']} px, {note.intent}{needs}; {', '.join(parts)}; {note.time}"


def recipe_names() -> list[str]:
    """The recipes by their own names (no aliases), smallest resolution first."""
    return sorted((n for n in RECIPES if n not in RECIPE_ALIASES), key=lambda n: RECIPES[n]["resolution"])
