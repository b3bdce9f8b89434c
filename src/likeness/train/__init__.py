"""Face-swap training: augmentation, losses, the consent-bound loop, checkpoints, ONNX export.

The core works on arrays (:class:`FaceSamples`) so it can be tested on generated faces;
:func:`faceset_samples` adapts a faceset folder. See docs/training.md.
"""

from likeness.train.augment import AugmentOptions, TrainingPair, prepare_training_pair
from likeness.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from likeness.train.export import (
    CARD_NAME,
    ONNX_NAME,
    ExportResult,
    SwapModel,
    export_model,
    load_swap_model,
)
from likeness.train.generated import generated_face_samples
from likeness.train.loop import TrainConfig, TrainProgress, TrainResult, train_swap_model
from likeness.train.metrics import expression_fidelity, identity_transfer
from likeness.train.samples import FaceSamples, FacesetFaces, FaceSource, faceset_samples
from likeness.train.workflow import export_from_folder, resume_training, train_from_facesets

__all__ = [
    "CARD_NAME",
    "CHECKPOINT_NAME",
    "ONNX_NAME",
    "AugmentOptions",
    "ExportResult",
    "FaceSamples",
    "FaceSource",
    "FacesetFaces",
    "SwapModel",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "TrainingPair",
    "export_from_folder",
    "expression_fidelity",
    "export_model",
    "faceset_samples",
    "generated_face_samples",
    "identity_transfer",
    "load_checkpoint",
    "load_swap_model",
    "prepare_training_pair",
    "resume_training",
    "save_checkpoint",
    "train_from_facesets",
    "train_swap_model",
]
