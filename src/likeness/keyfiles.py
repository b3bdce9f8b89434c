"""One rule for reading a secret key file, whichever key it is (the organisation's and a
holder's Ed25519 keys, the C2PA root and signer, the service's own keys, render job keys): a
regular file that only its owner may read, owned by the account reading it. Opened without
blocking, so a FIFO put in a key's place is refused rather than waited on; refused before a byte
is read when group or others may read it, since whoever else can read a key can sign or seal as
its owner, and when another account owns it, since that account may read it and may replace it
with a key of its own choosing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

# The account whose keys these are; a name of this module's own so a test not run as root can
# play another account without chown.
_effective_uid = os.geteuid


class KeyFileRefused(Exception):
    """Why a key file is not used: ``reason`` completes "PATH: the key ..." (e.g. "may be read
    by others (mode 0644); expected 0600 (chmod 600 it)")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_key_file(path: Path, *, max_bytes: int = 64 * 1024) -> bytes:
    """The first ``max_bytes`` of the key file at ``path``; ``FileNotFoundError`` when there is
    none, :class:`KeyFileRefused` when it cannot be read, is not a regular file, group or
    others may read it, or another account owns it."""
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
        reader = _effective_uid()
        if status.st_uid != reader:
            raise KeyFileRefused(
                f"is owned by another account (uid {status.st_uid}), which may replace it; expected this "
                f"account (uid {reader}): chown it, or run as its owner"
            )
        return os.read(descriptor, max_bytes)
    finally:
        os.close(descriptor)
