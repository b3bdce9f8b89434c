"""Grant (and release) requests, the one request model both signing paths share, and the signed
answers that come back from the rights holder.

A grant request's **terms** (``GrantRequest``: subject, uses, validity window, render limit,
whether the visible label may be omitted, purpose, digests of preview stills) are what the
organisation asks, whichever way the holder signs: with a passkey in the portal (the WebAuthn
challenge is ``signing_challenge(payload)``, the SHA-256 of the RFC 8785 canonical bytes of the
``likeness.grant.v1`` payload) or offline with an Ed25519 key (``likeness holder sign
REQUEST.json``). Both put the same ``grant.requested`` event on the ledger
(``requested_event``) and read old events of either earlier shape (``requested_from_event``).

For offline signing the organisation sends a **request file** (``ConsentRequest``): the exact canonical payload
the policy engine verifies later (``likeness.grant.v1`` or ``likeness.release.v1``, the same
members ``registry.grant_payload`` / ``release_payload`` rebuild from a row), plus what the
holder needs to read it (who asks, for whom, the preview stills' digests). The holder signs the
RFC 8785 bytes of ``payload`` on their own machine (``likeness holder sign``) and hands back a
**signed consent**; the organisation imports it (``likeness consent import``), which checks it
against the request on the ledger and the holder's registered public key. A holder's revocation
is a signed consent too, with no request (the holder starts it).

This module is plain data and pure functions (no database, no keys): the holder's machine uses
it without a workspace. Example::

    request = ConsentRequest.from_json(strict_json.loads(Path("request.json").read_text()))
    for line in describe(request):
        print(line)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from likeness import strict_json
from likeness.consent.canonical import canonical_bytes, canonical_sha256, parse_utc
from likeness.consent.vocabulary import PROHIBITED_USES, normalise_use, use_words
from likeness.errors import ConsentError, ConsentRequestError, RegistryError

# Request file types, per kind (the grant one is also the terms' type, ``REQUEST_TYPE``).
REQUEST_TYPE = "likeness.grant-request.v1"
REQUEST_TYPES = {"grant": REQUEST_TYPE, "release": "likeness.release-request.v1"}
SIGNED_TYPE = "likeness.signed-consent.v1"
#: The grant and release payloads a holder signs now: they name who asks, for whom, who signs and
#: the preview stills (``NAMED_MEMBERS``), so what ``describe`` shows is what the signature covers.
GRANT_TYPE = "likeness.grant.v2"
RELEASE_TYPE = "likeness.release.v2"
#: Earlier payloads (ids only): still read and imported, never signed anew.
GRANT_TYPE_V1 = "likeness.grant.v1"
RELEASE_TYPE_V1 = "likeness.release.v1"
GRANT_TYPES = (GRANT_TYPE, GRANT_TYPE_V1)
RELEASE_TYPES = (RELEASE_TYPE, RELEASE_TYPE_V1)
ROTATION_TYPE = "likeness.holder-key-rotation.v1"
#: A passkey registration the holder vouches for with their offline key (``passkeys.vouch_statement``).
VOUCH_TYPE = "likeness.passkey-vouch.v1"
#: An organisation's adoption of a holder, signed first by the holder (``registry.adoption_payload``).
ADOPTION_TYPE = "likeness.holder-adoption.v2"
REVOCATION_TYPES = {"likeness.grant-revocation.v1": "grant", "likeness.release-revocation.v1": "release"}

#: The members a v2 grant or release payload adds to v1's: the names the holder reads, as the
#: ledger records them (``Parties``), and the preview stills' digests.
NAMED_MEMBERS = (
    "org_name",
    "org_slug",
    "subject_name",
    "subject_slug",
    "subject_kind",
    "holder_name",
    "holder_kind",
    "preview_sha256",
)

_GRANT_V1_MEMBERS = frozenset(
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
)
_RELEASE_V1_MEMBERS = frozenset(
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
)

# The members of each payload a holder signs (what ``registry.grant_payload`` etc. build).
PAYLOAD_MEMBERS: dict[str, frozenset[str]] = {
    GRANT_TYPE_V1: _GRANT_V1_MEMBERS,
    RELEASE_TYPE_V1: _RELEASE_V1_MEMBERS,
    GRANT_TYPE: _GRANT_V1_MEMBERS | set(NAMED_MEMBERS),
    RELEASE_TYPE: _RELEASE_V1_MEMBERS | set(NAMED_MEMBERS),
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
    VOUCH_TYPE: frozenset(
        {
            "type",
            "holder_id",
            "holder_fingerprint",
            "credential_id",
            "public_key",
            "key_fingerprint",
            "rp_id",
            "origin",
            "sign_count",
            "label",
            "created_at",
            "nonce",
        }
    ),
    ADOPTION_TYPE: frozenset(
        {
            "type",
            "holder_id",
            "holder_fingerprint",
            "org_id",
            "org_name",
            "org_fingerprint",
            "attestation",
            "adopted_at",
        }
    ),
}

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Parties:
    """Who asks (the organisation), for whose face (the subject) and who signs (the rights
    holder), as their ``org.created``, ``subject.created`` and ``holder.created`` events name
    them (a name the event does not record reads as the slug). A v2 payload signs them, so a
    relabelled request file or a renamed row cannot make the holder read another name than the
    one their signature covers."""

    org_name: str
    org_slug: str
    subject_name: str
    subject_slug: str
    subject_kind: str
    holder_name: str
    holder_kind: str

    def members(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in NAMED_MEMBERS if name != "preview_sha256"}


def parties_of(payload: Mapping[str, Any]) -> Parties | None:
    """The parties a v2 grant or release payload names (``None`` for a v1 payload, which names
    ids only)."""
    if payload.get("type") not in (GRANT_TYPE, RELEASE_TYPE):
        return None
    return Parties(**{name: str(payload.get(name)) for name in NAMED_MEMBERS if name != "preview_sha256"})


def named_members(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The members of ``payload`` that a v2 payload adds (empty for v1)."""
    if payload.get("type") not in (GRANT_TYPE, RELEASE_TYPE):
        return {}
    return {name: payload.get(name) for name in NAMED_MEMBERS}


def parties_differences(signed: Parties, ledger: Parties) -> list[str]:
    """``org_name 'Studio Haneul' (the ledger says 'Byeol Agency')`` for each name that differs."""
    theirs, ours = signed.members(), ledger.members()
    return [f"{name} {theirs[name]!r} (the ledger says {ours[name]!r})" for name in ours if theirs[name] != ours[name]]


#: What an estate may grant for a deceased artist: ``tribute``, and the neighbours it may allow
#: alongside it (training a model for the tribute, a stage or music video that is the tribute).
#: Never advertising or fan messages in the artist's voice.
ESTATE_USES: tuple[str, ...] = ("tribute", "training", "virtual_stage", "music_video")


@dataclass(frozen=True)
class GrantRequest:
    """A request for consent, as the organisation drafted it (timestamps: ``utc_iso`` text)."""

    request_id: str
    subject_id: str
    org_id: str
    uses: tuple[str, ...]
    valid_from: str
    valid_until: str
    max_renders: int | None
    allow_unlabelled: bool
    purpose: str
    preview_sha256: tuple[str, ...]
    requested_at: str


def normalise_request_uses(uses: Iterable[str]) -> tuple[str, ...]:
    """Sorted canonical uses; ``ConsentError('prohibited_use' | 'unknown_use')`` for a use that
    can never be granted or is not known, ``use_not_granted`` for none."""
    normalised = tuple(sorted({normalise_use(u) for u in uses}))
    if not normalised:
        raise ConsentError("use_not_granted", "a grant request must name at least one use")
    return normalised


def check_uses_for_holder_kind(uses: Iterable[str], holder_kind: str) -> None:
    """An estate signs only ``tribute`` and its neighbours (``ESTATE_USES``), and always
    ``tribute``; other holder kinds may sign any grantable use."""
    if holder_kind != "estate":
        return
    uses = tuple(uses)
    outside = [u for u in uses if u not in ESTATE_USES]
    if outside or "tribute" not in uses:
        raise ConsentError(
            "use_not_granted",
            "an estate grants only 'tribute' and its neighbours ("
            + ", ".join(ESTATE_USES)
            + ")"
            + (f"; not {', '.join(outside)}" if outside else "; the request must name 'tribute'"),
        )


def make_request(
    *,
    request_id: str,
    subject_id: str,
    org_id: str,
    uses: Iterable[str],
    valid_from: str,
    valid_until: str,
    max_renders: int | None,
    allow_unlabelled: bool,
    purpose: str,
    preview_sha256: Iterable[str],
    requested_at: str,
) -> GrantRequest:
    """A checked ``GrantRequest`` (prohibited uses, window, render limit, preview digests)."""
    normalised = normalise_request_uses(uses)
    if parse_utc(valid_until) <= parse_utc(valid_from):
        raise RegistryError("valid-until must be after valid-from")
    if max_renders is not None and (isinstance(max_renders, bool) or max_renders < 1):
        raise RegistryError("max renders must be at least 1")
    previews = tuple(preview_sha256)
    if not all(isinstance(p, str) and _HEX64.match(p) for p in previews):
        raise RegistryError("preview stills are named by their SHA-256 (64 lowercase hex characters)")
    return GrantRequest(
        request_id=request_id,
        subject_id=subject_id,
        org_id=org_id,
        uses=normalised,
        valid_from=valid_from,
        valid_until=valid_until,
        max_renders=max_renders,
        allow_unlabelled=bool(allow_unlabelled),
        purpose=purpose,
        preview_sha256=previews,
        requested_at=requested_at,
    )


def request_payload(request: GrantRequest) -> dict[str, Any]:
    """The request as canonical JSON members (what ``REQUEST.json`` holds, and its digest)."""
    return {
        "type": REQUEST_TYPE,
        "request_id": request.request_id,
        "subject_id": request.subject_id,
        "org_id": request.org_id,
        "uses": list(request.uses),
        "valid_from": request.valid_from,
        "valid_until": request.valid_until,
        "max_renders": request.max_renders,
        "allow_unlabelled": request.allow_unlabelled,
        "purpose": request.purpose,
        "preview_sha256": list(request.preview_sha256),
        "requested_at": request.requested_at,
    }


#: The members of a request's terms (``request_payload``), as the event holds them.
REQUEST_MEMBERS = (
    "type",
    "request_id",
    "subject_id",
    "org_id",
    "uses",
    "valid_from",
    "valid_until",
    "max_renders",
    "allow_unlabelled",
    "purpose",
    "preview_sha256",
    "requested_at",
)


def request_sha256(request: GrantRequest) -> str:
    return canonical_sha256(request_payload(request))


def request_from_payload(payload: Any) -> GrantRequest:
    """Read a request payload back (``RegistryError`` naming what is wrong; uses re-checked)."""
    if not isinstance(payload, dict) or payload.get("type") != REQUEST_TYPE:
        raise RegistryError(f"not a grant request (expected type {REQUEST_TYPE})")
    try:
        return _terms(payload, str(payload["request_id"]), payload["preview_sha256"], str(payload["requested_at"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryError(f"grant request is malformed ({exc})") from None


def request_to_json(request: GrantRequest) -> str:
    return json.dumps(request_payload(request), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def request_from_json(text: str) -> GrantRequest:
    try:
        return request_from_payload(strict_json.loads(text))
    except json.JSONDecodeError as exc:
        raise RegistryError(f"grant request is not JSON ({exc})") from None


def grant_payload_for(
    request: GrantRequest,
    *,
    grant_id: str,
    holder_id: str,
    holder_fingerprint: str,
    issued_at: str,
    parties: Parties | None,
) -> dict[str, Any]:
    """The grant payload a holder signs to grant ``request`` (the same members as
    ``registry.grant_payload`` builds from a grant row, so the policy engine rebuilds it):
    ``likeness.grant.v2`` naming ``parties`` and the request's preview stills, or, with
    ``parties`` ``None``, the ids-only ``likeness.grant.v1`` of grants signed before."""
    payload: dict[str, Any] = {
        "type": GRANT_TYPE if parties is not None else GRANT_TYPE_V1,
        "grant_id": grant_id,
        "subject_id": request.subject_id,
        "org_id": request.org_id,
        "holder_id": holder_id,
        "holder_fingerprint": holder_fingerprint,
        "uses": list(request.uses),
        "valid_from": request.valid_from,
        "valid_until": request.valid_until,
        "max_renders": request.max_renders,
        "allow_unlabelled": request.allow_unlabelled,
        "purpose": request.purpose,
        "issued_at": issued_at,
    }
    if parties is not None:
        payload.update(parties.members(), preview_sha256=list(request.preview_sha256))
    return payload


def signing_challenge(payload: dict[str, Any]) -> bytes:
    """What a passkey signs for ``payload``: the SHA-256 of its RFC 8785 canonical bytes (the
    WebAuthn challenge); its hex is the payload digest stored with the grant."""
    return hashlib.sha256(canonical_bytes(payload)).digest()


def offline_payload(
    request: GrantRequest, *, holder_id: str, holder_fingerprint: str, parties: Parties | None
) -> dict[str, Any]:
    """The exact payload an Ed25519 holder signs offline for ``request``: the grant id is the
    request id (one request, at most one grant, whichever way it is signed) and ``issued_at``
    the request's time, so the payload is fixed when the request is drafted (``parties``:
    as ``grant_payload_for``)."""
    return grant_payload_for(
        request,
        grant_id=request.request_id,
        holder_id=holder_id,
        holder_fingerprint=holder_fingerprint,
        issued_at=request.requested_at,
        parties=parties,
    )


def _terms(
    payload: Mapping[str, Any], request_id: str, preview_sha256: Iterable[str], requested_at: str
) -> GrantRequest:
    """The grant terms of a request or grant payload, checked by ``make_request``."""
    return make_request(
        request_id=request_id,
        subject_id=str(payload["subject_id"]),
        org_id=str(payload["org_id"]),
        uses=list(payload["uses"]),
        valid_from=str(payload["valid_from"]),
        valid_until=str(payload["valid_until"]),
        max_renders=payload["max_renders"],
        allow_unlabelled=bool(payload["allow_unlabelled"]),
        purpose=str(payload["purpose"]),
        preview_sha256=list(preview_sha256),
        requested_at=requested_at,
    )


def terms_of_payload(payload: Mapping[str, Any], preview_sha256: Iterable[str], requested_at: str) -> GrantRequest:
    """The terms a ``likeness.grant.v1`` payload grants, as a request (its id: the grant id)."""
    try:
        return _terms(payload, str(payload["grant_id"]), preview_sha256, requested_at)
    except (KeyError, TypeError) as exc:
        raise RegistryError(f"grant payload is malformed ({exc})") from None


# --- the ``grant.requested`` ledger event ---------------------------------------------------------
REQUESTED_EVENT = "grant.requested"


def requested_event(
    request: GrantRequest, *, holder_id: str, created_by: str, payload: dict[str, Any] | None
) -> dict[str, Any]:
    """The one shape of a ``grant.requested`` event, whichever path drafted the request: the
    terms (``request_payload``'s members, flat), their digest, who drafted it, the holder asked,
    the grant id it becomes (the request id), and, when the holder has an Ed25519 key, the
    exact payload to sign offline and its digest (``None`` for a passkey-only holder). It holds
    the members both earlier shapes were looked up by (``request_id`` and ``grant_id``)."""
    return {
        **request_payload(request),
        "request_sha256": request_sha256(request),
        "created_by": created_by,
        "holder_id": holder_id,
        "grant_id": request.request_id,
        "payload": payload,
        "payload_sha256": canonical_sha256(payload) if payload is not None else None,
    }


@dataclass(frozen=True)
class RequestedGrant:
    """A ``grant.requested`` event read, whatever its shape: ``terms``; ``payload``, the exact
    payload an Ed25519 holder signs (``None`` when only a passkey can answer it); ``shape``:
    ``v2`` (``requested_event``), ``portal-v1`` (terms keyed by ``request_id``, before both
    paths shared the event) or ``offline-v1`` (the payload keyed by ``grant_id``)."""

    terms: GrantRequest
    payload: dict[str, Any] | None
    holder_id: str | None
    created_by: str
    shape: str

    @property
    def request_id(self) -> str:
        return self.terms.request_id


def requested_from_event(body: Mapping[str, Any]) -> RequestedGrant:
    """Read a ``grant.requested`` event's payload in any of its shapes. ``ConsentError``
    ``grant_altered`` when its terms are not their recorded digest, or its payload not its
    digest (only the organisation's own drafting writes these, so a mismatch is tampering)."""
    payload = body.get("payload")
    if payload is not None and (
        not isinstance(payload, Mapping) or canonical_sha256(payload) != body.get("payload_sha256")
    ):
        raise ConsentError("grant_altered", "a grant.requested event's payload is not its recorded digest")
    if "request_sha256" not in body:  # offline-v1: {grant_id, payload, payload_sha256, preview_sha256}
        if payload is None:
            raise RegistryError("a grant.requested event names neither terms nor a payload")
        terms = terms_of_payload(payload, body.get("preview_sha256") or [], str(payload.get("issued_at", "")))
        return RequestedGrant(terms, dict(payload), str(payload.get("holder_id")), "", "offline-v1")
    terms = request_from_payload({k: body.get(k) for k in REQUEST_MEMBERS})
    if request_sha256(terms) != body.get("request_sha256"):
        raise ConsentError("grant_altered", f"grant request {terms.request_id} differs from what was drafted")
    if payload is not None and payload != offline_payload(
        terms,
        holder_id=str(payload.get("holder_id")),
        holder_fingerprint=str(payload.get("holder_fingerprint")),
        parties=parties_of(payload),
    ):
        raise ConsentError("grant_altered", f"grant request {terms.request_id}: its payload is not its terms")
    shape = "v2" if "grant_id" in body else "portal-v1"
    holder = body.get("holder_id")
    return RequestedGrant(
        terms,
        dict(payload) if payload is not None else None,
        str(holder) if holder else None,
        str(body.get("created_by", "")),
        shape,
    )


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
        return "grant" if self.payload.get("type") in GRANT_TYPES else "release"

    @property
    def record_id(self) -> str:
        return str(self.payload[f"{self.kind}_id"])

    @property
    def payload_sha256(self) -> str:
        return canonical_sha256(self.payload)

    @property
    def parties(self) -> Parties | None:
        """The names the payload signs (``None``: a v1 request, whose names nothing covers)."""
        return parties_of(self.payload)

    @property
    def signed_previews(self) -> tuple[str, ...]:
        """The preview stills' digests the signature covers (a v1 request: the file's list)."""
        if self.parties is None:
            return self.preview_sha256
        return tuple(self.payload["preview_sha256"])

    @property
    def terms(self) -> GrantRequest:
        """The grant request's terms (the same ``GrantRequest`` the portal shows)."""
        if self.kind != "grant":
            raise ConsentRequestError("a release request has no grant terms")
        return terms_of_payload(self.payload, self.signed_previews, self.requested_at or str(self.payload["issued_at"]))

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
        if body.get("type") == SIGNED_TYPE:
            raise ConsentRequestError(
                "already signed (a signed consent, not a request): nothing to sign; the organisation imports it "
                "with 'likeness consent import'"
            )
        if body.get("type") not in REQUEST_TYPES.values():
            raise ConsentRequestError(f"not a likeness grant or release request (type {body.get('type')!r})")
        payload = _payload(body.get("payload"), (*GRANT_TYPES, *RELEASE_TYPES))
        kind = "grant" if payload["type"] in GRANT_TYPES else "release"
        if body.get("type") != REQUEST_TYPES[kind] or body.get("request_id") != payload.get(f"{kind}_id"):
            raise ConsentRequestError("the request's type or request_id does not match its payload")
        if body.get("payload_sha256") != canonical_sha256(payload):
            raise ConsentRequestError(
                "the request's payload does not match its payload_sha256: it was changed after it was drafted"
            )
        stills = body.get("preview_sha256") or []
        if not isinstance(stills, list) or not all(_is_hex(d, 64) for d in stills):
            raise ConsentRequestError("the request's preview_sha256 is not a list of SHA-256 digests")
        if payload["type"] in (GRANT_TYPE, RELEASE_TYPE) and stills != payload["preview_sha256"]:
            raise ConsentRequestError(
                "the request's preview_sha256 is not the list its payload signs: it was changed after it was drafted"
            )
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
        if body.get("type") in REQUEST_TYPES.values():
            raise ConsentRequestError(
                "an unsigned request, not a signed consent: give the file 'likeness holder sign' wrote from it "
                "(the rights holder signs on their own machine and sends it back)"
            )
        unsigned = {ADOPTION_TYPE: "holder sign-adoption", VOUCH_TYPE: "holder vouch-passkey"}.get(
            str(body.get("type"))
        )
        if unsigned:
            raise ConsentRequestError(
                f"an unsigned statement ({body.get('type')}), not a signed consent: give the file 'likeness "
                f"{unsigned}' wrote from it (the rights holder signs on their own machine and sends it back)"
            )
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
    if kind in (GRANT_TYPE, RELEASE_TYPE) and not _names_well_formed(payload):
        raise ConsentRequestError(
            f"{kind} payload: its names must be text and its preview_sha256 a list of SHA-256 digests"
        )
    try:
        canonical_bytes(payload)
    except ValueError as exc:  # NaN, Infinity, an integer past 2**53, a lone surrogate
        raise ConsentRequestError(
            f"{kind} payload holds a value canonical JSON cannot write, so none signs it ({exc})"
        ) from None
    return payload


def _names_well_formed(payload: Mapping[str, Any]) -> bool:
    stills = payload.get("preview_sha256")
    return all(isinstance(payload.get(n), str) for n in NAMED_MEMBERS if n != "preview_sha256") and (
        isinstance(stills, list) and all(_is_hex(d, 64) for d in stills)
    )


def check_signable(request: ConsentRequest) -> None:
    """Refuse a request whose payload does not sign the names the holder reads (a v1 request,
    drafted before they were signed): ``ConsentRequestError`` saying what to do."""
    if request.parties is None:
        raise ConsentRequestError(
            f"a {request.payload.get('type')} request, drafted by an earlier version: the names it shows are not "
            f"covered by the signature; ask the organisation for a new request"
        )


def signable_request(data: Any) -> ConsentRequest:
    """A request file's JSON read for signing (``ConsentRequest.from_json`` and ``check_signable``)."""
    request = ConsentRequest.from_json(data)
    check_signable(request)
    return request


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


def payload_differences(
    signed: Mapping[str, Any], requested: Mapping[str, Any], *, names: tuple[str, str] = ("requested", "signed")
) -> list[str]:
    """The members whose values differ between two payloads, e.g. ``uses: requested
    ['training'], signed [...]`` (``names``: what to call ``requested`` and ``signed``)."""
    out = []
    for member in sorted(set(signed) | set(requested)):
        if signed.get(member) != requested.get(member):
            out.append(f"{member}: {names[0]} {requested.get(member)!r}, {names[1]} {signed.get(member)!r}")
    return out


@dataclass(frozen=True)
class RequestFacts:
    """What a holder must read before signing a grant request, whichever way they sign: the
    CLI (``describe``) and the portal page (``service.portal.request_sentences``) word these
    same facts. Uses are canonical names; ``not_asked``: grantable uses the request does not
    name (in ``USES`` order); ``prohibited``: the uses no one can ever grant."""

    org: str
    subject: str
    holder: str
    holder_kind: str
    uses: tuple[str, ...]
    not_asked: tuple[str, ...]
    max_renders: int | None
    labelled: bool
    valid_from: str
    valid_until: str
    purpose: str
    prohibited: tuple[str, ...]
    preview_sha256: tuple[str, ...]
    request_id: str

    @property
    def training(self) -> bool:
        return "training" in self.uses


def request_facts(request: GrantRequest, *, org: str, subject: str, holder: str, holder_kind: str) -> RequestFacts:
    """The facts of ``request`` for its holder to read (see ``RequestFacts``)."""
    from likeness.consent.vocabulary import USES

    return RequestFacts(
        org=org,
        subject=subject,
        holder=holder,
        holder_kind=holder_kind,
        uses=request.uses,
        not_asked=tuple(u for u in USES if u not in request.uses),
        max_renders=request.max_renders,
        labelled=not request.allow_unlabelled,
        valid_from=request.valid_from,
        valid_until=request.valid_until,
        purpose=request.purpose,
        prohibited=PROHIBITED_USES,
        preview_sha256=request.preview_sha256,
        request_id=request.request_id,
    )


def describe(request: ConsentRequest) -> list[str]:
    """The request in plain language, one line each, for the holder to read before signing
    (a grant's lines word ``request_facts``, the facts the portal shows). The names are those
    the payload signs (a v1 request, which signs none, reads them from the file's blocks:
    ``check_signable`` refuses to sign it)."""
    p = request.payload
    parties = request.parties
    if parties is not None:
        org, subject, holder, holder_kind = (
            parties.org_name,
            parties.subject_name,
            parties.holder_name,
            parties.holder_kind,
        )
    else:
        org = str(request.organisation.get("name") or request.organisation.get("slug"))
        subject = str(request.subject.get("name") or request.subject.get("slug"))
        holder = str(request.holder.get("name") or request.holder.get("slug"))
        holder_kind = str(request.holder.get("kind", ""))
    signed_names = (
        [
            f"These names are signed with the request (organisation '{parties.org_slug}'; subject "
            f"'{parties.subject_slug}', {parties.subject_kind}), as the organisation's ledger records them."
        ]
        if parties is not None
        else []
    )
    if request.kind != "grant":
        return [
            f"{org} asks {holder} to release the footage of {subject} as a face-swap target.",
            *signed_names,
            f"Valid from {p.get('valid_from')} until {p.get('valid_until')} (UTC).",
            f"Purpose: {p.get('purpose') or '(none given)'}",
            *(f"Preview still sha256 {d} (check the stills with --previews FOLDER)" for d in request.signed_previews),
            f"Addressed to key {p.get('holder_fingerprint')}; request id {request.record_id}.",
        ]
    facts = request_facts(request.terms, org=org, subject=subject, holder=holder, holder_kind=holder_kind)
    lines = [
        f"{facts.org} asks {facts.holder} for consent to use the face and likeness of {facts.subject}.",
        *signed_names,
        f"Uses: {', '.join(use_words(u) for u in facts.uses)}.",
    ]
    if facts.not_asked:
        lines.append(
            f"Not asked for (they may not use it for these): {', '.join(use_words(u) for u in facts.not_asked)}."
        )
    lines.append(
        f"At most {facts.max_renders} rendered videos or images."
        if facts.max_renders
        else "No limit on the number of renders."
    )
    lines.append(
        "Every output will carry a visible 'AI 생성 · AI-generated' label."
        if facts.labelled
        else "The visible 'AI-generated' label MAY BE LEFT OFF (the invisible watermark and signed C2PA stay)."
    )
    if facts.holder_kind == "estate":
        lines.append("You sign for an estate: only tributes, and what serves them, can be granted.")
    lines.append(f"Valid from {facts.valid_from} until {facts.valid_until} (UTC).")
    lines.append(f"Purpose: {facts.purpose or '(none given)'}")
    lines.append(f"Never grantable, whatever anyone signs: {', '.join(use_words(u) for u in facts.prohibited)}.")
    for digest in facts.preview_sha256:
        lines.append(f"Preview still sha256 {digest} (check the stills with --previews FOLDER)")
    lines.append(f"Addressed to key {p.get('holder_fingerprint')}; request id {facts.request_id}.")
    return lines


def preview_problems(request: ConsentRequest, folder: Path) -> list[str]:
    """The preview digests the request's payload signs that no file in ``folder`` has (the
    stills the holder was sent must be the ones their signature names)."""
    present = {preview_sha256(p) for p in sorted(folder.iterdir()) if p.is_file()} if folder.is_dir() else set()
    return [f"no still in {folder} has sha256 {digest}" for digest in request.signed_previews if digest not in present]
