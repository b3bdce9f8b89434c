"""File digests shared by every area: faceset crops, models, signed outputs, verified media;
and the first bytes that say what a file is."""

from __future__ import annotations

import hashlib
import os
import stat
from typing import BinaryIO


def sha256_file(path: str | os.PathLike[str], *, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed in chunks (bounded memory for media of any size)."""
    with open(path, "rb") as handle:
        return sha256_stream(handle, chunk_bytes=chunk_bytes)


def sha256_stream(handle: BinaryIO, *, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of what is left to read of an open binary file, read in chunks."""
    digest = hashlib.sha256()
    while chunk := handle.read(chunk_bytes):
        digest.update(chunk)
    return digest.hexdigest()


def leading_bytes(path: str | os.PathLike[str], count: int) -> bytes:
    """The first ``count`` bytes of a regular file; empty for a FIFO, a device or a folder.
    Opened without blocking, so a FIFO with no writer is never waited on. ``OSError`` when it
    cannot be opened."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return os.read(fd, count) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    finally:
        os.close(fd)
