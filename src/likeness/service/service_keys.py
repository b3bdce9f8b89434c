"""The service's own secret keys: 32 random bytes each, ``HOME/keys/service/NAME.key`` (0600),
made on first use. They seal what the service hands out and later takes back (shared result
pages, trusted-device cookies), so whoever reads one can forge those: a key file that others
may read is refused, as the C2PA keys are."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Any

from likeness.service.errors import ServiceError

KEY_BYTES = 32


def service_key_path(workspace: Any, name: str) -> Path:
    return Path(workspace.settings.keys_dir) / "service" / f"{name}.key"


def service_key(workspace: Any, name: str, *, create: bool) -> bytes | None:
    """The key ``name`` (made when missing and ``create``), None when there is none or it is not
    :data:`KEY_BYTES` long; ``ServiceError`` naming the file when group or others may read it."""
    path = service_key_path(workspace, name)
    if create and not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_bytes(KEY_BYTES))
        try:
            os.link(partial, path)  # whole or not at all; another process's key wins
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        key = path.read_bytes()
    except FileNotFoundError:
        return None
    if mode & 0o077:
        raise ServiceError(f"{path}: the service's key may be read by others (mode {mode:04o}); run chmod 600 on it")
    return key if len(key) == KEY_BYTES else None
