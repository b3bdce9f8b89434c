"""Face-swap training: augmentation, losses, the consent-bound loop, checkpoints, ONNX export.

The core works on arrays (:class:`FaceSamples`) so it can be tested on generated faces;
:func:`faceset_samples` adapts a faceset folder. See docs/training.md.

Names resolve lazily (PEP 562): ``from likeness.train import load_swap_model`` must not import
PyTorch, which costs about a second that every ``likeness render`` would otherwise pay.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "AugmentOptions": "augment",
    "TrainingPair": "augment",
    "prepare_training_pair": "augment",
    "CHECKPOINT_NAME": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "ExportResult": "export",
    "export_model": "export",
    "CARD_NAME": "swap_model",
    "ONNX_NAME": "swap_model",
    "SwapModel": "swap_model",
    "load_swap_model": "swap_model",
    "read_model_card": "swap_model",
    "verified_model_card": "swap_model",
    "generated_face_samples": "generated",
    "TrainConfig": "loop",
    "TrainProgress": "loop",
    "TrainResult": "loop",
    "TrainingInterrupted": "loop",
    "train_swap_model": "loop",
    "expression_fidelity": "metrics",
    "identity_transfer": "metrics",
    "FaceSamples": "samples",
    "FaceSource": "samples",
    "FacesetFaces": "samples",
    "faceset_samples": "samples",
    "RECIPES": "recipes",
    "recipe_options": "recipes",
    "RecipeChoice": "recipes",
    "RecipeUnavailable": "recipes",
    "choose_recipe": "recipes",
    "recipe_stop": "recipes",
    "cuda_available": "workflow",
    "export_from_folder": "workflow",
    "resolve_recipe": "workflow",
    "resume_training": "workflow",
    "train_from_facesets": "workflow",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'likeness.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"likeness.train.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from likeness.train.augment import AugmentOptions, TrainingPair, prepare_training_pair
    from likeness.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
    from likeness.train.export import ExportResult, export_model
    from likeness.train.generated import generated_face_samples
    from likeness.train.loop import TrainConfig, TrainingInterrupted, TrainProgress, TrainResult, train_swap_model
    from likeness.train.metrics import expression_fidelity, identity_transfer
    from likeness.train.recipes import (
        RECIPES,
        RecipeChoice,
        RecipeUnavailable,
        choose_recipe,
        recipe_options,
        recipe_stop,
    )
    from likeness.train.samples import FaceSamples, FacesetFaces, FaceSource, faceset_samples
    from likeness.train.swap_model import (
        CARD_NAME,
        ONNX_NAME,
        SwapModel,
        load_swap_model,
        read_model_card,
        verified_model_card,
    )
    from likeness.train.workflow import (
        cuda_available,
        export_from_folder,
        resolve_recipe,
        resume_training,
        train_from_facesets,
    )
