"""Crash-safe checkpoints: serialised in memory, then written whole (:func:`likeness.durable.write_atomic`).

A ``kill -9`` (or power loss) at any moment leaves either the previous checkpoint or the new one,
never a torn file: the previous file is only replaced by ``os.replace`` once the new bytes are
durable on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import re
import stat
from pathlib import Path
from typing import Any

import numpy as np
import torch

from likeness import strict_json
from likeness.durable import remove_stale_temporaries, write_atomic
from likeness.errors import ConsentError, LikenessError, ModelError

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "likeness.checkpoint/1"
#: The largest checkpoint read. A training checkpoint holds about 16 bytes a parameter (float32
#: weights, their running average and Adam's two moments) and the small code discriminator with
#: its own: LIAE at 256 px, the largest registered default (135 M parameters), makes one of about
#: 2.2 GB, so this leaves room for networks of about 500 M parameters (``--model-option`` widths).
#: Which network a checkpoint holds is known only once it is read, hence a constant.
CHECKPOINT_MAX_BYTES = 8 * 1024**3


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete the temporaries of ``checkpoint.pt`` a run killed mid-write left in ``folder`` (and
    the ``.checkpoint.pt.<pid>.tmp`` name earlier releases gave them); returns what was removed."""
    removed = remove_stale_temporaries(Path(folder) / CHECKPOINT_NAME)
    for leftover in Path(folder).glob(f".{CHECKPOINT_NAME}.*.tmp"):
        leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


def discard_unstarted_run(folder: Path, *, created: bool, files: tuple[str, ...] = ()) -> None:
    """After a run failed: without a checkpoint nothing in ``folder`` can be resumed, so remove
    the ``files`` written for the run, and ``folder`` itself when the run created it and it is
    now empty. A folder holding a checkpoint is left as it is."""
    if (folder / CHECKPOINT_NAME).exists():
        return
    for name in files:
        (folder / name).unlink(missing_ok=True)
    if created:
        with contextlib.suppress(OSError):  # not empty: previews or the user's own files stay
            folder.rmdir()


def checkpoint_bytes(state: dict[str, Any]) -> bytes:
    """The bytes :func:`save_checkpoint` writes for ``state`` (hashed for the ledger before writing)."""
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
    return buffer.getvalue()


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Serialise ``state`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically."""
    write_atomic(Path(path), checkpoint_bytes(state))


def read_checkpoint(path: Path) -> tuple[dict[str, Any], str]:
    """(state, SHA-256 of the file's bytes): the file is read once, so the hash is of what was loaded.

    Uses ``weights_only=True``: a checkpoint is data (tensors and plain containers), never code.
    ``ModelError`` if missing, corrupt, or larger than :data:`CHECKPOINT_MAX_BYTES` (told from its
    size before a byte is read).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no checkpoint here")
    try:
        payload = _read_bounded(path, CHECKPOINT_MAX_BYTES)
    except OSError as exc:
        raise ModelError(f"{path}: checkpoint unreadable ({exc.strerror or type(exc).__name__})") from None
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            # torch's own message goes on to suggest weights_only=False: never here
            raise ModelError(
                f"{path}: checkpoint unreadable: it holds objects other than tensors and plain containers "
                "(a checkpoint is data, never code; refused without loading them)"
            ) from None
        raise ModelError(f"{path}: checkpoint unreadable (not a checkpoint: {_first_line(exc)})") from None
    except Exception as exc:  # the weights-only unpickler raises IndexError, KeyError, ... on stray bytes
        raise ModelError(f"{path}: checkpoint unreadable ({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path}: not a likeness checkpoint (expected format {CHECKPOINT_FORMAT})")
    return state, hashlib.sha256(payload).hexdigest()


def _read_bounded(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``; ``ModelError`` naming it and its size when it holds
    more than ``max_bytes``. Opened without blocking: a FIFO swapped in after the caller's check is
    refused, not waited on."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise ModelError(f"{path}: checkpoint unreadable (not a regular file)")
        size = status.st_size
        if size > max_bytes:
            raise ModelError(
                f"{path}: checkpoint of {size:,} bytes, more than the {max_bytes:,} a checkpoint may hold "
                f"(not one likeness wrote)"
            )
        # A read allocates what it asks for: the size, not the bound; one byte more tells a file
        # that grew since (likeness replaces checkpoints whole).
        payload = handle.read(size + 1)
    if len(payload) > size:
        raise ModelError(f"{path}: checkpoint unreadable (it changed while it was read)")
    return payload


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, printable (torch's carry terminal colour codes)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return "".join(ch for ch in (text.splitlines() or [type(exc).__name__])[0] if ch.isprintable())[:200]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; ``ModelError`` if missing or corrupt."""
    return read_checkpoint(path)[0]


def loop_state(
    net: Any, optimiser: Any, schedule: Any, rng: np.random.Generator, step: int, *, seconds: float
) -> dict[str, Any]:
    """What a resumable training loop checkpoints of itself: weights, optimiser, learning-rate
    schedule, the generators that draw its batches (NumPy's) and anything random in the network
    (PyTorch's), the step reached and the seconds trained so far, earlier sessions included
    (``resume_loop``): a resumed run is the uninterrupted one, and its card's time is the whole."""
    import torch

    return {
        "net": net.state_dict(),
        "optimiser": optimiser.state_dict(),
        "schedule": schedule.state_dict(),
        "rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "step": step,
        "seconds": seconds,
    }


def resume_loop(
    state: dict[str, Any], net: Any, optimiser: Any, schedule: Any, rng: np.random.Generator
) -> tuple[int, float]:
    """Put a loop back where ``loop_state`` left it; the step it goes on from and the seconds
    trained before (0 for a checkpoint that did not keep them)."""
    import torch

    net.load_state_dict(state["net"])
    optimiser.load_state_dict(state["optimiser"])
    schedule.load_state_dict(state["schedule"])
    rng.bit_generator.state = state["rng"]
    if state.get("torch_rng") is not None:
        torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), float(state.get("seconds", 0.0))


def refuse_other_run(checkpoint: Path, saved: Any, run: str, *, elsewhere: str) -> None:
    """``ModelError`` unless the checkpoint was written by this very run: ``run`` is the run's
    record as JSON (its ``settings`` member compared one by one), ``saved`` what the checkpoint
    kept. A resume of another run would export the old run's weights under a card naming the
    new run's settings and data. ``elsewhere``: where the user can train instead."""
    if saved == run:
        return
    if not isinstance(saved, str):
        differs = "it does not record its run (written by an earlier version)"
    else:
        then, now = strict_json.loads(saved), strict_json.loads(run)
        keys = [k for k in now if then.get(k) != now[k]]
        keys += [f"settings.{k}" for k in now["settings"] if then.get("settings", {}).get(k) != now["settings"][k]]
        differs = "it differs in " + ", ".join(k for k in keys if k != "settings")
    raise ModelError(
        f"{checkpoint}: not a checkpoint of this training run, so it cannot be resumed ({differs}); "
        f"train into {elsewhere}, or remove {checkpoint.name} there to start over"
    )


def checkpoint_record(state: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint says about its consent and data, in the ``model.checkpointed`` event's terms."""
    consent, data = state.get("consent") or {}, state.get("data") or {}
    return {
        "subject_id": consent.get("subject_id"),
        "grant_id": consent.get("grant_id"),
        "org_id": consent.get("org_id"),
        "performer_id": consent.get("performer_id"),
        "release_id": consent.get("release_id"),
        "source_faceset_sha256": data.get("source_sha256"),
        "target_faceset_sha256": data.get("target_sha256"),
    }


def record_checkpoint(
    workspace: Any, authz: Any, model_dir: Path, state: dict[str, Any], checkpoint_sha256: str, **extra: Any
) -> Any:
    """Seal the checkpoint whose bytes hash to ``checkpoint_sha256`` (``state`` serialised) with
    the organisation's key and record it as ``model.checkpointed`` under ``authz`` (a live
    ``training`` Authorization); ``extra`` adds display fields (iteration, slugs). Returns the
    ledger event. Call it before the file is written.

    The checkpoint's consent must be ``authz``'s (subject, grant, organisation) and, when it was
    trained from a faceset, that faceset's (``checkpoint_lineage_problem``); otherwise
    ``ConsentError`` (``no_grant``, ``artefact_altered``) and nothing is recorded.
    """
    from likeness.consent import require_authorization
    from likeness.consent.artefacts import (
        CHECKPOINT_EVENT,
        altered,
        checkpoint_lineage_problem,
        event_fields,
        seal_checkpoint,
    )

    require_authorization(authz, step="train")
    record = checkpoint_record(state)
    ours = {"subject_id": authz.subject_id, "grant_id": authz.grant_id, "org_id": authz.org_id}
    if any(record[name] != value for name, value in ours.items()):
        raise ConsentError(
            "no_grant",
            f"{model_dir}: the checkpoint names subject {record['subject_id']!r} under "
            f"grant {record['grant_id']!r}, the authorization is for "
            f"{authz.subject_slug!r} under grant {authz.grant_id!r}",
        )
    lineage = checkpoint_lineage_problem(workspace, record)
    if lineage:
        raise altered(Path(model_dir) / CHECKPOINT_NAME, lineage)
    seal = seal_checkpoint(workspace, authz.org_id, checkpoint_sha256, record)
    return authz.record(CHECKPOINT_EVENT, {**event_fields(seal), "model_dir": str(Path(model_dir).resolve()), **extra})


def subject_slug(workspace: Any, subject_id: Any) -> str:
    """The registry's slug of subject ``subject_id``, for display (the id itself when the
    registry no longer knows it). Slugs are never taken from ledger payloads or files: only the
    ids are sealed, so a slug found there may have been written without the organisation's key."""
    try:
        return workspace.registry.get_subject(str(subject_id)).slug
    except LikenessError:
        return str(subject_id)


def load_bound_checkpoint(workspace: Any, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, consent) of the checkpoint at ``path``, where ``consent`` comes from the sealed
    ``model.checkpointed`` ledger event recorded for exactly these bytes, not from the
    checkpoint's own (editable) consent dict: ``subject_id``, ``grant_id``, ``org_id``,
    ``performer_id``, ``release_id``, ``source_faceset_sha256``, ``target_faceset_sha256``,
    ``checkpoint_sha256`` (all bound by the event's seal), and ``subject_slug``/``performer_slug``
    looked up in the registry by those ids (the event's own slug fields are unsealed display).

    Raises ``ConsentError`` ``artefact_altered`` naming what differs (or that no event with a
    valid organisation seal knows the file: altered, from another workspace, recorded without
    the organisation's key, or saved before checkpoints were sealed).
    """
    from likeness.consent.artefacts import CHECKPOINT_BOUND, verify_checkpoint

    path = Path(path)
    state, digest = read_checkpoint(path)
    event = verify_checkpoint(workspace, path, digest, checkpoint_record(state))
    consent = {k: event.payload.get(k) for k in (*CHECKPOINT_BOUND, "org_id")}
    consent["subject_slug"] = subject_slug(workspace, consent["subject_id"])
    consent["performer_slug"] = subject_slug(workspace, consent["performer_id"])
    return state, consent
