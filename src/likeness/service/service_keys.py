"""The service's own secret keys: 32 random bytes each, ``HOME/keys/service/NAME.key`` (0600),
made on first use. They seal what the service hands out and later takes back (shared result
pages, trusted-device cookies), so whoever reads one can forge those: a key file that others
may read is refused, as the C2PA keys are."""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from typing import Any

from likeness.durable import write_atomic
from likeness.keyfiles import KeyFileRefused, read_key_file
from likeness.service.errors import ServiceKeyUnusable

KEY_BYTES = 32


def service_key_path(workspace: Any, name: str) -> Path:
    return Path(workspace.settings.keys_dir) / "service" / f"{name}.key"


def service_key(workspace: Any, name: str, *, create: bool) -> bytes | None:
    """The key ``name`` (made when missing and ``create``), None when there is none;
    ``ServiceKeyUnusable`` naming the file when group or others may read it, it is not a
    regular file or it is not :data:`KEY_BYTES` long."""
    path = service_key_path(workspace, name)
    if create and not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process's key wins
            write_atomic(path, secrets.token_bytes(KEY_BYTES), mode=0o600, overwrite=False)
    # Named from the keys folder: the message reaches strangers (the sign-in form, shared pages).
    shown = f"keys/service/{path.name}"
    try:
        key = read_key_file(path, max_bytes=KEY_BYTES + 1)
    except FileNotFoundError:
        return None
    except KeyFileRefused as refused:
        raise ServiceKeyUnusable(f"{shown}: the service's key {refused.reason}") from None
    if len(key) != KEY_BYTES:
        raise ServiceKeyUnusable(f"{shown}: the service's key is not {KEY_BYTES} bytes; remove it to make a new one")
    return key
