"""Ed25519 keys for rights holders, performers and organisations.

Private keys live only in files created with mode 0600; the database stores public keys and
fingerprints. Nothing here logs key material.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from likeness.durable import write_atomic
from likeness.errors import ConfigError
from likeness.keyfiles import KeyFileRefused, read_key_file


def fingerprint(public_raw: bytes) -> str:
    """SHA-256 fingerprint of the raw 32-byte public key, as ``ed25519:<hex>``."""
    return "ed25519:" + hashlib.sha256(public_raw).hexdigest()


def public_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# The PEM labels of the two halves: each tells a file given for the other apart.
_PUBLIC_PEM = b"-----BEGIN PUBLIC KEY-----"
_PRIVATE_PEM = b"-----BEGIN PRIVATE KEY-----"
_KEYGEN_PAIR = "'likeness holder keygen' wrote NAME.pem, the private key, and NAME.pub.pem, the public one"


def public_raw_from_pem(pem: bytes) -> bytes:
    """The raw 32-byte key of an Ed25519 public key in PEM (``ConfigError`` for anything else)."""
    if pem.lstrip().startswith(_PRIVATE_PEM):
        raise ConfigError(
            f"holder public key: this is a private key, which never leaves the holder's machine; {_KEYGEN_PAIR}: "
            "give the .pub.pem"
        )
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
        write_atomic(path, pem, mode=0o600, overwrite=False)
    except FileExistsError:
        raise ConfigError(f"{path}: a key file already exists; refusing to overwrite it") from None


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
        if _holds_public_key(path):  # a .pub.pem is 0644: its mode is not what is wrong with it
            raise _public_key_given(path) from None
        raise ConfigError(f"{path}: private key file {refused.reason}") from None
    if pem.lstrip().startswith(_PUBLIC_PEM):
        raise _public_key_given(path)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: expected an Ed25519 private key")
    return key


def _holds_public_key(path: Path) -> bool:
    """Whether the file at ``path`` begins as a PEM public key does; read without blocking, as
    key files are. Only for naming a refused file: it is never used as a key."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(descriptor).st_mode) and os.read(descriptor, 64).lstrip().startswith(_PUBLIC_PEM)
    except OSError:
        return False
    finally:
        os.close(descriptor)


def _public_key_given(path: Path) -> ConfigError:
    return ConfigError(f"{path}: a public key, where the private key goes; {_KEYGEN_PAIR}: give the .pem")


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


def org_pin_file(keys_dir: Path, org_slug: str) -> Path:
    """Where organisation ``org_slug``'s public-key pin lives beside its private key."""
    return keys_dir / "orgs" / f"{org_slug}.pub"


def write_org_pin(keys_dir: Path, org_slug: str, key: Ed25519PrivateKey) -> Path:
    """Write (or replace, atomically) the public-key pin of organisation ``org_slug``: the PEM
    public key of ``key``, mode 0644, so that a copy of the workspace without the private key
    (an auditor's, another account's) still knows which key is the organisation's."""
    path = org_pin_file(keys_dir, org_slug)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_atomic(
        path,
        pem,
        mode=0o644,
        error=lambda exc: ConfigError(f"{path}: cannot write the organisation's public key pin ({exc.strerror})"),
    )
    return path


def write_missing_org_pins(keys_dir: Path) -> list[Path]:
    """The pins ``write_org_pin`` writes for each organisation private key in ``keys_dir`` that
    has none (a workspace made before pins): the private key is the source, so this is safe to
    repeat. A private key that does not load is left for ``audit verify`` to name."""
    written = []
    for private in sorted((keys_dir / "orgs").glob("*.pem")):
        if org_pin_file(keys_dir, private.stem).exists():
            continue
        try:
            key = load_private_key(private)
        except ConfigError:
            continue
        written.append(write_org_pin(keys_dir, private.stem, key))
    return written


def _workspace_account(keys_dir: Path) -> int:
    """The account that owns the workspace folder the key folder is in: whoever may write that
    folder may replace the key folder, but not change who owns the workspace folder."""
    return os.stat(keys_dir.parent).st_uid


def _placement_problem(found: os.stat_result, what: str, account: int) -> str | None:
    """Why a pin, or a folder it is in, was not put there by the workspace's ``account``: owned
    by another account, or open to writing by group or others."""
    if found.st_uid != account:
        return f"{what} is owned by another account (uid {found.st_uid}) than the workspace folder (uid {account})"
    mode = stat.S_IMODE(found.st_mode)
    if mode & 0o022:
        return f"{what} may be written by others (mode {mode:04o})"
    return None


def _pin_folder_problem(keys_dir: Path, account: int) -> str | None:
    """Why the pins under ``keys_dir`` cannot be trusted (``None``: they can): the key folder
    and its ``orgs`` folder must be real folders (not links) of the workspace's account that no
    one else may write. Whoever may write the workspace folder but not the key folder can move
    the key folder aside and make another, linking the organisations' private keys back into
    it, with a pin of their own beside them; their folder is theirs."""
    for folder in (keys_dir, keys_dir / "orgs"):
        try:
            found = os.lstat(folder)
        except OSError as exc:
            return f"{folder}: cannot be read ({exc.strerror})"
        if not stat.S_ISDIR(found.st_mode):
            return f"{folder} is not a folder (a link or a file)"
        why = _placement_problem(found, str(folder), account)
        if why:
            return why
    return None


def _read_org_pin(path: Path) -> str:
    """The fingerprint of the Ed25519 public key in pin file ``path`` (``ConfigError`` naming
    it when it is not one, or when the workspace's account did not put it there:
    ``read_placed_file``); ``FileNotFoundError`` when there is none."""
    pem = read_placed_file(path, "organisation key pin")
    try:
        pub = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: organisation key pin is not a PEM public key ({exc})") from None
    if not isinstance(pub, Ed25519PublicKey):
        raise ConfigError(f"{path}: organisation key pin is not an Ed25519 public key")
    return fingerprint(public_raw(pub))


def read_placed_file(path: Path, what: str) -> bytes:
    """The bytes (64 KiB at most) of ``what``, a file the workspace keeps in its key folder's
    ``orgs`` folder for readers without its private keys (``ConfigError`` naming it when the
    workspace's account did not put it there: ``_pin_folder_problem``, ``_placement_problem``);
    ``FileNotFoundError`` when there is none. Opened without blocking and without following a
    link, so a FIFO or a link in its place is refused rather than waited on or followed."""
    keys_dir = path.parent.parent
    try:
        account = _workspace_account(keys_dir)
    except OSError as exc:
        raise ConfigError(f"{keys_dir.parent}: workspace folder cannot be read ({exc.strerror})") from None
    unplaced = _pin_folder_problem(keys_dir, account)
    if unplaced:
        raise ConfigError(f"{path}: {what} is not used: {unplaced}")
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{path}: {what} is a link, not the file the workspace wrote") from None
        raise ConfigError(f"{path}: {what} cannot be read ({exc.strerror})") from None
    try:
        found = os.fstat(descriptor)
        if not stat.S_ISREG(found.st_mode):
            raise ConfigError(f"{path}: {what} is not a regular file")
        unplaced = _placement_problem(found, "it", account)
        if unplaced:
            raise ConfigError(f"{path}: {what} is not used: {unplaced}")
        return os.read(descriptor, 64 * 1024)
    finally:
        os.close(descriptor)


def file_identity(path: Path) -> tuple[int, ...] | None:
    """What tells a file's version apart, down to its mode and owner (what the key-file rule
    reads): a chmod or chown changes neither its inode, size nor modification time."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return None
    return (found.st_ino, found.st_mtime_ns, found.st_ctime_ns, found.st_size, found.st_mode, found.st_uid)


class OrgKeyPins:
    """The organisation keys the workspace's own key files pin: an ``org.created`` event's key
    counts only when ``keys/orgs/<slug>.pem`` holds its private half or, where this process
    cannot read that file (a copy without private keys, another account), when the public-key
    pin ``keys/orgs/<slug>.pub`` beside it holds that key. A database editor can append an
    ``org.created`` with a key of their own; they cannot write the key folder. Where both files
    are read they must agree: a pin that names another key than the private one pins nothing,
    so a pin rewritten behind the workspace's back is named (``audit verify``) rather than
    trusted by auditors alone."""

    def __init__(self, keys_dir: Path) -> None:
        self._keys_dir = keys_dir
        self._lock = threading.Lock()
        # slug -> (both files' identities, fingerprint or None, why none); a replaced file is read again
        self._seen: dict[str, tuple[object, str | None, str | None]] = {}

    def problem(self, org_slug: object, fingerprint_on_ledger: str) -> str | None:
        """``None`` when the workspace's key files for ``org_slug`` pin the key whose
        fingerprint the ``org.created`` event records; else why the event's key is not pinned."""
        # a slug is a plain file name (what Registry.add_org allows), never a path out of the folder
        if not isinstance(org_slug, str) or Path(org_slug).name != org_slug or org_slug in ("", ".", ".."):
            return f"its slug {org_slug!r} names no key file"
        private, pin = org_key_file(self._keys_dir, org_slug), org_pin_file(self._keys_dir, org_slug)
        # (the folders too: a chmod or a folder put in the key folder's place is read again)
        identity = tuple(map(file_identity, (self._keys_dir, private.parent, private, pin)))
        with self._lock:
            seen = self._seen.get(org_slug)
        if seen is None or seen[0] != identity:
            pinned, why = _pinned_fingerprint(private, pin)
            seen = (identity, pinned, why)
            with self._lock:
                self._seen[org_slug] = seen
        if seen[1] is None:
            return seen[2]
        if seen[1] != fingerprint_on_ledger:
            return f"{seen[2]} holds another key ({seen[1][:20]}…): the workspace does not pin this one"
        return None


def _pinned_fingerprint(private: Path, pin: Path) -> tuple[str | None, str]:
    """``(fingerprint, the file it is from)`` the organisation's key files pin, or ``(None,
    why it pins nothing)``: the private key when this process can read it, else the public-key pin; both read
    and naming different keys pin nothing."""
    try:
        from_private: str | None = fingerprint(public_raw(load_private_key(private)))
        unreadable = ""
    except ConfigError as exc:
        from_private, unreadable = None, str(exc)
    try:
        from_pin: str | None = _read_org_pin(pin)
        pin_why = ""
    except FileNotFoundError:
        from_pin, pin_why = None, f"{pin} does not exist"
    except ConfigError as exc:
        from_pin, pin_why = None, str(exc)
    if from_private is not None:
        if from_pin is not None and from_pin != from_private:
            return None, (
                f"{pin} holds another key ({from_pin[:20]}…) than {private} ({from_private[:20]}…): "
                f"a pin that disagrees with the private key is refused (delete it; 'likeness init' writes "
                f"it again from the private key): it pins nothing"
            )
        return from_private, str(private)
    if from_pin is not None:
        return from_pin, str(pin)
    if not private.exists() and not pin.exists():
        return None, f"{private} does not exist: no key file of this workspace pins it"
    return None, f"{unreadable}; {pin_why}: it pins nothing"
