"""Loading an exported swap model for rendering: the model card, the ONNX hash, consent.

Torch-free on purpose: ``likeness render`` loads models through here, and importing PyTorch
would add about a second to every render call for nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from likeness import strict_json
from likeness.digests import sha256_file
from likeness.errors import ConsentError, ModelError

ONNX_NAME = "model.onnx"
INT8_ONNX_NAME = "model.int8.onnx"
CARD_NAME = "model_card.json"
#: ``load_swap_model(precision=...)``: "auto" (the default), "float" or "int8", the copy made at
#: export when it passed its fidelity check. "auto" takes the int8 copy on a CPU when the export
#: kept one and measured it faster (2-3.5x per face), else float (always float on a GPU). The copy's
#: rounding noise moves from frame to frame; the render's swap denoising takes the flicker it
#: added back to within 0.002-0.013 of float on two clips (docs/benchmarks.md, Render).
PRECISIONS = ("auto", "float", "int8")
ONNX_INPUT, ONNX_OUTPUTS = "face", ("swapped", "mask")
CARD_KEYS = (
    "architecture",
    "resolution",
    "coverage",
    "iterations",
    "metrics",
    "onnx_sha256",
    "source_faceset_sha256",
    "target_faceset_sha256",
    "subject_id",
    "subject_slug",
    "grant_id",
    "performer_id",
    "performer_slug",
    "release_id",
    "training_seconds",
    "hardware",
    "created_at",
    "yaw_range",
)
#: Largest |ONNX - PyTorch| accepted at export time on a probe batch.
EXPORT_TOLERANCE = 1e-4

_GRANT_STATE_REASON = {
    "revoked": "revoked",
    "expired": "expired",
    "not_yet_valid": "not_yet_valid",
    "altered": "grant_altered",
    "unknown": "no_grant",
}


def execution_providers(prefer_gpu: bool) -> list[str]:
    """ONNX Runtime providers: CUDA first when this build has it and it is wanted, CPU always."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = ["CUDAExecutionProvider"] if prefer_gpu else []
    return [p for p in wanted if p in available] + ["CPUExecutionProvider"]


def ort_session(path_or_bytes: Path | bytes, *, threads: int, prefer_gpu: bool = False) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Worker threads that spin between calls steal the core the decoder and encoder need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = str(path_or_bytes) if isinstance(path_or_bytes, Path) else path_or_bytes
    try:
        return ort.InferenceSession(source, sess_options=options, providers=execution_providers(prefer_gpu))
    except Exception as exc:  # onnxruntime raises its own non-Python-typed errors
        raise ModelError(
            f"{path_or_bytes if isinstance(path_or_bytes, Path) else 'ONNX model'}: cannot be loaded ({str(exc)[:200]})"
        ) from None


def _parse_card(path: Path) -> dict[str, Any]:
    try:
        card = strict_json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path}: no model card (export the model first)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable model card ({exc})") from None
    if not isinstance(card, dict):
        raise ModelError(f"{path}: model card is not a JSON object")
    return card


def _check_card_keys(path: Path, card: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in CARD_KEYS if k not in card]
    if missing:
        raise ModelError(f"{path}: model card lacks {', '.join(missing)}")
    return card


def read_model_card(model_dir: str | Path) -> dict[str, Any]:
    """The card as written, NOT checked against its seal or ledger event: for display only.
    Anything that decides consent uses :func:`verified_model_card`."""
    path = Path(model_dir) / CARD_NAME
    return _check_card_keys(path, _parse_card(path))


def verified_model_card(workspace: Any, model_dir: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(card, binding) of an exported model folder, after checking the card against its
    organisation seal and its ``model.exported`` event on ``workspace``'s ledger.

    ``binding`` is that event's payload: ``subject_id``, ``subject_slug``, ``grant_id``,
    ``performer_id``, ``performer_slug``, ``release_id``, ``org_id``, ``onnx_sha256``,
    ``int8_sha256``, ``checkpoint_sha256`` and the faceset digests; whose model it is comes from
    there, never from the editable card. Raises ``ModelError`` (no or unreadable card) or
    ``ConsentError`` (``artefact_unsigned``: exported before cards were signed;
    ``artefact_altered``: card, seal, event or signature disagree, or no event here knows it,
    as for a folder copied from another workspace).
    """
    from likeness.consent.artefacts import MODEL_EVENT, MODEL_FIELDS, verify_document

    path = Path(model_dir) / CARD_NAME
    card = _parse_card(path)
    int8 = card.get("int8")
    view = {**card, "int8_sha256": int8.get("sha256") if isinstance(int8, dict) else None}
    event = verify_document(
        workspace,
        path,
        card,
        MODEL_EVENT,
        compare=MODEL_FIELDS,
        view=view,
        remedy="export the model again to sign it (likeness model export)",
    )
    return _check_card_keys(path, card), dict(event.payload)


def choose_precision(
    card: dict[str, Any], requested: str, *, gpu: bool = False, int8_file: bool = True
) -> tuple[str, str]:
    """(``"float"`` or ``"int8"``, why) for a render; ``ModelError`` when int8 is asked for but unusable.

    ``gpu``: whether ONNX Runtime can run the float model on CUDA here (``"auto"`` then keeps float).
    ``int8_file``: whether the copy's file is in the model folder; without it ``"auto"`` renders in
    float (a folder copied without the optional file), while ``"int8"`` fails on the missing file
    when it is loaded.
    """
    if requested not in PRECISIONS:
        raise ModelError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == "float":
        return "float", "asked for"
    raw_info = card.get("int8")
    info: dict[str, Any] | None = raw_info if isinstance(raw_info, dict) else None
    usable = info is not None and bool(info.get("passed") and info.get("sha256"))
    if requested == "auto":
        if gpu:
            return "float", "auto: a GPU runs the float model"
        if not usable or info is None:
            why = "none was made at export" if info is None else (info.get("reason") or "it failed its fidelity check")
            return "float", f"auto: no usable int8 copy ({why})"
        if not info.get("faster", True):
            return "float", "auto: the int8 copy was not faster than float when exported"
        if not int8_file:
            return "float", f"auto: the int8 copy's file ({INT8_ONNX_NAME}) is not in the model folder"
        return "int8", (
            f"auto: CPU, int8 copy at worst {float(info['psnr_db_min']):.1f} dB PSNR to float on "
            f"{info.get('check_faces')} held-out faces"
        )
    if not isinstance(info, dict):
        raise ModelError("this model has no int8 copy (export it again with the performer's faceset at hand)")
    if not usable:
        raise ModelError(f"this model has no usable int8 copy ({info.get('reason') or 'it failed its fidelity check'})")
    return "int8", (
        f"asked for; worst {float(info['psnr_db_min']):.1f} dB to float on {info.get('check_faces')} held-out faces"
    )


class _Issued:
    """What :func:`load_swap_model` verified for one model: the ONNX session it loaded from the
    checked bytes, the render authorization, the card's digest and the last consent recheck.
    Kept out of the model object, so editing its attributes changes nothing that runs."""

    __slots__ = ("session", "authz", "card_sha256", "checked_at")

    def __init__(self, session: Any, authz: Any, card_sha256: str) -> None:
        self.session, self.authz, self.card_sha256 = session, authz, card_sha256
        self.checked_at = time.monotonic()


# Models made by load_swap_model (module-private; keyed by the object itself, so neither a copy,
# an object built with object.__new__, nor a duck-typed stand-in is found here).
_ISSUED: weakref.WeakKeyDictionary[Any, _Issued] = weakref.WeakKeyDictionary()


class SwapModel:
    """An exported, verified swap model. ``run(faces float32 (N,3,R,R) in [0,1]) -> (swapped, mask)``.

    Made only by :func:`load_swap_model`, which verifies the card against its seal and
    ``model.exported`` event, the file's hash and consent first: the class cannot be constructed,
    subclassed, copied or pickled (``TypeError``), and ``FrameRenderer`` takes nothing else
    (:func:`require_issued_model`). ``run`` uses the session and authorization load_swap_model
    recorded for this object, not its attributes, and rechecks the render ``Authorization`` at
    least every ``RECHECK_EVERY_S`` seconds, so a revoked grant stops a held model too. Swapped
    pixels leave the product only through ``likeness.provenance.writer``.

    ``precision`` is ``"float"`` or ``"int8"`` (the model file used), ``precision_reason`` why,
    ``file_sha256`` the hash of that file (a resumed render must use the same one).
    """

    __slots__ = ("card", "resolution", "precision", "precision_reason", "file_sha256", "__weakref__")
    card: dict[str, Any]
    resolution: int
    precision: str
    precision_reason: str
    file_sha256: str

    #: Longest time between two consent rechecks while a held model keeps swapping.
    RECHECK_EVERY_S = 5.0

    def __new__(cls, *args: Any, **kwargs: Any) -> SwapModel:
        raise TypeError(
            "SwapModel objects are made only by load_swap_model (it verifies the card, its ledger "
            "event and the ONNX file); they cannot be constructed"
        )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError("SwapModel cannot be subclassed")

    def __reduce_ex__(self, protocol: object) -> Any:
        raise TypeError("SwapModel cannot be pickled or copied")

    def __copy__(self) -> Any:
        raise TypeError("SwapModel cannot be copied")

    def __deepcopy__(self, memo: object) -> Any:
        raise TypeError("SwapModel cannot be copied")

    def run(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        issued = _issued(self)
        r = self.resolution
        if (
            not isinstance(faces, np.ndarray)
            or faces.dtype != np.float32
            or faces.ndim != 4
            or faces.shape[1:] != (3, r, r)
        ):
            raise ModelError(
                f"swap model expects float32 (N, 3, {r}, {r}) faces, got "
                f"{getattr(faces, 'dtype', type(faces).__name__)} {getattr(faces, 'shape', '')}"
            )
        if len(faces) == 0:
            return np.zeros((0, 3, r, r), np.float32), np.zeros((0, 1, r, r), np.float32)
        if not np.isfinite(faces).all() or faces.min() < 0.0 or faces.max() > 1.0:
            raise ModelError("swap model expects finite face values in [0, 1]")
        if time.monotonic() - issued.checked_at >= self.RECHECK_EVERY_S:
            issued.authz.recheck()
            issued.checked_at = time.monotonic()
        swapped, mask = issued.session.run(list(ONNX_OUTPUTS), {ONNX_INPUT: np.ascontiguousarray(faces)})
        return swapped, mask


def _issued(model: Any) -> _Issued:
    issued = _ISSUED.get(model) if type(model) is SwapModel else None
    if issued is None:
        raise ConsentError(
            "not_issued_here",
            f"the swap model ({type(model).__name__}) was not made by "
            "load_swap_model, which verifies its card, ledger event and file",
        )
    return issued


def require_issued_model(model: Any) -> SwapModel:
    """``model`` when it is a :class:`SwapModel` made by :func:`load_swap_model` whose card is
    unchanged since; else ``ConsentError`` ``not_issued_here`` (a duck-typed stand-in, an object
    built around another ONNX session, or a card edited after loading)."""
    from likeness.consent.canonical import canonical_sha256

    issued = _issued(model)
    try:
        unchanged = canonical_sha256(model.card) == issued.card_sha256
    except Exception:  # rfc8785 raises its own types for values that are not JSON
        unchanged = False
    if not unchanged:
        raise ConsentError("not_issued_here", "the swap model's card was changed after load_swap_model verified it")
    return model


def _issue(card: dict[str, Any], session: Any, precision: str, precision_reason: str, authz: Any) -> SwapModel:
    from likeness.consent.canonical import canonical_sha256

    model = object.__new__(SwapModel)
    model.card = card
    model.resolution = int(card["resolution"])
    model.precision, model.precision_reason = precision, precision_reason
    model.file_sha256 = str(card["int8"]["sha256"] if precision == "int8" else card["onnx_sha256"])
    _ISSUED[model] = _Issued(session, authz, canonical_sha256(card))
    return model


#: One ONNX file is a protobuf message, which cannot exceed 2 GiB (the product exports no external
#: data; its largest default model, LIAE at 256 px, is about 0.5 GB): a larger file is no model it
#: wrote, and is refused from its size before a byte is read (a sparse 10 GB file was read whole).
ONNX_MAX_BYTES = 2**31


def _check_hash(path: Path, expected: Any, *, keep: bool = False) -> bytes | None:
    """Refuse ``path`` unless its SHA-256 is ``expected`` (what the signed card and its ledger event
    record); with ``keep`` return the bytes that were hashed, so the model loaded is the one checked."""
    if not path.is_file():
        raise ModelError(f"{path}: ONNX file missing")
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > ONNX_MAX_BYTES:
            raise ModelError(f"{path}: {size:,} bytes, larger than one ONNX file can be (2 GiB); it is refused")
        payload = handle.read(size) if keep else None  # the bytes hashed are the bytes loaded
    actual = hashlib.sha256(payload).hexdigest() if payload is not None else sha256_file(path)
    if actual != expected:
        raise ConsentError(
            "artefact_altered",
            f"{path}: hash {actual[:16]}… does not match the signed model card "
            f"and its model.exported event ({str(expected)[:16]}…); it is refused",
        )
    return payload


def load_swap_model(
    workspace: Any, model_dir: str | Path, *, authz: Any, threads: int = 2, precision: str = "auto"
) -> SwapModel:
    """Load ``model_dir/model.onnx`` (or its int8 copy, see ``choose_precision``) for rendering
    after verifying card, hash and consent.

    Checks: the card matches its organisation seal and ``model.exported`` ledger event
    (:func:`verified_model_card`); ``model.onnx`` hashes to the event's ``onnx_sha256`` and the
    int8 copy, when it is in the folder or asked for, to its ``int8_sha256``, whichever precision
    runs (the bytes checked are the bytes loaded); ``authz`` is for the
    subject the event names; the training grant the event names is still active (revocation
    bites); ``authz`` itself rechecks. Raises ``ModelError`` or ``ConsentError``
    (``artefact_altered``/``artefact_unsigned`` for a card or file that is not what was exported).
    """
    from likeness.consent import require_authorization

    require_authorization(authz, step="render")
    model_dir = Path(model_dir)
    card, binding = verified_model_card(workspace, model_dir)
    try:
        chosen, reason = choose_precision(
            card,
            precision,
            gpu="CUDAExecutionProvider" in execution_providers(True),
            int8_file=(model_dir / INT8_ONNX_NAME).is_file(),
        )
    except ModelError as exc:
        raise ModelError(f"{model_dir}: {exc}") from None
    # Every model file present is checked whichever precision runs: the float file always, the
    # int8 copy whenever it is in the folder (a folder copied without it still renders in float).
    # A copy the sealed card records no digest for is never loaded (choose_precision).
    float_bytes = _check_hash(model_dir / ONNX_NAME, binding["onnx_sha256"], keep=chosen == "float")
    model_bytes = float_bytes
    int8_path = model_dir / INT8_ONNX_NAME
    if chosen == "int8" or (int8_path.is_file() and binding.get("int8_sha256")):
        int8_bytes = _check_hash(int8_path, binding["int8_sha256"], keep=chosen == "int8")
        if chosen == "int8":
            model_bytes = int8_bytes
    if authz.subject_id != binding["subject_id"]:
        raise ConsentError(
            "no_grant",
            f"{model_dir}: model renders {binding['subject_slug']!r}, authorization is for {authz.subject_slug!r}",
        )
    state = workspace.registry.grant_state(binding["grant_id"])
    if state != "active":
        raise ConsentError(
            _GRANT_STATE_REASON.get(state, "no_grant"),
            f"{model_dir}: the grant this model was trained under is {state}",
        )
    authz.recheck()
    assert model_bytes is not None  # _check_hash(keep=True) returned the chosen file's bytes
    return _issue(card, ort_session(model_bytes, threads=threads, prefer_gpu=chosen == "float"), chosen, reason, authz)
