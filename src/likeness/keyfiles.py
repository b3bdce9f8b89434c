"""One rule for reading a secret key file, whichever key it is (the organisation's and a
holder's Ed25519 keys, the C2PA root and signer, the service's own keys, render job keys): a
regular file that only its owner may read. Opened without blocking, so a FIFO put in a key's
place is refused rather than waited on; refused before a byte is read when group or others may
read it, since whoever else can read a key can sign or seal as its owner."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class KeyFileRefused(Exception):
    """Why a key file is not used: ``reason`` completes "PATH: the key ..." (e.g. "may be read
    by others (mode 0644); expected 0600 (chmod 600 it)")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_key_file(path: Path, *, max_bytes: int = 64 * 1024) -> bytes:
    """The first ``max_bytes`` of the key file at ``path``; ``FileNotFoundError`` when there is
    none, :class:`KeyFileRefused` when it cannot be read, is not a regular file, or group or
    others may read it."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise KeyFileRefused(f"cannot be read ({exc.strerror})") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise KeyFileRefused("is not a regular file")
        mode = stat.S_IMODE(status.st_mode)
        if mode & 0o077:
            raise KeyFileRefused(f"may be read by others (mode {mode:04o}); expected 0600 (chmod 600 it)")
        return os.read(descriptor, max_bytes)
    finally:
        os.close(descriptor)
