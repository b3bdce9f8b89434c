"""Consent requests and the signed answers that come back from the rights holder's own machine.

The organisation drafts a **request** (``likeness consent request``): the exact canonical payload
the policy engine verifies later (``likeness.grant.v1`` or ``likeness.release.v1``, the same
members ``registry.grant_payload`` / ``release_payload`` rebuild from a row), plus what the
holder needs to read it (who asks, for whom, the preview stills' digests). The holder signs the
RFC 8785 bytes of ``payload`` on their own machine (``likeness holder sign``) and hands back a
**signed consent**; the organisation imports it (``likeness consent import``), which checks it
against the request on the ledger and the holder's registered public key. A holder's revocation
is a signed consent too, with no request (the holder starts it).

This module is plain data and pure functions (no database, no keys): the holder's machine uses
it without a workspace. Example::

    request = ConsentRequest.from_json(json.loads(Path("request.json").read_text()))
    for line in describe(request):
        print(line)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from likeness.consent.canonical import canonical_bytes, canonical_sha256
from likeness.consent.vocabulary import PROHIBITED_USES, normalise_use
from likeness.errors import ConsentError, ConsentRequestError

# Request file types, per kind (the grant one is also the portal's, branch portal's requests.py).
REQUEST_TYPES = {"grant": "likeness.grant-request.v1", "release": "likeness.release-request.v1"}
SIGNED_TYPE = "likeness.signed-consent.v1"
GRANT_TYPE = "likeness.grant.v1"
RELEASE_TYPE = "likeness.release.v1"
ROTATION_TYPE = "likeness.holder-key-rotation.v1"
REVOCATION_TYPES = {"likeness.grant-revocation.v1": "grant", "likeness.release-revocation.v1": "release"}

# The members of each payload a holder signs (what ``registry.grant_payload`` etc. build).
PAYLOAD_MEMBERS: dict[str, frozenset[str]] = {
    GRANT_TYPE: frozenset(
        {
            "type",
            "grant_id",
            "subject_id",
            "org_id",
            "holder_id",
            "holder_fingerprint",
            "uses",
            "valid_from",
            "valid_until",
            "max_renders",
            "allow_unlabelled",
            "purpose",
            "issued_at",
        }
    ),
    RELEASE_TYPE: frozenset(
        {
            "type",
            "release_id",
            "performer_id",
            "org_id",
            "holder_id",
            "holder_fingerprint",
            "valid_from",
            "valid_until",
            "purpose",
            "issued_at",
        }
    ),
    "likeness.grant-revocation.v1": frozenset({"type", "grant_id", "revoked_at", "reason"}),
    "likeness.release-revocation.v1": frozenset({"type", "release_id", "revoked_at", "reason"}),
    ROTATION_TYPE: frozenset(
        {
            "type",
            "holder_id",
            "previous_fingerprint",
            "previous_public_key",
            "key_fingerprint",
            "public_key",
            "rotated_at",
        }
    ),
}

# Plain-language names of the uses, as the holder reads them.
USE_WORDS = {
    "training": "training a face model (no finished media)",
    "music_video": "music videos",
    "virtual_stage": "virtual-stage performances",
    "fan_message": "personalised fan messages",
    "advertising": "advertising",
    "tribute": "tributes",
}


def preview_sha256(path: Path) -> str:
    """The SHA-256 of a preview still, as a request names it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class ConsentRequest:
    """What the organisation asks a rights holder to sign.

    ``payload``: exactly what is signed and what the policy engine re-verifies (a grant or
    release payload); ``organisation``, ``subject``, ``holder``: ``{id, slug, name, kind}``
    records for the holder to read (``holder`` carries the ``key_fingerprint`` the request is
    addressed to); ``preview_sha256``: digests of the preview stills. Member names follow the
    portal's grant request (``request_id``, ``preview_sha256``, ``requested_at``; the grant's
    own members are those of the payload).
    """

    payload: dict[str, Any]
    organisation: dict[str, Any]
    subject: dict[str, Any]
    holder: dict[str, Any]
    preview_sha256: tuple[str, ...] = ()
    requested_at: str = ""

    @property
    def kind(self) -> str:
        """``grant`` or ``release``."""
        return "grant" if self.payload.get("type") == GRANT_TYPE else "release"

    @property
    def record_id(self) -> str:
        return str(self.payload[f"{self.kind}_id"])

    @property
    def payload_sha256(self) -> str:
        return canonical_sha256(self.payload)

    def as_json(self) -> dict[str, Any]:
        return {
            "type": REQUEST_TYPES[self.kind],
            "request_id": self.record_id,
            "payload": self.payload,
            "payload_sha256": self.payload_sha256,
            "organisation": self.organisation,
            "subject": self.subject,
            "holder": self.holder,
            "preview_sha256": list(self.preview_sha256),
            "requested_at": self.requested_at,
        }

    @classmethod
    def from_json(cls, data: Any) -> ConsentRequest:
        """Parse a request file's JSON; ``ConsentRequestError`` naming what is wrong. A
        ``payload_sha256`` that is not the payload's digest means the file was changed."""
        body = _mapping(data, "request")
        if body.get("type") not in REQUEST_TYPES.values():
            raise ConsentRequestError(f"not a likeness grant or release request (type {body.get('type')!r})")
        payload = _payload(body.get("payload"), (GRANT_TYPE, RELEASE_TYPE))
        kind = "grant" if payload["type"] == GRANT_TYPE else "release"
        if body.get("type") != REQUEST_TYPES[kind] or body.get("request_id") != payload.get(f"{kind}_id"):
            raise ConsentRequestError("the request's type or request_id does not match its payload")
        if body.get("payload_sha256") != canonical_sha256(payload):
            raise ConsentRequestError(
                "the request's payload does not match its payload_sha256: it was changed after it was drafted"
            )
        stills = body.get("preview_sha256") or []
        if not isinstance(stills, list) or not all(_is_hex(d, 64) for d in stills):
            raise ConsentRequestError("the request's preview_sha256 is not a list of SHA-256 digests")
        return cls(
            payload=payload,
            organisation=dict(_mapping(body.get("organisation"), "organisation")),
            subject=dict(_mapping(body.get("subject"), "subject")),
            holder=dict(_mapping(body.get("holder"), "holder")),
            preview_sha256=tuple(stills),
            requested_at=str(body.get("requested_at", "")),
        )


@dataclass(frozen=True)
class SignedConsent:
    """A payload signed on the holder's machine: a request's payload (``request`` set) or a
    revocation the holder started (``request`` ``None``). ``public_key``: the raw Ed25519 key
    (hex) that signed, so an import can say *which* key signed when it is not the holder's."""

    payload: dict[str, Any]
    signature: str
    public_key: str
    signed_at: str
    request: ConsentRequest | None = field(default=None)

    @property
    def payload_type(self) -> str:
        return str(self.payload["type"])

    def message(self) -> bytes:
        """The bytes that were signed: the RFC 8785 canonical payload."""
        return canonical_bytes(self.payload)

    def as_json(self) -> dict[str, Any]:
        return {
            "type": SIGNED_TYPE,
            "payload": self.payload,
            "signature": self.signature,
            "public_key": self.public_key,
            "signed_at": self.signed_at,
            "request": self.request.as_json() if self.request else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> SignedConsent:
        body = _mapping(data, "signed consent")
        if body.get("type") != SIGNED_TYPE:
            raise ConsentRequestError(f"not a signed likeness consent (type {body.get('type')!r})")
        payload = _payload(body.get("payload"), tuple(PAYLOAD_MEMBERS))
        signature, public_key = body.get("signature"), body.get("public_key")
        if not _is_hex(signature, 128):
            raise ConsentRequestError("the signed consent's signature is not a 64-byte hex Ed25519 signature")
        if not _is_hex(public_key, 64):
            raise ConsentRequestError("the signed consent's public_key is not a 32-byte hex Ed25519 key")
        raw_request = body.get("request")
        request = ConsentRequest.from_json(raw_request) if raw_request is not None else None
        return cls(payload, str(signature), str(public_key), str(body.get("signed_at", "")), request)


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConsentRequestError(f"the {what} is not a JSON object")
    return value


def _is_hex(value: Any, length: int) -> bool:
    if not isinstance(value, str) or len(value) != length:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


def _payload(value: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    """``value`` if it is a payload of an ``allowed`` type with exactly its members."""
    payload = dict(_mapping(value, "payload"))
    kind = payload.get("type")
    if kind not in allowed:
        raise ConsentRequestError(f"payload type {kind!r} is not one of {', '.join(sorted(allowed))}")
    members = PAYLOAD_MEMBERS[str(kind)]
    missing, extra = members - payload.keys(), payload.keys() - members
    if missing or extra:
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(sorted(missing))}" if missing else "",
                f"unexpected {', '.join(sorted(extra))}" if extra else "",
            )
            if part
        )
        raise ConsentRequestError(f"{kind} payload: {detail}")
    return payload


def check_grantable(payload: Mapping[str, Any]) -> None:
    """Refuse a grant payload that names a prohibited or unknown use (``ConsentError``
    ``prohibited_use`` / ``unknown_use``), whoever signed it: DESIGN invariant 2."""
    uses = payload.get("uses")
    if not isinstance(uses, list) or not uses or not all(isinstance(u, str) for u in uses):
        raise ConsentRequestError("a grant payload's uses must be a non-empty list of use names")
    prohibited = [u for u in uses if u in PROHIBITED_USES]
    if prohibited:
        raise ConsentError(
            "prohibited_use",
            f"the grant names {', '.join(prohibited)}: a prohibited use can never be granted, whoever signs it",
        )
    for use in uses:
        if normalise_use(use) != use:  # prohibited aliases and unknown uses raise here
            raise ConsentRequestError(f"use '{use}' is not written in its canonical form")


def payload_differences(signed: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """The members whose values differ between two payloads, e.g. ``uses: ['training'] -> [...]``."""
    out = []
    for member in sorted(set(signed) | set(requested)):
        if signed.get(member) != requested.get(member):
            out.append(f"{member}: requested {requested.get(member)!r}, signed {signed.get(member)!r}")
    return out


def describe(request: ConsentRequest) -> list[str]:
    """The request in plain language, one line each, for the holder to read before signing."""
    p = request.payload
    org = request.organisation.get("name") or request.organisation.get("slug")
    subject = request.subject.get("name") or request.subject.get("slug")
    holder = request.holder.get("name") or request.holder.get("slug")
    lines = []
    if request.kind == "grant":
        uses = [USE_WORDS.get(u, u) for u in p.get("uses", [])]
        lines.append(f"{org} asks {holder} for consent to use the face and likeness of {subject}.")
        lines.append(f"Uses: {', '.join(uses)}.")
        not_asked = [USE_WORDS[u] for u in USE_WORDS if u not in p.get("uses", [])]
        if not_asked:
            lines.append(f"Not asked for (they may not use it for these): {', '.join(not_asked)}.")
        limit = p.get("max_renders")
        lines.append(f"At most {limit} rendered videos or images." if limit else "No limit on the number of renders.")
        lines.append(
            "The visible 'AI-generated' label MAY BE LEFT OFF (the invisible watermark and signed C2PA stay)."
            if p.get("allow_unlabelled")
            else "Every output will carry a visible 'AI 생성 · AI-generated' label."
        )
    else:
        lines.append(f"{org} asks {holder} to release the footage of {subject} as a face-swap target.")
    lines.append(f"Valid from {p.get('valid_from')} until {p.get('valid_until')} (UTC).")
    lines.append(f"Purpose: {p.get('purpose') or '(none given)'}")
    if request.kind == "grant":
        lines.append(f"Never grantable, whatever anyone signs: {', '.join(PROHIBITED_USES)}.")
    for digest in request.preview_sha256:
        lines.append(f"Preview still sha256 {digest} (check the stills with --previews FOLDER)")
    lines.append(f"Addressed to key {p.get('holder_fingerprint')}; request id {request.record_id}.")
    return lines


def preview_problems(request: ConsentRequest, folder: Path) -> list[str]:
    """The request's preview digests that no file in ``folder`` has (the stills the holder was
    sent must be the ones the request names)."""
    present = {preview_sha256(p) for p in sorted(folder.iterdir()) if p.is_file()} if folder.is_dir() else set()
    return [f"no still in {folder} has sha256 {digest}" for digest in request.preview_sha256 if digest not in present]
