"""Faces aligned for detector training, kept between runs of one ``--out`` folder.

Aligning is the first stage of ``likeness detector train``: a face detector and mesh on every
image, minutes for a few hundred. Each image's result (its aligned face, or that it has none)
is kept here as soon as it is made, written whole, as ``SHA256.npz`` named by the image's bytes;
a later run takes it instead of aligning again only when it was made by the same alignment
``recipe`` (crop size and coverage, face detector and its release, likeness release). So a run
stopped during alignment keeps every face it finished, and an edited image, or an image aligned
another way, is aligned again.

An entry that cannot be read, holds other arrays or another recipe is treated as not kept
(aligned again and replaced). The folder belongs to the run beside its checkpoint and is trusted
like it; training removes it once the detector's card is written (the crops are faces of real
people, and nothing needs them then).

Example::

    store = AlignedFaceStore.open(out_dir / ALIGNED_FOLDER, recipe='{"size": 128}')
    store.keep(sha256, (image, landmarks))   # or None: no face in that image
    store.read(sha256)                        # (image, landmarks), None, or NOT_KEPT
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import zipfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from likeness.durable import remove_orphaned_temporaries, write_atomic
from likeness.errors import ModelError

#: The store's folder inside a detector's ``--out``.
ALIGNED_FOLDER = "aligned-faces"
#: An entry is a 128 px crop and 478 landmarks (about 53 kB); a larger file is none of ours.
MAX_ENTRY_BYTES = 1024 * 1024

#: An aligned face: uint8 RGB ``(S, S, 3)`` crop and float32 ``(N, 2)`` crop landmarks.
AlignedArrays = tuple[np.ndarray, np.ndarray]


class _NotKept(Enum):
    NOT_KEPT = "not kept"


#: What :meth:`AlignedFaceStore.read` returns for an image the store has no usable result of.
NOT_KEPT = _NotKept.NOT_KEPT


@dataclass(frozen=True)
class AlignedFaceStore:
    """Aligned faces by the SHA-256 of their image, made by ``recipe`` (see the module docstring)."""

    folder: Path
    recipe: str

    @classmethod
    def open(cls, folder: Path, *, recipe: str) -> AlignedFaceStore:
        """The store in ``folder``, made (owner-only) if missing; a ``ModelError`` naming it when
        it is a file or a link. Temporaries of writes killed midway are removed."""
        folder = Path(folder)
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise ModelError(f"{folder}: cannot make the folder of aligned faces ({exc.strerror or exc})") from None
        if folder.is_symlink() or not folder.is_dir():
            raise ModelError(f"{folder}: not a folder (training keeps its aligned faces there); move it away")
        remove_orphaned_temporaries(folder)
        return cls(folder, recipe)

    def entry(self, sha256: str) -> Path:
        return self.folder / f"{sha256}.npz"

    def read(self, sha256: str) -> AlignedArrays | None | _NotKept:
        """The kept result for the image of ``sha256``: its aligned face, None (it has no face), or
        ``NOT_KEPT`` (never kept, another recipe's, or unreadable)."""
        try:
            # not followed if a link, not waited on if a FIFO: neither is an entry this store wrote
            fd = os.open(self.entry(sha256), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return NOT_KEPT
        with os.fdopen(fd, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_ENTRY_BYTES:
                return NOT_KEPT
            try:
                with np.load(handle, allow_pickle=False) as kept:
                    if sum(member.file_size for member in kept.zip.infolist()) > MAX_ENTRY_BYTES:
                        return NOT_KEPT  # compressed into a small file, far larger read
                    if kept["recipe"].shape != () or str(kept["recipe"]) != self.recipe:
                        return NOT_KEPT
                    if not bool(kept["found"]):
                        return None
                    image, landmarks = kept["image"], kept["landmarks"]
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                return NOT_KEPT
        return (image, landmarks) if _well_formed(image, landmarks) else NOT_KEPT

    def keep(self, sha256: str, face: AlignedArrays | None) -> None:
        """Keep ``face`` (None: the image has no face) for the image of ``sha256``, whole; a
        ``ModelError`` naming the entry when it cannot be written (a full disk)."""
        buffer = io.BytesIO()
        if face is None:
            np.savez(buffer, recipe=np.array(self.recipe), found=np.array(False))
        else:
            np.savez(buffer, recipe=np.array(self.recipe), found=np.array(True), image=face[0], landmarks=face[1])
        entry = self.entry(sha256)
        write_atomic(
            entry,
            buffer.getvalue(),
            mode=0o600,
            error=lambda exc: ModelError(f"{entry}: cannot keep this aligned face ({exc.strerror or exc})"),
        )

    def remove(self) -> None:
        """Remove the folder and every entry in it."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _well_formed(image: np.ndarray, landmarks: np.ndarray) -> bool:
    return (
        image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[0] == image.shape[1]
        and image.shape[2] == 3
        and landmarks.dtype == np.float32
        and landmarks.ndim == 2
        and landmarks.shape[1] == 2
        and bool(np.isfinite(landmarks).all())
    )
