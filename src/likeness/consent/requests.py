"""Grant requests: what an organisation asks a rights holder to sign, and the payload they sign.

An organisation drafts a *grant request* (subject, uses, validity window, render limit, whether
the visible label may be omitted, purpose, and digests of preview stills of what will be made).
The rights holder reviews it on their own device and signs the **grant payload** it becomes
(``likeness.grant.v1``, the payload the policy engine re-verifies at every use), either with a
passkey (the WebAuthn challenge is ``signing_challenge(payload)``: the SHA-256 of its RFC 8785
canonical bytes) or offline with an Ed25519 key (``likeness holder sign REQUEST.json``).

Everything here is pure: no database, no keys. The portal and the offline CLI share it so a
request means the same thing, and signs the same bytes, whichever way the holder signs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from likeness.consent.canonical import canonical_bytes, canonical_sha256, parse_utc
from likeness.consent.vocabulary import normalise_use
from likeness.errors import ConsentError, RegistryError

REQUEST_TYPE = "likeness.grant-request.v1"
GRANT_TYPE = "likeness.grant.v1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

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


def request_sha256(request: GrantRequest) -> str:
    return canonical_sha256(request_payload(request))


def request_from_payload(payload: Any) -> GrantRequest:
    """Read a request payload back (``RegistryError`` naming what is wrong; uses re-checked)."""
    if not isinstance(payload, dict) or payload.get("type") != REQUEST_TYPE:
        raise RegistryError(f"not a grant request (expected type {REQUEST_TYPE})")
    try:
        return make_request(
            request_id=str(payload["request_id"]),
            subject_id=str(payload["subject_id"]),
            org_id=str(payload["org_id"]),
            uses=list(payload["uses"]),
            valid_from=str(payload["valid_from"]),
            valid_until=str(payload["valid_until"]),
            max_renders=payload["max_renders"],
            allow_unlabelled=bool(payload["allow_unlabelled"]),
            purpose=str(payload["purpose"]),
            preview_sha256=list(payload["preview_sha256"]),
            requested_at=str(payload["requested_at"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryError(f"grant request is malformed ({exc})") from None


def request_to_json(request: GrantRequest) -> str:
    return json.dumps(request_payload(request), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def request_from_json(text: str) -> GrantRequest:
    try:
        return request_from_payload(json.loads(text))
    except json.JSONDecodeError as exc:
        raise RegistryError(f"grant request is not JSON ({exc})") from None


def grant_payload_for(
    request: GrantRequest, *, grant_id: str, holder_id: str, holder_fingerprint: str, issued_at: str
) -> dict[str, Any]:
    """The ``likeness.grant.v1`` payload a holder signs to grant ``request`` (the same members
    as ``registry.grant_payload`` builds from a grant row, so the policy engine rebuilds it)."""
    return {
        "type": GRANT_TYPE,
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


def signing_challenge(payload: dict[str, Any]) -> bytes:
    """What a passkey signs for ``payload``: the SHA-256 of its RFC 8785 canonical bytes (the
    WebAuthn challenge); its hex is the payload digest stored with the grant."""
    return hashlib.sha256(canonical_bytes(payload)).digest()
