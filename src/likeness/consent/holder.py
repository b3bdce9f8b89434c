"""The rights holder's side of offline consent: their key and their signature, on their machine.

Nothing here opens a workspace or a database: ``likeness holder keygen`` / ``sign`` /
``revoke`` run on the holder's own (possibly air-gapped) machine, and only the public key and
the signed consent files travel to the organisation. A key is never written inside a likeness
workspace. Example::

    files = keygen(Path("~/likeness-keys").expanduser(), "mina")
    signed = sign_request(request, load_private_key(files.private_key))
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from likeness import strict_json
from likeness.config import resolve_user_path
from likeness.consent import keys
from likeness.consent.canonical import canonical_bytes, now_utc, utc_iso
from likeness.consent.grant_requests import (
    GRANT_TYPES,
    RELEASE_TYPES,
    ConsentRequest,
    SignedConsent,
    check_grantable,
    check_signable,
    check_uses_for_holder_kind,
)
from likeness.durable import write_atomic
from likeness.errors import ConfigError, ConsentError, ConsentRequestError

if TYPE_CHECKING:
    from likeness.consent.registry import Registry, SubjectRecord


@dataclass(frozen=True)
class HolderKeyFiles:
    private_key: Path  # PKCS#8 PEM, 0600: stays on the holder's machine
    public_key: Path  # SubjectPublicKeyInfo PEM: given to the organisation
    fingerprint: str


def workspace_around(folder: Path) -> Path | None:
    """The likeness workspace that ``folder`` is in (a folder holding ``keys/`` and either
    ``likeness.db`` or, on PostgreSQL, ``outputs/``: what ``Workspace.init`` makes), or ``None``."""
    for candidate in (folder, *folder.parents):
        marked = (candidate / "likeness.db").exists() or (candidate / "outputs").is_dir()
        if marked and (candidate / "keys").is_dir():
            return candidate
    return None


def refuse_inside_workspace(folder: Path, what: str) -> None:
    """``ConfigError`` when ``folder`` is inside a likeness workspace: a holder's private key
    there is one the organisation holds."""
    workspace = workspace_around(resolve_user_path(folder, f"give the {what}'s folder"))
    if workspace is not None:
        raise ConfigError(
            f"{folder}: inside the likeness workspace {workspace}; a rights holder's {what} must stay "
            f"on the holder's own machine, never in the organisation's workspace"
        )


def public_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def keygen(out: Path, name: str = "holder") -> HolderKeyFiles:
    """Create an Ed25519 key pair in ``out``: ``NAME.pem`` (private, 0600, folder 0700) and
    ``NAME.pub.pem`` (public). Refuses a folder inside a workspace and never overwrites a key."""
    refuse_inside_workspace(out, "private key")
    private_path, public_path = out / f"{name}.pem", out / f"{name}.pub.pem"
    if public_path.exists():
        raise ConfigError(f"{public_path}: a key file already exists; refusing to overwrite it")
    key = keys.generate_key(private_path)
    write_atomic(public_path, public_key_pem(key), overwrite=False)
    return HolderKeyFiles(private_path, public_path, keys.fingerprint(keys.public_raw(key)))


def load_holder_key(path: Path) -> Ed25519PrivateKey:
    """The holder's private key (0600 file); refused inside a workspace, also through a link."""
    refuse_inside_workspace(resolve_user_path(path, "give the private key file"), "private key")  # names the key file
    return keys.load_private_key(path)


def sign_request(request: ConsentRequest, key: Ed25519PrivateKey) -> SignedConsent:
    """Sign ``request``'s canonical payload with the holder's key.

    Refused when the request names a prohibited use (``prohibited_use``) or uses the holder's
    kind cannot grant (an estate: ``use_not_granted``), when it is addressed
    to another key (``signature_invalid``: the payload names the key that must sign it, which
    the organisation checks against the holder's registered key), when its payload no longer
    matches its digest (``ConsentRequestError``, raised when the file is read), or when it is a
    v1 request whose names the signature would not cover (``check_signable``).
    """
    check_signable(request)
    if request.kind == "grant":
        check_grantable(request.payload)
        check_uses_for_holder_kind(request.payload["uses"], str(request.payload["holder_kind"]))
    check_addressed(str(request.payload.get("holder_fingerprint")), key, "request")
    return _signed(request.payload, key, request)


def sign_revocation(signed: SignedConsent, key: Ed25519PrivateKey, *, reason: str = "") -> SignedConsent:
    """Revoke a grant or release the holder signed earlier (their ``signed`` file is the
    receipt that names it) with their key in force now. Effective when the organisation imports
    it, which checks the key against the ledger."""
    from likeness.consent.registry import revocation_payload

    kind = "grant" if signed.payload_type in GRANT_TYPES else "release"
    if signed.payload_type not in (*GRANT_TYPES, *RELEASE_TYPES):
        raise ConsentRequestError(f"{signed.payload_type}: only a signed grant or release can be revoked")
    payload = revocation_payload(kind, str(signed.payload[f"{kind}_id"]), utc_iso(now_utc()), reason)
    return _signed(payload, key, None)


def sign_rotation(signed: SignedConsent, key: Ed25519PrivateKey, new_public_key_pem: bytes) -> SignedConsent:
    """Move to a new key: the current ``key`` signs a ``likeness.holder-key-rotation.v1``
    naming the new public key (made on this machine). ``signed`` is any grant or release this
    holder signed (it names the holder). From the organisation's import on, only the new key
    signs for the holder; what the old key signed before stays valid."""
    from likeness.consent.registry import key_rotation_payload

    if signed.payload_type not in (*GRANT_TYPES, *RELEASE_TYPES):
        raise ConsentRequestError(f"{signed.payload_type}: a signed grant or release names the holder")
    new_raw = keys.public_raw_from_pem(new_public_key_pem)
    if new_raw == keys.public_raw(key):
        raise ConsentRequestError("the new key is the current key")
    payload = key_rotation_payload(
        holder_id=str(signed.payload["holder_id"]),
        previous_public_key=keys.public_raw(key).hex(),
        public_key=new_raw.hex(),
        rotated_at=utc_iso(now_utc()),
    )
    return _signed(payload, key, None)


def describe_vouch(statement: dict[str, Any]) -> list[str]:
    """A passkey registration statement in plain language, for the holder to read before
    vouching for it (what ``likeness holder vouch-passkey`` shows)."""
    return [
        "You vouch that this passkey is yours. From the organisation's import on it signs grants and revocations "
        "in your name, as your key does; vouch only for a passkey you just made on your own device.",
        f"Passkey {statement.get('key_fingerprint')} (credential {statement.get('credential_id')}, "
        f"label {statement.get('label')!r}).",
        f"Made for {statement.get('origin')} (rpId {statement.get('rp_id')}) at {statement.get('created_at')}.",
        f"Rights holder id {statement.get('holder_id')}; statement nonce {statement.get('nonce')}.",
        f"Addressed to key {statement.get('holder_fingerprint')}.",
    ]


def sign_vouch(statement: dict[str, Any], key: Ed25519PrivateKey) -> SignedConsent:
    """Vouch for a passkey registration statement (``passkeys.vouch_statement``) with the
    holder's key: ``ConsentRequestError`` for a statement that is not one,
    ``signature_invalid`` when it is addressed to another key."""
    from likeness.consent.passkeys import vouch_malformed

    why = vouch_malformed(statement)
    if why:
        raise ConsentRequestError(f"the passkey registration statement is refused: {why}")
    check_addressed(str(statement["holder_fingerprint"]), key, "statement")
    return _signed(statement, key, None)


def describe_adoption(body: dict[str, Any]) -> list[str]:
    """An adoption body in plain language, for the holder to read before signing it (what
    ``likeness holder sign-adoption`` shows)."""
    attested = body.get("attestation")
    how: dict[str, Any] = attested if isinstance(attested, dict) else {}
    return [
        "You confirm that this organisation enrolled you. From the organisation's import on it is the only one that "
        "may invite you to a passkey or recover your key; sign only for the agency you are with.",
        f"Organisation {body.get('org_name')!r} (id {body.get('org_id')}, key {body.get('org_fingerprint')}).",
        "Another agency of the workspace could draft this under a name like your agency's: sign only if this key "
        "is the fingerprint your agency gave you itself (in person or on paper).",
        f"Checked by {how.get('verified_by')} ({how.get('method')}): {how.get('statement')}.",
        f"Rights holder id {body.get('holder_id')}; addressed to key {body.get('holder_fingerprint')}; "
        f"drafted at {body.get('adopted_at')}.",
    ]


def sign_adoption(body: dict[str, Any], key: Ed25519PrivateKey) -> SignedConsent:
    """Sign an adoption body (``Registry.request_adoption``) with the holder's key:
    ``ConsentRequestError`` for a body that is not one, ``signature_invalid`` when it is
    addressed to another key. The organisation countersigns it when it imports it."""
    from likeness.consent.registry import adoption_malformed

    why = adoption_malformed(body)
    if why:
        raise ConsentRequestError(f"the holder adoption is refused: {why}")
    check_addressed(str(body["holder_fingerprint"]), key, "adoption")
    return _signed(body, key, None)


def check_addressed(addressed: str, key: Ed25519PrivateKey, what: str) -> None:
    """``signature_invalid`` unless ``key`` is the one a statement is addressed to."""
    fingerprint = keys.fingerprint(keys.public_raw(key))
    if addressed != fingerprint:
        raise ConsentError(
            "signature_invalid",
            f"this {what} is addressed to key {addressed}; the key given is {fingerprint}: sign with the key "
            f"whose public half the organisation registered",
        )


def _signed(payload: dict[str, Any], key: Ed25519PrivateKey, request: ConsentRequest | None) -> SignedConsent:
    return SignedConsent(
        payload=payload,
        signature=keys.sign(key, canonical_bytes(payload)),
        public_key=keys.public_raw(key).hex(),
        signed_at=utc_iso(now_utc()),
        request=request,
    )


class HolderMachine:
    """A holder's machine played in one process (the demo, tests, benchmarks): a folder
    *outside* the workspace holding one key per holder, signing with the same functions as
    ``likeness holder``. A real holder runs those commands on a machine of their own."""

    def __init__(self, folder: Path) -> None:
        refuse_inside_workspace(folder, "keys")
        self.folder = folder

    @classmethod
    def beside(cls, home: Path) -> HolderMachine:
        """The holder machine of the workspace at ``home``: a sibling folder, never inside it."""
        return cls(home.parent / f"{home.name}-holder-machine")

    def key_path(self, name: str) -> Path:
        return self.folder / f"{name}.pem"

    def public_key(self, name: str) -> bytes:
        """The public key PEM of ``name``'s key, made on first use."""
        public = self.folder / f"{name}.pub.pem"
        if not public.exists():
            keygen(self.folder, name)
        return public.read_bytes()

    def key(self, name: str) -> Ed25519PrivateKey:
        return load_holder_key(self.key_path(name))

    def sign(self, request: ConsentRequest, name: str | None = None) -> SignedConsent:
        """Sign as holder ``name`` (default: the request's holder slug); the signed file is kept
        as the holder's receipt (``receipts/ID.json``), which ``revoke`` names later."""
        signed = sign_request(request, self.key(name or str(request.holder["slug"])))
        receipts = self.folder / "receipts"
        receipts.mkdir(exist_ok=True)
        write_atomic(receipts / f"{request.record_id}.json", json.dumps(signed.as_json()).encode("utf-8"))
        return signed

    def receipt(self, record_id: str) -> SignedConsent:
        path = self.folder / "receipts" / f"{record_id}.json"
        if not path.is_file():
            raise ConfigError(f"{path}: no receipt of a signed grant or release {record_id} on this machine")
        return SignedConsent.from_json(strict_json.loads(path.read_text(encoding="utf-8")))

    def revoke(self, record_id: str, *, name: str | None = None, reason: str = "") -> SignedConsent:
        """Sign the revocation of the grant or release ``record_id`` this machine signed, with
        key ``name`` (default: the request's holder slug; after a key change, the new key)."""
        signed = self.receipt(record_id)
        holder = name or (str(signed.request.holder["slug"]) if signed.request else "")
        return sign_revocation(signed, self.key(holder), reason=reason)

    def rotate(self, record_id: str, name: str, new_name: str) -> SignedConsent:
        """Sign, with key ``name``, the move to key ``new_name`` (made here on first use), for the
        holder of the grant or release ``record_id`` this machine signed."""
        return sign_rotation(self.receipt(record_id), self.key(name), self.public_key(new_name))

    # --- both sides in one script (benchmarks, tests): request here, sign there, import --------
    def enrol(self, registry: Registry, slug: str, name: str, **options: Any) -> SubjectRecord:
        """``registry.add_subject`` with a new holder (``SLUG-holder``) whose key is made here."""
        if options.get("holder") is None and "holder_public_key_pem" not in options:
            options["holder_public_key_pem"] = self.public_key(f"{slug}-holder"[:64])
        return registry.add_subject(slug, name, **options)

    def grant(self, registry: Registry, subject: str, org: str, uses: Iterable[str], **options: Any) -> str:
        """Request a grant in ``registry``, sign it here, import it; returns the grant id."""
        return registry.import_signed(self.sign(registry.request_grant(subject, org, uses, **options)))

    def release(self, registry: Registry, performer: str, org: str, **options: Any) -> str:
        return registry.import_signed(self.sign(registry.request_release(performer, org, **options)))
