"""Reference faces: an upright crop of each enrolled reference photo, kept in the workspace.

The registry holds only identity embeddings, which no person can read. Evidence pages need a
picture of the enrolled artist beside the face found in a file, so enrollment also keeps one
small aligned crop per reference photo under ``HOME/references/SUBJECT_ID/`` (named by the
photo's SHA-256, PNG, 160 px), and verification shows the first one for a matched subject.

Example::

    save_reference_face(workspace.home, subject.id, photo_sha256, rgb, landmarks)
    picture = load_reference_face(workspace.home, subject.id)  # uint8 (160, 160, 3) or None
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from likeness.errors import MediaError

REFERENCE_FACE_SIDE = 160
_FOLDER = "references"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def reference_faces_dir(home: Path, subject_id: str) -> Path:
    """``HOME/references/SUBJECT_ID``; the id must be a plain token (it becomes a folder name)."""
    if not isinstance(subject_id, str) or not _SAFE_ID.match(subject_id):
        raise ValueError(f"subject id must be 1-64 letters, digits, '-' or '_', got {subject_id!r}")
    return Path(home) / _FOLDER / subject_id


def reference_face_crop(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Upright ``REFERENCE_FACE_SIDE`` square crop of the whole head (forehead, hair line and
    chin included), aligned as extraction aligns faces: uint8 (160, 160, 3)."""
    from likeness.faces.align import align_face

    return align_face(rgb, landmarks, size=REFERENCE_FACE_SIDE, coverage="head").image


def save_reference_face(home: Path, subject_id: str, photo_sha256: str, rgb: np.ndarray, landmarks: np.ndarray) -> Path:
    """Write the reference crop of one enrolled photo (atomically); returns its path."""
    return write_reference_face(home, subject_id, photo_sha256, reference_face_crop(rgb, landmarks))


def write_reference_face(home: Path, subject_id: str, photo_sha256: str, crop: np.ndarray) -> Path:
    """Write a reference crop (``reference_face_crop``) of the photo ``photo_sha256``, atomically."""
    from likeness.media.images import write_image

    if not isinstance(photo_sha256, str) or not _SHA256.match(photo_sha256):
        raise ValueError(f"photo_sha256 must be 64 lowercase hex digits, got {photo_sha256!r}")
    return write_image(reference_faces_dir(home, subject_id) / f"{photo_sha256}.png", crop)


def load_reference_face(home: Path, subject_id: str) -> np.ndarray | None:
    """The first readable reference crop of ``subject_id`` (by file name), or None when the
    workspace keeps none (subjects enrolled before crops were kept, or files removed)."""
    from likeness.media.images import read_image

    try:
        folder = reference_faces_dir(home, subject_id)
    except ValueError:
        return None  # not an id this module could have written under
    for path in sorted(folder.glob("*.png")) if folder.is_dir() else ():
        try:
            return read_image(path)
        except MediaError:
            continue  # a damaged crop must not stop verification; the page shows a placeholder
    return None


__all__ = [
    "REFERENCE_FACE_SIDE",
    "load_reference_face",
    "reference_face_crop",
    "reference_faces_dir",
    "save_reference_face",
    "write_reference_face",
]
