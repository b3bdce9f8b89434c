"""Ed25519 keys for rights holders, performers and organisations.

Private keys live only in files created with mode 0600; the database stores public keys and
fingerprints. Nothing here logs key material.
"""

from __future__ import annotations

import hashlib
import os
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
