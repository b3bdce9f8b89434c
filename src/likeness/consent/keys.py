"""Ed25519 keys for rights holders, performers and organisations.

Private keys live only in files created with mode 0600; the database stores public keys and
fingerprints. Nothing here logs key material.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from likeness.errors import ConfigError
from likeness.keyfiles import KeyFileRefused, read_key_file


def fingerprint(public_raw: bytes) -> str:
    """SHA-256 fingerprint of the raw 32-byte public key, as ``ed25519:<hex>``."""
    return "ed25519:" + hashlib.sha256(public_raw).hexdigest()


def public_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_raw_from_pem(pem: bytes) -> bytes:
    """The raw 32-byte key of an Ed25519 public key in PEM (``ConfigError`` for anything else)."""
    try:
        pub = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ConfigError(f"holder public key is not a PEM public key ({exc})") from None
    if not isinstance(pub, Ed25519PublicKey):
        raise ConfigError("holder public key must be Ed25519")
    return public_raw(pub)


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write ``key`` as PKCS#8 PEM to a new file with mode 0600; never overwrite a key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path}: a key file already exists; refusing to overwrite it") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())


def generate_key(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    write_private_key(path, key)
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load an Ed25519 private key, refusing files readable by group or others."""
    try:
        pem = read_key_file(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: private key file not found") from None
    except KeyFileRefused as refused:
        raise ConfigError(f"{path}: private key file {refused.reason}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: expected an Ed25519 private key")
    return key


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return key.sign(message).hex()


def verify(public_key_raw: bytes, message: bytes, signature_hex: str) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key_raw).verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


#: ``Session.info`` member holding the workspace's :class:`OrgKeyPins` (its session factory sets it).
ORG_KEY_PINS = "likeness.org_key_pins"


def org_key_file(keys_dir: Path, org_slug: str) -> Path:
    """Where organisation ``org_slug``'s private key lives in a workspace's key folder."""
    return keys_dir / "orgs" / f"{org_slug}.pem"


class OrgKeyPins:
    """The organisation keys the workspace's own key files pin: an ``org.created`` event's key
    counts only when ``keys/orgs/<slug>.pem`` holds its private half. A database editor can
    append an ``org.created`` with a key of their own; they cannot write the key folder.

    The public key is derived from the private key rather than kept in a file beside it: every
    workspace already has that file, it cannot disagree with what the organisation signs with,
    and only a process that may read the organisation's key (its own account, ``keyfiles``)
    verifies as that workspace. ``None`` (a session not from a workspace) pins nothing."""

    def __init__(self, keys_dir: Path | None) -> None:
        self._keys_dir = keys_dir
        self._lock = threading.Lock()
        # slug -> (file identity, fingerprint or why none); a replaced file is read again
        self._seen: dict[str, tuple[tuple[int, int, int], str | None, str | None]] = {}

    def problem(self, org_slug: object, fingerprint_on_ledger: str) -> str | None:
        """``None`` when the workspace's key file for ``org_slug`` is the key whose fingerprint
        the ``org.created`` event records; else why the event's key is not pinned."""
        if self._keys_dir is None:
            return "no organisation key folder pins it (not opened as a workspace)"
        # a slug is a plain file name (what Registry.add_org allows), never a path out of the folder
        if not isinstance(org_slug, str) or Path(org_slug).name != org_slug or org_slug in ("", ".", ".."):
            return f"its slug {org_slug!r} names no key file"
        path = org_key_file(self._keys_dir, org_slug)
        try:
            found = os.stat(path)
        except (OSError, ValueError):
            return f"{path} does not exist: no key file of this workspace pins it"
        identity = (found.st_ino, found.st_mtime_ns, found.st_size)
        with self._lock:
            seen = self._seen.get(org_slug)
        if seen is None or seen[0] != identity:
            try:
                pinned, why = fingerprint(public_raw(load_private_key(path))), None
            except ConfigError as exc:
                pinned, why = None, str(exc)
            seen = (identity, pinned, why)
            with self._lock:
                self._seen[org_slug] = seen
        if seen[1] is None:
            return f"{seen[2]}: it pins nothing"
        if seen[1] != fingerprint_on_ledger:
            return f"{path} holds another key ({seen[1][:20]}…): the workspace does not pin this one"
        return None
