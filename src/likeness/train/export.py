"""ONNX export of the swap path, the model card, and loading an exported model for rendering.

ONNX contract (docs/architecture.md): input ``face`` float32 (N,3,R,R) RGB in [0,1]; outputs
``swapped`` float32 (N,3,R,R) and ``mask`` float32 (N,1,R,R), both in [0,1]. One file, no
external data.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from likeness.errors import ConsentError, ModelError
from likeness.models import architecture_options, create_model
from likeness.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, write_bytes_atomic

ONNX_NAME = "model.onnx"
CARD_NAME = "model_card.json"
ONNX_INPUT, ONNX_OUTPUTS = "face", ("swapped", "mask")
CARD_KEYS = (
    "architecture", "resolution", "coverage", "iterations", "metrics", "onnx_sha256",
    "source_faceset_sha256", "target_faceset_sha256", "subject_id", "subject_slug", "grant_id",
    "performer_id", "performer_slug", "release_id", "training_seconds", "hardware", "created_at",
    "yaw_range",
)
#: Largest |ONNX - PyTorch| accepted at export time on a probe batch.
EXPORT_TOLERANCE = 1e-4

_GRANT_STATE_REASON = {
    "revoked": "revoked", "expired": "expired", "not_yet_valid": "not_yet_valid",
    "altered": "grant_altered", "unknown": "no_grant",
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ExportResult:
    onnx_path: Path
    card_path: Path
    card: dict[str, Any]
    max_abs_difference: float


def _onnx_bytes(model: torch.nn.Module, resolution: int) -> bytes:
    probe = torch.rand(2, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        # torch.export's own pytree deprecation notice; not actionable here.
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        program = torch.onnx.export(
            model, (probe,), None, input_names=[ONNX_INPUT], output_names=list(ONNX_OUTPUTS),
            dynamo=True, external_data=False, dynamic_shapes=({0: batch},), verbose=False,
        )
    if program is None or not hasattr(program, "model_proto"):
        raise ModelError("ONNX export produced no model")
    return program.model_proto.SerializeToString()


def _ort_session(path_or_bytes: Path | bytes, *, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    source = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    try:
        return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own non-Python-typed errors
        raise ModelError(f"{path_or_bytes if isinstance(path_or_bytes, Path) else 'ONNX model'}: "
                         f"cannot be loaded ({str(exc)[:200]})") from None


def export_model(authz: Any, model_dir: str | Path, *, out_dir: str | Path | None = None) -> ExportResult:
    """Export the checkpoint in ``model_dir`` to ``model.onnx`` + ``model_card.json``.

    ``authz`` must be a current ``training`` authorization of the model's subject; the export is
    checked against PyTorch (max abs difference <= 1e-4) and recorded as ``model.exported``.
    """
    from likeness.consent import Authorization

    if not isinstance(authz, Authorization):
        raise ConsentError("not_issued_here", "export needs an Authorization issued by the policy engine")
    model_dir = Path(model_dir)
    out = Path(out_dir) if out_dir is not None else model_dir
    state = load_checkpoint(model_dir / CHECKPOINT_NAME)
    consent = state["consent"]
    if authz.subject_id != consent["subject_id"]:
        raise ConsentError("no_grant", f"{model_dir}: model is of subject {consent['subject_slug']!r}, "
                                       f"authorization is for {authz.subject_slug!r}")
    authz.recheck()
    config = state["model_config"]
    model = create_model(state["model_name"], **architecture_options(config))
    # The weight average when training kept one: it is what evaluation and previews showed.
    model.load_state_dict(state.get("ema_state") or state["model_state"])
    model.eval()
    resolution = int(config["resolution"])
    payload = _onnx_bytes(model, resolution)

    probe = np.random.default_rng(1).random((3, 3, resolution, resolution), dtype=np.float32)
    session = _ort_session(payload, threads=2)
    got = session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: probe})
    with torch.no_grad():
        want = [t.numpy() for t in model(torch.from_numpy(probe))]
    difference = max(float(np.abs(g - w).max()) for g, w in zip(got, want))
    if difference > EXPORT_TOLERANCE:
        raise ModelError(f"{model_dir}: ONNX output differs from PyTorch by {difference:.2e} (> {EXPORT_TOLERANCE})")

    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / ONNX_NAME
    write_bytes_atomic(onnx_path, payload)
    data = state["data"]
    card = {
        "architecture": {"name": state["model_name"], **config},
        "resolution": resolution,
        "coverage": state.get("coverage", "wf"),
        "iterations": int(state["iteration"]),
        "metrics": state["metrics"],
        "onnx_sha256": hashlib.sha256(payload).hexdigest(),
        "source_faceset_sha256": data["source_sha256"],
        "target_faceset_sha256": data["target_sha256"],
        "subject_id": consent["subject_id"],
        "subject_slug": consent["subject_slug"],
        "grant_id": consent["grant_id"],
        "performer_id": consent["performer_id"],
        "performer_slug": consent["performer_slug"],
        "release_id": consent["release_id"],
        "training_seconds": round(float(state["training_seconds"]), 1),
        "hardware": state["hardware"],
        "created_at": _utc_now(),
        "yaw_range": data["yaw_range"],
        "onnx": {"input": ONNX_INPUT, "outputs": list(ONNX_OUTPUTS), "max_abs_difference_vs_torch": difference},
        "licence": config.get("licence"),
        "provenance": config.get("provenance"),
        "org_id": consent.get("org_id"),
    }
    card_path = out / CARD_NAME
    write_bytes_atomic(card_path, (json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())
    authz.record("model.exported", {
        "model_dir": str(out), "onnx_sha256": card["onnx_sha256"], "architecture": state["model_name"],
        "resolution": resolution, "iterations": card["iterations"], "release_id": consent["release_id"],
        "source_faceset_sha256": card["source_faceset_sha256"], "target_faceset_sha256": card["target_faceset_sha256"],
    })
    return ExportResult(onnx_path, card_path, card, difference)


def read_model_card(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / CARD_NAME
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: no model card (export the model first)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable model card ({exc})") from None
    missing = [k for k in CARD_KEYS if not isinstance(card, dict) or k not in card]
    if missing:
        raise ModelError(f"{path}: model card lacks {', '.join(missing)}")
    return card


class SwapModel:
    """An exported, verified swap model. ``run(faces float32 (N,3,R,R) in [0,1]) -> (swapped, mask)``."""

    def __init__(self, card: dict[str, Any], session: Any) -> None:
        self.card = card
        self.resolution = int(card["resolution"])
        self._session = session

    def run(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.resolution
        if not isinstance(faces, np.ndarray) or faces.dtype != np.float32 or faces.ndim != 4 or faces.shape[1:] != (3, r, r):
            raise ModelError(f"swap model expects float32 (N, 3, {r}, {r}) faces, got "
                             f"{getattr(faces, 'dtype', type(faces).__name__)} {getattr(faces, 'shape', '')}")
        if len(faces) == 0:
            return np.zeros((0, 3, r, r), np.float32), np.zeros((0, 1, r, r), np.float32)
        if not np.isfinite(faces).all() or faces.min() < 0.0 or faces.max() > 1.0:
            raise ModelError("swap model expects finite face values in [0, 1]")
        swapped, mask = self._session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: np.ascontiguousarray(faces)})
        return swapped, mask


def load_swap_model(workspace: Any, model_dir: str | Path, *, authz: Any, threads: int = 2) -> SwapModel:
    """Load ``model_dir/model.onnx`` for rendering after verifying card, hash and consent.

    Checks: the ONNX file hashes to the card's ``onnx_sha256``; ``authz`` is for the card's
    subject; the training grant named by the card is still active (revocation bites); ``authz``
    itself rechecks. Raises ``ModelError`` or ``ConsentError``.
    """
    from likeness.consent import Authorization

    if not isinstance(authz, Authorization):
        raise ConsentError("not_issued_here", "loading a model needs an Authorization issued by the policy engine")
    model_dir = Path(model_dir)
    card = read_model_card(model_dir)
    onnx_path = model_dir / ONNX_NAME
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path}: ONNX file missing")
    actual = _sha256(onnx_path)
    if actual != card["onnx_sha256"]:
        raise ModelError(f"{onnx_path}: hash {actual[:16]}… does not match the model card ({str(card['onnx_sha256'])[:16]}…)")
    if authz.subject_id != card["subject_id"]:
        raise ConsentError("no_grant", f"{model_dir}: model renders {card['subject_slug']!r}, "
                                       f"authorization is for {authz.subject_slug!r}")
    state = workspace.registry.grant_state(card["grant_id"])
    if state != "active":
        raise ConsentError(_GRANT_STATE_REASON.get(state, "no_grant"),
                           f"{model_dir}: the grant this model was trained under is {state}")
    authz.recheck()
    return SwapModel(card, _ort_session(onnx_path, threads=threads))
