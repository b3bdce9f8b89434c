"""ONNX export of the swap path and the model card (loading for rendering: ``swap_model``).

ONNX contract (docs/architecture.md): input ``face`` float32 (N,3,R,R) RGB in [0,1]; outputs
``swapped`` float32 (N,3,R,R) and ``mask`` float32 (N,1,R,R), both in [0,1]. One file, no
external data. Given the performer's faces, an int8 copy with the same contract is written
beside it when it passes its fidelity check (``likeness.train.quantize``).

The card is signed with the organisation's key and bound to its ``model.exported`` ledger event
(``likeness.consent.artefacts``): the seal and the event name the card's digest, the ONNX, int8
and checkpoint SHA-256s, both faceset digests and the consent. The consent itself comes from the
checkpoint's sealed ``model.checkpointed`` event, never from the checkpoint's own consent dict;
the card's slugs are the registry's for those sealed ids (an event's slug fields are unsealed).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from likeness.consent.artefacts import event_fields, seal_document
from likeness.durable import write_atomic
from likeness.errors import ConsentError, ModelError
from likeness.models import architecture_options, create_model
from likeness.onnx_export import onnx_from_torch
from likeness.train.checkpoint import CHECKPOINT_NAME, load_bound_checkpoint
from likeness.train.swap_model import (
    CARD_NAME,
    EXPORT_TOLERANCE,
    INT8_ONNX_NAME,
    ONNX_INPUT,
    ONNX_NAME,
    ONNX_OUTPUTS,
    ort_session,
)


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ExportResult:
    onnx_path: Path
    card_path: Path
    card: dict[str, Any]
    max_abs_difference: float


def _onnx_bytes(model: torch.nn.Module, resolution: int) -> bytes:
    return onnx_from_torch(
        model,
        (2, 3, resolution, resolution),
        what="swap model",
        input_name=ONNX_INPUT,
        output_names=ONNX_OUTPUTS,
    )


def _int8_copy(payload: bytes, faces: Any, resolution: int) -> tuple[dict[str, Any], bytes | None]:
    """(the card's ``int8`` entry, the int8 model when it passed its check, else None).

    The int8 copy is an optimisation: when it cannot be made, the export goes on in float and
    the card says why.
    """
    from likeness.train.data import validation_batch
    from likeness.train.quantize import check_int8, quantize_swap_model, split_calibration

    calibration_idx, check_idx = split_calibration(faces.count)
    if len(check_idx) < 2:
        return {"file": None, "passed": False, "reason": f"only {faces.count} performer faces; need at least 4"}, None
    calibration = validation_batch(faces, calibration_idx, resolution=resolution).target
    held_out = validation_batch(faces, check_idx, resolution=resolution).target
    try:
        int8 = quantize_swap_model(payload, calibration)
        check = check_int8(payload, int8, held_out, calibration_faces=len(calibration))
    except ModelError as exc:
        return {"file": None, "passed": False, "reason": str(exc)}, None
    if not check.passed:
        return check.to_card(None), None
    return check.to_card(hashlib.sha256(int8).hexdigest()), int8


def export_model(
    workspace: Any,
    authz: Any,
    release_authz: Any,
    model_dir: str | Path,
    *,
    out_dir: str | Path | None = None,
    performer_faces: Any = None,
) -> ExportResult:
    """Export the checkpoint in ``model_dir`` to ``model.onnx`` + a signed ``model_card.json``.

    ``authz`` must be a current ``training`` authorization of the model's subject and
    ``release_authz`` a current release of its performer (export is refused once either is
    revoked), both as the checkpoint's ``model.checkpointed`` ledger event records them; a
    checkpoint that is not the one its event records is refused (``artefact_altered``). The
    export is checked against PyTorch (max abs difference <= 1e-4), the card is sealed with the
    organisation's key and recorded as ``model.exported`` with the same digests and signature.
    ``performer_faces`` (the target ``FaceSamples`` or faceset the model was trained on) adds an
    int8 copy calibrated on half of up to 64 of them and checked on the other half; the card's
    ``int8`` entry records the check either way (None: not attempted).
    """
    from likeness.consent import require_authorization, require_release

    require_authorization(authz, step="export")
    require_release(release_authz, step="export")
    model_dir = Path(model_dir)
    out = Path(out_dir) if out_dir is not None else model_dir
    state, consent = load_bound_checkpoint(workspace, model_dir / CHECKPOINT_NAME)
    if authz.subject_id != consent["subject_id"]:
        raise ConsentError(
            "no_grant",
            f"{model_dir}: model is of subject {consent['subject_slug']!r}, "
            f"authorization is for {authz.subject_slug!r}",
        )
    if release_authz.performer_id != consent["performer_id"]:
        raise ConsentError(
            "no_release",
            f"{model_dir}: model was trained on performer {consent['performer_slug']!r}, "
            f"the release is for {release_authz.performer_slug!r}",
        )
    config = state["model_config"]
    model = create_model(state["model_name"], **architecture_options(config))
    # The weight average when training kept one: it is what evaluation and previews showed.
    model.load_state_dict(state.get("ema_state") or state["model_state"])
    model.eval()
    resolution = int(config["resolution"])
    payload = _onnx_bytes(model, resolution)

    probe = np.random.default_rng(1).random((3, 3, resolution, resolution), dtype=np.float32)
    session = ort_session(payload, threads=2)
    got = session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: probe})
    with torch.no_grad():
        want = [t.numpy() for t in model(torch.from_numpy(probe))]
    difference = max(float(np.abs(g - w).max()) for g, w in zip(got, want))
    if difference > EXPORT_TOLERANCE:
        raise ModelError(f"{model_dir}: ONNX output differs from PyTorch by {difference:.2e} (> {EXPORT_TOLERANCE})")

    data = state["data"]
    int8, int8_payload = None, None
    if performer_faces is not None:
        from likeness.train.samples import as_face_source

        faces = as_face_source(performer_faces)
        if faces.content_sha256() != consent["target_faceset_sha256"]:
            raise ModelError(
                f"{model_dir}: the performer faces given for int8 calibration are not the ones "
                "this model was trained on"
            )
        int8, int8_payload = _int8_copy(payload, faces, resolution)

    card = {
        "architecture": {"name": state["model_name"], **config},
        "resolution": resolution,
        "coverage": state.get("coverage", "wf"),
        # The coverage gate before training: what the source lacked, and whether severe gaps were accepted.
        "coverage_check": state.get("coverage_check"),
        "iterations": int(state["iteration"]),
        "metrics": state["metrics"],
        "onnx_sha256": hashlib.sha256(payload).hexdigest(),
        "source_faceset_sha256": consent["source_faceset_sha256"],
        "target_faceset_sha256": consent["target_faceset_sha256"],
        "checkpoint_sha256": consent["checkpoint_sha256"],
        "subject_id": consent["subject_id"],
        "subject_slug": consent["subject_slug"],
        "grant_id": consent["grant_id"],
        "performer_id": consent["performer_id"],
        "performer_slug": consent["performer_slug"],
        "release_id": consent["release_id"],
        "training_seconds": round(float(state["training_seconds"]), 1),
        "hardware": state["hardware"],
        # Which recipe training started from and why (chosen from the performer's face sizes or given).
        "recipe": (state.get("train_config") or {}).get("recipe"),
        # The shipped base model the run was fine-tuned from (None: random start), and its SHA-256.
        "base_model": state.get("base_model"),
        "created_at": _utc_now(),
        "yaw_range": data["yaw_range"],
        "onnx": {"input": ONNX_INPUT, "outputs": list(ONNX_OUTPUTS), "max_abs_difference_vs_torch": difference},
        "int8": int8,
        "licence": config.get("licence"),
        "provenance": config.get("provenance"),
        "org_id": consent["org_id"],
    }
    card = _finite_json(card)
    card["seal"] = seal = _seal_card(workspace, card)
    # The event first (authz.record rechecks the grant): files on disk always have their event
    # (a crash leaves at worst an event whose files were never written).
    release_authz.recheck()
    authz.record(
        "model.exported",
        {
            **event_fields(seal),
            "model_dir": str(out),
            "architecture": state["model_name"],
            "resolution": resolution,
            "iterations": card["iterations"],
            "subject_slug": card["subject_slug"],
            "performer_slug": card["performer_slug"],
        },
    )
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / ONNX_NAME
    write_atomic(onnx_path, payload)
    if int8_payload is not None:
        write_atomic(out / INT8_ONNX_NAME, int8_payload)
    else:
        # A copy left by an earlier export would not match this model.
        (out / INT8_ONNX_NAME).unlink(missing_ok=True)
    card_path = out / CARD_NAME
    write_atomic(card_path, (json.dumps(card, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())
    return ExportResult(onnx_path, card_path, card, difference)


def _seal_card(workspace: Any, card: dict[str, Any]) -> dict[str, Any]:
    """The organisation's seal over ``card`` (without a seal): its digest and every file and
    consent id it stands for."""
    bound = {
        name: card[name]
        for name in (
            "onnx_sha256",
            "checkpoint_sha256",
            "source_faceset_sha256",
            "target_faceset_sha256",
            "subject_id",
            "grant_id",
            "performer_id",
            "release_id",
        )
    }
    bound["int8_sha256"] = (card.get("int8") or {}).get("sha256")
    return seal_document(workspace, str(card["org_id"]), "model-card", card, bound)


def _finite_json(value: Any) -> Any:
    """``value`` with non-finite floats (a diverged metric) as None: the card is canonical JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value
