"""Resume checkpoints of a video render, encrypted with a key that lives only as long as the job.

A checkpoint must let a killed render resume without redoing the swap, so it holds the per-frame
swap recipes (affine, colour-corrected swapped crop, blend mask) and the renderer's state. The
crops are synthetic faces: kept in the clear, anyone who can read the output folder could paste
them back into the source and get an unlabelled frame. So every chunk is sealed with AES-GCM
under a per-job key kept apart from the media, in ``<keys>/jobs/<job id>.key`` (0600, folder
0700), and the key is deleted when the job ends (output written, render refused, consent
withdrawn). Without its key, or with any file altered, swapped, added or removed, a checkpoint
is discarded and the render starts over; it is never trusted.

An interrupted job's key is kept only for resuming it. A killed process cannot delete its own
key, so every render starts with :func:`sweep_job_keys`, which deletes each key that can no longer
resume anything: its checkpoint folder is gone (or holds another job), its job completed or ended
for good on the ledger, or the grant or release it rendered under is no longer in force (a
revocation destroys the key, and the checkpoint with it). A key file is JSON: the key (hex) and
what the sweep needs (checkpoint folder, output, grant and release ids); no pixels.

Folder layout (``.<output name>.render-checkpoint/`` beside the output)::

    job.json                  clear: job id and fingerprint (target, model file, options); no pixels
    state.bin                 sealed: next frame, renderer state, names of the recipe chunks
    recipes-<first frame>.bin sealed: an ``.npz`` of ``<frame>_<n>_{affine,crop,mask}`` arrays

Each sealed file is ``nonce (12 bytes) || AES-256-GCM(plaintext)`` with the job id and the file
name as associated data, so a chunk cannot be moved to another name or another job.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from likeness import strict_json
from likeness.durable import write_atomic
from likeness.errors import LikenessError, MediaError
from likeness.keyfiles import KeyFileRefused, read_key_file

KEY_BYTES = 32
NONCE_BYTES = 12
#: What sealing adds to a plaintext: the nonce and AES-GCM's 16-byte tag.
SEAL_BYTES = NONCE_BYTES + 16
JOB_FILE, STATE_FILE = "job.json", "state.bin"
#: job.json holds an id and a fingerprint: a few hundred bytes; more is not one this module wrote.
JOB_FILE_MAX_BYTES = 64 * 1024
#: The most ``np.savez`` adds around one array: its ``.npy`` header (128 bytes), its zip entry and
#: directory record with zip64 extras (under 200 bytes for these names); also the archive's end.
NPZ_ARRAY_OVERHEAD = 512
#: The most bytes one float of the renderer's state takes in its JSON ("1.1920928955078125e-07, ").
JSON_FLOAT_BYTES = 26
#: A state's part that does not scale with the crop: the live tracks' filters, identities and eye
#: samples, and the report's tally of every track of the clip so far (about 250 bytes each, so
#: this is room for some 250,000 tracks).
STATE_BASE_MAX_BYTES = 64 * 1024 * 1024
#: A face recipe: (affine float (2, 3), colour-corrected crop uint8 (R, R, 3), mask float32 (R, R) in [0, 1]).
Recipe = tuple[np.ndarray, np.ndarray, np.ndarray]


class CheckpointInvalid(Exception):
    """A checkpoint that cannot be trusted (no key, altered, incomplete); it is discarded."""


def recipe_chunk_max_bytes(*, resolution: int, faces_per_frame: int, frames_per_chunk: int) -> int:
    """The largest sealed recipe chunk a render can write: ``frames_per_chunk`` frames (its
    ``checkpoint_every``; batches end at checkpoints) of up to ``faces_per_frame`` faces (its
    ``max_faces``), each an affine (float64 2x3), a crop (uint8 R x R x 3) and a mask (uint8 R x R)
    at the model's ``resolution`` R.

    >>> recipe_chunk_max_bytes(resolution=128, faces_per_frame=8, frames_per_chunk=250)
    134240540
    """
    per_face = 2 * 3 * 8 + resolution * resolution * 4 + 3 * NPZ_ARRAY_OVERHEAD
    return frames_per_chunk * faces_per_frame * per_face + NPZ_ARRAY_OVERHEAD + SEAL_BYTES


def state_max_bytes(*, resolution: int, faces_per_frame: int) -> int:
    """The largest sealed ``state.bin`` a render can write: :data:`STATE_BASE_MAX_BYTES` plus the
    last swap output (float32 3 x R x R, as JSON) of each track that can be live at once: up to
    ``faces_per_frame`` new ones a frame, each kept ``TRACK_MAX_MISSED`` frames after its last face.

    >>> state_max_bytes(resolution=128, faces_per_frame=8)
    230686748
    """
    from likeness.render.frame import TRACK_MAX_MISSED

    live_tracks = faces_per_frame * (TRACK_MAX_MISSED + 1)
    return STATE_BASE_MAX_BYTES + live_tracks * 3 * resolution * resolution * JSON_FLOAT_BYTES + SEAL_BYTES


def read_checkpoint_file(path: Path, *, max_bytes: int) -> bytes:
    """The bytes of checkpoint file ``path``; :class:`MediaError` naming it when it is not a
    regular file or holds more than ``max_bytes``.

    Opened without blocking: a FIFO placed as ``job.json`` would otherwise hold the render (and the
    sweep that starts every render) for ever. A FIFO, a folder or a file larger than any this
    module writes is refused, not discarded with the folder: discarding would delete what a folder
    holds, and a file's size is checked before a byte of it is read, so a sparse 10 GB
    ``state.bin`` costs nothing.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise MediaError(path, "not a regular file (the renderer writes only files there); remove it to render")
        if status.st_size > max_bytes:
            raise MediaError(path, _too_large(status.st_size, max_bytes))
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            # A read allocates what it asks for: the size, not the bound; one byte more tells a
            # file that grew since.
            data = handle.read(status.st_size + 1)
    finally:
        os.close(descriptor)
    if len(data) > status.st_size:  # never a file the renderer wrote: it replaces files whole
        raise CheckpointInvalid(f"{Path(path).name}: changed while it was read")
    return data


def _too_large(size: int, max_bytes: int) -> str:
    return (
        f"{size:,} bytes, more than the {max_bytes:,} this render's checkpoint can hold (not a file the "
        f"renderer wrote); remove the checkpoint folder to render"
    )


def _read_job_file(folder: Path) -> dict[str, Any]:
    job = strict_json.loads(read_checkpoint_file(folder / JOB_FILE, max_bytes=JOB_FILE_MAX_BYTES).decode("utf-8"))
    if not isinstance(job, dict):
        raise CheckpointInvalid(f"{JOB_FILE}: not an object")
    return job


def job_key_path(keys_dir: Path, job_id: str) -> Path:
    """Where the key of render job ``job_id`` lives: ``<keys>/jobs/<job id>.key``."""
    if not (len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)):
        raise CheckpointInvalid(f"not a render job id: {job_id[:40]!r}")
    return Path(keys_dir) / "jobs" / f"{job_id}.key"


def create_job_key(keys_dir: Path, job_id: str, job: dict[str, Any] | None = None) -> bytes:
    """A fresh random key for ``job_id``, written 0600 (folder 0700) and never with wider rights,
    with ``job``: what :func:`sweep_job_keys` checks (``checkpoint``, ``output``, ``grant_id``,
    ``release_id``)."""
    path = job_key_path(keys_dir, job_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    key = secrets.token_bytes(KEY_BYTES)
    record = json.dumps({**(job or {}), "job_id": job_id, "key": key.hex()}).encode("utf-8")
    write_atomic(path, record, mode=0o600, overwrite=False)
    return key


def _read_key_file(path: Path) -> dict[str, Any] | None:
    # Through the one key-file reader: a FIFO in a key's place would hold every render's sweep,
    # a link to /dev/zero fill memory, and a key others may read unseals the job's swapped faces.
    try:
        record = strict_json.loads(read_key_file(path))
        key = bytes.fromhex(record["key"])
    except (OSError, KeyFileRefused, ValueError, KeyError, TypeError):
        return None
    return {**record, "key": key} if isinstance(record, dict) and len(key) == KEY_BYTES else None


def read_job_key(keys_dir: Path, job_id: str) -> bytes | None:
    try:
        record = _read_key_file(job_key_path(keys_dir, job_id))
    except CheckpointInvalid:
        return None
    return record["key"] if record else None


def delete_job_key(keys_dir: Path, job_id: str) -> None:
    with contextlib.suppress(OSError, CheckpointInvalid):
        job_key_path(keys_dir, job_id).unlink()


def seal(key: bytes, job_id: str, name: str, plaintext: bytes) -> bytes:
    """``nonce || AES-GCM(plaintext)``, bound to ``job_id`` and the file ``name``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, _associated(job_id, name))


def unseal(key: bytes, job_id: str, name: str, sealed: bytes) -> bytes:
    """The plaintext of :func:`seal`'s output; ``CheckpointInvalid`` when anything was altered."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _associated(job_id, name))
    except (InvalidTag, ValueError):
        raise CheckpointInvalid(f"{name}: does not authenticate (altered, or sealed for another job)") from None


def _associated(job_id: str, name: str) -> bytes:
    return f"likeness-render-checkpoint:{job_id}:{name}".encode("ascii")


def recipes_to_npz(faces: Iterable[tuple[int, int, Recipe]]) -> bytes:
    """``.npz`` bytes of ``(frame index, face number, recipe)`` items (masks stored as uint8)."""
    arrays: dict[str, np.ndarray] = {}
    for frame_index, n, (affine, crop, mask) in faces:
        arrays[f"{frame_index}_{n}_affine"] = np.asarray(affine)
        arrays[f"{frame_index}_{n}_crop"] = np.asarray(crop)
        arrays[f"{frame_index}_{n}_mask"] = np.round(np.asarray(mask) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    # numpy's stub reads **arrays as if it could hold the allow_pickle keyword.
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def recipes_from_npz(data: bytes, upto: int) -> dict[int, list[Recipe]]:
    """Frame index -> recipes, for frames before ``upto``, from :func:`recipes_to_npz` bytes."""
    by_frame: dict[int, list[Recipe]] = {}
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        for name in arrays.files:  # in the order saved: faces of a frame are pasted in that order
            if not name.endswith("_affine"):
                continue
            frame_index, n = (int(v) for v in name.split("_")[:2])
            if frame_index >= upto:
                continue
            base = f"{frame_index}_{n}"
            by_frame.setdefault(frame_index, []).append(
                (arrays[f"{base}_affine"], arrays[f"{base}_crop"], arrays[f"{base}_mask"].astype(np.float32) / 255.0)
            )
    return by_frame


@dataclass
class ResumePoint:
    """Where a render job stopped. ``renderer_state`` is None when it stopped before its first
    commit: the job (and its counted render slot) goes on from frame 0."""

    job_id: str
    next_index: int = 0
    renderer_state: dict | None = None
    recipes: dict[int, list[Recipe]] = field(default_factory=dict)


class RenderCheckpoint:
    """The checkpoint of one video render job in ``folder``; keys under ``keys_dir/jobs``.

    ``fingerprint``: what the output depends on (target, model file, options); a checkpoint made
    for anything else is discarded. Use: :meth:`open` (a resume point or None), :meth:`start` with
    the job id, :meth:`add` each frame's swapped faces, :meth:`commit` at a frame boundary,
    :meth:`remove` when the job ends.
    """

    def __init__(
        self,
        folder: Path,
        keys_dir: Path,
        fingerprint: dict[str, Any],
        *,
        resolution: int,
        faces_per_frame: int,
        frames_per_chunk: int,
    ) -> None:
        self.folder = Path(folder)
        self.keys_dir = Path(keys_dir)
        self.fingerprint = fingerprint
        # What this render can write, from its model's crop side and its options: a larger file
        # is not one it wrote, and is refused before it is read.
        self.state_max_bytes = state_max_bytes(resolution=resolution, faces_per_frame=faces_per_frame)
        self.chunk_max_bytes = recipe_chunk_max_bytes(
            resolution=resolution, faces_per_frame=faces_per_frame, frames_per_chunk=frames_per_chunk
        )
        self.job_id: str | None = None
        self.discarded: list[str] = []  # job ids of discarded checkpoints (their temporaries go too)
        self._key: bytes | None = None
        self._chunks: list[str] = []
        self._pending: list[tuple[int, list[Recipe]]] = []

    # -- opening --------------------------------------------------------------------------------

    def open(self) -> ResumePoint | None:
        """The job to resume, or None (nothing here, or a checkpoint that was discarded);
        :class:`MediaError` naming a file the renderer never writes (a FIFO, a folder)."""
        if not self.folder.exists():
            return None
        if not self.folder.is_dir():
            raise MediaError(self.folder, "not a folder (the renderer keeps its checkpoint there); remove it to render")
        job_id = None
        try:
            job = _read_job_file(self.folder)
            job_id = str(job["job_id"])
            key = read_job_key(self.keys_dir, job_id)
            if job.get("fingerprint") != self.fingerprint:
                raise CheckpointInvalid("made for another target, model or options")
            if key is None:
                raise CheckpointInvalid("its job key is gone (the job ended)")
            point = self._read(key, job_id)
        except (OSError, ValueError, KeyError, TypeError, CheckpointInvalid):
            self._discard(job_id)
            return None
        self.job_id, self._key = job_id, key
        return point

    def _read(self, key: bytes, job_id: str) -> ResumePoint:
        state_path = self.folder / STATE_FILE
        if not state_path.exists():
            if any(self.folder.glob("recipes-*")):
                raise CheckpointInvalid("recipe chunks without a state")
            return ResumePoint(job_id)
        sealed_state = read_checkpoint_file(state_path, max_bytes=self.state_max_bytes)
        state = strict_json.loads(unseal(key, job_id, STATE_FILE, sealed_state))
        chunks = [str(name) for name in state["chunks"]]
        on_disk = sorted(p.name for p in self.folder.glob("recipes-*"))
        if sorted(chunks) != on_disk:
            raise CheckpointInvalid("recipe chunks missing or added")
        next_index = int(state["next_index"])
        recipes: dict[int, list[Recipe]] = {}
        for name in chunks:
            sealed = read_checkpoint_file(self.folder / name, max_bytes=self.chunk_max_bytes)
            recipes.update(recipes_from_npz(unseal(key, job_id, name, sealed), next_index))
        self._chunks = chunks
        return ResumePoint(job_id, next_index, state["renderer"], recipes)

    def _discard(self, job_id: str | None) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        if job_id:
            delete_job_key(self.keys_dir, job_id)
            self.discarded.append(job_id)

    # -- writing --------------------------------------------------------------------------------

    def start(
        self, job_id: str, *, output: Path | None = None, grant_id: str | None = None, release_id: str | None = None
    ) -> None:
        """Bind the folder to ``job_id`` (a resumed job keeps its key; a new one gets one that
        records ``output`` and the grant and release it renders under, for :func:`sweep_job_keys`)."""
        if self.job_id == job_id and self._key is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        # job.json first: a sweep never finds this job's key beside another job's folder.
        write_atomic(
            self.folder / JOB_FILE, json.dumps({"job_id": job_id, "fingerprint": self.fingerprint}).encode("utf-8")
        )
        job = {
            "checkpoint": str(self.folder.resolve()),
            "output": str(Path(output).resolve()) if output else None,
            "grant_id": grant_id,
            "release_id": release_id,
        }
        self.job_id, self._key, self._chunks = job_id, create_job_key(self.keys_dir, job_id, job), []

    def add(self, frame_index: int, outcomes: list[Any]) -> None:
        """Keep the swapped faces (``FaceOutcome`` with ``affine``, ``crop``, ``mask``) of a frame."""
        self._pending.append((frame_index, [(o.affine, o.crop, o.mask) for o in outcomes if o.swapped]))

    def commit(self, next_index: int, renderer_state: dict) -> None:
        """Seal what was added since the last commit, then the state that points at it."""
        if self._key is None or self.job_id is None:
            raise RuntimeError("RenderCheckpoint.commit before start")
        faces = [(i, n, r) for i, recipes in self._pending for n, r in enumerate(recipes)]
        if faces:
            name = f"recipes-{self._pending[0][0]:09d}.bin"
            write_atomic(self.folder / name, seal(self._key, self.job_id, name, recipes_to_npz(faces)))
            if name not in self._chunks:
                self._chunks.append(name)
        self._pending = []
        state = {"next_index": next_index, "renderer": renderer_state, "chunks": self._chunks}
        write_atomic(
            self.folder / STATE_FILE, seal(self._key, self.job_id, STATE_FILE, json.dumps(state).encode("utf-8"))
        )

    def remove(self) -> None:
        """The job ended: delete the folder and the job's key."""
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.job_id:
            delete_job_key(self.keys_dir, self.job_id)
        self._key = None


#: Refund reasons after which the pipeline has removed the job's checkpoint: the job ended for
#: good. An interruption ("interrupted") or an unexpected failure ("failed: ...") keeps it to resume.
ENDED_REFUNDS = ("signing_failed", "encode_failed", "no_face_swapped")


def job_ended(ledger: Any, job_id: str) -> str | None:
    """Why render job ``job_id`` can no longer be resumed according to the ledger (None: it can)."""
    if ledger.find("render.completed", job_id=job_id):
        return "its render completed"
    for event in ledger.find("render.refunded", job_id=job_id):
        reason = str(event.payload.get("reason", ""))
        if reason in ENDED_REFUNDS or reason.startswith("refused"):
            return f"its render ended ({reason})"
    return None


def _useless_key(workspace: Any, job_id: str, record: dict[str, Any] | None, releases: dict[str, str]) -> str | None:
    """Why the key of ``job_id`` (its key file's ``record``) can resume nothing (None: keep it)."""
    if record is None or record.get("job_id") != job_id:
        return "unreadable key file"
    folder = Path(str(record.get("checkpoint") or ""))
    try:
        owner = _read_job_file(folder).get("job_id")
    except (OSError, ValueError, CheckpointInvalid, MediaError):
        owner = None  # a FIFO or folder as job.json: the render of that output names it
    if owner != job_id:
        return "its checkpoint is gone"
    ended = job_ended(workspace.ledger, job_id)
    if ended:
        return ended
    grant = workspace.registry.grant_state(str(record.get("grant_id"))) if record.get("grant_id") else "unknown"
    if grant != "active":
        return f"the grant it rendered under is {grant}"
    release = releases.get(str(record.get("release_id")), "unknown")
    if release != "active":
        return f"the performer's release it rendered under is {release}"
    return None


def sweep_job_keys(workspace: Any) -> dict[str, str]:
    """Delete every render job key under ``workspace.keys_dir/jobs`` that can no longer resume
    anything, with what its job left (the checkpoint folder, the output's temporaries).

    A key goes when its checkpoint folder is gone or holds another job, when its job has a
    ``render.completed`` event or a refund that ended it, or when the grant or release it was
    rendering under is not in force (revoked, expired, altered, unknown). Returns ``{job id:
    why}`` for the keys deleted. Runs at the start of every render; safe to run any time (a
    running job's key stays while its consent is in force).
    """
    from likeness.provenance.writer import remove_job_temporaries

    paths = sorted((Path(workspace.keys_dir) / "jobs").glob("*.key"))
    if not paths:
        return {}
    releases = {r.id: r.state for r in workspace.registry.list_releases()}
    removed: dict[str, str] = {}
    for path in paths:
        job_id = path.stem
        record = _read_key_file(path)
        why = _useless_key(workspace, job_id, record, releases)
        if why is None:
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError:
            continue  # a folder in a key's place: it holds no key, and every render must go on
        removed[job_id] = why
        folder = Path(str((record or {}).get("checkpoint") or ""))
        if folder.name.endswith(".render-checkpoint"):
            with contextlib.suppress(OSError, ValueError, CheckpointInvalid, MediaError):
                if _read_job_file(folder).get("job_id") == job_id:
                    shutil.rmtree(folder, ignore_errors=True)
        if record and record.get("output") and len(job_id) == 32:
            with contextlib.suppress(OSError, LikenessError):
                remove_job_temporaries(Path(record["output"]), job_id)
    return removed
