"""The training loop: consent-bound, deterministic, checkpointed, resumable.

Example (a tiny model on generated faces; a real run uses facesets and ``--recipe``)::

    >>> import tempfile
    >>> from datetime import timedelta
    >>> from pathlib import Path
    >>> from likeness.config import Settings
    >>> from likeness.consent.canonical import now_utc
    >>> from likeness.consent.holder import HolderMachine
    >>> from likeness.train.generated import generated_face_samples
    >>> from likeness.workspace import Workspace
    >>> folder = Path(tempfile.mkdtemp())
    >>> ws = Workspace.init(Settings(home=folder / "home"))
    >>> until = now_utc() + timedelta(days=30)
    >>> _ = ws.registry.add_org("haneul", "Studio Haneul")
    >>> holders = HolderMachine(folder / "holders")  # the rights holders' own machine, not the workspace
    >>> _ = ws.registry.add_subject("mina", "Mina", kind="virtual_idol", owner_org="haneul",
    ...                             holder_public_key_pem=holders.public_key("mina-holder"))
    >>> _ = ws.registry.add_subject("jun", "Jun", kind="performer", holder_public_key_pem=holders.public_key("jun-holder"))
    >>> grant = ws.registry.request_grant("mina", "haneul", ["training"], valid_until=until, purpose="docs")
    >>> _ = ws.registry.import_signed(holders.sign(grant))
    >>> release = ws.registry.request_release("jun", "haneul", valid_until=until, purpose="docs")
    >>> _ = ws.registry.import_signed(holders.sign(release))
    >>> authz = ws.policy.authorize("mina", "training", "haneul")
    >>> release_authz = ws.policy.authorize_release("jun", "haneul")
    >>> source = generated_face_samples(8, identity=1, size=32, seed=0)
    >>> target = generated_face_samples(8, identity=2, size=32, seed=1)
    >>> config = TrainConfig(model="df_tiny", resolution=32, iterations=2, batch_size=4, preview_every=0,
    ...                      identity_metrics=False, expression_metrics=False, workers=1, threads=1)
    >>> result = train_swap_model(authz, release_authz, source, target, folder / "mina-jun", config, workspace=ws)
    >>> result.iterations, result.checkpoint_path.name
    (2, 'checkpoint.pt')
    >>> ws.close()
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
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import torch

from likeness.durable import write_atomic
from likeness.errors import ConfigError, ConsentError, ModelError, StopRequested
from likeness.models import architecture_options, create_model
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
)
from likeness.train.config import (
    CONFIG_NAME,
    METRIC_COLUMNS,
    METRICS_CSV,
    METRICS_PNG,
    PREVIEW_DIR,
    TrainConfig,
    TrainProgress,
    TrainResult,
)
from likeness.train.data import Batch, PairLoader, split_indices, validation_batch
from likeness.train.device import (
    DATA_LOADERS,
    TRAIN_PRECISIONS,
    auto_batch_size,
    autocast_dtype,
    available_cores,
    configure_cpu_threads,
    cpu_supports_bfloat16,
    cpu_thread_settings,
    data_loading,
    hardware_description,
    openmp_wait_policy,
    resolve_device,
    restore_cpu_thread_settings,
)
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
from likeness.train.schedule import ema_decay_at, learning_rate_at, make_optimizer, update_ema

if TYPE_CHECKING:
    from likeness.consent.policy import Authorization, ReleaseAuthorization

logger = logging.getLogger(__name__)

# Names this module has always offered; they now live in config, device and schedule.
__all__ = [
    "CONFIG_NAME",
    "DATA_LOADERS",
    "METRICS_CSV",
    "METRICS_PNG",
    "METRIC_COLUMNS",
    "PREVIEW_DIR",
    "TRAIN_PRECISIONS",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "InterruptRequest",
    "TrainingInterrupted",
    "TrueFace",
    "auto_batch_size",
    "autocast_dtype",
    "available_cores",
    "configure_cpu_threads",
    "cpu_supports_bfloat16",
    "cpu_thread_settings",
    "data_loading",
    "ema_decay_at",
    "faceset_consent",
    "hardware_description",
    "identity_reference_count",
    "learning_rate_at",
    "make_optimizer",
    "openmp_wait_policy",
    "require_training_consent",
    "resolve_device",
    "restore_cpu_thread_settings",
    "train_swap_model",
    "update_ema",
]


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


class InterruptRequest:
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


def identity_reference_count(training_faces: int) -> int:
    """How many training faces per identity the identity metric embeds as references (spread evenly)."""
    return min(16, training_faces)


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


def _to_tensor(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    tensor = array if isinstance(array, torch.Tensor) else torch.from_numpy(array)
    return tensor.to(device, non_blocking=True)


def _to_uint8_images(rgb: torch.Tensor) -> np.ndarray:
    """float (N,3,R,R) in [0,1] -> uint8 (N,R,R,3)."""
    return (rgb.detach().float().clamp(0, 1).cpu().numpy().transpose(0, 2, 3, 1) * 255 + 0.5).astype(np.uint8)


def require_training_consent(authz: Authorization, release_authz: ReleaseAuthorization) -> None:
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
    authz: Authorization,
    release_authz: ReleaseAuthorization,
    source: FaceSource,
    target: FaceSource,
    workspace: Any = None,
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
        authz: Authorization,
        release_authz: ReleaseAuthorization,
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
            faces="the source faceset (the subject's, --source)",
        )
        self.target_split = split_indices(
            target.count,
            seed=config.seed,
            stream=1,
            fraction=config.validation_fraction,
            max_validation=config.validation_max,
            faces="the target faceset (the performer's, --target)",
        )
        self.history: list[dict[str, Any]] = []
        self.metrics: dict[str, Any] = {}
        self.iteration = 0
        self.checkpoint_sha256: str | None = None  # of the checkpoint on disk, as its ledger event records
        self.prior_seconds = 0.0
        self.coverage_check: dict[str, Any] | None = None
        self._references: tuple[np.ndarray, np.ndarray] | None = None
        #: The shipped base model a fine-tune started from: {"name", "sha256"}; None for a random start.
        self.base_model: dict[str, str] | None = None

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
        if state is None and config.base_model is not None:
            # A fine-tune: consent was checked before build() (train_swap_model), as for any run.
            from likeness.train.base_model import load_base_weights

            self.base_model = {"name": config.base_model, "sha256": load_base_weights(config.base_model, self.model)}
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
        self.base_model = state.get("base_model")
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
            "base_model": self.base_model,
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
        write_atomic(self.out_dir / METRICS_CSV, buffer.getvalue().encode("utf-8"))
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
        interrupt = InterruptRequest()
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
                    try:
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
                    except StopRequested:
                        # The caller stops the run (a worker shutting down) from any of this
                        # step's reports, the preview's too: keep this step, as a Ctrl-C does,
                        # so that the rerun resumes here.
                        loss_s, loss_t = (float(v) for v in step_losses)
                        self.checkpoint(session_start, loss_s, loss_t)
                        raise
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
        write_atomic(self.out_dir / CHECKPOINT_NAME, payload)
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
    authz: Authorization,
    release_authz: ReleaseAuthorization,
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
        write_atomic(out / CONFIG_NAME, (json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n").encode())
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
