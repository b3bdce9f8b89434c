"""Passkey (WebAuthn) signatures on consent records: what is stored, and how it is re-verified.

A rights holder signs a grant (or its revocation) with a passkey on their own device: the
WebAuthn challenge is the SHA-256 of the record's RFC 8785 canonical payload
(``requests.signing_challenge``). The ledger event keeps the whole assertion (credential id,
authenticatorData, clientDataJSON, signature) and the credential's COSE public key; the row
keeps the assertion's digest in its ``signature`` column. The policy engine re-verifies the
assertion at every use (``assertion_problem``), against the passkey as the holder registered it
on the ledger (``holder.passkey_registered``): credential, origin, rpId, user presence and
verification, signature, challenge, and the signature counter.

Pure functions only; ``integrity.LedgerConsent`` supplies the ledger's passkeys and counters.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from webauthn.helpers import decode_credential_public_key, parse_authenticator_data
from webauthn.helpers.decoded_public_key_to_cryptography import decoded_public_key_to_cryptography
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.verify_signature import verify_signature

from likeness import strict_json
from likeness.consent.canonical import canonical_sha256
from likeness.consent.grant_requests import VOUCH_TYPE

#: A holder fingerprint that names a passkey (the SHA-256 of its COSE public key).
PASSKEY_PREFIX = "webauthn:"
#: The ``holder.created`` key fingerprint of a holder who signs with passkeys only: no Ed25519
#: key exists for them anywhere, so no key file can sign in their name.
PASSKEY_ONLY = "passkey-only"
#: Rights-holder passkey events on the ledger.
PASSKEY_REGISTERED = "holder.passkey_registered"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64url text")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def passkey_fingerprint(cose_public_key: bytes) -> str:
    return PASSKEY_PREFIX + hashlib.sha256(cose_public_key).hexdigest()


def is_passkey_fingerprint(fingerprint: Any) -> bool:
    return isinstance(fingerprint, str) and fingerprint.startswith(PASSKEY_PREFIX)


@dataclass(frozen=True)
class Assertion:
    """A WebAuthn assertion (``navigator.credentials.get()``'s response) and the COSE public
    key of the credential that made it."""

    credential_id: bytes
    authenticator_data: bytes
    client_data_json: bytes
    signature: bytes
    public_key: bytes

    def as_payload(self) -> dict[str, str]:
        return {
            "credential_id": b64url(self.credential_id),
            "authenticator_data": b64url(self.authenticator_data),
            "client_data_json": b64url(self.client_data_json),
            "signature": b64url(self.signature),
            "public_key": b64url(self.public_key),
        }

    @classmethod
    def from_payload(cls, payload: Any) -> Assertion:
        """``ValueError`` for anything that is not a complete assertion."""
        if not isinstance(payload, dict):
            raise ValueError("the passkey member is not an object")
        try:
            return cls(
                credential_id=unb64url(payload["credential_id"]),
                authenticator_data=unb64url(payload["authenticator_data"]),
                client_data_json=unb64url(payload["client_data_json"]),
                signature=unb64url(payload["signature"]),
                public_key=unb64url(payload["public_key"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the passkey assertion is malformed ({exc})") from None

    def digest(self) -> str:
        """What the record row's ``signature`` column holds for a passkey signature."""
        return canonical_sha256(self.as_payload())

    def sign_count(self) -> int:
        return parse_authenticator_data(self.authenticator_data).sign_count


@dataclass(frozen=True)
class Passkey:
    """A passkey as its holder registered it on the ledger (``holder.passkey_registered``)."""

    holder_id: str
    credential_id: bytes
    public_key: bytes
    rp_id: str
    origin: str
    sign_count: int
    seq: int
    label: str
    #: the ledger row of the passkey or key recovery that retired it (it signs nothing from there on)
    retired_seq: int | None = None

    def in_force_at(self, seq: int) -> bool:
        """Whether the passkey may sign a record on ledger row ``seq``."""
        return self.seq < seq and (self.retired_seq is None or seq < self.retired_seq)

    @property
    def fingerprint(self) -> str:
        return passkey_fingerprint(self.public_key)


def _credential_fields(
    credential_id: bytes, public_key: bytes, rp_id: str, origin: str, sign_count: int, label: str
) -> dict[str, Any]:
    """The new passkey as both signed registration payloads name it."""
    return {
        "credential_id": b64url(credential_id),
        "public_key": b64url(public_key),
        "key_fingerprint": passkey_fingerprint(public_key),
        "rp_id": rp_id,
        "origin": origin,
        "sign_count": sign_count,
        "label": label,
    }


def registration_payload(
    *,
    holder_id: str,
    credential_id: bytes,
    public_key: bytes,
    rp_id: str,
    origin: str,
    sign_count: int,
    label: str,
    invitation_id: str | None,
    org_id: str | None,
    org_fingerprint: str | None,
    registered_at: str,
) -> dict[str, Any]:
    """What vouches for a new passkey, signed: the organisation's key for a passkey registered
    through its invitation (``org_id``, ``org_fingerprint``), or an assertion by a passkey the
    holder already has (a recovery passkey; both ``None``). The ``holder.passkey_registered``
    event is this payload with ``signature`` (and ``passkey``: the assertion)."""
    return {
        "holder_id": holder_id,
        **_credential_fields(credential_id, public_key, rp_id, origin, sign_count, label),
        "invitation_id": invitation_id,
        "org_id": org_id,
        "org_fingerprint": org_fingerprint,
        "registered_at": registered_at,
    }


def vouch_statement(
    *,
    holder_id: str,
    holder_fingerprint: str,
    credential_id: bytes,
    public_key: bytes,
    rp_id: str,
    origin: str,
    sign_count: int,
    label: str,
    created_at: str,
    nonce: str,
) -> dict[str, Any]:
    """The registration statement a holder who signs offline vouches for with their Ed25519 key
    (``holder_fingerprint``: the key it is addressed to): this passkey is theirs. Signed, it is
    the body of the ``holder.passkey_registered`` event (plus ``signature``); the ``nonce``
    makes each statement one of a kind."""
    return {
        "type": VOUCH_TYPE,
        "holder_id": holder_id,
        "holder_fingerprint": holder_fingerprint,
        **_credential_fields(credential_id, public_key, rp_id, origin, sign_count, label),
        "created_at": created_at,
        "nonce": nonce,
    }


def vouch_malformed(statement: Any) -> str | None:
    """``None`` if ``statement`` is exactly what ``vouch_statement`` builds from its own
    members, addressed to an Ed25519 key, with a COSE public key that decodes; else why not."""
    if not isinstance(statement, dict) or statement.get("type") != VOUCH_TYPE:
        return f"it is not a passkey vouch ({VOUCH_TYPE})"
    try:
        count = statement["sign_count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return "its sign_count is not a count"
        public_key = unb64url(statement["public_key"])
        rebuilt = vouch_statement(
            holder_id=str(statement["holder_id"]),
            holder_fingerprint=str(statement["holder_fingerprint"]),
            credential_id=unb64url(statement["credential_id"]),
            public_key=public_key,
            rp_id=str(statement["rp_id"]),
            origin=str(statement["origin"]),
            sign_count=count,
            label=str(statement["label"]),
            created_at=str(statement["created_at"]),
            nonce=str(statement["nonce"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        return f"it is malformed ({exc})"
    if rebuilt != statement:
        return "it is malformed (a member is not what its others make it)"
    if is_passkey_fingerprint(statement["holder_fingerprint"]) or statement["holder_fingerprint"] == PASSKEY_ONLY:
        return "it is not addressed to an Ed25519 key"
    if len(str(statement["nonce"])) < 16:
        return "its nonce is too short"
    try:
        decode_credential_public_key(public_key)
    except (WebAuthnException, ValueError, KeyError, TypeError):
        return "its public key is not a COSE key"
    return None


def passkey_of_event(payload: dict[str, Any], seq: int) -> Passkey | None:
    """The passkey a ``holder.passkey_registered`` event records (``None``: malformed)."""
    try:
        public_key = unb64url(payload["public_key"])
        if payload.get("key_fingerprint") != passkey_fingerprint(public_key):
            return None
        return Passkey(
            holder_id=str(payload["holder_id"]),
            credential_id=unb64url(payload["credential_id"]),
            public_key=public_key,
            rp_id=str(payload["rp_id"]),
            origin=str(payload["origin"]),
            sign_count=int(payload["sign_count"]),
            seq=seq,
            label=str(payload.get("label") or "primary"),
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class PasskeyFinding:
    """Why an assertion does not sign what it is stored with (a ``ConsentReason`` and why)."""

    reason: str
    detail: str


def assertion_problem(assertion: Assertion, passkey: Passkey, challenge: bytes) -> PasskeyFinding | None:
    """``None`` if ``assertion`` is ``passkey``'s, made on its origin and rpId with the user
    present and verified, and signs ``challenge``; else the first failure:
    ``credential_not_holders``, ``wrong_origin``, ``wrong_rp``, ``user_not_verified``,
    ``signature_invalid`` or ``challenge_mismatch`` (the caller says whether that is an altered
    record or a replayed assertion)."""
    if assertion.credential_id != passkey.credential_id or assertion.public_key != passkey.public_key:
        return PasskeyFinding("credential_not_holders", "the assertion's credential is not the registered passkey")
    try:
        client = strict_json.loads(assertion.client_data_json)
        data = parse_authenticator_data(assertion.authenticator_data)
    except (ValueError, WebAuthnException) as exc:
        return PasskeyFinding("signature_invalid", f"the assertion cannot be read ({exc})")
    if not isinstance(client, dict) or client.get("type") != "webauthn.get":
        return PasskeyFinding("signature_invalid", "the clientDataJSON is not an assertion's (webauthn.get)")
    if client.get("origin") != passkey.origin:
        return PasskeyFinding(
            "wrong_origin", f"it was made on {client.get('origin')!r}, the passkey belongs to {passkey.origin!r}"
        )
    if data.rp_id_hash != hashlib.sha256(passkey.rp_id.encode("utf-8")).digest():
        return PasskeyFinding("wrong_rp", f"its rpId hash is not the passkey's rpId {passkey.rp_id!r}")
    if not (data.flags.up and data.flags.uv):
        return PasskeyFinding("user_not_verified", "the authenticator did not verify the user (UV flag unset)")
    try:
        decoded = decode_credential_public_key(passkey.public_key)
        verify_signature(
            public_key=decoded_public_key_to_cryptography(decoded),
            signature_alg=decoded.alg,
            signature=assertion.signature,
            data=assertion.authenticator_data + hashlib.sha256(assertion.client_data_json).digest(),
        )
    except (InvalidSignature, WebAuthnException, ValueError, KeyError, TypeError):
        return PasskeyFinding("signature_invalid", "the assertion's signature does not verify with the passkey")
    try:
        signed = unb64url(str(client.get("challenge")))
    except ValueError:
        signed = b""
    if signed != challenge:
        return PasskeyFinding("challenge_mismatch", "the passkey signed another payload than the stored one")
    return None


def counter_problem(sign_count: int, earlier_counts: Iterable[int]) -> PasskeyFinding | None:
    """``counter_regressed`` when the authenticator keeps a counter and ``sign_count`` is not
    above every count the same credential showed earlier on the ledger (a cloned key)."""
    earlier = [c for c in earlier_counts if c > 0]
    if earlier and sign_count <= max(earlier):
        return PasskeyFinding(
            "counter_regressed",
            f"its signature counter {sign_count} is not above {max(earlier)}, seen earlier on the ledger",
        )
    return None
