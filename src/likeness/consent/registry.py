"""The consent registry: organisations, rights holders, subjects, grants, releases, revocations.

A grant or release is requested here (``request_grant`` / ``request_release``: the canonical
payload, put on the ledger as ``grant.requested`` / ``release.requested``), signed by the rights
holder on their own machine (``likeness.consent.holder``), and imported (``import_signed``),
which appends the payload, its digest and the signature to the ledger. The workspace never
makes, keeps or reads a holder's private key. The ledger is
the source of truth: the policy engine re-verifies each row against its event (and the holder's
key as the ledger records it) every time a grant is used (``likeness.consent.integrity``). A
holder's key changes only through a ledger event: a rotation signed by the previous key, or a
recovery signed by an organisation with an attestation (docs/consent.md).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from likeness import strict_json
from likeness.consent import keys
from likeness.consent.canonical import canonical_bytes, canonical_sha256, now_utc, parse_utc, utc_iso
from likeness.consent.grant_requests import (
    ADOPTION_TYPE,
    GRANT_TYPE,
    GRANT_TYPE_V1,
    GRANT_TYPES,
    RELEASE_TYPE,
    RELEASE_TYPE_V1,
    REQUESTED_EVENT,
    REVOCATION_TYPES,
    ROTATION_TYPE,
    VOUCH_TYPE,
    ConsentRequest,
    GrantRequest,
    Parties,
    RequestedGrant,
    SignedConsent,
    check_grantable,
    check_uses_for_holder_kind,
    make_request,
    offline_payload,
    parties_of,
    payload_differences,
    preview_sha256,
    request_payload,
    request_sha256,
    requested_event,
    requested_from_event,
)
from likeness.consent.ledger import Ledger, LedgerEvent, begin_serialized, find_events
from likeness.consent.marker_pins import MarkerPin, MarkerPins
from likeness.consent.names import MAX_NAME_CHARS, display_name, name_skeleton, request_purpose
from likeness.consent.tables import (
    Grant,
    GrantRequestRow,
    GrantRevocation,
    HolderPasskey,
    LedgerRow,
    Organisation,
    ReferenceEmbedding,
    Release,
    ReleaseRevocation,
    RightsHolder,
    Subject,
)
from likeness.consent.vocabulary import HOLDER_KINDS, SUBJECT_KINDS
from likeness.errors import (
    ConfigError,
    ConsentError,
    ConsentRequestError,
    DatabaseRefused,
    EnrollingOrgUnnamed,
    EvidenceRefused,
    FoundingReferenceMissing,
    LedgerError,
    LikenessError,
    OrganisationNameTaken,
    ReferenceMismatch,
    ReferenceSealerRefused,
    ReferenceUnsealed,
    RegistryError,
    SubjectEnrollerRefused,
    SubjectNotEnrolled,
)

if TYPE_CHECKING:
    from likeness.consent.integrity import LedgerConsent

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ID_SHAPED = re.compile(r"^[0-9a-f]{32}$")  # the form of our record ids (uuid4().hex)
EMBEDDING_DIM = 128


def _new_id() -> str:
    return uuid.uuid4().hex


_Named = TypeVar("_Named", Organisation, RightsHolder, Subject)


def find_by_id_or_slug(session: Session, model: type[_Named], slug_or_id: str) -> _Named | None:
    """The ``model`` row with id ``slug_or_id``, else the one with that slug: an exact id first,
    so a slug (even one shaped like an id) never takes over another record's id."""
    return session.get(model, slug_or_id) or session.scalar(select(model).where(model.slug == slug_or_id))


def check_slug(slug: str, what: str) -> str:
    """``slug`` if it is a valid slug; ``RegistryError`` otherwise, also for 32 lowercase hex
    characters: lookups take a slug or an id, and a slug shaped like an id could be another
    record's id."""
    if not SLUG.match(slug):
        raise RegistryError(
            f"{what} '{slug}': use 1-64 lowercase letters, digits, '-' or '_' (starting with a letter or digit)"
        )
    if ID_SHAPED.match(slug):
        raise RegistryError(
            f"{what} '{slug}': 32 hexadecimal characters is the form of a record id; choose a slug "
            f"that is not id-shaped (add a letter outside a-f, or a '-')"
        )
    return slug


# --- canonical payloads (pure): what a holder signs ------------------------------------------


def grant_payload(grant: Grant, holder_fingerprint: str, named: dict[str, Any] | None = None) -> dict[str, Any]:
    """The payload a grant row was signed as: ``likeness.grant.v2`` with ``named`` (its
    ``grant_requests.NAMED_MEMBERS``, which the row does not keep: the signed event does), else v1."""
    return {
        "type": GRANT_TYPE if named else GRANT_TYPE_V1,
        "grant_id": grant.id,
        "subject_id": grant.subject_id,
        "org_id": grant.org_id,
        "holder_id": grant.holder_id,
        "holder_fingerprint": holder_fingerprint,
        "uses": strict_json.loads(grant.uses),
        "valid_from": grant.valid_from,
        "valid_until": grant.valid_until,
        "max_renders": grant.max_renders,
        "allow_unlabelled": bool(grant.allow_unlabelled),
        "purpose": grant.purpose,
        "issued_at": grant.issued_at,
        **(named or {}),
    }


def release_payload(release: Release, holder_fingerprint: str, named: dict[str, Any] | None = None) -> dict[str, Any]:
    """As ``grant_payload``, for a release (``likeness.release.v2`` with ``named``, else v1)."""
    return {
        "type": RELEASE_TYPE if named else RELEASE_TYPE_V1,
        "release_id": release.id,
        "performer_id": release.performer_id,
        "org_id": release.org_id,
        "holder_id": release.holder_id,
        "holder_fingerprint": holder_fingerprint,
        "valid_from": release.valid_from,
        "valid_until": release.valid_until,
        "purpose": release.purpose,
        "issued_at": release.issued_at,
        **(named or {}),
    }


def grant_row(payload: dict[str, Any], signature: str) -> Grant:
    """The ``grants`` row of a signed grant payload (``grant_payload`` read back), whichever way
    it was signed: ``signature`` is the Ed25519 signature or the passkey assertion's digest."""
    return Grant(
        id=payload["grant_id"],
        subject_id=payload["subject_id"],
        org_id=payload["org_id"],
        holder_id=payload["holder_id"],
        uses=json.dumps(payload["uses"]),
        valid_from=payload["valid_from"],
        valid_until=payload["valid_until"],
        max_renders=payload["max_renders"],
        allow_unlabelled=bool(payload["allow_unlabelled"]),
        purpose=payload["purpose"],
        issued_at=payload["issued_at"],
        payload_sha256=canonical_sha256(payload),
        signature=signature,
    )


def release_row(payload: dict[str, Any], signature: str) -> Release:
    """The ``releases`` row of a signed release payload (``release_payload`` read back)."""
    return Release(
        id=payload["release_id"],
        performer_id=payload["performer_id"],
        org_id=payload["org_id"],
        holder_id=payload["holder_id"],
        valid_from=payload["valid_from"],
        valid_until=payload["valid_until"],
        purpose=payload["purpose"],
        issued_at=payload["issued_at"],
        payload_sha256=canonical_sha256(payload),
        signature=signature,
    )


def revocation_payload(kind: str, target_id: str, revoked_at: str, reason: str) -> dict[str, Any]:
    return {
        "type": f"likeness.{kind}-revocation.v1",
        f"{kind}_id": target_id,
        "revoked_at": revoked_at,
        "reason": reason,
    }


def key_rotation_payload(
    *, holder_id: str, previous_public_key: str, public_key: str, rotated_at: str
) -> dict[str, Any]:
    """What the previous key signs to hand a holder over to a new key (keys: raw hex)."""
    return {
        "type": "likeness.holder-key-rotation.v1",
        "holder_id": holder_id,
        "previous_fingerprint": keys.fingerprint(bytes.fromhex(previous_public_key)),
        "previous_public_key": previous_public_key,
        "key_fingerprint": keys.fingerprint(bytes.fromhex(public_key)),
        "public_key": public_key,
        "rotated_at": rotated_at,
    }


@dataclass(frozen=True)
class RecoveryAttestation:
    """Who established, and how, that a person who lost their key is the rights holder.

    ``method``: e.g. ``in_person``, ``notarised_document``, ``legal_representative``;
    ``evidence_sha256``: digest of the evidence file kept outside the workspace (optional).
    """

    statement: str
    verified_by: str
    method: str
    evidence_sha256: str | None = None

    def as_payload(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "verified_by": self.verified_by,
            "method": self.method,
            "evidence_sha256": self.evidence_sha256,
        }


#: Largest evidence file a recovery attestation digests (a scanned document, photos of the
#: check): the command line and the console refuse a larger one, naming it, before reading on.
EVIDENCE_MAX_BYTES = 50 * 1024 * 1024


def evidence_sha256(chunks: Iterable[bytes], *, source: str) -> str:
    """The SHA-256 of a recovery's evidence file, read as ``chunks``; ``EvidenceRefused`` naming
    ``source`` when it is empty or holds more than ``EVIDENCE_MAX_BYTES`` (reading stops there).
    Only the digest goes on the ledger; the file stays with whoever checked the holder.

    >>> evidence_sha256([b"passport ", b"scan"], source="scan.pdf")[:12]
    '5ae193d8746d'
    """
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        size += len(chunk)
        if size > EVIDENCE_MAX_BYTES:
            raise EvidenceRefused(source, f"evidence may have at most {EVIDENCE_MAX_BYTES} bytes", too_large=True)
        digest.update(chunk)
    if size == 0:
        raise EvidenceRefused(source, "the evidence file is empty: its digest would attest nothing", too_large=False)
    return digest.hexdigest()


#: How an organisation checked the person behind a recovery or an adoption: what the console
#: offers and ``--method`` accepts (an attestation already on the ledger keeps what it names).
ATTESTATION_METHODS = ("in_person", "notarised_document", "legal_representative")


def new_attestation_problem(attestation: RecoveryAttestation) -> str | None:
    """``attestation_problem`` of an attestation about to be signed, which must also name one of
    ``ATTESTATION_METHODS``: a misspelt or invented method would go on the ledger for good.

    >>> new_attestation_problem(RecoveryAttestation("passport checked", "J. Park", "phone"))
    "the recovery attestation's method 'phone' is not one of in_person, notarised_document, legal_representative"
    """
    payload = attestation.as_payload()
    problem = attestation_problem(payload)
    if problem is None and payload["method"] not in ATTESTATION_METHODS:
        return f"the recovery attestation's method {payload['method']!r} is not one of {', '.join(ATTESTATION_METHODS)}"
    return problem


def attestation_problem(attestation: Any) -> str | None:
    """``None`` if ``attestation`` (a payload dict) names a statement, a verifier and a method."""
    if not isinstance(attestation, dict):
        return "the recovery carries no attestation"
    for member in ("statement", "verified_by", "method"):
        value = attestation.get(member)
        if not isinstance(value, str) or not value.strip():
            return f"the recovery attestation has no {member}"
    evidence = attestation.get("evidence_sha256")
    if evidence is not None and not re.fullmatch(r"[0-9a-f]{64}", str(evidence)):
        return "the recovery attestation's evidence_sha256 is not a sha256"
    return None


def key_recovery_payload(
    *,
    holder_id: str,
    previous_fingerprint: str,
    public_key: str,
    org_id: str,
    org_fingerprint: str,
    attestation: dict[str, Any],
    recovered_at: str,
) -> dict[str, Any]:
    """What an organisation signs to move a holder who lost their key to a new one."""
    return {
        "type": "likeness.holder-key-recovery.v1",
        "holder_id": holder_id,
        "previous_fingerprint": previous_fingerprint,
        "key_fingerprint": keys.fingerprint(bytes.fromhex(public_key)),
        "public_key": public_key,
        "org_id": org_id,
        "org_fingerprint": org_fingerprint,
        "attestation": attestation,
        "recovered_at": recovered_at,
    }


#: The event by which an organisation takes on a holder the ledger names no organisation for.
ADOPTION_EVENT = "holder.adopted"


def adoption_payload(
    *,
    holder_id: str,
    holder_fingerprint: str,
    org_id: str,
    org_name: str,
    org_fingerprint: str,
    attestation: dict[str, Any],
    adopted_at: str,
) -> dict[str, Any]:
    """What the rights holder (with key ``holder_fingerprint``, on their own machine) and then
    the organisation sign to make it the onboarding organisation of a holder enrolled before
    holders were bound to one (``LedgerConsent.holder_owner``): the organisation's signature
    alone would let any organisation of the workspace take the holder."""
    return {
        "type": ADOPTION_TYPE,
        "holder_id": holder_id,
        "holder_fingerprint": holder_fingerprint,
        "org_id": org_id,
        "org_name": org_name,
        "org_fingerprint": org_fingerprint,
        "attestation": attestation,
        "adopted_at": adopted_at,
    }


def adoption_malformed(body: Any) -> str | None:
    """``None`` if ``body`` is exactly what ``adoption_payload`` builds from its own members
    with an attestation that says who checked what; else why not (pure)."""
    if not isinstance(body, dict) or body.get("type") != ADOPTION_TYPE:
        return f"it is not a holder adoption ({ADOPTION_TYPE})"
    why = attestation_problem(body.get("attestation"))
    if why:
        return why
    members = ("holder_id", "holder_fingerprint", "org_id", "org_name", "org_fingerprint", "adopted_at")
    if any(not isinstance(body.get(m), str) for m in members):
        return "it is malformed"
    rebuilt = adoption_payload(**{m: body[m] for m in members}, attestation=body["attestation"])
    return None if rebuilt == body else "it is malformed"


@dataclass(frozen=True)
class SubjectRecord:
    id: str
    slug: str
    name: str
    kind: str
    holder_id: str
    holder_slug: str
    holder_fingerprint: str
    owner_org_id: str | None
    #: The rights holder allows the public verification page to show ``name``.
    public_name: bool = False


@dataclass(frozen=True)
class GrantRecord:
    id: str
    subject_slug: str
    org_slug: str
    holder_slug: str
    uses: tuple[str, ...]
    valid_from: str
    valid_until: str
    max_renders: int | None
    renders_used: int
    allow_unlabelled: bool
    purpose: str
    issued_at: str
    signature_sha256: str
    state: str
    revoked_at: str | None


@dataclass(frozen=True)
class ReleaseRecord:
    id: str
    performer_slug: str
    org_slug: str
    valid_from: str
    valid_until: str
    purpose: str
    issued_at: str
    state: str
    revoked_at: str | None


class Registry:
    """Reads and writes consent records; every change is appended to the ledger."""

    def __init__(self, session_factory: Callable[[], Session], ledger: Ledger, keys_dir: Path) -> None:
        self._session_factory = session_factory
        self._ledger = ledger
        self.keys_dir = keys_dir

    def _refuse_taken_slug(self, model: type[_Named], slug: str, what: str) -> None:
        with self._session_factory() as session:
            if session.scalar(select(model).where(model.slug == slug)):
                raise RegistryError(f"{what} '{slug}' already exists")

    def new_name(self, what: str, name: str) -> str:
        """``name`` as the display name of a new ``what`` ("organisation", "subject" or "rights
        holder"; ``names.display_name``); an organisation's or a subject's must not read like
        one already here (``names.name_skeleton``): a portal page or the public card shows the
        name, not the slug. ``RegistryError`` with the reason otherwise."""
        longest = MAX_NAME_CHARS + 20 if what == "rights holder" else MAX_NAME_CHARS  # + " (rights holder)"
        name = display_name(name, f"{what} name", max_chars=longest)
        if what == "organisation":
            named = select(Organisation.slug, Organisation.name)
        elif what == "subject":
            named = select(Subject.slug, Subject.name)
        else:
            return name
        skeleton = name_skeleton(name)
        with self._session_factory() as session:
            for slug, taken in session.execute(named):
                if name_skeleton(taken) == skeleton:
                    raise RegistryError(
                        f"{what} name {name!r} reads like {taken!r} ({slug}'s); people see the name, not "
                        f"the slug: choose one they can tell apart"
                    )
        return name

    def _refuse_org_lookalike(self, slug: str, name: str) -> None:
        """``OrganisationNameTaken`` when the new organisation's name or slug reads like another
        organisation's name or slug (``name_skeleton``: case, compatibility forms, spacing and
        lookalike letters folded): a second agency named "Haneul" beside "Studio Haneul"
        (slug ``haneul``) would read as the first on a request or an adoption."""
        mine = {name_skeleton(name), name_skeleton(slug)}
        with self._session_factory() as session:
            for other, other_name in session.execute(select(Organisation.slug, Organisation.name)):
                if mine & {name_skeleton(other_name), name_skeleton(other)}:
                    raise OrganisationNameTaken(slug, name, other, other_name)

    def _named(self, model: type[_Named], slug_or_id: str, missing: str) -> _Named:
        """The ``model`` row (``find_by_id_or_slug``), detached; ``RegistryError(missing)`` if none."""
        with self._session_factory() as session:
            row = find_by_id_or_slug(session, model, slug_or_id)
            if row is None:
                raise RegistryError(missing)
            session.expunge(row)
            return row

    def _insert(self, row: _Named) -> None:
        """Store a new ``row``; it stays readable (refreshed, detached) after its session."""
        with self._session_factory() as session:
            session.add(row)
            session.commit()
            session.refresh(row)
            session.expunge(row)

    # --- key locations -------------------------------------------------------------------
    @property
    def legacy_holder_keys_dir(self) -> Path:
        """Where workspaces made before offline signing kept holders' private keys (read only
        by ``likeness consent migrate-keys``, which moves them out)."""
        return self.keys_dir / "holders"

    def org_key_path(self, org_slug: str) -> Path:
        return keys.org_key_file(self.keys_dir, org_slug)

    # --- organisations -------------------------------------------------------------------
    def add_org(self, slug: str, name: str | None = None) -> Organisation:
        check_slug(slug, "organisation")
        self._refuse_taken_slug(Organisation, slug, "organisation")
        name = self.new_name("organisation", name or slug)
        self._refuse_org_lookalike(slug, name)
        key = keys.generate_key(self.org_key_path(slug))
        raw = keys.public_raw(key)
        org = Organisation(
            id=_new_id(),
            slug=slug,
            name=name,
            public_key=raw.hex(),
            key_fingerprint=keys.fingerprint(raw),
            created_at=utc_iso(now_utc()),
        )
        try:
            keys.write_org_pin(self.keys_dir, slug, key)  # (what a copy without the private key pins)
            self._insert(org)
        except BaseException:
            # Nothing refers to the new key yet; left behind, it would refuse the retry ("a key
            # file already exists") once the database can be written again.
            self.org_key_path(slug).unlink(missing_ok=True)
            keys.org_pin_file(self.keys_dir, slug).unlink(missing_ok=True)
            raise
        self._ledger.append(
            "org.created",
            {
                "org_id": org.id,
                "slug": slug,
                "name": org.name,
                "key_fingerprint": org.key_fingerprint,
                "public_key": org.public_key,
            },
        )
        self.mark_reference_sealing()  # a new workspace's first organisation: before any reference
        return org

    def get_org(self, slug_or_id: str) -> Organisation:
        return self._named(Organisation, slug_or_id, f"no organisation '{slug_or_id}' (add it with: likeness org add)")

    def org_display_name(self, slug_or_id: str) -> str:
        """The organisation's display name as its ``org.created`` event recorded it (what C2PA
        certificates and manifests name); ``ConsentError('org_altered')`` when its row's slug or
        name differs from the event, ``RegistryError`` when there is no such organisation."""
        from likeness.consent.integrity import LedgerConsent, org_identity_problem

        org = self.get_org(slug_or_id)
        with self._session_factory() as session:
            view = LedgerConsent(session)
            altered = org_identity_problem(view, org)
            created = view.org_created(org.id)
        if altered:
            raise ConsentError("org_altered", f"organisation '{org.slug}' is refused: {altered.detail}")
        if created is None:  # (org_identity_problem names a missing event; this keeps it so)
            raise ConsentError("org_altered", f"organisation '{org.slug}' is refused: it has no org.created event")
        return view.org_name(org.id) or org.slug

    def list_orgs(self) -> list[Organisation]:
        with self._session_factory() as session:
            orgs = list(session.scalars(select(Organisation).order_by(Organisation.slug)))
            for org in orgs:
                session.expunge(org)
            return orgs

    def default_org(self, preferred: str | None = None) -> Organisation:
        """The named org, else the only org in the workspace."""
        if preferred:
            return self.get_org(preferred)
        orgs = self.list_orgs()
        if len(orgs) == 1:
            return orgs[0]
        if not orgs:
            raise RegistryError("no organisation yet (add one with: likeness org add SLUG)")
        raise RegistryError(f"several organisations ({', '.join(o.slug for o in orgs)}): pick one with --org")

    # --- rights holders ------------------------------------------------------------------
    def add_holder(
        self, slug: str, name: str, *, kind: str, public_key_pem: bytes, org: str | None = None
    ) -> RightsHolder:
        """Register a holder by their Ed25519 public key (PEM), made on their own machine
        (``likeness holder keygen``): the private key never comes to the workspace. ``org``, the
        organisation enrolling them (default: the workspace's only one; with several, naming
        none is refused, ``enrolling_org``), is recorded in their ``holder.created`` event: the
        only one that may invite them or recover their key (``LedgerConsent.holder_owner``),
        and signs it with its key (read first: ``signature_invalid`` when it is not the key the
        ledger records, and nothing is written); one it did not sign enrols no holder
        (``LedgerConsent.holder_seal_problem``)."""
        check_slug(slug, "rights holder")
        owner = self.enrolling_org(slug, org)
        if kind not in HOLDER_KINDS:
            raise RegistryError(f"holder kind '{kind}': expected one of {', '.join(HOLDER_KINDS)}")
        self._refuse_taken_slug(RightsHolder, slug, "rights holder")
        name = self.new_name("rights holder", name)
        raw = keys.public_raw_from_pem(public_key_pem)
        org_key = self.org_signing_key(owner)  # (before anything is written)
        holder = RightsHolder(
            id=_new_id(),
            slug=slug,
            name=name,
            kind=kind,
            public_key=raw.hex(),
            key_fingerprint=keys.fingerprint(raw),
            created_at=utc_iso(now_utc()),
        )
        self._insert(holder)
        self._ledger.append("holder.created", holder_created_event(holder, owner, org_key))
        return holder

    def enrolling_org(self, slug: str, org: str | None, *, what: str = "rights holder") -> str:
        """The id of the organisation enrolling rights holder (or subject, ``what``) ``slug``:
        ``org``, else the workspace's only one. Never guessed among several, nor absent
        (``EnrollingOrgUnnamed``, naming them and ``--org``): a holder no organisation enrolled
        could be invited or recovered by any, and no organisation could seal the references of
        such a subject (``LedgerConsent.reference_sealer_problem``)."""
        if org:
            return self.get_org(org).id
        orgs = self.list_orgs()
        if len(orgs) != 1:
            raise EnrollingOrgUnnamed(slug, tuple(o.slug for o in orgs), what=what)
        return orgs[0].id

    def get_holder(self, slug_or_id: str) -> RightsHolder:
        return self._named(RightsHolder, slug_or_id, f"no rights holder '{slug_or_id}'")

    # --- subjects ------------------------------------------------------------------------
    def add_subject(
        self,
        slug: str,
        name: str,
        *,
        kind: str = "artist",
        holder: str | None = None,
        holder_kind: str | None = None,
        holder_public_key_pem: bytes | None = None,
        owner_org: str | None = None,
        public_name: bool = False,
        org: str | None = None,
    ) -> SubjectRecord:
        """Enrol a subject. ``holder`` names an existing rights holder; otherwise one is created
        with slug ``SLUG-holder`` and the public key ``holder_public_key_pem`` (required then).
        ``org`` enrols the subject (and a new holder); default: ``owner_org``, else the
        workspace's only organisation; with several and none named, nothing is enrolled
        (``EnrollingOrgUnnamed``); an ``owner_org`` other than ``org`` is refused.
        ``subject.created`` records it, signed with that organisation's key (read first:
        ``signature_invalid`` when it is not the key the ledger records, and nothing is enrolled):
        it alone seals the subject's references (``LedgerConsent.subject_org``); one its
        organisation did not sign backs nothing (``LedgerConsent.subject_seal_problem``).
        ``public_name``: the rights holder allows the
        public verification page to show the subject's name."""
        check_slug(slug, "subject")
        if kind not in SUBJECT_KINDS:
            raise RegistryError(f"subject kind '{kind}': expected one of {', '.join(SUBJECT_KINDS)}")
        self._refuse_taken_slug(Subject, slug, "subject")
        name = self.new_name("subject", name)
        owner = self.get_org(owner_org) if owner_org else None
        enrolling = self.enrolling_org(slug, org or owner_org, what="subject")
        if kind == "virtual_idol" and owner is None:
            raise RegistryError("a virtual idol needs its owning organisation (--owner-org)")
        if owner is not None and owner.id != enrolling:
            # The owner decides whose console lists the subject, whose ledger reads include it and
            # where its cases go: another organisation's enrolment would pass as the owner's.
            raise RegistryError(
                f"subject '{slug}': owned by organisation '{owner.slug}' but enrolled by "
                f"'{self._org_slug_or_id(enrolling)}': a subject's owner is the organisation that enrols it"
            )
        org_key = self._org_signing_key(self.get_org(enrolling))  # (before anything is written)
        if holder is not None:
            holder_row = self.get_holder(holder)
            if holder_public_key_pem is not None or holder_kind is not None:
                # silently keeping the enrolled key would leave the agency believing it registered another
                raise RegistryError(
                    f"subject '{slug}': rights holder '{holder}' is enrolled already, with their key and kind; a "
                    f"public key and a holder kind are only for a new holder (a holder moves to a new key with "
                    f"'likeness holder rotate')"
                )
            self._refuse_enroller(slug, holder_row, enrolling)
        elif holder_public_key_pem is None:
            raise RegistryError(
                f"subject '{slug}': its rights holder's public key is needed (the holder makes a key pair on their "
                f"own machine with 'likeness holder keygen' and gives you the .pub.pem), or name an enrolled holder"
            )
        else:
            default_kind = {"artist": "artist", "virtual_idol": "agency", "performer": "performer"}[kind]
            holder_row = self.add_holder(
                f"{slug}-holder"[:64],
                f"{name} (rights holder)",
                kind=holder_kind or default_kind,
                public_key_pem=holder_public_key_pem,
                org=org or owner_org,
            )
        subject = Subject(
            id=_new_id(),
            slug=slug,
            name=name,
            kind=kind,
            holder_id=holder_row.id,
            owner_org_id=owner.id if owner else None,
            created_at=utc_iso(now_utc()),
            public_name=bool(public_name),
        )
        self._insert(subject)
        body = {
            "type": SUBJECT_SEAL_TYPE,
            "subject_id": subject.id,
            "slug": slug,
            "name": name,
            "kind": kind,
            "holder_id": holder_row.id,
            "owner_org_id": subject.owner_org_id,
            "public_name": bool(public_name),
            "org_id": enrolling,
            "org_fingerprint": keys.fingerprint(keys.public_raw(org_key)),
        }
        self._ledger.append("subject.created", {**body, "signature": keys.sign(org_key, canonical_bytes(body))})
        return self.get_subject(slug)

    def _refuse_enroller(self, slug: str, holder: RightsHolder, org_id: str) -> None:
        """``SubjectEnrollerRefused`` unless organisation ``org_id`` onboarded ``holder``
        (``LedgerConsent.enroller_problem``): only it enrols subjects under them."""
        from likeness.consent.integrity import LedgerConsent

        with self._session_factory() as session:
            problem = LedgerConsent(session).enroller_problem(holder.id, org_id)
        if problem is not None:
            raise SubjectEnrollerRefused(slug, holder.slug, self._org_slug_or_id(org_id), problem)

    def get_subject(self, slug_or_id: str) -> SubjectRecord:
        with self._session_factory() as session:
            query = select(Subject, RightsHolder).join(RightsHolder, RightsHolder.id == Subject.holder_id)
            row = (
                session.execute(query.where(Subject.id == slug_or_id)).first()
                or session.execute(query.where(Subject.slug == slug_or_id)).first()
            )
            if row is None:
                raise RegistryError(f"no subject '{slug_or_id}' (enrol it with: likeness subject add)")
            subject, holder = row
            from likeness.consent.integrity import LedgerConsent

            current = LedgerConsent(session).holder_keys(holder.id).current
            return SubjectRecord(
                id=subject.id,
                slug=subject.slug,
                name=subject.name,
                kind=subject.kind,
                holder_id=holder.id,
                holder_slug=holder.slug,
                holder_fingerprint=current.fingerprint if current else holder.key_fingerprint,
                owner_org_id=subject.owner_org_id,
                public_name=bool(subject.public_name),
            )

    def list_subjects(self) -> list[SubjectRecord]:
        with self._session_factory() as session:
            slugs = list(session.scalars(select(Subject.slug).order_by(Subject.slug)))
        return [self.get_subject(s) for s in slugs]

    # --- reference embeddings (identity) -------------------------------------------------
    def add_reference_embedding(
        self,
        subject: str,
        embedding: np.ndarray,
        *,
        source_name: str,
        source_sha256: str,
        within_first: float | None = None,
        org: str | None = None,
    ) -> bool:
        """Store one reference embedding, bound to the ledger by a ``subject.reference_added``
        event that records the digest of the stored vector bytes (``vector_sha256``), sealed
        with organisation ``org``'s key (``reference_signer``); returns False if this photo was
        already enrolled.

        ``within_first``: refuse (:class:`ReferenceMismatch`) an embedding farther than this
        (Euclidean, as ``faces.match_identity``) from the subject's first reference, read in the
        transaction that stores the row and its event: read earlier, two enrolments of a subject
        with no reference each founded it on their own face. A first reference that is gone
        (``FoundingReferenceMissing``) or whose event is not sealed (``ReferenceUnsealed``)
        refuses it too. A face of another rights holder's subject is refused
        (``FaceOfAnotherHolder``, ``enrolled_faces.refuse_faces_of_other_holders``).
        """
        vector = np.asarray(embedding, dtype="<f4")
        if vector.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(vector)):
            raise RegistryError(f"reference embedding must be {EMBEDDING_DIM} finite floats, got shape {vector.shape}")
        record = self.get_subject(subject)
        signer, org_key = self._reference_key(org, record)
        # Here, not only in enrolment: whoever calls this directly gives no other holder's face either.
        from likeness.faceset.enrolled_faces import refuse_faces_of_other_holders

        refuse_faces_of_other_holders(self, record.slug, [(source_name, vector)])
        row = ReferenceEmbedding(
            subject_id=record.id,
            source_name=source_name[:300],
            source_sha256=source_sha256,
            vector=vector.tobytes(),
            created_at=utc_iso(now_utc()),
        )
        with self._session_factory() as session:
            begin_serialized(session, f"likeness.references.{record.id}")
            _refuse_unenrolled_subject(session, record)
            founding = founding_reference(session, record.id)
            if within_first is not None and founding.event is not None:
                if founding.row is None:
                    session.rollback()
                    raise _founding_error(record.slug, founding)
                first = np.frombuffer(founding.row.vector, dtype="<f4").astype(np.float64)
                distance = float(np.linalg.norm(vector.astype(np.float64) - first))
                if distance > within_first:
                    session.rollback()
                    raise ReferenceMismatch(record.slug, distance, within_first)
            session.add(row)
            try:
                session.flush()
            except IntegrityError:  # this photo is stored already (``attest_references`` binds an old one)
                session.rollback()
                return False
            body = reference_event(
                record.id,
                source_name,
                source_sha256,
                row.vector,
                org_id=signer.id,
                key_fingerprint=keys.fingerprint(keys.public_raw(org_key)),
            )
            Ledger.append_in(session, REFERENCE_EVENT, {**body, "signature": keys.sign(org_key, canonical_bytes(body))})
            session.commit()
        return True

    def reference_signer(self, org: str | None, subject: SubjectRecord) -> Organisation:
        """The organisation whose key seals ``subject``'s references: the one that enrolled it
        (``LedgerConsent.subject_org``), the only one whose seal counts on them.
        ``ReferenceSealerRefused`` when ``org`` names another, or the ledger names none;
        ``subject_altered`` when the subject's row is not the one the ledger enrolled."""
        from likeness.consent.integrity import LedgerConsent

        named = self.get_org(org) if org else None
        if named is None and not self.list_orgs():
            raise RegistryError(
                f"subject '{subject.slug}': no organisation yet to seal its references with its key "
                "(add one with: likeness org add SLUG)"
            )
        with self._session_factory() as session:
            _refuse_unenrolled_subject(session, subject)  # (subject_altered, before who enrolled it)
            view = LedgerConsent(session)
            signer = named.id if named else view.subject_org(subject.id)
            problem = view.reference_sealer_problem(subject.id, signer or "")
        if problem is not None or signer is None:
            raise ReferenceSealerRefused(subject.slug, named.slug if named else None, str(problem))
        return named or self.get_org(signer)

    def _reference_key(self, org: str | None, subject: SubjectRecord) -> tuple[Organisation, Ed25519PrivateKey]:
        """The signer (``reference_signer``) and its private key, which must be the key its
        ``org.created`` event records (a seal with any other would not verify)."""
        signer = self.reference_signer(org, subject)
        return signer, self._org_signing_key(signer)

    def unsigned_references(self, subject: str) -> list[ReferenceStatus]:
        """``subject``'s stored references bound only by an event written before reference
        events were sealed (state ``unsigned``) or sealed by another organisation before sealers
        were checked (``resealable``), in the order of those events: what
        ``attest_references`` would seal. They are not used until then. ``subject_altered``, as
        ``attest_references``, for a subject row the ledger did not enrol: nothing to look at."""
        record = self.get_subject(subject)
        with self._session_factory() as session:
            _refuse_unenrolled_subject(session, record)
            statuses = reference_statuses(session, record.id)
        return sorted((s for s in statuses if s.attestable), key=lambda s: (s.event_seq or 0, s.row_id))

    def attest_references(self, subject: str, row_ids: Iterable[int], *, org: str | None = None) -> int:
        """Seal, as organisation ``org`` (``reference_signer``), the references ``row_ids`` of
        ``subject`` that ``unsigned_references`` listed and an operator recognised: one
        ``subject.reference_added`` event each, naming the unsigned event it attests
        (``attests_seq``), so the founding reference stays the one the ledger began with.
        Refused (``RegistryError``) when one of them is no longer unsigned, and as enrolment is
        (``subject_altered``) when the subject's row is not the one the ledger enrolled. Returns
        how many."""
        record = self.get_subject(subject)
        signer, org_key = self._reference_key(org, record)
        wanted = set(row_ids)
        with self._session_factory() as session:
            begin_serialized(session, f"likeness.references.{record.id}")
            _refuse_unenrolled_subject(session, record)
            todo = [s for s in reference_statuses(session, record.id) if s.row_id in wanted]
            stale = wanted - {s.row_id for s in todo if s.attestable}
            if stale:
                session.rollback()
                raise RegistryError(
                    f"subject '{record.slug}': reference row(s) {', '.join(map(str, sorted(stale)))} are not "
                    "unsigned references written before reference events were sealed, nor references another "
                    "organisation sealed before seals were checked against who enrolled the subject; nothing attested"
                )
            for status in sorted(todo, key=lambda s: (s.event_seq or 0, s.row_id)):
                body = reference_event(
                    record.id,
                    status.source_name,
                    status.source_sha256,
                    status.vector,
                    org_id=signer.id,
                    key_fingerprint=keys.fingerprint(keys.public_raw(org_key)),
                    attests_seq=status.event_seq,
                )
                Ledger.append_in(
                    session, REFERENCE_EVENT, {**body, "signature": keys.sign(org_key, canonical_bytes(body))}
                )
            session.commit()
        return len(todo)

    def mark_reference_sealing(self) -> bool:
        """Put the sealing markers (``SEALING_MARKERS``) on the ledger, signed by the first
        organisation (in ledger order) whose pinned key this process can read, each unless a
        valid one is there: from ``ledger.references_sealed`` on, an unsigned reference event is
        a database editor's and is never attested; from ``ledger.reference_sealers_checked`` on,
        neither is a reference sealed by an organisation that did not enrol its subject; from
        ``ledger.subjects_sealed`` on, a ``subject.created`` event its organisation did not sign
        backs no subject. ``Workspace.init``, every ``Workspace.open`` that may write and
        ``add_org`` call it, so an upgraded workspace gets it at its first command and a new
        one with its first organisation. Nothing is written (False) where no organisation key
        can be read (an auditor's copy, another account) or the database refuses the write.
        Then the first valid marker of each kind is pinned in the key folder, where none is
        (``pin_sealing_markers``)."""
        written = self._write_sealing_markers()
        self.pin_sealing_markers()
        return written

    def pin_sealing_markers(self) -> list[MarkerPin]:
        """Record in the key folder (``marker_pins``) the row and hash of the first valid
        sealing marker of each kind that has no pin yet: a marker a database editor deletes
        later still bounds what reads as written before sealing. The pins added; none where
        the key folder cannot be written or its pin file is not used (audit names that)."""
        from likeness.consent.integrity import LedgerConsent

        pins = MarkerPins(self.keys_dir)
        try:
            unpinned = [event for event in SEALING_MARKERS if event not in pins.read()]
            if not unpinned:
                return []
            with self._session_factory() as session:
                view = LedgerConsent(session)
                found = [(event, first_sealing_marker(session, view.org_key, event=event)) for event in unpinned]
                rows = [(event, session.get(LedgerRow, seq)) for event, seq in found if seq is not None]
                return pins.record(
                    MarkerPin(event, row.seq, row.hash, row.prev_hash) for event, row in rows if row is not None
                )
        except (ConfigError, DatabaseRefused, LedgerError):
            return []

    def _write_sealing_markers(self) -> bool:
        from likeness.consent.integrity import LedgerConsent

        try:
            with self._session_factory() as session:
                view = LedgerConsent(session)
                if not _missing_markers(session, view.org_key):
                    return False
                signer = self._sealing_key(view)
                if signer is None:
                    return False
                org_id, org_key = signer
                session.rollback()
                begin_serialized(session, "likeness.references-sealed")
                missing = _missing_markers(session, LedgerConsent(session).org_key)
                if not missing:
                    session.rollback()
                    return False
                for event in missing:
                    fingerprint = keys.fingerprint(keys.public_raw(org_key))
                    body = sealing_marker(org_id, fingerprint, utc_iso(now_utc()), event=event)
                    Ledger.append_in(session, event, {**body, "signature": keys.sign(org_key, canonical_bytes(body))})
                session.commit()
                return True
        except (DatabaseRefused, LedgerError):  # a read-only copy; a ledger row no reader takes (audit names it)
            return False

    def _sealing_key(self, view: Any) -> tuple[str, Ed25519PrivateKey] | None:
        """``(org id, private key)`` of the first organisation on the ledger whose key the
        workspace pins and this process can read, ``None`` without one."""
        for org_id in view.pinned_orgs():
            try:
                org_key = keys.load_private_key(self.org_key_path(view.org_slug(org_id)))
            except LikenessError:
                continue
            if keys.fingerprint(keys.public_raw(org_key)) == view.org_key(org_id)[0]:
                return org_id, org_key
        return None

    def reference_embeddings(self, subject: str) -> np.ndarray:
        """``(K, 128)`` float32 references of ``subject`` that the organisation sealed on the
        ledger (``reference_statuses``: ``bound``), in enrolment order."""
        record = self.get_subject(subject)
        with self._session_factory() as session:
            blobs = [r.vector for r in reference_statuses(session, record.id) if r.usable]
        if not blobs:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return np.stack([np.frombuffer(b, dtype="<f4") for b in blobs]).astype(np.float32)

    def first_reference_embedding(self, subject: str) -> np.ndarray | None:
        """``(128,)`` float32: the subject's founding reference (``founding_reference``: the
        stored row of its first ``subject.reference_added`` event), ``None`` before any.

        ``FoundingReferenceMissing`` when that row was deleted or its vector replaced: the next
        oldest row would otherwise become the face every new reference is held to.
        ``ReferenceUnsealed`` when that event carries no valid organisation seal and no sealed
        event attests it: a database editor could have appended it.
        """
        record = self.get_subject(subject)
        with self._session_factory() as session:
            _refuse_unenrolled_subject(session, record)
            founding = founding_reference(session, record.id)
        if founding.event is None:
            return None
        if founding.row is None:
            raise _founding_error(record.slug, founding)
        return np.frombuffer(founding.row.vector, dtype="<f4").astype(np.float32)

    def all_reference_embeddings(self) -> list[tuple[str, str, str, np.ndarray]]:
        """``(subject_id, slug, name, embeddings (K,128))`` for every subject with references
        bound to the ledger whose row is what its ``subject.created`` event recorded: recognition
        names a face by the row, so one a database editor renamed would name it otherwise."""
        from likeness.consent.integrity import LedgerConsent, subject_identity_problem

        with self._session_factory() as session:
            view = LedgerConsent(session)
            as_enrolled = {s.id for s in session.scalars(select(Subject)) if subject_identity_problem(view, s) is None}
        out = []
        for record in self.list_subjects():
            if record.id not in as_enrolled:
                continue
            emb = self.reference_embeddings(record.id)
            if len(emb):
                out.append((record.id, record.slug, record.name, emb))
        return out

    def stored_reference_vectors(self) -> tuple[list[str], np.ndarray]:
        """Subject ids and ``(N, 128)`` float32 vectors of every stored reference row, sealed or
        not: one read, to find which subjects a face may be (a database editor can add rows, so
        a subject found here counts only through ``references_of_other_holders``)."""
        with self._session_factory() as session:
            rows = session.execute(select(ReferenceEmbedding.subject_id, ReferenceEmbedding.vector)).all()
        vectors = [np.frombuffer(vector, dtype="<f4") for _, vector in rows if len(vector) == 4 * EMBEDDING_DIM]
        ids = [str(subject_id) for subject_id, vector in rows if len(vector) == 4 * EMBEDDING_DIM]
        return ids, (np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, EMBEDDING_DIM), np.float32))

    def references_of_other_holders(self, subject: str, among: Iterable[str]) -> list[tuple[str, str, np.ndarray]]:
        """``(slug, enrolling organisation's slug, references (K, 128) float32)`` of each
        subject ``among`` (ids) whose rights holder is not ``subject``'s: what a new reference
        of ``subject`` must not match (``faceset.enrolled_faces``). Only references the
        organisation sealed (``reference_statuses``: usable); holder, slug and organisation as
        the ledger enrolled the subject, so a database editor who renames a row or moves it
        under another holder does not hide a face from the check."""
        from likeness.consent.integrity import LedgerConsent

        record = self.get_subject(subject)
        with self._session_factory() as session:
            view = LedgerConsent(session)
            own = view.subject_holder(record.id)
            out = []
            for subject_id in sorted(set(among) - {record.id}):
                enrolment = view.subject_created(subject_id)
                if enrolment is None or (own is not None and enrolment.payload.get("holder_id") == own):
                    continue
                blobs = [r.vector for r in reference_statuses(session, subject_id, view=view) if r.usable]
                if not blobs:
                    continue
                org_id = view.subject_org(subject_id)
                out.append(
                    (
                        str(enrolment.payload.get("slug")),
                        view.org_slug(org_id) if org_id else "(none on the ledger)",
                        np.stack([np.frombuffer(b, dtype="<f4") for b in blobs]).astype(np.float32),
                    )
                )
        return out

    def reference_rows(self) -> list[tuple[int, str, np.ndarray]]:
        """``(row_id, subject_id, embedding)`` of every reference bound to the ledger, in
        insertion order (for incremental index rebuilds)."""
        with self._session_factory() as session:
            rows = [r for r in reference_statuses(session) if r.usable]
        return [(r.row_id, r.subject_id, np.frombuffer(r.vector, dtype="<f4").copy()) for r in rows]

    # --- holder keys -----------------------------------------------------------------------
    def _ledger_key(self, holder: RightsHolder, *, row_must_match: bool = True):
        """The holder's current key per the ledger; ``holder_key_altered`` if the holder is not
        on the ledger or (``row_must_match``) its row's key differs from it, ``holder_altered``
        if (``row_must_match``) its row's slug, kind or name differs from ``holder.created``."""
        from likeness.consent.integrity import LedgerConsent, holder_identity_problem, holder_key_problem

        with self._session_factory() as session:
            view = LedgerConsent(session)
            history = view.holder_keys(holder.id)
            row = session.get(RightsHolder, holder.id)
            problem = holder_key_problem(history, row) if row is not None else "its row is missing"
            altered = holder_identity_problem(view, row) if row is not None else None
        if history.current is None or (problem and row_must_match):
            raise ConsentError(
                "holder_key_altered", f"rights holder '{holder.slug}': {problem}; nothing is signed with it"
            )
        if altered and row_must_match:
            raise ConsentError("holder_altered", f"rights holder '{holder.slug}': {altered}; nothing is signed with it")
        return history.current

    def recover_holder_key(
        self,
        holder: str,
        *,
        org: str,
        attestation: RecoveryAttestation,
        new_public_key_pem: bytes,
    ) -> str:
        """Move ``holder``, who lost their key, to the new public key they made on their own
        machine, with a ``holder.key_recovered`` event signed by organisation ``org`` and
        carrying ``attestation``.

        This proves only that the organisation vouched for the recovery (docs/consent.md); it
        is on the ledger for the holder and any auditor to see. Returns the new key's fingerprint.
        """
        row = self.get_holder(holder)
        problem = new_attestation_problem(attestation)
        if problem:
            raise RegistryError(f"rights holder '{row.slug}': {problem}")
        current = self._ledger_key(row)
        organisation = self.get_org(org)
        from likeness.consent.integrity import LedgerConsent

        with self._session_factory() as session:
            another = LedgerConsent(session).owner_problem(row.id, organisation.id)
        if another:  # (the ledger would ignore the recovery)
            raise RegistryError(f"rights holder '{row.slug}': {another}")
        org_key = self._org_signing_key(organisation)
        org_raw = keys.public_raw(org_key)
        new_raw = keys.public_raw_from_pem(new_public_key_pem)
        if keys.fingerprint(new_raw) == current.fingerprint:
            raise RegistryError(f"rights holder '{row.slug}': the new key is the current key")
        payload = key_recovery_payload(
            holder_id=row.id,
            previous_fingerprint=current.fingerprint,
            public_key=new_raw.hex(),
            org_id=organisation.id,
            org_fingerprint=keys.fingerprint(org_raw),
            attestation=attestation.as_payload(),
            recovered_at=utc_iso(now_utc()),
        )
        self._ledger.append(
            "holder.key_recovered", {**payload, "signature": keys.sign(org_key, canonical_bytes(payload))}
        )
        return self.holder_fingerprint(row.id)

    def request_adoption(self, holder: str, *, org: str, attestation: RecoveryAttestation) -> dict[str, Any]:
        """The adoption body (``adoption_payload``) for ``holder`` to sign on their own machine
        (``likeness holder sign-adoption``), making organisation ``org`` their onboarding
        organisation where the ledger names none (a holder enrolled before holders were bound
        to one, in a workspace with several organisations). ``attestation``: who checked that
        ``org`` enrolled them, and how. Refused for a holder the ledger already binds and for a
        holder with no key of their own to sign with (passkey-only)."""
        row = self.get_holder(holder)
        problem = new_attestation_problem(attestation)
        if problem:
            raise RegistryError(f"rights holder '{row.slug}': {problem}")
        from likeness.consent.passkeys import PASSKEY_ONLY

        self._refuse_bound(row)
        if row.key_fingerprint == PASSKEY_ONLY:
            raise RegistryError(
                f"rights holder '{row.slug}' signs with passkeys only: an adoption counts only with the holder's "
                "signature by a key of their own, which they do not have"
            )
        organisation = self.get_org(org)
        org_key = self._org_signing_key(organisation)
        return adoption_payload(
            holder_id=row.id,
            holder_fingerprint=self._ledger_key(row).fingerprint,
            org_id=organisation.id,
            org_name=self.org_display_name(organisation.id),
            org_fingerprint=keys.fingerprint(keys.public_raw(org_key)),
            attestation=attestation.as_payload(),
            adopted_at=utc_iso(now_utc()),
        )

    def _import_adoption(self, signed: SignedConsent) -> str:
        """Put an adoption the holder signed (``request_adoption``, ``holder sign-adoption``) on
        the ledger, countersigned by the organisation it names: ``holder.adopted`` is the body
        with ``holder_signature`` and ``signature``. ``signature_invalid`` unless the holder's
        key in force per the ledger signed it; ``RegistryError`` for a holder the ledger binds
        already. Returns the holder's slug."""
        from likeness.consent.integrity import LedgerConsent

        body = signed.payload
        why = adoption_malformed(body)
        if why:
            raise ConsentRequestError(f"the holder adoption is refused: {why}")
        row = self.get_holder(str(body["holder_id"]))
        self._refuse_bound(row)
        self._check_holder_signature("grant", row, signed, body["holder_fingerprint"])
        organisation = self.get_org(str(body["org_id"]))
        with self._session_factory() as session:
            relabelled = LedgerConsent(session).adopted_name_problem(body)
        if relabelled:  # (what the holder read must be who adopts them; the ledger would not count it)
            raise ConsentRequestError(
                f"the holder adoption is refused: {relabelled}; the holder signed for a name that is not this "
                "organisation's: draft it again (likeness consent adopt-holder)"
            )
        org_key = self._org_signing_key(organisation)
        if keys.fingerprint(keys.public_raw(org_key)) != body["org_fingerprint"]:
            raise ConsentRequestError(
                f"the holder adoption is refused: it names key {body['org_fingerprint']} for organisation "
                f"'{organisation.slug}', which signs with another now: request it again"
            )
        event = self._ledger.append(
            ADOPTION_EVENT,
            {**body, "holder_signature": signed.signature, "signature": keys.sign(org_key, canonical_bytes(body))},
        )
        with self._session_factory() as session:  # what every later decision reads, once now
            view = LedgerConsent(session)
            problems = [p for p in view.adoption_problems(row.id) if f"row {event.seq}:" in p]
            claims = view.ownership_claims(row.id)
            raced = view.claimed_before(event, claims) if any(c.seq == event.seq for c in claims) else None
        if raced:  # another claim came first (imported at the same moment): not a signature fault
            raise RegistryError(f"rights holder '{row.slug}': the adoption does not count on the ledger: {raced}")
        if problems:
            raise ConsentError("signature_invalid", f"the adoption does not count on the ledger: {problems[0]}")
        return row.slug

    def _refuse_bound(self, row: RightsHolder) -> None:
        """``RegistryError`` when the ledger already names the organisation that onboarded
        ``row``: an adoption is only for a holder it names none for."""
        from likeness.consent.integrity import LedgerConsent

        with self._session_factory() as session:
            view = LedgerConsent(session)
            created = view.holder_created(row.id)
            bound = [created] if created is not None and created.payload.get("org_id") else []
            bound = bound or view.ownership_claims(row.id)[:1]
        if bound:
            named = self._org_slug_or_id(str(bound[0].payload.get("org_id")))
            raise RegistryError(
                f"rights holder '{row.slug}' is onboarded by organisation '{named}' already (ledger row "
                f"{bound[0].seq}): an adoption is only for a holder the ledger names no organisation for"
            )

    def _org_slug_or_id(self, org_id: str | None) -> str:
        try:
            return self.get_org(str(org_id)).slug
        except RegistryError:
            return str(org_id)

    def org_signing_key(self, org: str) -> Ed25519PrivateKey:
        """``_org_signing_key`` of organisation ``org`` (slug or id)."""
        return self._org_signing_key(self.get_org(org))

    def _org_signing_key(self, organisation: Organisation) -> Ed25519PrivateKey:
        """The organisation's private key, refused (``signature_invalid``) unless it is the key
        its ``org.created`` records: what it signs would count for nothing."""
        org_key = keys.load_private_key(self.org_key_path(organisation.slug))
        if keys.fingerprint(keys.public_raw(org_key)) != self._ledger_org_fingerprint(organisation.id):
            raise ConsentError(
                "signature_invalid",
                f"{self.org_key_path(organisation.slug)}: not the key the ledger records for "
                f"organisation '{organisation.slug}'; nothing is signed with it",
            )
        return org_key

    def _ledger_org_fingerprint(self, org_id: str) -> str | None:
        from likeness.consent.anchor import ledger_org_fingerprint

        return ledger_org_fingerprint(self._ledger, org_id)

    def holder_fingerprint(self, holder: str) -> str:
        """Fingerprint of the key ``holder`` signs with now, per the ledger."""
        return self._ledger_key(self.get_holder(holder)).fingerprint

    def signed_parties(self, org_id: str, subject_id: str, holder_id: str) -> Parties:
        """The names a grant or release payload signs, read from the ledger's ``org.created``,
        ``subject.created`` and ``holder.created`` events, never from rows: a row whose slug,
        name or kind differs from its event is refused (``org_altered`` / ``subject_altered`` /
        ``holder_altered``), so a renamed row cannot put another name before the holder."""
        from likeness.consent.integrity import (
            LedgerConsent,
            holder_identity_problem,
            ledger_parties,
            org_identity_problem,
            subject_identity_problem,
        )

        with self._session_factory() as session:
            view = LedgerConsent(session)
            org, subject = session.get(Organisation, org_id), session.get(Subject, subject_id)
            holder = session.get(RightsHolder, holder_id)
            if org is None or subject is None or holder is None:
                raise RegistryError("the organisation, subject or rights holder of this request has no row")
            finding = org_identity_problem(view, org) or subject_identity_problem(view, subject)
            if finding is not None:
                raise ConsentError(finding.reason, f"{finding.detail}; nothing is requested with it")
            altered = holder_identity_problem(view, holder)
            if altered:
                raise ConsentError(
                    "holder_altered", f"rights holder '{holder.slug}': {altered}; nothing is requested with it"
                )
            parties = ledger_parties(view, org_id, subject_id, holder_id)
        if isinstance(parties, str):  # the identity checks above name a missing org or subject event
            raise ConsentError("holder_key_altered", f"rights holder '{holder.slug}': {parties}")
        return parties

    # --- grants and releases: requested here, signed by the holder, imported -------------
    def _request(
        self, kind: str, payload: dict[str, Any], *, parties: Parties, holder_slug: str, previews: tuple[str, ...]
    ) -> ConsentRequest:
        """Build the request for ``payload`` and put it on the ledger (``KIND.requested``), so
        an import can tell an altered payload (``KIND_altered``) from a wrong key."""
        request = consent_request_file(
            payload, parties, holder_slug, previews=previews, requested_at=utc_iso(now_utc())
        )
        self._ledger.append(
            f"{kind}.requested",
            {
                f"{kind}_id": request.record_id,
                "payload": payload,
                "payload_sha256": request.payload_sha256,
                "preview_sha256": list(request.preview_sha256),
            },
        )
        return request

    def draft_grant(
        self,
        subject: str,
        org: str,
        uses: Iterable[str],
        *,
        valid_until: datetime,
        valid_from: datetime | None = None,
        max_renders: int | None = None,
        allow_unlabelled: bool = False,
        purpose: str = "",
        preview_sha256: Iterable[str] = (),
        created_by: str = "cli",
    ) -> GrantRequest:
        """Draft a grant request for the subject's rights holder, for either signing path (the
        portal's passkey or the holder's Ed25519 key offline): one ``grant_requests`` row
        (pending) and one ``grant.requested`` event (``requested_event``). Refused, with a
        ``grant.refused`` event, for a prohibited or unknown use (``prohibited_use`` /
        ``unknown_use``) and for uses the holder's kind cannot grant (an estate:
        ``use_not_granted``). ``SubjectNotEnrolled``, with nothing written, for a subject
        whose enrolment the ledger does not back (``_refuse_unbacked_subject``)."""
        from likeness.consent.passkeys import PASSKEY_ONLY

        record = self.get_subject(subject)
        if record.kind == "performer":
            raise RegistryError(
                f"'{record.slug}' is a performer: performers give releases (likeness release request), not grants"
            )
        self._refuse_unbacked_subject(record)
        organisation = self.get_org(org)
        holder = self.get_holder(record.holder_id)
        parties = self.signed_parties(organisation.id, record.id, holder.id)
        requested = list(uses)
        purpose = request_purpose(purpose)
        try:
            request = make_request(
                request_id=_new_id(),
                subject_id=record.id,
                org_id=organisation.id,
                uses=requested,
                valid_from=utc_iso(valid_from or now_utc()),
                valid_until=utc_iso(valid_until),
                max_renders=max_renders,
                allow_unlabelled=allow_unlabelled,
                purpose=purpose,
                preview_sha256=preview_sha256,
                requested_at=utc_iso(now_utc()),
            )
            check_uses_for_holder_kind(request.uses, holder.kind)
        except ConsentError as exc:
            self._ledger.append(
                "grant.refused",
                {
                    "subject": record.slug,
                    "org": organisation.slug,
                    "uses": requested,
                    "reason": exc.reason,
                    "message": str(exc),
                },
            )
            raise
        # A holder with an Ed25519 key may sign offline: the exact payload, addressed to the
        # key in force now per the ledger (a tampered holder row is refused here).
        payload = (
            None
            if holder.key_fingerprint == PASSKEY_ONLY
            else offline_payload(
                request,
                holder_id=holder.id,
                holder_fingerprint=self._ledger_key(holder).fingerprint,
                parties=parties,
            )
        )
        with self._session_factory() as session:
            session.add(
                GrantRequestRow(
                    id=request.request_id,
                    subject_id=record.id,
                    org_id=organisation.id,
                    payload=canonical_bytes(request_payload(request)).decode("utf-8"),
                    request_sha256=request_sha256(request),
                    state="pending",
                    created_by=created_by,
                    created_at=request.requested_at,
                )
            )
            session.commit()
        self._ledger.append(
            REQUESTED_EVENT, requested_event(request, holder_id=holder.id, created_by=created_by, payload=payload)
        )
        return request

    def _refuse_unbacked_subject(self, record: SubjectRecord, *, what: str = "grant") -> None:
        """``SubjectNotEnrolled`` unless the ledger backs ``record``'s enrolment
        (``LedgerConsent.unbacked_enrolment``): a subject row a database editor wrote or
        changed would otherwise put a stranger's consent request (a ``what``) before the holder."""
        from likeness.consent.integrity import LedgerConsent

        with self._session_factory() as session:
            row = session.get(Subject, record.id)
            problem = "its row is gone" if row is None else LedgerConsent(session).unbacked_enrolment(row)
        if problem is not None:
            raise SubjectNotEnrolled(record.slug, problem, what=what)

    def request_grant(
        self,
        subject: str,
        org: str,
        uses: Iterable[str],
        *,
        valid_until: datetime,
        valid_from: datetime | None = None,
        max_renders: int | None = None,
        allow_unlabelled: bool = False,
        purpose: str = "",
        previews: Iterable[Path] = (),
        created_by: str = "cli",
    ) -> ConsentRequest:
        """Draft a grant request (``draft_grant``) and return it as the request file a holder
        signs on their own machine. Refused before anything is drafted when the holder signs
        with passkeys only (``offline_refusal``)."""
        holder = self.get_holder(self.get_subject(subject).holder_id)
        refusal = offline_refusal(holder)
        if refusal:
            raise RegistryError(refusal)
        request = self.draft_grant(
            subject,
            org,
            uses,
            valid_until=valid_until,
            valid_from=valid_from,
            max_renders=max_renders,
            allow_unlabelled=allow_unlabelled,
            purpose=purpose,
            preview_sha256=[preview_sha256(Path(p)) for p in previews],
            created_by=created_by,
        )
        return self.request_file(request.request_id)

    def requested_grant(self, request_id: str) -> RequestedGrant | None:
        """The grant request ``request_id`` as its ``grant.requested`` event records it,
        whichever path drafted it and whichever shape the event has (``None``: never
        requested here). The first event counts; later ones with the same id count for
        nothing."""
        with self._session_factory() as session:
            return requested_grant(session, request_id)

    def grant_requests_of_subject(self, subject_id: str) -> list[RequestedGrant]:
        """Every grant request for ``subject_id`` on the ledger, in order, whatever its shape."""
        with self._session_factory() as session:
            return requested_of_subject(session, subject_id)

    def request_file(self, request_id: str) -> ConsentRequest:
        """The request ``request_id`` (drafted in the portal or here) as the file an Ed25519
        holder signs offline (``REQUEST.json``). Refused (``RegistryError``, naming why) when
        the holder signs with passkeys only, when it was drafted before requests could be
        signed offline, or when it is already answered."""
        requested = self.requested_grant(request_id)
        if requested is None:
            raise ConsentError("not_requested", f"no grant request {request_id} was drafted in this workspace")
        subject = self.get_subject(requested.terms.subject_id)
        holder = self.get_holder(subject.holder_id)
        refusal = offline_refusal(holder)
        if refusal:
            raise RegistryError(refusal)
        if requested.payload is None:
            raise RegistryError(
                f"grant request {request_id} was drafted before portal requests named the payload to sign "
                f"offline; draft it again to sign it offline"
            )
        with self._session_factory() as session:
            row = session.get(GrantRequestRow, request_id)
            state = row.state if row is not None else "pending"
        if state != "pending" or self._ledger.find("grant.issued", grant_id=request_id):
            raise RegistryError(f"grant request {request_id} was already {state if state != 'pending' else 'signed'}")
        # A v1 request's payload names no one: the file shows the ledger's names, and the holder's
        # tool refuses to sign it (check_signable).
        parties = parties_of(requested.payload) or self.signed_parties(requested.terms.org_id, subject.id, holder.id)
        return consent_request_file(
            requested.payload,
            parties,
            holder.slug,
            previews=requested.terms.preview_sha256,
            requested_at=requested.terms.requested_at,
        )

    def request_release(
        self,
        performer: str,
        org: str,
        *,
        valid_until: datetime,
        valid_from: datetime | None = None,
        purpose: str = "",
        previews: Iterable[Path] = (),
    ) -> ConsentRequest:
        """Draft a release request for the performer to sign on their own machine;
        ``SubjectNotEnrolled``, with nothing written, for a performer whose enrolment the
        ledger does not back (``_refuse_unbacked_subject``)."""
        record = self.get_subject(performer)
        if record.kind != "performer":
            raise RegistryError(
                f"'{record.slug}' is not a performer (kind {record.kind}); releases are for target performers"
            )
        self._refuse_unbacked_subject(record, what="release")
        organisation = self.get_org(org)
        holder = self.get_holder(record.holder_id)
        parties = self.signed_parties(organisation.id, record.id, holder.id)
        stills = tuple(preview_sha256(Path(p)) for p in previews)
        purpose = request_purpose(purpose)
        start = valid_from or now_utc()
        if valid_until <= start:
            raise RegistryError("valid-until must be after valid-from")
        release = Release(
            id=_new_id(),
            performer_id=record.id,
            org_id=organisation.id,
            holder_id=holder.id,
            valid_from=utc_iso(start),
            valid_until=utc_iso(valid_until),
            purpose=purpose,
            issued_at=utc_iso(now_utc()),
        )
        named = {**parties.members(), "preview_sha256": list(stills)}
        payload = release_payload(release, self._ledger_key(holder).fingerprint, named)
        return self._request("release", payload, parties=parties, holder_slug=holder.slug, previews=stills)

    def import_signed(self, signed: SignedConsent) -> str:
        """Import a grant, release, revocation, key rotation, passkey vouch or adoption signed on
        the holder's machine; returns the grant's or release's id (a rotation: the new key's
        fingerprint; a vouch: the passkey's; an adoption: the holder's slug). Refused,
        with the reason, when a grant names a prohibited use (``prohibited_use``), answers no
        request of this workspace (``not_requested``), differs from the request
        (``grant_altered`` / ``release_altered``, naming the members), or is not signed by the
        holder's key in force per the ledger (``signature_invalid`` /
        ``release_signature_invalid``, naming the key that did sign)."""
        if signed.payload_type == ROTATION_TYPE:
            return self._import_rotation(signed)
        if signed.payload_type == VOUCH_TYPE:
            return self._import_passkey_vouch(signed)
        if signed.payload_type == ADOPTION_TYPE:
            return self._import_adoption(signed)
        kind_of_revocation = REVOCATION_TYPES.get(signed.payload_type)
        if kind_of_revocation is not None:
            return self._import_revocation(kind_of_revocation, signed)
        kind = "grant" if signed.payload_type in GRANT_TYPES else "release"
        record_id = str(signed.payload[f"{kind}_id"])
        if kind == "grant":
            try:
                check_grantable(signed.payload)
                # The estate rule, whatever the request said: the holder the payload names.
                check_uses_for_holder_kind(
                    signed.payload["uses"], self.get_holder(str(signed.payload["holder_id"])).kind
                )
            except ConsentError as exc:
                self._ledger.append(
                    "grant.refused",
                    {
                        "grant_id": record_id,
                        "uses": signed.payload.get("uses"),
                        "reason": exc.reason,
                        "message": str(exc),
                    },
                )
                raise
        requested_payload = self._requested_payload(kind, record_id)
        differences = payload_differences(signed.payload, requested_payload)
        if differences or canonical_sha256(signed.payload) != canonical_sha256(requested_payload):
            raise ConsentError(
                f"{kind}_altered",
                f"signed {kind} {record_id} is not what was requested ({'; '.join(differences) or 'digest differs'})",
            )
        if self._ledger.find(f"{kind}.issued", **{f"{kind}_id": record_id}):
            raise RegistryError(f"{kind} {record_id} is already imported")
        self._refuse_unbound_names(kind, signed.payload)
        holder = self.get_holder(str(signed.payload["holder_id"]))
        self._check_holder_signature(kind, holder, signed, signed.payload.get("holder_fingerprint"))
        row = (grant_row if kind == "grant" else release_row)(signed.payload, signed.signature)
        with self._session_factory() as session:
            session.add(row)
            if kind == "grant":  # the portal no longer offers it for signing
                session.execute(
                    update(GrantRequestRow)
                    .where(GrantRequestRow.id == record_id, GrantRequestRow.state == "pending")
                    .values(state="signed", grant_id=record_id, decided_at=utc_iso(now_utc()))
                )
            session.commit()
        self._ledger.append(
            f"{kind}.issued", {**signed.payload, "payload_sha256": row.payload_sha256, "signature": signed.signature}
        )
        return record_id

    def consent_parties(self, payload: dict[str, Any]) -> str:
        """The organisation and the subject (or performer) a signed grant, release or adoption
        ``payload`` names, as the ledger records them (not as a file or a row says), for whoever
        imports it to read: e.g. "organisation 'Byeol Agency' (byeol), subject 'Mina' (mina)";
        "" for a payload that names neither (a revocation, a rotation)."""
        from likeness.consent.integrity import LedgerConsent

        named = []
        with self._session_factory() as session:
            view = LedgerConsent(session)
            if isinstance(org_id := payload.get("org_id"), str):
                named.append(f"organisation {view.org_name(org_id)!r} ({view.org_slug(org_id)})")
            for member, what in (("subject_id", "subject"), ("performer_id", "performer")):
                record_id = payload.get(member)
                created = view.subject_created(record_id) if isinstance(record_id, str) else None
                if created is not None:
                    named.append(f"{what} {created.payload.get('name')!r} ({created.payload.get('slug')})")
        return ", ".join(named)

    def _refuse_unbound_names(self, kind: str, payload: dict[str, Any]) -> None:
        """``KIND_altered`` when a v2 payload signs names other than the ledger's for its ids
        (``integrity.signed_names_problem``) or preview stills other than those its
        ``KIND.requested`` event recorded: a request event written without drafting (a database
        editor) would otherwise have the holder sign names that are not these parties'."""
        from likeness.consent.integrity import LedgerConsent, signed_names_problem

        if parties_of(payload) is None:
            return  # v1: signed before names were, and it names ids only
        record_id = payload[f"{kind}_id"]
        with self._session_factory() as session:
            problem = signed_names_problem(LedgerConsent(session), payload)
        if problem is None:
            recorded = self._requested_previews(kind, str(record_id))
            if list(payload["preview_sha256"]) != recorded:
                problem = (
                    f"the preview stills it signs ({', '.join(payload['preview_sha256']) or 'none'}) are not those "
                    f"its request recorded ({', '.join(recorded) or 'none'})"
                )
        if problem:
            raise ConsentError(f"{kind}_altered", f"signed {kind} {record_id}: {problem}")

    def _requested_previews(self, kind: str, record_id: str) -> list[str]:
        """The preview digests the first ``KIND.requested`` event of ``record_id`` recorded."""
        if kind == "grant":
            requested = self.requested_grant(record_id)
            return list(requested.terms.preview_sha256) if requested is not None else []
        events = self._ledger.find("release.requested", release_id=record_id)
        return list(events[0].payload.get("preview_sha256") or []) if events else []

    def _requested_payload(self, kind: str, record_id: str) -> dict[str, Any]:
        """The exact payload the request ``record_id`` asked the holder to sign offline;
        ``not_requested`` when no request of this workspace did."""
        if kind == "grant":
            requested = self.requested_grant(record_id)
            if requested is not None and requested.payload is None:
                raise ConsentError(
                    "not_requested",
                    f"signed grant {record_id}: its request names no payload for an Ed25519 key to sign (drafted "
                    f"for a passkey in the portal, for a passkey-only holder or before requests named one)",
                )
            payload = requested.payload if requested is not None else None
        else:
            events = self._ledger.find("release.requested", release_id=record_id)
            payload = events[0].payload.get("payload") if events else None
        if not payload:
            raise ConsentError(
                "not_requested",
                f"signed {kind} {record_id}: no {kind} request with this id was drafted in this workspace",
            )
        return dict(payload)

    def _check_holder_signature(
        self, kind: str, holder: RightsHolder, signed: SignedConsent, addressed: Any, *, row_must_match: bool = True
    ) -> None:
        """``signature_invalid`` (``release_signature_invalid`` for releases) unless ``signed``
        verifies with the holder's key in force per the ledger; the message names the key that
        did sign when it is another one."""
        reason = "signature_invalid" if kind == "grant" else "release_signature_invalid"
        current = self._ledger_key(holder, row_must_match=row_must_match)
        if addressed is not None and addressed != current.fingerprint:
            raise ConsentError(
                reason,
                f"the {kind} was requested for key {addressed}, but rights holder '{holder.slug}' signs with "
                f"{current.fingerprint} now (the key changed since the request): request it again",
            )
        if keys.verify(bytes.fromhex(current.public_key), signed.message(), signed.signature):
            return
        signer = keys.fingerprint(bytes.fromhex(signed.public_key))
        if signer != current.fingerprint and keys.verify(
            bytes.fromhex(signed.public_key), signed.message(), signed.signature
        ):
            raise ConsentError(
                reason,
                f"signed with key {signer}, which is not rights holder '{holder.slug}''s registered key "
                f"{current.fingerprint}",
            )
        raise ConsentError(
            reason, f"the signature does not verify with rights holder '{holder.slug}''s key {current.fingerprint}"
        )

    def find_grant_id(self, prefix: str) -> str:
        """Resolve a full grant id from a unique prefix (as shown by ``consent list``)."""
        with self._session_factory() as session:
            ids = list(session.scalars(select(Grant.id).where(Grant.id.startswith(prefix))))
        if len(ids) != 1:
            raise RegistryError(
                f"no grant with id '{prefix}'" if not ids else f"grant id prefix '{prefix}' is ambiguous"
            )
        return ids[0]

    def render_count(self, grant_id: str) -> int:
        """Render slots in use under ``grant_id``, counted as the policy engine counts them."""
        from likeness.consent.policy import renders_used

        with self._session_factory() as session:
            return renders_used(session, grant_id)

    def grant_record(self, grant_id: str, *, at: datetime | None = None) -> GrantRecord:
        with self._session_factory() as session:
            grant = session.get(Grant, grant_id)
            if grant is None:
                raise RegistryError(f"no grant '{grant_id}'")
            subject = _existing(session, Subject, grant.subject_id)
            org = _existing(session, Organisation, grant.org_id)
            holder = _existing(session, RightsHolder, grant.holder_id)
            revocation = session.scalar(select(GrantRevocation).where(GrantRevocation.grant_id == grant_id))
            from likeness.consent.integrity import LedgerConsent

            on_ledger = LedgerConsent(session).revocation("grant", grant_id, grant.holder_id, revocation)
            return GrantRecord(
                id=grant.id,
                subject_slug=subject.slug,
                org_slug=org.slug,
                holder_slug=holder.slug,
                uses=tuple(strict_json.loads(grant.uses)),
                valid_from=grant.valid_from,
                valid_until=grant.valid_until,
                max_renders=grant.max_renders,
                renders_used=self.render_count(grant_id),
                allow_unlabelled=bool(grant.allow_unlabelled),
                purpose=grant.purpose,
                issued_at=grant.issued_at,
                signature_sha256=keys_sha(grant.signature),
                state=self.grant_state(grant_id, at=at),
                revoked_at=on_ledger.revoked_at or (revocation.revoked_at if revocation else None),
            )

    def list_grants(self, *, subject: str | None = None, org: str | None = None) -> list[GrantRecord]:
        with self._session_factory() as session:
            query = select(Grant.id).order_by(Grant.issued_at, Grant.id)
            if subject:
                query = query.where(Grant.subject_id == self.get_subject(subject).id)
            if org:
                query = query.where(Grant.org_id == self.get_org(org).id)
            ids = list(session.scalars(query))
        return [self.grant_record(i) for i in ids]

    def grant_state(self, grant_id: str, *, at: datetime | None = None) -> str:
        """``active``, ``expired``, ``not_yet_valid``, ``revoked``, ``altered`` or ``unknown``,
        decided as the policy engine decides (a revocation on the ledger counts even without its
        row; a row that disagrees with the ledger, or an unverifiable revocation, is ``altered``).
        A grant that exists only on the ledger (its row deleted) is ``revoked`` if the ledger
        revokes it, else ``altered``."""
        from likeness.consent.integrity import LedgerConsent
        from likeness.consent.policy import grant_standing, state_of_reason

        moment = at or now_utc()
        with self._session_factory() as session:
            grant = session.get(Grant, grant_id)
            view = LedgerConsent(session)
            if grant is None:
                signed = view.issued("grant", grant_id)
                if signed is None:
                    return "unknown"
                revoked = view.revocation("grant", grant_id, signed.payload.get("holder_id"), None)
                return "revoked" if revoked.revoked_at else "altered"
            finding = grant_standing(session, view, grant, moment)
            return state_of_reason(finding.reason if finding else None)

    # --- performer releases --------------------------------------------------------------
    def _import_rotation(self, signed: SignedConsent) -> str:
        """Put a key rotation the holder signed on their machine on the ledger
        (``holder.key_rotated``); returns the new key's fingerprint. It must be signed by the
        key in force per the ledger and name it as the previous key (``signature_invalid``)."""
        body = signed.payload
        holder = self.get_holder(str(body["holder_id"]))
        current = self._ledger_key(holder)
        try:
            expected = key_rotation_payload(
                holder_id=holder.id,
                previous_public_key=str(body["previous_public_key"]),
                public_key=str(body["public_key"]),
                rotated_at=str(body["rotated_at"]),
            )
            parse_utc(str(body["rotated_at"]))
        except ValueError:
            expected = {}
        if body != expected:
            raise ConsentRequestError("the key rotation's members are not a rotation (keys: hex, rotated_at: UTC time)")
        if body["previous_fingerprint"] != current.fingerprint:
            raise ConsentError(
                "signature_invalid",
                f"the rotation moves away from key {body['previous_fingerprint']}, but rights holder "
                f"'{holder.slug}' signs with {current.fingerprint}",
            )
        if body["key_fingerprint"] == current.fingerprint:
            raise RegistryError(f"rights holder '{holder.slug}': the new key is the current key")
        self._check_holder_signature("grant", holder, signed, None)
        self._ledger.append("holder.key_rotated", {**body, "signature": signed.signature})
        return self.holder_fingerprint(holder.id)

    def _import_passkey_vouch(self, signed: SignedConsent) -> str:
        """Register the passkey a holder who signs offline vouched for with their key
        (``holder.passkey_registered``: the statement and the signature); returns the passkey's
        fingerprint. ``signature_invalid`` unless the key in force per the ledger signed it
        (naming the key that did); ``ConsentRequestError`` for a statement that is not one,
        ``RegistryError`` for a passkey already registered (a statement is one passkey's; an
        event appended without import, signed or not, does not block the genuine one)."""
        from likeness.consent.integrity import LedgerConsent
        from likeness.consent.passkeys import PASSKEY_ONLY, PASSKEY_REGISTERED, b64url, unb64url, vouch_malformed

        body = signed.payload
        why = vouch_malformed(body)
        if why:
            raise ConsentRequestError(f"the passkey vouch is refused: {why}")
        holder = self.get_holder(str(body["holder_id"]))
        if holder.key_fingerprint == PASSKEY_ONLY:
            raise ConsentError(
                "signature_invalid",
                f"rights holder '{holder.slug}' signs with passkeys only: a further passkey is vouched for by one "
                f"they have (recovery passkey, in the portal)",
            )
        with self._session_factory() as session:
            taken = session.scalar(select(HolderPasskey).where(HolderPasskey.credential_id == body["credential_id"]))
            if taken is not None or any(
                b64url(p.credential_id) == body["credential_id"] for p in LedgerConsent(session).passkeys(holder.id)
            ):
                raise RegistryError("this passkey is already registered")
        self._check_holder_signature("grant", holder, signed, body["holder_fingerprint"])
        event = self._ledger.append(PASSKEY_REGISTERED, {**body, "signature": signed.signature})
        with self._session_factory() as session:  # what every later use reads, once now
            view = LedgerConsent(session)
            if not any(b64url(p.credential_id) == body["credential_id"] for p in view.passkeys(holder.id)):
                why = "; ".join(p for p in view.passkey_problems(holder.id) if f"row {event.seq}:" in p)
                raise ConsentError("signature_invalid", f"the vouched passkey does not count on the ledger: {why}")
            session.add(
                HolderPasskey(
                    id=_new_id(),
                    holder_id=holder.id,
                    credential_id=body["credential_id"],
                    public_key=unb64url(body["public_key"]),
                    rp_id=body["rp_id"],
                    origin=body["origin"],
                    sign_count=body["sign_count"],
                    label=body["label"],
                    created_at=utc_iso(now_utc()),
                )
            )
            session.commit()
        return str(body["key_fingerprint"])

    def _import_revocation(self, kind: str, signed: SignedConsent) -> str:
        """Put a holder's signed revocation on the ledger (in force from then on), then add its
        row. The holder is the one the record's ledger event names, and the signature must
        verify with that holder's key per the ledger even if their row was tampered with: a
        holder can always take consent back. A row already there that does not verify
        (planted to block this) is left for audit to name."""
        from likeness.consent.integrity import LedgerConsent

        body = signed.payload
        try:
            well_formed = body == revocation_payload(
                kind, str(body[f"{kind}_id"]), str(body["revoked_at"]), str(body["reason"])
            )
            parse_utc(str(body["revoked_at"]))
        except ValueError:
            well_formed = False
        if not well_formed:
            raise ConsentRequestError(
                f"the {kind} revocation's members are not a revocation (revoked_at: UTC time, reason: text)"
            )
        record_model: type[Any] = Grant if kind == "grant" else Release
        revocation_model: type[Any] = GrantRevocation if kind == "grant" else ReleaseRevocation
        target_id = str(signed.payload[f"{kind}_id"])
        target_column = getattr(revocation_model, f"{kind}_id")
        with self._session_factory() as session:
            view = LedgerConsent(session)
            record = session.get(record_model, target_id)
            issued = view.issued(kind, target_id)
            if record is None and issued is None:
                raise RegistryError(f"no {kind} '{target_id}'")
            holder_id = issued.payload.get("holder_id") if issued else (record.holder_id if record else None)
            row = session.scalar(select(revocation_model).where(target_column == target_id))
            if view.revocation(kind, target_id, holder_id, row).revoked_at:
                raise RegistryError(f"{kind} '{target_id}' is already revoked")
            holder = session.get(RightsHolder, holder_id)
            if holder is None:
                raise RegistryError(f"{kind} '{target_id}': its rights holder '{holder_id}' has no row")
            session.expunge(holder)
        self._check_holder_signature(kind, holder, signed, None, row_must_match=False)
        payload = signed.payload
        self._ledger.append(f"{kind}.revoked", {**payload, "signature": signed.signature})
        if row is None:
            with self._session_factory() as session:
                session.add(
                    revocation_model(
                        id=_new_id(),
                        revoked_at=payload["revoked_at"],
                        reason=payload["reason"],
                        signature=signed.signature,
                        **{f"{kind}_id": target_id},
                    )
                )
                session.commit()
        return target_id

    def find_release_id(self, prefix: str) -> str:
        with self._session_factory() as session:
            ids = list(session.scalars(select(Release.id).where(Release.id.startswith(prefix))))
        if len(ids) != 1:
            raise RegistryError(
                f"no release with id '{prefix}'" if not ids else f"release id prefix '{prefix}' is ambiguous"
            )
        return ids[0]

    def list_releases(self, *, performer: str | None = None) -> list[ReleaseRecord]:
        """Releases with their state as the policy engine decides it (see ``grant_state``)."""
        from likeness.consent.integrity import LedgerConsent
        from likeness.consent.policy import release_standing, state_of_reason

        now = now_utc()
        out = []
        with self._session_factory() as session:
            view = LedgerConsent(session)
            query = select(Release).order_by(Release.issued_at, Release.id)
            if performer:
                query = query.where(Release.performer_id == self.get_subject(performer).id)
            for release in session.scalars(query):
                revocation = view.revocation(
                    "release",
                    release.id,
                    release.holder_id,
                    session.scalar(select(ReleaseRevocation).where(ReleaseRevocation.release_id == release.id)),
                )
                finding = release_standing(session, view, release, now)
                state = state_of_reason(finding.reason if finding else None)
                out.append(
                    ReleaseRecord(
                        id=release.id,
                        performer_slug=_existing(session, Subject, release.performer_id).slug,
                        org_slug=_existing(session, Organisation, release.org_id).slug,
                        valid_from=release.valid_from,
                        valid_until=release.valid_until,
                        purpose=release.purpose,
                        issued_at=release.issued_at,
                        state=state,
                        revoked_at=revocation.revoked_at,
                    )
                )
        return out


def consent_request_file(
    payload: dict[str, Any], parties: Parties, holder_slug: str, *, previews: tuple[str, ...], requested_at: str
) -> ConsentRequest:
    """The request file for ``payload``: its display blocks are the names the payload signs
    (``parties``), so the file and the signature agree (``describe`` reads the payload's)."""
    return ConsentRequest(
        payload=payload,
        organisation={"id": payload["org_id"], "slug": parties.org_slug, "name": parties.org_name},
        subject={
            "id": payload.get("subject_id", payload.get("performer_id")),
            "slug": parties.subject_slug,
            "name": parties.subject_name,
            "kind": parties.subject_kind,
        },
        holder={
            "id": payload["holder_id"],
            "slug": holder_slug,
            "name": parties.holder_name,
            "kind": parties.holder_kind,
            "key_fingerprint": payload["holder_fingerprint"],
        },
        preview_sha256=previews,
        requested_at=requested_at,
    )


def offline_refusal(holder: RightsHolder) -> str | None:
    """Why ``holder`` cannot sign a request offline (a passkey-only holder has no Ed25519 key),
    or ``None``."""
    from likeness.consent.passkeys import PASSKEY_ONLY

    if holder.key_fingerprint != PASSKEY_ONLY:
        return None
    return (
        f"rights holder '{holder.slug}' signs with passkeys only: no Ed25519 key is registered for them, so a "
        f"request cannot be signed offline (likeness holder sign); they sign it in the portal"
    )


def requested_grant(session: Session, request_id: str) -> RequestedGrant | None:
    """The first ``grant.requested`` event of ``request_id``, read whatever its shape: the one
    lookup both signing paths use (events keyed by ``request_id``, the portal's earlier shape
    and today's, or by ``grant_id``, the offline earlier shape and today's)."""
    found = {
        e.seq: e
        for member in ("request_id", "grant_id")
        for e in find_events(session, REQUESTED_EVENT, {member: request_id})
    }
    for seq in sorted(found):
        requested = requested_from_event(found[seq].payload)
        if requested.request_id == request_id:
            return requested
    return None


def requested_of_subject(session: Session, subject_id: str) -> list[RequestedGrant]:
    """Every grant request for ``subject_id`` on the ledger (the offline earlier shape names
    the subject inside its payload only, hence the scan), the first event of each id."""
    seen: dict[str, RequestedGrant] = {}
    for event in find_events(session, REQUESTED_EVENT, {}):
        if subject_id not in json.dumps(event.payload):
            continue
        requested = requested_from_event(event.payload)
        if requested.terms.subject_id == subject_id:
            seen.setdefault(requested.request_id, requested)
    return list(seen.values())


def vector_sha256(vector: bytes) -> str:
    """SHA-256 of a reference embedding's stored bytes (float32 little-endian, 128 values)."""
    return hashlib.sha256(vector).hexdigest()


#: The ledger event that enrols a reference, and what its organisation seal is a seal of.
REFERENCE_EVENT = "subject.reference_added"
REFERENCE_SEAL_TYPE = "likeness.subject-reference.v1"
#: Members every sealed reference event names (``attests_seq`` too, on an attestation).
_REFERENCE_SEALED = ("subject_id", "source_name", "source_sha256", "vector_sha256", "org_id", "key_fingerprint")
#: Why an event without any signature is not used (events written before reference events
#: were sealed have none; so has one a database editor appended).
UNSIGNED = "it carries no organisation seal"


def reference_event(
    subject_id: str,
    source_name: str,
    source_sha256: str,
    vector: bytes,
    *,
    org_id: str,
    key_fingerprint: str,
    attests_seq: int | None = None,
) -> dict[str, Any]:
    """The body an organisation seals for the ``subject.reference_added`` event of one stored
    reference: subject, photo and vector digest, and who vouches. ``attests_seq``: the ledger
    row of the event this one attests (unsigned, written before reference events were sealed, or
    ``resealable``)."""
    body: dict[str, Any] = {
        "type": REFERENCE_SEAL_TYPE,
        "subject_id": subject_id,
        "source_name": source_name,
        "source_sha256": source_sha256,
        "vector_sha256": vector_sha256(vector),
        "org_id": org_id,
        "key_fingerprint": key_fingerprint,
    }
    if attests_seq is not None:
        body["attests_seq"] = attests_seq
    return body


OrgKey = Callable[[str], tuple[str, str | None] | None]
#: ``(subject_id, org_id)`` -> why that organisation's seal does not count on the subject's
#: references, ``None`` when it does (``LedgerConsent.reference_sealer_problem``).
SealerProblem = Callable[[str, str], str | None]


def reference_seal_problem(payload: dict[str, Any], org_key: OrgKey, sealer_problem: SealerProblem) -> str | None:
    """Why reference event ``payload`` is not sealed by the organisation that enrolled its
    subject (``None``: it is), with the organisation's key as its ``org.created`` event records
    it (``org_key(org_id)``: fingerprint and public key hex, as ``LedgerConsent.org_key``) and
    who enrolled the subject (``sealer_problem``). ``UNSIGNED`` when it carries no signature at
    all. The seal covers every member but the signature (pure)."""
    if "signature" not in payload:
        return UNSIGNED
    body = {k: v for k, v in payload.items() if k != "signature"}
    attests = body.get("attests_seq", 0)
    if (
        body.get("type") != REFERENCE_SEAL_TYPE
        or any(not isinstance(body.get(name), str) for name in _REFERENCE_SEALED)
        or not isinstance(attests, int)
        or isinstance(attests, bool)
    ):
        return "its organisation seal is malformed"
    return org_seal_problem(body, payload["signature"], org_key) or sealer_problem(body["subject_id"], body["org_id"])


def org_seal_problem(body: dict[str, Any], signature: Any, org_key: OrgKey) -> str | None:
    """Why ``signature`` is not organisation ``body['org_id']``'s signature of ``body`` with the
    key ``body['key_fingerprint']`` names, that key being the one ``org_key`` finds for it on
    the ledger and pinned (``None``: it is) (pure)."""
    if not isinstance(signature, str):
        return "its organisation seal is malformed"
    org = org_key(str(body["org_id"]))
    if org is None:
        return (
            f"it is signed by organisation {str(body['org_id'])[:32]!r}, which is not on the ledger or whose key "
            "this workspace does not pin"
        )
    fingerprint, public = org
    if public is None or fingerprint != body.get("key_fingerprint"):
        return "it is not signed with its organisation's key as the ledger records it"
    try:
        verified = signature_verifies(public, canonical_bytes(body), signature)
    except ValueError:  # a member no signature covers (NaN, a lone surrogate)
        verified = False
    return None if verified else "its organisation signature does not verify"


#: The ledger event from which a workspace writes only sealed reference events, signed by one
#: of its organisations: an unsigned reference event after the first valid one is a database
#: editor's, never attestable (``ReferenceSeals.sealed_from``).
SEALING_EVENT = "ledger.references_sealed"
#: The ledger event from which the writer seals a subject's references only with the key of the
#: organisation that enrolled it (``reference_signer``): a reference another organisation of the
#: workspace sealed before the first valid one was sealed when any of them could, so the
#: enrolling organisation may attest it (``ReferenceSeals.resealable``).
SEALERS_EVENT = "ledger.reference_sealers_checked"
#: The ledger event from which the writer signs every ``subject.created`` event with the key of
#: the organisation it names: an unsigned one after the first valid one is a database editor's,
#: and backs no subject (``LedgerConsent.subject_seal_problem``).
SUBJECTS_EVENT = "ledger.subjects_sealed"
#: The ledger event from which the writer signs every ``holder.created`` event with the key of
#: the organisation onboarding the holder: an unsigned one after the first valid one (or one
#: naming no organisation, as versions before holders were bound wrote them) is a database
#: editor's, and enrols no rights holder (``LedgerConsent.holder_seal_problem``).
HOLDERS_EVENT = "ledger.holders_sealed"
#: Each sealing marker event and the type of the body its organisation signs.
SEALING_MARKERS = {
    SEALING_EVENT: "likeness.references-sealed.v1",
    SEALERS_EVENT: "likeness.reference-sealers-checked.v1",
    SUBJECTS_EVENT: "likeness.subjects-sealed.v1",
    HOLDERS_EVENT: "likeness.holders-sealed.v1",
}
#: What the enrolling organisation's signature on a ``subject.created`` event is a signature of.
SUBJECT_SEAL_TYPE = "likeness.subject.v1"
#: What the onboarding organisation's signature on a ``holder.created`` event is a signature of.
HOLDER_SEAL_TYPE = "likeness.holder.v1"


def holder_created_event(holder: RightsHolder, org_id: str, org_key: Ed25519PrivateKey) -> dict[str, Any]:
    """The ``holder.created`` payload of ``holder``, onboarded by organisation ``org_id`` and
    signed with its key ``org_key`` (pure): the body is the payload but the signature."""
    body = {
        "type": HOLDER_SEAL_TYPE,
        "holder_id": holder.id,
        "slug": holder.slug,
        "name": holder.name,
        "kind": holder.kind,
        "key_fingerprint": holder.key_fingerprint,
        "public_key": holder.public_key,
        "org_id": org_id,
        "org_fingerprint": keys.fingerprint(keys.public_raw(org_key)),
    }
    return {**body, "signature": keys.sign(org_key, canonical_bytes(body))}


def sealing_marker(org_id: str, key_fingerprint: str, at: str, *, event: str = SEALING_EVENT) -> dict[str, Any]:
    """The body an organisation signs for the sealing marker ``event`` (``SEALING_MARKERS``)."""
    return {"type": SEALING_MARKERS[event], "org_id": org_id, "key_fingerprint": key_fingerprint, "at": at}


def sealing_marker_problem(payload: dict[str, Any], org_key: OrgKey, *, event: str = SEALING_EVENT) -> str | None:
    """Why ``payload`` is not a valid sealing marker ``event`` (``None``: it is): a marker body
    of its type signed with its organisation's pinned key (pure)."""
    body = {k: v for k, v in payload.items() if k != "signature"}
    if body.get("type") != SEALING_MARKERS[event] or any(
        not isinstance(body.get(m), str) for m in sealing_marker("", "", "")
    ):
        return "it is not a sealing marker"
    return org_seal_problem(body, payload.get("signature"), org_key)


def first_sealing_marker(session: Session, org_key: OrgKey, *, event: str = SEALING_EVENT) -> int | None:
    """The ledger row of the first valid sealing marker ``event``, ``None`` before one."""
    return next(
        (
            e.seq
            for e in find_events(session, event, {})
            if sealing_marker_problem(e.payload, org_key, event=event) is None
        ),
        None,
    )


def _missing_markers(session: Session, org_key: OrgKey) -> list[str]:
    """The sealing marker events with no valid marker on the ledger yet, in writing order."""
    return [event for event in SEALING_MARKERS if first_sealing_marker(session, org_key, event=event) is None]


@functools.lru_cache(maxsize=16384)
def signature_verifies(public_hex: str, signed: bytes, signature: str) -> bool:
    """``keys.verify``, remembered: every reading of the references and subjects (each
    enrolment, gallery sync and audit) checks every seal again, and an Ed25519 check costs about
    ten times the rest of reading a reference. The answer depends only on these three arguments."""
    return keys.verify(bytes.fromhex(public_hex), signed, signature)


@dataclass(frozen=True)
class ReferenceSeals:
    """The seal check of every ``subject.reference_added`` event read (ledger row -> ``None``
    when sealed, else why not) and ``sealed_from``: the ledger row of the first valid sealing
    marker or the first sealed reference event, whichever comes first (looked up only when an
    event read is unsigned). The product writes no unsigned reference event from then on, so one
    after it is a database editor's; one before it was written before events were sealed."""

    problems: dict[int, str | None]
    sealed_from: int | None
    #: events sealed, with its pinned key, by an organisation that did not enrol their subject,
    #: before the first valid ``ledger.reference_sealers_checked`` marker: any organisation of
    #: the workspace sealed then, and no database editor can write such a seal
    resealable: frozenset[int] = frozenset()

    def sealed(self, event: LedgerEvent) -> bool:
        return self.problems.get(event.seq, UNSIGNED) is None

    def attestable(self, event: LedgerEvent) -> bool:
        """Unsigned and written before reference events were sealed, or ``resealable``."""
        if event.seq in self.resealable:
            return True
        return self.problems.get(event.seq) == UNSIGNED and (self.sealed_from is None or event.seq < self.sealed_from)

    def why(self, event: LedgerEvent) -> str:
        """Why ``event`` is not used, in words ("" when it is sealed)."""
        problem = self.problems.get(event.seq, UNSIGNED)
        if problem is None:
            return ""
        if event.seq in self.resealable:
            return f"{problem} (sealed before seals were checked against who enrolled the subject)"
        if problem != UNSIGNED:
            return problem
        if self.attestable(event):
            return f"{UNSIGNED} (written before reference events were sealed)"
        return f"{UNSIGNED}, yet was written after reference events were sealed (ledger row {self.sealed_from})"


def reference_seals(session: Session, events: Iterable[LedgerEvent], *, view: Any = None) -> ReferenceSeals:
    """Check the seal of each of ``events`` (and find where sealing began) through ``session``
    (and ``view``, a ``LedgerConsent`` of it, when the caller has one)."""
    from likeness.consent.integrity import LedgerConsent

    view = view if view is not None else LedgerConsent(session)

    def problem(event: LedgerEvent) -> str | None:
        return reference_seal_problem(event.payload, view.org_key, view.reference_sealer_problem)

    problems = {e.seq: problem(e) for e in events}
    resealable = _resealable(view, [e for e in events if problems[e.seq] not in (None, UNSIGNED)])
    if UNSIGNED not in problems.values():  # where sealing began tells only unsigned events apart
        return ReferenceSeals(problems, None, resealable)
    marker = view.sealing_marker()
    first_sealed = next(
        (
            e.seq
            for e in find_events(session, REFERENCE_EVENT, {"type": REFERENCE_SEAL_TYPE})
            if (marker is None or e.seq < marker) and (problems[e.seq] if e.seq in problems else problem(e)) is None
        ),
        None,
    )
    return ReferenceSeals(problems, first_sealed if first_sealed is not None else marker, resealable)


def _resealable(view: LedgerConsent, wrongly_sealed: list[LedgerEvent]) -> frozenset[int]:
    """The rows of ``wrongly_sealed`` events whose seal verifies with a pinned organisation key,
    only not the enrolling organisation's, written before sealers were checked (``SEALERS_EVENT``)."""
    other = [e.seq for e in wrongly_sealed if reference_seal_problem(e.payload, view.org_key, lambda *_: None) is None]
    checked = view.sealing_marker(SEALERS_EVENT) if other else None
    return frozenset(seq for seq in other if checked is None or seq < checked)


@dataclass(frozen=True)
class ReferenceStatus:
    """A stored reference embedding and its binding to the ledger.

    ``state``: ``bound`` (an organisation-sealed ``subject.reference_added`` event of the same
    subject and photo records this vector's digest), and otherwise not used: ``unsigned`` (only
    events without a seal name it, written before reference events were sealed: an operator
    may attest it), ``unsigned_late`` (the same, written after sealing began: a database
    editor's), ``resealable`` (an event another organisation of the workspace sealed before
    sealers were checked records it: the enrolling organisation may attest it),
    ``seal_invalid`` (an event whose seal does not verify records it; ``detail`` says why),
    ``vector_differs`` (events name the photo, none this vector) or ``no_event``.
    ``event_seq``: the matching event's ledger row (or the photo's first event), ``None``
    without one.
    """

    row_id: int
    subject_id: str
    source_name: str
    source_sha256: str
    vector: bytes
    state: str
    event_seq: int | None
    detail: str = ""

    @property
    def usable(self) -> bool:
        return self.state == "bound"

    @property
    def attestable(self) -> bool:
        return self.state in ("unsigned", "resealable")


def reference_state(vector: bytes, events: list[LedgerEvent], seals: ReferenceSeals) -> tuple[str, int | None, str]:
    """``(state, event row, detail)`` of a stored vector given the ``subject.reference_added``
    events of its subject and photo (pure; see ``ReferenceStatus``). An event from before
    vector digests names only the photo, so it stands for whatever vector the row holds."""
    digest = vector_sha256(vector)
    sealed = [e for e in events if seals.sealed(e)]
    for event in sealed:
        if event.payload.get("vector_sha256") == digest:
            return "bound", event.seq, ""
    if sealed:  # the organisation sealed this photo with another vector: replaced
        return "vector_differs", sealed[0].seq, ""
    naming = [e for e in events if e.payload.get("vector_sha256", digest) == digest]
    for event in naming:
        if seals.problems.get(event.seq, UNSIGNED) != UNSIGNED:
            return ("resealable" if seals.attestable(event) else "seal_invalid"), event.seq, seals.why(event)
    for event in naming:
        return ("unsigned" if seals.attestable(event) else "unsigned_late"), event.seq, seals.why(event)
    return ("vector_differs", events[0].seq, "") if events else ("no_event", None, "")


def reference_statuses(session: Session, subject_id: str | None = None, *, view: Any = None) -> list[ReferenceStatus]:
    """Every stored reference embedding (of ``subject_id``, or all) with its ledger binding,
    in insertion order (seals checked through ``view``, a ``LedgerConsent``, when given). Reference rows are facts anyone with the database can insert, and so
    are unsigned ledger events; only an event the organisation sealed says which photo and
    vector were enrolled for whom."""
    query = select(ReferenceEmbedding).order_by(ReferenceEmbedding.id)
    if subject_id is not None:
        query = query.where(ReferenceEmbedding.subject_id == subject_id)
    rows = list(session.scalars(query))
    if not rows:
        return []
    found = find_events(session, REFERENCE_EVENT, {"subject_id": subject_id} if subject_id is not None else {})
    seals = reference_seals(session, found, view=view)
    events: dict[tuple[Any, Any], list[LedgerEvent]] = {}
    for event in found:
        events.setdefault((event.payload.get("subject_id"), event.payload.get("source_sha256")), []).append(event)
    out = []
    for row in rows:
        state, seq, detail = reference_state(row.vector, events.get((row.subject_id, row.source_sha256), []), seals)
        out.append(
            ReferenceStatus(
                row.id, row.subject_id, row.source_name, row.source_sha256, bytes(row.vector), state, seq, detail
            )
        )
    return out


@dataclass(frozen=True)
class FoundingReference:
    """A subject's first ``subject.reference_added`` event (``None`` before any enrolment) and
    the stored reference it binds (``None`` when no usable row of that photo carries the vector
    the event, or the sealed event attesting it, recorded). ``seal_problem``: why the event is
    not the organisation's ("" when it, or an attestation of it, is sealed); ``attestable``:
    it is unsigned and older than sealing, so an operator may attest it."""

    event: LedgerEvent | None
    row: ReferenceStatus | None
    seal_problem: str = ""
    attestable: bool = False

    @property
    def problem(self) -> str:
        """Why the founding reference is unusable, in words ("" when it is fine)."""
        if self.event is None or self.row is not None:
            return ""
        where = f"its first reference (photo {self.event.payload.get('source_name')!r}, ledger row {self.event.seq})"
        if self.seal_problem:
            return f"{where}: {self.seal_problem}"
        return f"{where} is missing from the database or its vector was replaced"


def _refuse_unenrolled_subject(session: Session, record: SubjectRecord) -> None:
    """``ConsentError`` ``subject_altered`` unless the subject's row is what its
    ``subject.created`` event recorded. A row a database editor made under a subject's slug (the
    real one renamed or deleted) has no reference event, so its first photo would found it and
    the product would write the event that makes a stranger's face count as that subject's."""
    from likeness.consent.integrity import LedgerConsent, subject_identity_problem

    row = session.get(Subject, record.id)
    altered = None if row is None else subject_identity_problem(LedgerConsent(session), row)
    if row is None or altered is not None:
        session.rollback()
        raise ConsentError(
            "subject_altered",
            f"subject '{record.slug}': {altered.detail if altered else 'its row is gone'}; no reference is "
            "enrolled for it until the workspace is restored from a backup (likeness audit verify)",
        )


def founding_reference(session: Session, subject_id: str) -> FoundingReference:
    """The reference ``subject_id`` was founded on, by the ledger: every later reference is
    held to it (``faceset.enroll``)."""
    events = find_events(session, REFERENCE_EVENT, {"subject_id": subject_id})
    return founding_of(events, reference_statuses(session, subject_id), reference_seals(session, events))


def founding_of(
    events: list[LedgerEvent], statuses: Iterable[ReferenceStatus], seals: ReferenceSeals
) -> FoundingReference:
    """The stored reference bound to the first of a subject's ``subject.reference_added``
    ``events`` (ledger order) among its ``statuses`` (pure). Bound to that event's photo and
    vector digest, not to the oldest row, which a database editor could delete to move the
    anchor; and only when the organisation sealed that event, or a later event attesting it
    (``attests_seq``), since a database editor can append an unsigned one."""
    if not events:
        return FoundingReference(None, None)
    first = events[0]
    photo = first.payload.get("source_sha256")
    digest = first.payload.get("vector_sha256")
    if not seals.sealed(first):
        attestation = next(
            (
                e
                for e in events
                if seals.sealed(e)
                and e.payload.get("attests_seq") == first.seq
                and e.payload.get("source_sha256") == photo
                and digest in (None, e.payload.get("vector_sha256"))
            ),
            None,
        )
        if attestation is None:
            return FoundingReference(first, None, seals.why(first), seals.attestable(first))
        digest = attestation.payload.get("vector_sha256")
    for status in statuses:
        if status.usable and status.source_sha256 == photo and vector_sha256(status.vector) == digest:
            return FoundingReference(first, status)
    return FoundingReference(first, None)


def _founding_error(slug: str, founding: FoundingReference) -> RegistryError:
    """The refusal of enrolment for a subject whose founding reference is unusable."""
    if founding.seal_problem and founding.event is not None:
        return ReferenceUnsealed(slug, founding.event.seq, founding.problem, attestable=founding.attestable)
    return FoundingReferenceMissing(slug, founding.problem)


_Row = TypeVar("_Row")


def _existing(session: Session, model: type[_Row], row_id: str) -> _Row:
    """The ``model`` row ``row_id``; ``RegistryError`` when it is missing (deleted)."""
    row = session.get(model, row_id)
    if row is None:
        raise RegistryError(f"no {model.__name__.lower()} row '{row_id}' (deleted from the database?)")
    return row


def keys_sha(signature_hex: str) -> str:
    """Digest of a signature, as quoted in C2PA consent assertions."""
    return hashlib.sha256(bytes.fromhex(signature_hex)).hexdigest()


def parse_when(text: str, *, end_of_day: bool = False) -> datetime:
    """Parse ``YYYY-MM-DD``, an ISO timestamp, or ``+30d`` / ``+12h`` relative to now (UTC)."""
    text = text.strip()
    now = now_utc()
    if text.startswith("+") and text[-1] in "dh" and text[1:-1].isdigit():
        amount = int(text[1:-1])
        return now + (timedelta(days=amount) if text[-1] == "d" else timedelta(hours=amount))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RegistryError(f"'{text}' is not a date (use YYYY-MM-DD, an ISO time, or +30d)") from None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
        if end_of_day and len(text) == 10:
            moment = moment + timedelta(days=1)
    return moment
