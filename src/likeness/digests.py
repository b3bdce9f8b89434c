"""File digests shared by every area: faceset crops, models, signed outputs, verified media."""

from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike[str], *, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed in chunks (bounded memory for media of any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
