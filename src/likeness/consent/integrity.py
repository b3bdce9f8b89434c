"""Consent rows bound to their ledger events: what is in force is what the ledger says.

Every consent record is written twice: a row, for queries, and a ledger event carrying its
canonical payload, the payload's digest and the rights holder's signature. Anyone who can write
the database can edit, insert or delete rows, so a row counts only when it matches its event:

- a holder's key is the one in its ``holder.created`` event, changed only by a
  ``holder.key_rotated`` event signed by the previous key or a ``holder.key_recovered`` event
  signed by the organisation that onboarded the holder with an attestation;
- an organisation's key is the one in its ``org.created`` event, and counts only when the
  workspace's own key file pins it (``org_key``): a database editor can append an
  ``org.created``, not write the key folder;
- a grant or release is in force only if its first ``grant.issued`` / ``release.issued`` event
  has the row's digest and signature, and the signature verifies with the key the holder had at
  that point of the ledger;
- a revocation is in force when a ``grant.revoked`` / ``release.revoked`` event verifies with the
  holder's key, whether or not its row is still there; a revocation row or event that does not
  verify makes the record unusable (``revocation_invalid``) until someone looks.
- a passkey counts from its signed registration until a passkey recovery (a ``holder.invited``
  event with purpose ``recovery``, signed by the holder's enrolling organisation with an
  attestation) or a key recovery that counts (``holder.key_recovered``) retires it: it signs
  nothing on a later ledger row.

``LedgerConsent`` reads those events (cached for one decision); the policy engine, the registry's
states and ``consent_row_problems`` (``likeness audit verify``) all decide through it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from webauthn.helpers.exceptions import WebAuthnException

from likeness import strict_json
from likeness.consent import keys
from likeness.consent.canonical import canonical_bytes, canonical_sha256
from likeness.consent.grant_requests import (
    REQUESTED_EVENT,
    VOUCH_TYPE,
    Parties,
    RequestedGrant,
    named_members,
    parties_differences,
    parties_of,
    payload_differences,
    request_from_payload,
    request_payload,
    request_sha256,
    requested_from_event,
    signing_challenge,
)
from likeness.consent.ledger import GENESIS_HASH, LedgerEvent, event_of_row, find_events
from likeness.consent.marker_pins import MARKER_PINS, MarkerPin, MarkerPins
from likeness.consent.passkeys import (
    PASSKEY_ONLY,
    PASSKEY_REGISTERED,
    Assertion,
    Passkey,
    assertion_problem,
    b64url,
    counter_problem,
    is_passkey_fingerprint,
    passkey_of_event,
    unb64url,
    vouch_malformed,
)
from likeness.consent.registry import (
    ADOPTION_EVENT,
    HOLDER_SEAL_TYPE,
    HOLDERS_EVENT,
    REFERENCE_EVENT,
    SEALING_EVENT,
    SEALING_MARKERS,
    SUBJECT_SEAL_TYPE,
    SUBJECTS_EVENT,
    ReferenceStatus,
    adoption_malformed,
    attestation_problem,
    first_sealing_marker,
    founding_of,
    grant_payload,
    key_recovery_payload,
    key_rotation_payload,
    reference_seals,
    reference_statuses,
    release_payload,
    revocation_payload,
    sealing_marker_problem,
    signature_verifies,
)
from likeness.consent.tables import (
    Grant,
    GrantRequestRow,
    GrantRevocation,
    HolderInvitation,
    HolderPasskey,
    LedgerRow,
    Organisation,
    Release,
    ReleaseRevocation,
    RightsHolder,
    Subject,
)
from likeness.errors import ConfigError, ConsentError, RegistryError

if TYPE_CHECKING:
    from likeness.workspace import Workspace

HOLDER_KEY_EVENTS = ("holder.created", "holder.key_rotated", "holder.key_recovered")
#: Every event type a consent row is checked against, and the payload member naming the record.
CONSENT_EVENTS: dict[str, str] = {
    "org.created": "org_id",
    "holder.created": "holder_id",
    "holder.key_rotated": "holder_id",
    "holder.key_recovered": "holder_id",
    "subject.created": "subject_id",
    "grant.issued": "grant_id",
    "grant.revoked": "grant_id",
    "release.issued": "release_id",
    "release.revoked": "release_id",
    PASSKEY_REGISTERED: "holder_id",
    "holder.invited": "invitation_id",
    ADOPTION_EVENT: "holder_id",
}
#: Events that can carry a passkey assertion (``passkey`` member) or register a passkey.
PASSKEY_EVENTS = (PASSKEY_REGISTERED, "grant.issued", "grant.revoked", "release.issued", "release.revoked")
#: The ``purpose`` of a ``holder.invited`` event that recovers a passkey-only holder's passkeys.
RECOVERY_PURPOSE = "recovery"
#: Event members that are not part of the signed body.
UNSIGNED_MEMBERS = ("payload_sha256", "signature", "passkey")
#: Why an organisation may not act for a holder the ledger names no onboarding organisation for.
OWNERLESS = (
    "the ledger names no organisation that onboarded the holder (enrolled before holders were bound to one, "
    "in a workspace with several organisations), so none may invite them or recover their key: the "
    "organisation that enrolled them adopts them first, with the holder's signature (likeness consent adopt-holder)"
)
#: ``OWNERLESS`` for enrolling a subject under such a holder.
NO_ENROLLER = (
    "the ledger names no organisation that onboarded the rights holder (enrolled before holders were "
    "bound to one, in a workspace with several organisations), so none enrols subjects under them: the "
    "organisation that onboarded them adopts them first, with the holder's signature "
    "(likeness consent adopt-holder)"
)


@dataclass(frozen=True)
class Finding:
    """Why a consent record is not in force: a ``ConsentError`` reason code and the detail."""

    reason: str
    detail: str


@dataclass(frozen=True)
class ConsentProblem:
    """One disagreement between a consent row and the ledger, as ``audit verify`` names it.

    ``kind``: ``organisation``, ``holder``, ``subject``, ``reference``, ``grant``,
    ``release``, ``grant_revocation``, ``release_revocation``, ``render_slot``,
    ``grant_request``, ``invitation`` or ``sealing_marker``;
    ``record_id``: the organisation, holder, subject, grant or release id (for a reference
    embedding: its subject's id; for a revocation: the id of what it revokes; for a render
    slot: the render job id; for a sealing marker: ``ledger row N``).
    """

    kind: str
    record_id: str
    problem: str


@dataclass(frozen=True)
class HolderKey:
    """A key a holder had from ledger row ``seq`` on (``public_key``: raw hex, ``None`` where
    the ledger names only the fingerprint and no row supplies a matching key)."""

    fingerprint: str
    public_key: str | None
    seq: int
    via: str


@dataclass(frozen=True)
class KeyHistory:
    """A holder's keys in ledger order (empty: the holder is not on the ledger), and the
    key-change events that were ignored, with why."""

    holder_id: str
    keys: tuple[HolderKey, ...]
    problems: tuple[str, ...] = ()

    @property
    def current(self) -> HolderKey | None:
        return self.keys[-1] if self.keys else None

    def at(self, seq: int) -> HolderKey | None:
        """The key in force just before ledger row ``seq``."""
        in_force = None
        for key in self.keys:
            if key.seq >= seq:
                break
            in_force = key
        return in_force


@dataclass(frozen=True)
class RevocationStatus:
    """``revoked_at``: the earliest revocation on the ledger that verifies (``None``: not
    revoked); ``problems``: revocation rows or events that do not verify."""

    revoked_at: str | None
    problems: tuple[str, ...] = ()


def _fingerprint_of(public_hex: Any) -> str | None:
    try:
        return keys.fingerprint(bytes.fromhex(public_hex))
    except (TypeError, ValueError):
        return None


def _verifies(public_hex: str | None, body: dict[str, Any], signature: Any) -> bool:
    if not isinstance(public_hex, str) or not isinstance(signature, str):
        return False
    try:
        return signature_verifies(public_hex, canonical_bytes(body), signature)
    except (TypeError, ValueError):
        return False


def _short(fp: str | None) -> str:
    return f"{fp[:20]}…" if fp else "none"


class LedgerConsent:
    """The ledger's account of consent records, read through ``session`` and cached for one
    decision. ``preload=True`` reads every consent event once (for checking all rows)."""

    def __init__(self, session: Session, *, preload: bool = False) -> None:
        self._session = session
        self._cache: dict[tuple[tuple[str, ...], str, str], list[LedgerEvent]] = {}
        self._histories: dict[str, KeyHistory] = {}
        self._unclaimed_histories: dict[str, KeyHistory] = {}
        self._markers: dict[str, int | None] = {}
        self._passkey_events: dict[str, list[LedgerEvent]] = {}
        self._passkey_histories: dict[str, tuple[list[Passkey], list[str], list[LedgerEvent]]] = {}
        self._index: dict[tuple[str, str], list[LedgerEvent]] | None = None
        self._org_problems: dict[str, str | None] = {}
        self._invitations: dict[str, list[LedgerEvent]] = {}
        self._invitations_grouped = False
        self._pinned: list[str] | None = None
        self._marker_pins: dict[str, MarkerPin] | None = None
        self._holder_seals: dict[str, str | None] = {}
        self._subject_orgs: dict[str, str | None] = {}
        self._firsts: dict[tuple[str, str], dict[Any, LedgerEvent]] = {}
        if preload:
            self._index = {}
            for event in find_events(session, tuple(CONSENT_EVENTS), {}):
                value = event.payload.get(CONSENT_EVENTS[event.event_type])
                if isinstance(value, str):
                    self._index.setdefault((event.event_type, value), []).append(event)

    def _find(self, event_types: Sequence[str], member: str, value: str) -> list[LedgerEvent]:
        key = (tuple(event_types), member, value)
        if key not in self._cache:
            if self._index is not None:
                found = [e for t in key[0] for e in self._index.get((t, value), ()) if CONSENT_EVENTS[t] == member]
                self._cache[key] = sorted(found, key=lambda e: e.seq)
            else:
                self._cache[key] = find_events(self._session, key[0], {member: value})
        return self._cache[key]

    def events_of(self, event_type: str) -> list[LedgerEvent]:
        """All events of a consent type (preloaded views only)."""
        if self._index is None:
            raise RuntimeError("events_of needs LedgerConsent(session, preload=True)")
        return sorted((e for (t, _), es in self._index.items() if t == event_type for e in es), key=lambda e: e.seq)

    # --- what the ledger says ------------------------------------------------------------
    def issued(self, kind: str, record_id: str) -> LedgerEvent | None:
        """The first ``grant.issued`` / ``release.issued`` event of a record (later copies of
        the same id are ignored)."""
        found = self._find((f"{kind}.issued",), f"{kind}_id", record_id)
        return found[0] if found else None

    def subject_created(self, subject_id: str) -> LedgerEvent | None:
        """The subject's first ``subject.created`` event (later copies are ignored)."""
        found = self._find(("subject.created",), "subject_id", subject_id)
        return found[0] if found else None

    def subject_holder(self, subject_id: str) -> str | None:
        """The subject's rights holder as enrolled on the ledger."""
        created = self.subject_created(subject_id)
        return created.payload.get("holder_id") if created else None

    def org_created(self, org_id: str) -> LedgerEvent | None:
        """The organisation's first ``org.created`` event (later copies are ignored)."""
        found = self._find(("org.created",), "org_id", org_id)
        return found[0] if found else None

    def holder_created(self, holder_id: str) -> LedgerEvent | None:
        """The holder's first ``holder.created`` event (later copies are ignored)."""
        found = self._find(HOLDER_KEY_EVENTS, "holder_id", holder_id)
        created = [e for e in found if e.event_type == "holder.created"]
        return created[0] if created else None

    def holder_owner(self, holder_id: str, *, claims: bool = True, at_seq: int | None = None) -> str | None:
        """The one organisation that onboards a holder (passkey-only or offline), read only
        from what a database editor cannot write: the organisation their ``holder.created``
        event names; for holders enrolled before events named one, the first
        organisation-signed claim (``ownership_claims``), else the workspace's only organisation
        whose key it pins. ``None`` where none of those names one (a holder enrolled before, in
        a workspace with several organisations, until one adopts them): then no organisation may
        invite them or recover their key (``owner_problem``). ``subject.created`` events are not
        read: those written before subject events were sealed are not signed, and an editor could
        have appended one naming any organisation.
        ``claims=False`` skips the claims (the key an adoption must be signed with is read so);
        ``at_seq``: the only organisation is the one alone on the ledger before that row (an
        organisation added later does not undo what the only one signed then, e.g. a recovery).
        """
        if self.holder_seal_problem(holder_id) is not None:
            return None
        created = self.holder_created(holder_id)
        if created is not None and created.payload.get("org_id"):
            return str(created.payload["org_id"])
        first = self.ownership_claims(holder_id)[:1] if claims else []
        if first:
            return str(first[0].payload.get("org_id"))
        return self._only_org_at(at_seq)

    def _only_org_at(self, seq: int | None) -> str | None:
        """The organisation whose key the workspace pins that was alone on the ledger before
        row ``seq`` (``None``: now), else ``None``."""
        there = self._pinned_before(seq)
        return there[0] if len(there) == 1 else None

    def _pinned_before(self, seq: int | None) -> list[str]:
        """The pinned organisations (``pinned_orgs``) on the ledger before row ``seq`` (``None``: now)."""
        firsts = self._first_events("org.created", "org_id")
        return [o for o in self.pinned_orgs() if seq is None or firsts[o].seq < seq]

    def subject_org(self, subject_id: str) -> str | None:
        """The organisation that enrolled a subject, per the ledger, the only one whose seal
        counts on its references (``reference_sealer_problem``): the one its ``subject.created``
        event names (``org_id``), else its owner (``owner_org_id``). For subjects enrolled before
        events named one: the workspace's first organisation when no other was on the ledger at
        the subject's enrolment, else the organisation that onboarded its rights holder
        (``holder_owner``); ``None`` when none of these names one."""
        if subject_id not in self._subject_orgs:
            self._subject_orgs[subject_id] = self._enrolling_org(subject_id)
        return self._subject_orgs[subject_id]

    def _enrolling_org(self, subject_id: str) -> str | None:
        created = self._first_events("subject.created", "subject_id").get(subject_id)
        if created is None or self.subject_seal_problem(created) is not None:
            return None
        named = _named_enroller(created)
        if named is not None:
            return None if self._enrolment_problem(created) else named
        pinned = self.pinned_orgs()
        if pinned and len(self._pinned_before(created.seq)) <= 1:
            return pinned[0]
        holder = created.payload.get("holder_id")
        return self.holder_owner(holder) if isinstance(holder, str) else None

    def enroller_problem(self, holder_id: str, org_id: str, *, at_seq: int | None = None) -> str | None:
        """Why organisation ``org_id`` may not enrol a subject under ``holder_id`` (``None``: it
        may): only the holder's onboarding organisation (``holder_owner``; ``at_seq``: as there)
        does, so another organisation of the workspace cannot hold a subject of theirs whose
        references it seals (a stranger's face) and ask the holder's consent under it."""
        owner = self.holder_owner(holder_id, at_seq=at_seq)
        if owner is None:
            return self.holder_seal_problem(holder_id) or NO_ENROLLER
        if owner != org_id:
            return (
                f"the rights holder is onboarded by organisation {self.org_slug(owner)!r}, the only one that enrols "
                "subjects under them"
            )
        return None

    def subject_enrolment_problem(self, subject_id: str) -> str | None:
        """Why the organisation a subject's ``subject.created`` event names does not count as the
        one that enrolled it (``None``: it does, or the event names none): the event is not
        signed by it (``subject_seal_problem``), or it is not the holder's onboarding organisation
        at that row (``enroller_problem``). Then no organisation seals the subject's references
        (``subject_org``), and audit names it."""
        created = self._first_events("subject.created", "subject_id").get(subject_id)
        return self._enrolment_problem(created) if created is not None else None

    def unbacked_enrolment(self, subject: Subject) -> str | None:
        """Why the ledger does not back subject row ``subject``'s enrolment (``None``: it does),
        so nobody is asked to consent under it: the row is not what its ``subject.created``
        event records (``subject_identity_problem``), names another rights holder, or no
        organisation counts as enrolling it (``subject_org``), or the one that does was not the
        holder's onboarding organisation at that row (``enroller_problem``)."""
        altered = subject_identity_problem(self, subject)
        created = self.subject_created(subject.id)
        if altered is not None or created is None:
            return altered.detail if altered else "it has no subject.created event on the ledger"
        if created.payload.get("holder_id") != subject.holder_id:
            return f"its rights holder is not the one its subject.created event (ledger row {created.seq}) names"
        unsealed_holder = self.holder_seal_problem(subject.holder_id)
        if unsealed_holder is not None:
            return f"its rights holder: {unsealed_holder}"
        enrolling = self.subject_org(subject.id)
        if enrolling is None:  # (an older event naming none: its holder has no onboarding organisation)
            return self._enrolment_problem(created) or NO_ENROLLER
        problem = self.enroller_problem(subject.holder_id, enrolling, at_seq=created.seq)
        return f"organisation {self.org_slug(enrolling)!r} enrolled it, but {problem}" if problem else None

    def _enrolment_problem(self, created: LedgerEvent) -> str | None:
        unsealed = self.subject_seal_problem(created)
        if unsealed is not None:
            return unsealed
        named, holder = _named_enroller(created), created.payload.get("holder_id")
        if named is None:
            return None
        if not isinstance(holder, str):
            return "its subject.created event names no rights holder"
        problem = self.enroller_problem(holder, named, at_seq=created.seq)
        return f"organisation {self.org_slug(named)!r} is named as enrolling it, but {problem}" if problem else None

    def subject_seal_problem(self, created: LedgerEvent) -> str | None:
        """Why ``subject.created`` event ``created`` is not its enrolling organisation's (``None``:
        it is, or it was written before subject events were sealed): from the first valid
        ``ledger.subjects_sealed`` marker on, the product signs each one with the key of the
        organisation it names (``org_id``), pinned by the workspace. An unsigned one after it, or
        one signed by another key, is a database editor's (or another organisation's): it would
        put a grant request for a subject nobody enrolled before the rights holder it names."""
        return self._seal_problem(created, SUBJECTS_EVENT, SUBJECT_SEAL_TYPE, "subject")

    def holder_seal_problem(self, holder_id: str) -> str | None:
        """Why the holder's first ``holder.created`` event does not enrol a rights holder
        (``None``: it does, or it was written before holder events were sealed, or there is
        none): from the first valid ``ledger.holders_sealed`` marker on, the product signs each
        one with the key of the organisation onboarding the holder (``org_id``). An unsigned one
        after it, one naming no organisation (as versions before holders were bound wrote them)
        or one signed by another key is a database editor's: a holder with a key of the
        editor's, whom an organisation would then enrol a subject under and ask for consent."""
        if holder_id not in self._holder_seals:
            self._holder_seals[holder_id] = self._holder_seal_problem(holder_id)
        return self._holder_seals[holder_id]

    def _holder_seal_problem(self, holder_id: str) -> str | None:
        created = self.holder_created(holder_id)
        if created is None:
            return None
        problem = self._seal_problem(created, HOLDERS_EVENT, HOLDER_SEAL_TYPE, "rights holder")
        return f"{problem}: it enrols no rights holder" if problem else None

    def _seal_problem(self, created: LedgerEvent, marker: str, seal_type: str, what: str) -> str | None:
        """Why enrolment event ``created`` (a ``subject.created`` or ``holder.created``) does not
        carry the seal of the organisation it names (``None``: it does, or it was written before
        the first valid sealing ``marker``): unsigned, not a ``seal_type`` body, or not signed with
        that organisation's pinned key."""
        sealed_from = self.sealing_marker(marker)
        if sealed_from is None or created.seq < sealed_from:
            return None
        where = f"its {created.event_type} event (ledger row {created.seq})"
        if "signature" not in created.payload:
            return (
                f"{where} carries no organisation seal, yet was written after {what} events were sealed "
                f"(ledger row {sealed_from})"
            )
        body = {k: v for k, v in created.payload.items() if k != "signature"}
        if body.get("type") != seal_type or not isinstance(body.get("org_id"), str):
            return f"{where}: its organisation seal is malformed"
        unsigned = self.org_signature_problem(body, created.payload["signature"])
        return f"{where} is not its organisation's: {unsigned}" if unsigned else None

    def _first_events(self, event_type: str, member: str) -> dict[Any, LedgerEvent]:
        """The first ``event_type`` event of each record (``member``), in ledger order, read in
        one query (a reading of every subject's references asks for each subject's)."""
        if (event_type, member) not in self._firsts:
            events = (
                self.events_of(event_type) if self._index is not None else find_events(self._session, event_type, {})
            )
            firsts: dict[Any, LedgerEvent] = {}
            for event in events:
                firsts.setdefault(event.payload.get(member), event)
            self._firsts[event_type, member] = firsts
        return self._firsts[event_type, member]

    def org_name(self, org_id: str) -> str | None:
        """The organisation's display name as its ``org.created`` event recorded it (its slug
        where the event names none), ``None`` when it is not on the ledger."""
        created = self.org_created(org_id)
        return _recorded_name(created) if created is not None else None

    def org_slug(self, org_id: str) -> str:
        """The organisation's slug as its ``org.created`` event recorded it (its id, cut, without one)."""
        created = self.org_created(org_id)
        slug = created.payload.get("slug") if created is not None else None
        return slug if isinstance(slug, str) else org_id[:32]

    def reference_sealer_problem(self, subject_id: str, org_id: str) -> str | None:
        """Why organisation ``org_id``'s seal does not count on a reference of ``subject_id``
        (``None``: it does): only the organisation that enrolled the subject (``subject_org``)
        vouches for whose face it is. Another organisation of the workspace, its key genuinely
        pinned, would otherwise make a stranger's face count as another agency's artist."""
        entitled = self.subject_org(subject_id)
        if entitled == org_id:
            return None
        if entitled is None and self.subject_created(subject_id) is None:
            return "the subject has no subject.created event on the ledger, so no organisation seals its references"
        enrolment = self.subject_enrolment_problem(subject_id) if entitled is None else None
        if enrolment is not None:
            return f"{enrolment}; so no organisation seals its references"
        if entitled is None:
            return (
                "the ledger names no organisation that enrolled the subject (it was enrolled, naming none, while "
                "several organisations were on the ledger), so no organisation seals its references"
            )
        return (
            f"organisation {self.org_slug(org_id)!r} did not enrol the subject; only {self.org_slug(entitled)!r}, "
            "which did, seals its references"
        )

    def owner_problem(
        self, holder_id: str, org_id: str, *, claims: bool = True, at_seq: int | None = None
    ) -> str | None:
        """Why organisation ``org_id`` may not invite or recover ``holder_id`` (``None``: it
        may): another organisation onboards the holder (``holder_owner``), so one organisation
        of a workspace cannot take another's holder; or the ledger names none (``OWNERLESS``),
        and then no organisation may. ``claims``, ``at_seq``: as for ``holder_owner``."""
        owner = self.holder_owner(holder_id, claims=claims, at_seq=at_seq)
        if owner is None:
            return self.holder_seal_problem(holder_id) or OWNERLESS
        if owner != org_id:
            return "the holder is onboarded by another organisation, the only one that may invite them or recover their key"
        return None

    def pinned_orgs(self) -> list[str]:
        """The ids of the organisations on the ledger whose keys the workspace pins, in order."""
        if self._pinned is None:
            ids = [str(i) for i in self._first_events("org.created", "org_id")]
            self._pinned = [i for i in ids if self.org_key_problem(i) is None]
        return self._pinned

    def invitations_of(self, holder_id: str) -> list[LedgerEvent]:
        """The ``holder.invited`` events naming ``holder_id``, in ledger order, signed or not
        (a preloaded view groups them all at once instead of querying each holder's)."""
        if self._index is not None and not self._invitations_grouped:
            self._invitations_grouped = True
            for event in find_events(self._session, "holder.invited", {}):  # (the index keeps only well-formed ids)
                if isinstance(named := event.payload.get("holder_id"), str):
                    self._invitations.setdefault(named, []).append(event)
        if holder_id not in self._invitations:
            self._invitations[holder_id] = (
                []
                if self._index is not None
                else find_events(self._session, "holder.invited", {"holder_id": holder_id})
            )
        return self._invitations[holder_id]

    def ownership_claims(self, holder_id: str) -> list[LedgerEvent]:
        """The events that may name the onboarding organisation of a holder whose
        ``holder.created`` names none, in ledger order: adoptions (``holder.adopted``) the
        holder signed with their own key and a pinned organisation countersigned, and
        invitations (``holder.invited``) signed with a pinned organisation key where that
        organisation could onboard the holder alone (``_invitation_claim_problem``). Only the
        first counts (``holder_owner``)."""
        events = [*self.invitations_of(holder_id), *self._adoptions(holder_id)]
        return [e for e in sorted(events, key=lambda e: e.seq) if self._claim_problem(e) is None]

    def _claim_problem(self, event: LedgerEvent) -> str | None:
        body = {k: v for k, v in event.payload.items() if k not in ("signature", "holder_signature")}
        if event.event_type == ADOPTION_EVENT:
            unsigned = "holder_signature" not in event.payload
            why = (
                "it is not signed by the rights holder (an adoption counts only with their signature)"
                if unsigned
                else adoption_malformed(body)
                or self.adopted_name_problem(body)
                or self._adopter_signature_problem(event, body)
            )
        else:
            why = self._invitation_claim_problem(event)
        return why or self.org_signature_problem(body, event.payload.get("signature"))

    def adopted_name_problem(self, body: dict[str, Any]) -> str | None:
        """Why an adoption does not name its organisation as the ledger does (``org_name``
        against ``org.created``): the holder reads that name when they sign, and cannot check the
        id or key beside it, so another organisation's name would have them sign themselves over
        to an organisation they never dealt with."""
        recorded = self.org_name(str(body["org_id"]))
        if body["org_name"] == recorded:
            return None
        return (
            f"it names its organisation {body['org_name']!r}, but organisation "
            f"{self.org_slug(str(body['org_id']))!r} is {recorded!r} on the ledger (its org.created event)"
        )

    def _adopter_signature_problem(self, event: LedgerEvent, body: dict[str, Any]) -> str | None:
        """Why an adoption is not the rights holder's own: it must verify with the key they had
        at its ledger row, read without ownership claims (their own rotations, and recoveries by
        the organisation named at enrolment or the only one), since what this decides is a claim."""
        holder_id = str(body["holder_id"])
        if holder_id not in self._unclaimed_histories:
            self._unclaimed_histories[holder_id] = self._key_history(holder_id, claims=False)
        key = self._unclaimed_histories[holder_id].at(event.seq)
        if key is None or key.fingerprint == PASSKEY_ONLY:
            return "the rights holder has no key of their own to sign it with"
        if body["holder_fingerprint"] != key.fingerprint:
            return f"it names key {_short(body['holder_fingerprint'])}, but the holder's key then was {_short(key.fingerprint)}"
        if not _verifies(key.public_key, body, event.payload["holder_signature"]):
            return f"its rights holder signature does not verify with their key {_short(key.fingerprint)}"
        return None

    def sealing_marker(self, event: str = SEALING_EVENT) -> int | None:
        """Where sealing ``event`` (``registry.SEALING_MARKERS``) began: the earlier of the ledger
        row of its first valid marker and the row the workspace's key folder pins for it
        (``marker_pins``), ``None`` before either; looked up once per reading. A pinned marker a
        database editor deleted (the chain recomputed, a fresh marker written at the tail by
        the next command) still bounds what reads as written before sealing."""
        if event not in self._markers:
            pinned = self.marker_pins().get(event)
            found = first_sealing_marker(self._session, self.org_key, event=event)
            rows = [seq for seq in (found, pinned_from(self._session, pinned) if pinned else None) if seq is not None]
            self._markers[event] = min(rows, default=None)
        return self._markers[event]

    def marker_pins(self) -> dict[str, MarkerPin]:
        """The sealing marker pins of the workspace (from the session's ``info``; none for a
        session without them or where the pin file is not used: ``marker_pin_problems`` names
        that), read once per reading."""
        if self._marker_pins is None:
            pins = self._session.info.get(MARKER_PINS)
            try:
                self._marker_pins = pins.read() if isinstance(pins, MarkerPins) else {}
            except ConfigError:
                self._marker_pins = {}
        return self._marker_pins

    def _invitation_claim_problem(self, event: LedgerEvent) -> str | None:
        """Why an invitation does not name the organisation that onboards its holder: written
        after the workspace bound every new holder to an organisation (the first sealing
        marker, ``registry.first_sealing_marker``), it counts only where its organisation was
        the only one on the ledger; the product refuses any other, so it is a second
        organisation's claim on a holder it did not enrol."""
        sealed_from = self.sealing_marker()
        if sealed_from is None or event.seq < sealed_from:
            return None
        if self._only_org_at(event.seq) != event.payload.get("org_id"):
            return (
                "another organisation was on the ledger when it was written, after holders were bound to their "
                "organisation: only an adoption the holder signs names their organisation then"
            )
        return None

    def org_signature_problem(self, body: dict[str, Any], signature: Any) -> str | None:
        """Why ``body`` is not signed by the organisation it names (``org_id``,
        ``org_fingerprint``) with the key the workspace pins for it (``org_key``)."""
        org = self.org_key(str(body.get("org_id")))
        if org is None or org[0] != body.get("org_fingerprint"):
            return "it is not signed with the organisation's key on the ledger"
        if not _verifies(org[1], body, signature):
            return "its organisation signature does not verify"
        return None

    def adoption_problems(self, holder_id: str) -> list[str]:
        """Each ``holder.adopted`` event of ``holder_id`` that makes no organisation its owner,
        with why: the holder has one already (their ``holder.created`` names it, or an earlier
        claim does), or it is not signed by the holder's key and a pinned organisation key with
        an attestation; and, for a holder whose ``holder.created`` names none, each invitation
        that names no owner because another organisation wrote it among several
        (``_invitation_claim_problem``)."""
        created = self.holder_created(holder_id)
        if created is not None and created.payload.get("org_id"):
            named = "the holder's holder.created names their organisation"
            return [f"ledger row {e.seq}: {ADOPTION_EVENT} ignored: {named}" for e in self._adoptions(holder_id)]
        claims, owner = self.ownership_claims(holder_id), self.holder_owner(holder_id)
        out = []
        for event in sorted([*self._adoptions(holder_id), *self.invitations_of(holder_id)], key=lambda e: e.seq):
            if event.event_type == ADOPTION_EVENT:
                why = self._claim_problem(event) or self.claimed_before(event, claims)
            else:  # (the owner's own invitations are not claims, and need not be)
                why = None if event.payload.get("org_id") == owner else self._invitation_claim_problem(event)
            if why:
                out.append(f"ledger row {event.seq}: {event.event_type} ignored: {why}")
        return out

    def claimed_before(self, event: LedgerEvent, claims: list[LedgerEvent]) -> str | None:
        """Why a valid claim ``event`` names no owner: an earlier one of ``claims``
        (``ownership_claims``) already does, e.g. a second adoption imported at the same moment
        (``None``: it is the first)."""
        first = claims[0] if claims else event
        if first.seq == event.seq:
            return None
        how = "adopted" if first.event_type == ADOPTION_EVENT else "onboarded"
        return f"the holder is {how} by organisation {self.org_slug(str(first.payload.get('org_id')))!r} already (ledger row {first.seq})"

    def _adoptions(self, holder_id: str) -> list[LedgerEvent]:
        return self._find((ADOPTION_EVENT,), "holder_id", holder_id)

    def invitation_problem(
        self,
        invitation_id: str,
        *,
        holder_id: str,
        org_id: str,
        before_seq: int | None = None,
        row: Any = None,
        require_signature: bool = False,
    ) -> str | None:
        """Why the invitation ``invitation_id`` cannot onboard ``holder_id`` for ``org_id``, or
        ``None``: its ``holder.invited`` event must be on the ledger (before ``before_seq``),
        name that holder and organisation, come from the holder's owner at its own ledger row
        (``holder_owner``, ``at_seq``: an organisation added later does not void what the only
        one invited, and one an editor appends among several invites no one), agree with its
        ``holder_invitations`` row (``row``: token digest, expiry), and carry the organisation's
        signature (``require_signature``; events written before invitations were signed have
        none). A row a database editor inserted has no such event. The first event of the
        invitation is the invitation (``invitation_event``)."""
        event = self.invitation_event(invitation_id)
        if event is None:
            return "its invitation is not on the ledger"
        body = {k: v for k, v in event.payload.items() if k != "signature"}
        if before_seq is not None and event.seq >= before_seq:
            return f"its invitation (ledger row {event.seq}) comes after it"
        if body.get("holder_id") != holder_id or body.get("org_id") != org_id:
            return f"its invitation (ledger row {event.seq}) names another holder or organisation"
        owner = self.owner_problem(holder_id, org_id, at_seq=event.seq)
        if owner:
            return owner
        if row is not None and (body.get("token_sha256"), body.get("expires_at")) != (row.token_sha256, row.expires_at):
            return f"its row differs from its holder.invited event (ledger row {event.seq})"
        if require_signature or "signature" in event.payload:
            unsigned = self.org_signature_problem(body, event.payload.get("signature"))
            if unsigned:
                return f"its invitation: {unsigned}"
        return None

    def invitation_event(self, invitation_id: str) -> LedgerEvent | None:
        """The first ``holder.invited`` event of ``invitation_id``. A later copy is a replay (a
        signed event appends again unchanged) and counts for nothing, as for every record; were
        a copy to void the first, one appended copy of a passkey recovery would give back the
        lost phone the recovery retired."""
        found = self._find(("holder.invited",), "invitation_id", invitation_id)
        return found[0] if found else None

    def org_key(self, org_id: str) -> tuple[str, str | None] | None:
        """``(fingerprint, public key hex or None)`` of an organisation per ``org.created``, or
        ``None`` when it is not on the ledger or the workspace's own key file does not pin that
        key (``org_key_problem``). Every organisation signature is checked with this key, so an
        ``org.created`` a database editor appended with a key of their own signs nothing."""
        return None if self.org_key_problem(org_id) else self.org_created_key(org_id)

    def org_key_problem(self, org_id: str) -> str | None:
        """Why organisation ``org_id``'s key does not count (``None``: it does): no
        ``org.created`` event, or one whose key the workspace's key file does not pin
        (``keys.OrgKeyPins``, from the session's ``info``).

        ``ConfigError`` for a session that carries no pins (one not from ``Workspace.session``):
        it cannot tell which organisation signatures count, and counting none is not safe, as
        the key and passkey recoveries organisations sign are what retire a stolen key."""
        if org_id not in self._org_problems:
            created = self.org_created(org_id)
            if created is None:
                why: str | None = "its organisation is not on the ledger"
            else:
                pins = self._session.info.get(keys.ORG_KEY_PINS)
                if not isinstance(pins, keys.OrgKeyPins):
                    raise ConfigError(
                        "this database session carries no organisation key pins, so no organisation "
                        "signature (key and passkey recoveries, reference seals) can be checked: open "
                        "sessions through likeness.workspace.Workspace (Workspace.open(...).session())"
                    )
                fp = str(created.payload.get("key_fingerprint") or "")
                unpinned = pins.problem(created.payload.get("slug"), fp) or self._pinned_earlier(created)
                why = (
                    f"its organisation's key (org.created on ledger row {created.seq}) is not pinned: {unpinned}"
                    if unpinned
                    else None
                )
            self._org_problems[org_id] = why
        return self._org_problems[org_id]

    def _pinned_earlier(self, created: LedgerEvent) -> str | None:
        """Why a pinned ``org.created`` is not its key file's organisation: an earlier one of
        another id records the same slug and key, and a key file pins one organisation, the
        first. Else an editor's copy of an organisation would count as a second one, leaving the
        holders the only one onboards without an onboarding organisation. (An earlier event of
        the slug with another key pins nothing, so it cannot take the slug from the organisation
        that is added under it later.)"""
        slug, fp = created.payload.get("slug"), created.payload.get("key_fingerprint")
        for first in self._first_events("org.created", "org_id").values():
            if first.seq >= created.seq:
                break
            if (first.payload.get("slug"), first.payload.get("key_fingerprint")) == (slug, fp):
                return (
                    f"HOME/keys/orgs/{slug}.pem pins organisation {str(first.payload.get('org_id'))[:32]} "
                    f"(org.created on ledger row {first.seq}) already, and a key file pins one organisation"
                )
        return None

    def org_created_key(self, org_id: str) -> tuple[str, str | None] | None:
        """The key ``org.created`` records, pinned or not: what ``audit verify`` compares rows
        with. Never check a signature with it (``org_key``)."""
        found = self._find(("org.created",), "org_id", org_id)
        if not found:
            return None
        fp: str = found[0].payload.get("key_fingerprint") or ""
        public = found[0].payload.get("public_key")
        if _fingerprint_of(public) != fp:
            row = self._session.get(Organisation, org_id)
            public = row.public_key if row is not None and _fingerprint_of(row.public_key) == fp else None
        return fp, public

    def holder_keys(self, holder_id: str) -> KeyHistory:
        if holder_id not in self._histories:
            self._histories[holder_id] = self._key_history(holder_id)
        return self._histories[holder_id]

    def _key_history(self, holder_id: str, *, claims: bool = True) -> KeyHistory:
        events = self._find(HOLDER_KEY_EVENTS, "holder_id", holder_id)
        created = [e for e in events if e.event_type == "holder.created"]
        if not created:
            return KeyHistory(holder_id, ())
        first = created[0]
        problems: list[str] = []  # (a second holder.created is named with the other duplicates)
        fp: str = first.payload.get("key_fingerprint") or ""
        public = first.payload.get("public_key")
        history = [HolderKey(fp, public if _fingerprint_of(public) == fp else None, first.seq, first.event_type)]
        for event in events:
            if event.event_type == "holder.created":
                continue
            why = (
                "it comes before the holder was created"
                if event.seq < first.seq
                else self._key_change_problem(event, history[-1], claims=claims)
            )
            if why:
                problems.append(f"ledger row {event.seq}: {event.event_type} ignored: {why}")
                continue
            if history[-1].public_key is None and event.event_type == "holder.key_rotated":
                history[-1] = HolderKey(
                    history[-1].fingerprint, event.payload["previous_public_key"], history[-1].seq, history[-1].via
                )
            history.append(
                HolderKey(event.payload["key_fingerprint"], event.payload["public_key"], event.seq, event.event_type)
            )
        row = self._session.get(RightsHolder, holder_id)
        if row is not None:  # a row key is usable where its fingerprint is the ledger's
            row_fp = _fingerprint_of(row.public_key)
            history = [
                HolderKey(k.fingerprint, row.public_key, k.seq, k.via)
                if k.public_key is None and k.fingerprint == row_fp
                else k
                for k in history
            ]
        return KeyHistory(holder_id, tuple(history), tuple(problems))

    def _key_change_problem(self, event: LedgerEvent, current: HolderKey, *, claims: bool = True) -> str | None:
        body = {k: v for k, v in event.payload.items() if k != "signature"}
        signature = event.payload.get("signature")
        if body.get("previous_fingerprint") != current.fingerprint:
            return f"it does not follow the key in force ({_short(current.fingerprint)})"
        try:
            if event.event_type == "holder.key_rotated":
                if _fingerprint_of(body.get("previous_public_key")) != current.fingerprint:
                    return "its previous key is not the key in force"
                # Rebuilt from the event's own fields (str(): a missing one makes it differ).
                expected = key_rotation_payload(
                    holder_id=str(body.get("holder_id")),
                    previous_public_key=body["previous_public_key"],
                    public_key=str(body.get("public_key")),
                    rotated_at=str(body.get("rotated_at")),
                )
                if body != expected:
                    return "it is malformed"
                if not _verifies(body["previous_public_key"], body, signature):
                    return "it is not signed by the previous key"
                return None
            why = attestation_problem(body.get("attestation"))
            if why:
                return why
            # the same trust as a passkey recovery: the holder's own organisation, by a key the
            # workspace pins
            org_id = str(body.get("org_id"))
            holder_id = str(body.get("holder_id"))
            why = self.org_key_problem(org_id) or self.owner_problem(holder_id, org_id, claims=claims, at_seq=event.seq)
            org = self.org_key(org_id)
            if why or org is None:
                return why or "its organisation is not on the ledger"
            if org[0] != body.get("org_fingerprint"):
                return "it is not signed with the organisation's key per the ledger"
            expected = key_recovery_payload(
                holder_id=str(body.get("holder_id")),
                previous_fingerprint=current.fingerprint,
                public_key=str(body.get("public_key")),
                org_id=str(body.get("org_id")),
                org_fingerprint=org[0],
                attestation=body["attestation"],
                recovered_at=str(body.get("recovered_at")),
            )
            if body != expected:
                return "it is malformed"
            if not _verifies(org[1], body, signature):
                return "it is not signed by the organisation's key"
            return None
        except (KeyError, TypeError, ValueError, AttributeError):
            return "it is malformed"

    # --- passkeys --------------------------------------------------------------------------
    def passkeys(self, holder_id: str) -> list[Passkey]:
        """The passkeys ``holder_id`` registered on the ledger, in order, those a passkey
        recovery retired included (``Passkey.retired_seq``): a registration counts when the
        organisation's key (per ``org.created``) signed it (an invitation), or a passkey the
        holder had then signed it (a recovery passkey). Anything else, e.g. an event a database
        editor appended, is ignored (``passkey_problems`` names it)."""
        return self._passkey_history(holder_id)[0]

    def passkeys_in_force(self, holder_id: str, at_seq: int | None = None) -> list[Passkey]:
        """The passkeys that may sign for ``holder_id`` on ledger row ``at_seq`` (default: now):
        registered before it and not retired by a passkey recovery before it."""
        if at_seq is None:
            return [p for p in self.passkeys(holder_id) if p.retired_seq is None]
        return [p for p in self.passkeys(holder_id) if p.in_force_at(at_seq)]

    def passkey_problems(self, holder_id: str) -> list[str]:
        return self._passkey_history(holder_id)[1]

    def passkey_recoveries(self, holder_id: str) -> list[LedgerEvent]:
        """The holder's passkey recoveries that count: ``holder.invited`` events with purpose
        ``recovery`` signed by the organisation that onboards the holder (its key per
        ``org.created``), with an attestation of who checked the holder's identity and how. Each
        retires every passkey registered before it; one written by a database editor, signed by
        another organisation or by no one retires and opens nothing (``passkey_problems``)."""
        return self._passkey_history(holder_id)[2]

    def _passkey_history(self, holder_id: str) -> tuple[list[Passkey], list[str], list[LedgerEvent]]:
        if holder_id in self._passkey_histories:
            return self._passkey_histories[holder_id]
        found: dict[bytes, Passkey] = {}
        retired: dict[bytes, int] = {}
        recoveries: list[LedgerEvent] = []
        nonces: set[Any] = set()  # of the vouches counted: a statement vouches once
        problems: list[str] = []
        invited = [e for e in self.invitations_of(holder_id) if e.payload.get("purpose") == RECOVERY_PURPOSE]
        # A key recovery that counts says the holder lost control of their key, and perhaps of the
        # phone beside it: the passkeys that key vouched for retire with it (the holder vouches
        # again with the new key). Otherwise a stolen phone's vouched passkey signed on after
        # recover-key, and an offline-key holder had no way to stop it (recover-passkey refuses them).
        recovered_keys = {k.seq for k in self.holder_keys(holder_id).keys if k.via == "holder.key_recovered"}
        key_recoveries = [e for e in self._find(HOLDER_KEY_EVENTS, "holder_id", holder_id) if e.seq in recovered_keys]
        # one pass in ledger order: a recovery retires the passkeys in force at its row
        for event in sorted(
            [*self._find((PASSKEY_REGISTERED,), "holder_id", holder_id), *invited, *key_recoveries],
            key=lambda e: e.seq,
        ):
            in_force = [p for p in found.values() if p.credential_id not in retired]
            if event.event_type == "holder.key_recovered":
                retired.update((p.credential_id, event.seq) for p in in_force)
                continue
            if event.event_type == "holder.invited":
                why = self._recovery_problem(event, holder_id, in_force)
                if why:
                    problems.append(f"ledger row {event.seq}: passkey recovery ignored: {why}")
                    continue
                recoveries.append(event)
                retired.update((p.credential_id, event.seq) for p in in_force)
                continue
            body = {k: v for k, v in event.payload.items() if k not in ("signature", "passkey")}
            passkey = passkey_of_event(body, event.seq)
            why = (
                "it is malformed"
                if passkey is None or passkey.holder_id != holder_id
                else "its credential is already registered"
                if passkey.credential_id in found
                else "its vouch statement was already used"
                if body.get("type") == VOUCH_TYPE and body.get("nonce") in nonces
                else self._registration_problem(event, body, list(found.values()), in_force, recoveries)
            )
            if why:
                problems.append(f"ledger row {event.seq}: {PASSKEY_REGISTERED} ignored: {why}")
            elif passkey is not None:
                found[passkey.credential_id] = passkey
                if body.get("type") == VOUCH_TYPE:
                    nonces.add(body.get("nonce"))
        passkeys = [replace(p, retired_seq=retired.get(p.credential_id)) for p in found.values()]
        self._passkey_histories[holder_id] = (passkeys, problems, recoveries)
        return self._passkey_histories[holder_id]

    def _recovery_problem(self, event: LedgerEvent, holder_id: str, in_force: list[Passkey]) -> str | None:
        """Why a recovery invitation does not count: the same trust as ``recover-key``, an
        organisation's signed, attributable statement that it checked who the holder is."""
        body = {k: v for k, v in event.payload.items() if k != "signature"}
        first = self.invitation_event(str(body.get("invitation_id")))
        if first is not None and first.seq != event.seq:
            return f"it repeats the invitation on ledger row {first.seq}"
        keys = self.holder_keys(holder_id)
        if not keys.keys or keys.keys[0].fingerprint != PASSKEY_ONLY:
            return "a holder who signs with an offline key recovers with recover-key, not an invitation"
        why = attestation_problem(body.get("attestation"))
        if why:
            return why
        if in_force and body.get("passkeys_lost") is not True:
            return "the holder had a passkey in force and the recovery does not state it lost"
        return self.invitation_problem(
            str(body.get("invitation_id")),
            holder_id=holder_id,
            org_id=str(body.get("org_id")),
            require_signature=True,
        )

    def _registration_problem(
        self,
        event: LedgerEvent,
        body: dict[str, Any],
        earlier: list[Passkey],
        in_force: list[Passkey],
        recoveries: list[LedgerEvent],
    ) -> str | None:
        signature = event.payload.get("signature")
        if body.get("type") == VOUCH_TYPE:  # vouched for by the holder's own offline key
            return self._vouch_problem(event, body, signature)
        if "passkey" in event.payload:  # a recovery passkey, vouched for by one the holder has
            try:
                assertion = Assertion.from_payload(event.payload["passkey"])
            except ValueError as exc:
                return str(exc)
            voucher = next((p for p in in_force if p.credential_id == assertion.credential_id), None)
            if voucher is None:
                return "it is not signed by a passkey the holder had in force"
            found = assertion_problem(assertion, voucher, signing_challenge(body))
            if found is not None or signature != assertion.digest():
                return f"its passkey signature does not verify ({found.reason if found else 'digest'})"
            return None
        # An invitation (signed by the organisation alone) may only give a passkey-only holder
        # their first passkey, or one new passkey after a signed recovery retired the others:
        # otherwise the organisation could add a passkey of its own to a holder who signs with an
        # offline key or already has passkeys, and sign as them.
        keys = self.holder_keys(str(body.get("holder_id")))
        if not keys.keys or keys.keys[0].fingerprint != PASSKEY_ONLY:
            return "an invitation cannot add a passkey to a holder who signs with an offline key"
        invitation_id = str(body.get("invitation_id"))
        invited = self._find(("holder.invited",), "invitation_id", invitation_id)
        if any(e.payload.get("purpose") == RECOVERY_PURPOSE for e in invited):
            if not any(e.payload.get("invitation_id") == invitation_id for e in recoveries):
                return "its recovery invitation does not count (passkey_problems says why)"
            # an unused link left in a mailbox would open again at every later recovery
            if recoveries[-1].payload.get("invitation_id") != invitation_id:
                return "a later passkey recovery superseded its recovery invitation"
            if in_force:
                return "a recovery invitation gives one new passkey, and the holder has one in force"
        elif earlier:
            return "an invitation cannot add a passkey to a holder who has one (a new passkey is vouched for by one they have)"
        invitation = self.invitation_problem(
            invitation_id,
            holder_id=str(body.get("holder_id")),
            org_id=str(body.get("org_id")),
            before_seq=event.seq,
        )
        return invitation or self.org_signature_problem(body, signature)

    def _vouch_problem(self, event: LedgerEvent, body: dict[str, Any], signature: Any) -> str | None:
        """Why a vouched registration does not count: it must verify with the Ed25519 key the
        holder had at that point of the ledger (after ``holder rotate``, only the new key
        vouches; what the old key vouched for before stays, as its grants do)."""
        why = vouch_malformed(body)
        if why:
            return why
        key = self.holder_keys(str(body["holder_id"])).at(event.seq)
        if key is None or key.fingerprint == PASSKEY_ONLY:
            return "its holder has no offline key to vouch with"
        if body["holder_fingerprint"] != key.fingerprint:
            return (
                f"it is vouched for by key {_short(body['holder_fingerprint'])}, but the holder's key at "
                f"ledger row {event.seq} was {_short(key.fingerprint)}"
            )
        if not _verifies(key.public_key, body, signature):
            return f"its vouch signature does not verify with the holder's key {_short(key.fingerprint)}"
        return None

    def credential_events(self, credential_id: bytes) -> list[LedgerEvent]:
        """Every event that registers ``credential_id`` or carries an assertion by it."""
        key = b64url(credential_id)
        if key not in self._passkey_events:
            member = f'"credential_id":"{key}"'
            rows = self._session.scalars(
                select(LedgerRow)
                .where(LedgerRow.event_type.in_(PASSKEY_EVENTS), LedgerRow.payload.contains(member, autoescape=True))
                .order_by(LedgerRow.seq)
            )
            events = [event_of_row(r) for r in rows]
            self._passkey_events[key] = [
                e
                for e in events
                if e.payload.get("credential_id") == key
                or (isinstance(e.payload.get("passkey"), dict) and e.payload["passkey"].get("credential_id") == key)
            ]
        return self._passkey_events[key]

    def passkey_problem(
        self, event: LedgerEvent, body: dict[str, Any], holder_id: str | None, *, altered: str, bad_signature: str
    ) -> Finding | None:
        """``None`` if ``event`` carries a passkey assertion, by a passkey ``holder_id``
        registered on the ledger before it, that signs ``body`` (see ``passkeys``); else why not.
        A passkey that signed another payload is ``assertion_replayed`` when that payload is
        another record's on the ledger, else ``altered`` (the stored payload was edited)."""
        try:
            assertion = Assertion.from_payload(event.payload.get("passkey"))
        except ValueError as exc:
            return Finding(bad_signature, f"ledger row {event.seq}: {exc}")
        if event.payload.get("signature") != assertion.digest():
            return Finding(
                bad_signature, f"ledger row {event.seq}: its signature is not its passkey assertion's digest"
            )
        registered = next(
            (
                p
                for p in (self.passkeys(holder_id) if holder_id else [])
                if p.credential_id == assertion.credential_id and p.seq < event.seq
            ),
            None,
        )
        if registered is not None and not registered.in_force_at(event.seq):
            # a thief holding the lost phone signs nothing after the recovery; what it signed
            # before, on earlier rows, stays valid
            return Finding(
                "credential_not_holders",
                f"ledger row {event.seq}: the passkey that signed it was retired by the passkey recovery on ledger "
                f"row {registered.retired_seq}",
            )
        named = body.get("holder_fingerprint")
        if registered is None or (named is not None and named != registered.fingerprint):
            return Finding(
                "credential_not_holders",
                f"ledger row {event.seq}: the passkey that signed it is not one its rights holder registered before",
            )
        challenge = signing_challenge(body)
        found = assertion_problem(assertion, registered, challenge)
        if found is not None and found.reason == "challenge_mismatch":
            if self.signed_elsewhere(assertion, event.seq):
                return Finding("assertion_replayed", f"ledger row {event.seq}: the assertion signed another record")
            return Finding(altered, f"ledger row {event.seq}: {found.detail}")
        if found is not None:
            return Finding(found.reason, f"ledger row {event.seq}: {found.detail}")
        earlier = [e for e in self.credential_events(assertion.credential_id) if e.seq < event.seq]
        if any(
            isinstance(e.payload.get("passkey"), dict)
            and e.payload["passkey"].get("signature") == b64url(assertion.signature)
            for e in earlier
        ):
            return Finding("assertion_replayed", f"ledger row {event.seq}: the same assertion is on an earlier record")
        counter = counter_problem(assertion.sign_count(), (_sign_count(e, assertion.credential_id) for e in earlier))
        if counter is not None:
            return Finding(counter.reason, f"ledger row {event.seq}: {counter.detail}")
        return None

    def signed_elsewhere(self, assertion: Assertion, seq: int) -> bool:
        """Whether the assertion's challenge is the digest of another record's signed payload,
        or the same assertion is on another event: it was lifted from there."""
        try:
            digest = unb64url(strict_json.loads(assertion.client_data_json).get("challenge")).hex()
        except (ValueError, AttributeError):
            return False
        for kind in ("grant", "release"):
            if any(e.seq != seq for e in find_events(self._session, f"{kind}.issued", {"payload_sha256": digest})):
                return True
        signature = b64url(assertion.signature)
        return any(
            e.seq != seq
            and isinstance(e.payload.get("passkey"), dict)
            and e.payload["passkey"].get("signature") == signature
            for e in self.credential_events(assertion.credential_id)
        )

    def revocation(
        self, kind: str, target_id: str, holder_id: str | None, row: GrantRevocation | ReleaseRevocation | None
    ) -> RevocationStatus:
        """The revocation state of a grant or release (``kind``) from the ledger, with ``row``
        (its revocation row, or ``None``) checked against the events."""
        events = self._find((f"{kind}.revoked",), f"{kind}_id", target_id)
        history = self.holder_keys(holder_id) if holder_id else KeyHistory("", ())
        valid: list[LedgerEvent] = []
        problems: list[str] = []
        for event in events:
            why = _revocation_event_problem(self, event, kind, target_id, history)
            if why:
                problems.append(f"revocation on ledger row {event.seq} {why}")
            else:
                valid.append(event)
        if row is not None and not any(
            e.payload.get("signature") == row.signature
            and e.payload.get("revoked_at") == row.revoked_at
            and e.payload.get("reason") == row.reason
            for e in valid
        ):
            problems.append(f"revocation row {row.id} has no matching revocation on the ledger signed by the holder")
        revoked_at = min((str(e.payload.get("revoked_at")) for e in valid), default=None)
        return RevocationStatus(revoked_at, tuple(problems))


def _sign_count(event: LedgerEvent, credential_id: bytes) -> int:
    """The signature counter ``event`` shows for ``credential_id``: its assertion's (a grant,
    a revocation, or a recovery passkey's registration it vouched for), or its registration's."""
    try:
        vouching = event.payload.get("passkey")
        if isinstance(vouching, dict) and vouching.get("credential_id") == b64url(credential_id):
            return Assertion.from_payload(vouching).sign_count()
        if event.event_type == PASSKEY_REGISTERED and event.payload.get("credential_id") == b64url(credential_id):
            return int(event.payload.get("sign_count") or 0)
    except (ValueError, TypeError, WebAuthnException):  # a malformed event shows no count
        pass
    return 0


def _revocation_event_problem(
    view: LedgerConsent, event: LedgerEvent, kind: str, target_id: str, history: KeyHistory
) -> str | None:
    body = {k: v for k, v in event.payload.items() if k not in ("signature", "passkey")}
    if body != revocation_payload(kind, target_id, str(body.get("revoked_at")), str(body.get("reason"))):
        return "is malformed"
    if "passkey" in event.payload:
        found = view.passkey_problem(
            event, body, history.holder_id or None, altered="revocation_invalid", bad_signature="revocation_invalid"
        )
        return f"is not signed by the holder's passkey ({found.reason}: {found.detail})" if found else None
    key = history.at(event.seq)
    if key is None:
        return "comes from a holder with no key on the ledger"
    if not _verifies(key.public_key, body, event.payload.get("signature")):
        return f"is not signed by the holder's key ({_short(key.fingerprint)})"
    return None


def holder_key_problem(history: KeyHistory, holder: RightsHolder) -> str | None:
    """``None`` if the holder row's key is the key it enrolled with on the ledger
    (``holder.created``; later keys live on the ledger only), else why not."""
    if not history.keys:
        return "it has no holder.created event on the ledger"
    enrolled = history.keys[0].fingerprint
    # A passkey-only holder has no key at all: an empty key and the PASSKEY_ONLY marker.
    row_fp = PASSKEY_ONLY if holder.public_key == "" else _fingerprint_of(holder.public_key)
    if row_fp != holder.key_fingerprint:
        return "its public key does not match its fingerprint in the database"
    if row_fp != enrolled:
        return (
            f"its key in the database ({_short(row_fp)}) is not the key it enrolled with on the "
            f"ledger ({_short(enrolled)})"
        )
    return None


#: Subject row columns that must be what its ``subject.created`` event recorded (the holder is
#: checked with the grant or release it signed: ``signature_invalid``).
SUBJECT_IDENTITY = ("slug", "kind", "owner_org_id")
#: ... and those compared only where the event records them: subjects enrolled before the name
#: was recorded have none. The name is what the portal, evidence and the public card show.
SUBJECT_RECORDED = ("name",)


def subject_identity_problem(view: LedgerConsent, subject: Subject) -> Finding | None:
    """``None`` if the subject row's slug, kind, owning organisation (and name, where recorded)
    are those of its ``subject.created`` event, else ``subject_altered`` naming what differs. A slug swapped
    between two rows (mina <-> sora) would otherwise make one subject's grant authorize, and
    one subject's name label, the other's likeness."""
    created = view.subject_created(subject.id)
    if created is None:
        return Finding("subject_altered", f"subject row {subject.id} has no subject.created event on the ledger")
    differs = [
        f"{column} {getattr(subject, column)!r} (the ledger says {created.payload.get(column)!r})"
        for column in SUBJECT_IDENTITY
        if getattr(subject, column) != created.payload.get(column)
    ] + _identity_differs(subject, created, SUBJECT_RECORDED)
    if differs:
        return Finding(
            "subject_altered",
            f"subject row {subject.id} differs from its subject.created event (ledger row "
            f"{created.seq}): {', '.join(differs)}",
        )
    return None


def subject_unsealed(view: LedgerConsent, subject: Subject) -> Finding | None:
    """``subject_altered`` when the subject's ``subject.created`` event is not its enrolling
    organisation's (``LedgerConsent.subject_seal_problem``), else ``None``. A grant its holder
    signed for such a subject (a request drafted by hand) authorizes nothing: the holder was
    asked about a subject no organisation enrolled. One marker lookup per ``view``."""
    created = view.subject_created(subject.id)
    why = view.subject_seal_problem(created) if created is not None else None
    return Finding("subject_altered", f"subject row {subject.id}: {why}") if why else None


#: Organisation row columns that must be what its ``org.created`` event recorded: the slug
#: finds the grantee (``--org``), and the slug and name go into C2PA manifests and certificates.
ORG_IDENTITY = ("slug", "name")
#: Rights holder row columns compared with ``holder.created`` (``name`` only in events that
#: record it: holders enrolled before it was recorded have slug and kind only). The slug also
#: names the holder's key file.
HOLDER_IDENTITY = ("slug", "kind", "name")


def _identity_differs(row: Any, event: LedgerEvent, columns: Sequence[str]) -> list[str]:
    """``column 'row value' (the ledger says 'event value')`` for each recorded column that differs."""
    return [
        f"{column} {getattr(row, column)!r} (the ledger says {event.payload.get(column)!r})"
        for column in columns
        if column in event.payload and getattr(row, column) != event.payload.get(column)
    ]


def org_identity_problem(view: LedgerConsent, org: Organisation) -> Finding | None:
    """``None`` if the organisation row's slug and name are those of its ``org.created``
    event, else ``org_altered``. Swapped slugs (studio <-> rival) would otherwise let ``--org
    rival`` authorize under studio's grant, and an edited name would sign C2PA manifests."""
    created = view.org_created(org.id)
    if created is None:
        return Finding("org_altered", f"organisation row {org.id} has no org.created event on the ledger")
    differs = _identity_differs(org, created, ORG_IDENTITY)
    if differs:
        return Finding(
            "org_altered",
            f"organisation row {org.id} differs from its org.created event (ledger row "
            f"{created.seq}): {', '.join(differs)}",
        )
    return None


def holder_identity_problem(view: LedgerConsent, holder: RightsHolder) -> str | None:
    """``None`` if the holder row's slug, kind (and name, where recorded) are those of its
    ``holder.created`` event, else what differs (a missing event is ``holder_key_problem``'s)."""
    created = view.holder_created(holder.id)
    if created is None:
        return None
    differs = _identity_differs(holder, created, HOLDER_IDENTITY)
    if differs:
        return f"it differs from its holder.created event (ledger row {created.seq}): {', '.join(differs)}"
    return None


def _recorded_name(event: LedgerEvent) -> str:
    """The name an event records, or its slug where it records none (enrolled before names were)."""
    return str(event.payload.get("name") or event.payload.get("slug"))


def ledger_parties(view: LedgerConsent, org_id: str, subject_id: str, holder_id: str) -> Parties | str:
    """The names of a grant's or release's parties as their ``org.created``,
    ``subject.created`` and ``holder.created`` events record them (what a v2 payload must
    sign), or why the ledger cannot name them."""
    org, subject, holder = view.org_created(org_id), view.subject_created(subject_id), view.holder_created(holder_id)
    if org is None or subject is None or holder is None:
        missing = [
            what
            for what, event in (
                (f"org.created of {org_id}", org),
                (f"subject.created of {subject_id}", subject),
                (f"holder.created of {holder_id}", holder),
            )
            if event is None
        ]
        return f"the ledger has no {', '.join(missing)} to name it by"
    return Parties(
        org_name=_recorded_name(org),  # (``LedgerConsent.org_name``)
        org_slug=str(org.payload.get("slug")),
        subject_name=_recorded_name(subject),
        subject_slug=str(subject.payload.get("slug")),
        subject_kind=str(subject.payload.get("kind")),
        holder_name=_recorded_name(holder),
        holder_kind=str(holder.payload.get("kind")),
    )


def signed_names_problem(view: LedgerConsent, payload: Mapping[str, Any]) -> str | None:
    """``None`` if a v2 grant or release ``payload`` signs the names the ledger records for its
    ids (a v1 payload signs none), else what differs: the holder read names that are not these
    parties'."""
    signed = parties_of(payload)
    if signed is None:
        return None
    subject_id = payload.get("subject_id", payload.get("performer_id"))
    ledger = ledger_parties(view, str(payload.get("org_id")), str(subject_id), str(payload.get("holder_id")))
    if isinstance(ledger, str):
        return ledger
    differs = parties_differences(signed, ledger)
    return f"the names it signs are not the ledger's: {', '.join(differs)}" if differs else None


def _grantee_problem(session: Session, view: LedgerConsent, org_id: str) -> Finding | None:
    org = session.get(Organisation, org_id)
    if org is None:
        return Finding("org_altered", f"its organisation row {org_id} is missing")
    return org_identity_problem(view, org)


def _signed_record_problem(
    kind: str,
    event: LedgerEvent,
    rebuilt: dict[str, Any],
    row_digest: str,
    row_signature: str,
    history: KeyHistory,
    view: LedgerConsent,
    *,
    altered: str,
    bad_signature: str,
    not_on_ledger: str,
) -> Finding | None:
    """Compare a grant or release row (``rebuilt`` payload, digest, signature) with its event,
    and verify the signature: the holder's Ed25519 key in force, or a passkey it registered."""
    body = {k: v for k, v in event.payload.items() if k not in UNSIGNED_MEMBERS}
    digest = event.payload.get("payload_sha256")
    if canonical_sha256(body) != digest:
        return Finding(not_on_ledger, f"its {kind}.issued event (ledger row {event.seq}) does not match its own digest")
    if canonical_sha256(rebuilt) != digest or row_digest != digest:
        return Finding(altered, f"the row differs from what was signed (ledger row {event.seq})")
    if row_signature != event.payload.get("signature"):
        return Finding(bad_signature, f"the row's signature is not the one on the ledger (row {event.seq})")
    if is_passkey_fingerprint(body.get("holder_fingerprint")) or "passkey" in event.payload:
        return view.passkey_problem(event, body, history.holder_id, altered=altered, bad_signature=bad_signature)
    key = history.at(event.seq)
    if key is None or key.fingerprint != body.get("holder_fingerprint"):
        return Finding(
            bad_signature,
            f"it names key {_short(body.get('holder_fingerprint'))}, but the holder's key at ledger row "
            f"{event.seq} was {_short(key.fingerprint if key else None)}",
        )
    if not _verifies(key.public_key, body, row_signature):
        return Finding(bad_signature, f"its signature does not verify with the holder's key {_short(key.fingerprint)}")
    return None


def grant_problem(session: Session, view: LedgerConsent, grant: Grant) -> Finding | None:
    """``None`` if the grant row is what its subject's rights holder signed and put on the
    ledger, else the finding (``holder_key_altered``, ``signature_invalid``,
    ``subject_altered``, ``org_altered`` (the grantee's row), ``grant_not_on_ledger`` or
    ``grant_altered``)."""
    return _consent_record_problem(session, view, "grant", grant, grant.subject_id, grant_payload)


def release_problem(session: Session, view: LedgerConsent, release: Release) -> Finding | None:
    """As ``grant_problem`` for a performer release (``release_altered``,
    ``release_signature_invalid``, ``release_not_on_ledger``, ``holder_key_altered``)."""
    return _consent_record_problem(session, view, "release", release, release.performer_id, release_payload)


#: kind -> (altered, bad signature, not on the ledger) reasons; a grant's are the bare names.
_RECORD_REASONS = {
    "grant": ("grant_altered", "signature_invalid", "grant_not_on_ledger"),
    "release": ("release_altered", "release_signature_invalid", "release_not_on_ledger"),
}


def _consent_record_problem(
    session: Session,
    view: LedgerConsent,
    kind: str,
    record: Grant | Release,
    subject_id: str,
    payload_of: Callable[[Any, Any, dict[str, Any]], dict[str, Any]],
) -> Finding | None:
    altered, bad_signature, not_on_ledger = _RECORD_REASONS[kind]
    holder = session.get(RightsHolder, record.holder_id)
    subject = session.get(Subject, subject_id)
    if holder is None or subject is None:
        return Finding(altered, "its subject or rights holder row is missing")
    history = view.holder_keys(holder.id)
    key_issue = holder_key_problem(history, holder) or view.holder_seal_problem(holder.id)
    if key_issue:
        return Finding("holder_key_altered", f"rights holder '{holder.slug}': {key_issue}")
    ledger_holder = view.subject_holder(subject.id)
    if ledger_holder is None or ledger_holder != subject.holder_id or subject.holder_id != record.holder_id:
        return Finding(
            bad_signature,
            f"it is signed by holder '{holder.slug}', not by the rights holder the ledger records for '{subject.slug}'",
        )
    identity = (
        subject_identity_problem(view, subject)
        or subject_unsealed(view, subject)
        or _grantee_problem(session, view, record.org_id)
    )
    if identity:
        return identity
    event = view.issued(kind, record.id)
    if event is None:
        return Finding(not_on_ledger, f"it has no {kind}.issued event on the ledger")
    try:
        rebuilt = payload_of(record, event.payload.get("holder_fingerprint"), named_members(event.payload))
    except (ValueError, TypeError):
        return Finding(altered, f"its row cannot be read back into a {kind}")
    names = signed_names_problem(view, event.payload)
    if names:
        return Finding(altered, f"{names} (ledger row {event.seq})")
    return _signed_record_problem(
        kind,
        event,
        rebuilt,
        record.payload_sha256,
        record.signature,
        history,
        view,
        altered=altered,
        bad_signature=bad_signature,
        not_on_ledger=not_on_ledger,
    )


# --- every row against the ledger (audit verify) ---------------------------------------------


def consent_row_problems(workspace: Workspace) -> list[ConsentProblem]:
    """Every difference between the consent rows (organisations, holders, subjects, grants,
    releases, revocations) and the ledger, both ways: a row without its event, an event
    without its row (e.g. a deleted revocation), a digest or signature that differs, a key
    that is not the one the ledger has in force. Empty when they agree."""
    with workspace.session() as session:
        view = LedgerConsent(session, preload=True)
        return [
            *_organisation_problems(session, view),
            *_holder_problems(session, view),
            *_subject_problems(session, view),
            *_record_problems(session, view, "grant", Grant, grant_problem),
            *_record_problems(session, view, "release", Release, release_problem),
            *_revocation_problems(session, view, "grant", Grant, GrantRevocation),
            *_revocation_problems(session, view, "release", Release, ReleaseRevocation),
            *reference_problems(session),
            *sealing_marker_problems(session, view),
            *forged_refund_problems(session),
            *grant_request_problems(session),
            *invitation_problems(session, view),
        ]


#: ``Recovery.what`` of an adoption (``holder.adopted``).
ADOPTED = "adopted"


@dataclass(frozen=True)
class Recovery:
    """A recovery or adoption that counts on the ledger: an organisation's signed statement that
    it checked who a holder who lost their key (``key recovered``) or every passkey
    (``passkeys recovered``) is, or that it enrolled a holder the ledger named no organisation
    for (``adopted``)."""

    holder: str
    what: str
    seq: int
    at: str
    org: str
    attestation: dict[str, Any]

    #: the rights holder's key that signed an adoption too ("" for recoveries)
    holder_key: str = ""

    def describe(self) -> str:
        how = self.attestation
        signed = f"; signed by the rights holder's key {_short(self.holder_key)}" if self.holder_key else ""
        return (
            f"rights holder '{self.holder}': {self.what} by {self.org} at ledger row {self.seq} ({self.at}){signed}; "
            f"verified by {how.get('verified_by')}, {how.get('method')}: {how.get('statement')}"
        )


def consent_recoveries(workspace: Workspace) -> list[Recovery]:
    """Every key and passkey recovery and every adoption that counts, in ledger order: rare,
    organisation-signed events that ``audit verify`` lists for auditors to check with the holders."""
    found: list[Recovery] = []
    with workspace.session() as session:
        view = LedgerConsent(session, preload=True)
        orgs = {o.id: o.name for o in session.scalars(select(Organisation))}
        for holder in session.scalars(select(RightsHolder)):
            recovered_keys = {k.seq for k in view.holder_keys(holder.id).keys if k.via == "holder.key_recovered"}
            events = [
                *(e for e in view._find(HOLDER_KEY_EVENTS, "holder_id", holder.id) if e.seq in recovered_keys),
                *view.passkey_recoveries(holder.id),
                *(e for e in view.ownership_claims(holder.id)[:1] if e.event_type == ADOPTION_EVENT),
            ]
            for event in events:
                what = {"holder.key_recovered": "key recovered", ADOPTION_EVENT: ADOPTED}.get(
                    event.event_type, "passkeys recovered"
                )
                org = orgs.get(str(event.payload.get("org_id")), str(event.payload.get("org_id")))
                attestation = event.payload.get("attestation")
                adopter = str(event.payload.get("holder_fingerprint")) if what == ADOPTED else ""
                found.append(
                    Recovery(holder.slug, what, event.seq, event.created_at, org, dict(attestation or {}), adopter)
                )
    return sorted(found, key=lambda r: r.seq)


def ownerless_holders(workspace: Workspace) -> list[str]:
    """A sentence for each rights holder no organisation may invite or recover because the
    ledger names none that onboarded them (``LedgerConsent.holder_owner``): holders enrolled
    before holders were bound to one, in a workspace with several organisations."""
    with workspace.session() as session:
        view = LedgerConsent(session, preload=True)
        pinned = view.pinned_orgs()
        if len(pinned) < 2:
            return []
        slugs = ", ".join(sorted(str(e.payload.get("slug")) for o in pinned if (e := view.org_created(o)) is not None))
        return [
            f"rights holder '{holder.slug}': the ledger names no organisation that onboarded them and this workspace "
            f"has several ({slugs}): none may invite them or recover their key until the one that enrolled them "
            f"adopts them with their signature (likeness consent adopt-holder {holder.slug} --org ORG ...)"
            for holder in session.scalars(select(RightsHolder).order_by(RightsHolder.slug))
            if view.holder_owner(holder.id) is None and view.holder_seal_problem(holder.id) is None
        ]  # (a holder whose holder.created is a database editor's is a problem, named as one)


def invitation_problems(session: Session, view: LedgerConsent) -> list[ConsentProblem]:
    """``holder_invitations`` rows without a ``holder.invited`` event that agrees with them
    (kind ``invitation``): a row a database editor inserted, or one whose token or expiry was
    changed. The portal already refuses such a link (``invitation_unknown``); this names it."""
    return [
        ConsentProblem("invitation", row.id, f"invitation {row.id}: {problem}")
        for row in session.scalars(select(HolderInvitation).order_by(HolderInvitation.created_at, HolderInvitation.id))
        for problem in [view.invitation_problem(row.id, holder_id=row.holder_id, org_id=row.org_id, row=row)]
        if problem
    ]


def grant_request_problems(session: Session) -> list[ConsentProblem]:
    """``grant_requests`` rows that are not what the ledger says (kind ``grant_request``,
    record id: the request id): inserted with no ``grant.requested`` event, terms or columns
    edited after drafting, or a state the ledger contradicts. The portal already refuses to show
    or sign an edited request (``grant_altered``); this names it. The events are read once."""
    drafted = _requests_on_ledger(session)
    issued = {e.payload.get("grant_id") for e in find_events(session, "grant.issued", {})}
    declined = {e.payload.get("request_id") for e in find_events(session, "grant.declined", {})}
    return [
        ConsentProblem("grant_request", row.id, f"grant request {row.id}: {problem}")
        for row in session.scalars(select(GrantRequestRow).order_by(GrantRequestRow.created_at, GrantRequestRow.id))
        for problem in _grant_request_row_problems(
            row,
            drafted.get(row.id),
            "signed" if row.id in issued else "declined" if row.id in declined else "pending",
        )
    ]


def _requests_on_ledger(session: Session) -> dict[str, RequestedGrant | Exception]:
    """Each request id's first ``grant.requested`` event, read (as ``registry.requested_grant``
    decides it, for all ids at once), or why it cannot be read."""
    out: dict[str, RequestedGrant | Exception] = {}
    for event in find_events(session, REQUESTED_EVENT, {}):
        for named in dict.fromkeys((event.payload.get("request_id"), event.payload.get("grant_id"))):
            if not isinstance(named, str) or named in out:
                continue
            try:
                requested = requested_from_event(event.payload)
            except (ConsentError, RegistryError) as exc:
                out[named] = exc
                continue
            if requested.request_id == named:
                out[named] = requested
    return out


def _grant_request_row_problems(
    row: GrantRequestRow, drafted: RequestedGrant | Exception | None, ledger_state: str
) -> list[str]:
    if isinstance(drafted, Exception):
        return [f"its grant.requested event cannot be read ({drafted})"]
    if drafted is None:
        return ["it has no grant.requested event on the ledger (inserted); it cannot be signed"]
    problems = []
    try:
        terms = request_from_payload(strict_json.loads(row.payload))
    except (ValueError, RegistryError, ConsentError) as exc:  # (JSONDecodeError is a ValueError)
        problems.append(f"its terms cannot be read ({exc})")
    else:
        differs = payload_differences(
            request_payload(terms), request_payload(drafted.terms), names=("drafted", "the row says")
        )
        if differs:
            problems.append(f"its terms differ from what was drafted ({'; '.join(differs)}); it cannot be signed")
    recorded = {
        "request_sha256": request_sha256(drafted.terms),
        "subject_id": drafted.terms.subject_id,
        "org_id": drafted.terms.org_id,
        **({"created_by": drafted.created_by} if drafted.created_by else {}),
    }
    problems += [
        f"its {column} {getattr(row, column)!r} is not the ledger's {value!r}"
        for column, value in recorded.items()
        if getattr(row, column) != value
    ]
    if row.state != ledger_state or (ledger_state == "signed" and row.grant_id != row.id):
        problems.append(f"its state {row.state!r} (grant {row.grant_id}) is not the ledger's ({ledger_state})")
    return problems


_REFERENCE_PROBLEMS = {
    "no_event": "has no subject.reference_added event on the ledger (inserted); it is not used",
    "vector_differs": "its vector is not the one its subject.reference_added event (ledger row "
    "{seq}) recorded (replaced); it is not used",
    "unsigned": "is unsigned: its subject.reference_added event (ledger row {seq}): {detail}; it is not used "
    "until an operator who recognises the face attests it (likeness subject photos attest {slug})",
    "unsigned_late": "is unsigned: its subject.reference_added event (ledger row {seq}): {detail}, so a "
    "database editor's; it is not used",
    "resealable": "is sealed by another organisation: its subject.reference_added event (ledger row {seq}): "
    "{detail}; it is not used until an operator of the organisation that enrolled the subject who recognises "
    "the face attests it (likeness subject photos attest {slug})",
    "seal_invalid": "is wrongly sealed: its subject.reference_added event (ledger row {seq}): {detail}; it is not used",
}


def reference_problems(session: Session) -> list[ConsentProblem]:
    """Reference embedding rows the organisation's sealed ledger events do not bind (kind
    ``reference``, record id: the subject id): inserted or replaced rows, rows whose event is
    unsigned (written before reference events were sealed, or by a database editor after) or
    wrongly sealed, none of which are used (``registry.reference_statuses``); and subjects
    whose founding reference is gone or unsealed, which enrolment refuses
    (``registry.founding_reference``)."""
    statuses = reference_statuses(session)
    by_subject: dict[str, list[ReferenceStatus]] = {}
    for status in statuses:
        by_subject.setdefault(status.subject_id, []).append(status)
    events: dict[Any, list[LedgerEvent]] = {}
    found = find_events(session, REFERENCE_EVENT, {})
    for event in found:
        events.setdefault(event.payload.get("subject_id"), []).append(event)
    seals = reference_seals(session, found)
    out = []
    for status in statuses:
        if status.state == "bound":
            continue
        subject = session.get(Subject, status.subject_id)
        who = subject.slug if subject is not None else status.subject_id
        out.append(
            ConsentProblem(
                "reference",
                status.subject_id,
                f"reference embedding row {status.row_id} of subject '{who}' (photo {status.source_name!r}, "
                f"sha256 {status.source_sha256[:16]}…) "
                + _REFERENCE_PROBLEMS[status.state].format(seq=status.event_seq, detail=status.detail, slug=who),
            )
        )
    for subject in session.scalars(select(Subject).order_by(Subject.slug)):
        problem = founding_of(events.get(subject.id, []), by_subject.get(subject.id, []), seals).problem
        if problem:
            out.append(
                ConsentProblem("reference", subject.id, f"subject '{subject.slug}': {problem}; enrolment refuses it")
            )
    return out


def sealing_marker_problems(session: Session, view: LedgerConsent) -> list[ConsentProblem]:
    """Each sealing marker event (``ledger.references_sealed``,
    ``ledger.reference_sealers_checked``, ``ledger.subjects_sealed``) that is not a valid one
    (kind ``sealing_marker``): its signature does not verify with a pinned organisation key (a
    database editor's, or signed with a key of their own). The product writes only valid ones and reading skips the
    rest (``first_sealing_marker``); this names them."""
    return [
        ConsentProblem(
            "sealing_marker",
            f"ledger row {event.seq}",
            f"{event.event_type} is not a valid sealing marker: {why}; it is ignored",
        )
        for event in find_events(session, tuple(SEALING_MARKERS), {})
        for why in [sealing_marker_problem(event.payload, view.org_key, event=event.event_type)]
        if why
    ] + marker_pin_problems(session)


def _holds(session: Session, seq: int, digest: str) -> bool:
    """Whether ledger row ``seq`` has hash ``digest`` (row 0: the chain's start)."""
    row = session.get(LedgerRow, seq) if seq > 0 else None
    return (row.hash if row is not None else GENESIS_HASH if seq == 0 else None) == digest


def pinned_from(session: Session, pin: MarkerPin) -> int:
    """Where ``pin`` says its kind of sealing began: its row while the rows before it are as
    pinned (the marker there or deleted), else row 1. Deleting rows renumbers the later ones, so
    once the rows before a marker changed, an event written after it may sit at any row."""
    return pin.seq if _holds(session, pin.seq - 1, pin.prev_hash) else 1


def marker_pin_problems(session: Session) -> list[ConsentProblem]:
    """Each sealing marker the workspace's key folder pins (``marker_pins``) whose ledger row
    is gone or holds another row (kind ``sealing_marker``), and a pin file that is not used: a
    deleted marker leaves no other trace once the chain is recomputed. Reading stays strict
    from the pinned row, or from row 1 where the rows before it changed too (``pinned_from``)."""
    pins = session.info.get(MARKER_PINS)
    if not isinstance(pins, MarkerPins):
        return []
    try:
        pinned = pins.read()
    except ConfigError as exc:
        return [ConsentProblem("sealing_marker", "pin file", f"{exc}; no sealing marker is pinned")]
    out = []
    for pin in sorted(pinned.values(), key=lambda p: p.seq):
        row = session.get(LedgerRow, pin.seq)
        if row is not None and (row.event_type, row.hash) == (pin.event_type, pin.hash):
            continue
        held = "the ledger ends before it" if row is None else f"the row there is now {row.event_type}"
        if row is not None and row.event_type == pin.event_type:
            held = "the row there has another hash"
        strict = pinned_from(session, pin)
        read = (
            f"events from row {pin.seq} on are read as written after it"
            if strict == pin.seq
            else "the rows before it changed too, so every event is read as written after it (restore the ledger "
            "from a backup)"
        )
        out.append(
            ConsentProblem(
                "sealing_marker",
                f"ledger row {pin.seq}",
                f"sealing marker pinned at row {pin.seq} is not on the ledger ({pin.event_type}: {held}; pinned in "
                f"{pins.path}): it was deleted or the ledger rewritten; {read}",
            )
        )
    return out


def forged_refund_problems(session: Session) -> list[ConsentProblem]:
    """``render.refunded`` events that follow a ``render.completed`` event of the same job.

    The engine never refunds a completed render (``PolicyEngine.refund_render``), so such an
    event was appended by someone else; it frees no slot (``policy.render_slots`` counts every
    completed job), and audit names it (kind ``render_slot``, record id: the job id).
    """
    completed: dict[str, int] = {}
    out = []
    for event in find_events(session, ("render.completed", "render.refunded"), {}):
        job = str(event.payload.get("job_id"))
        if event.event_type == "render.completed":
            completed.setdefault(job, event.seq)
        elif job in completed:
            out.append(
                ConsentProblem(
                    "render_slot",
                    job,
                    f"render job {job}: render.refunded on ledger row {event.seq} follows its "
                    f"render.completed (ledger row {completed[job]}): a completed render is never "
                    f"refunded, so this refund is forged; the slot stays in use",
                )
            )
    return out


def _missing_rows(
    session: Session, view: LedgerConsent, kind: str, event_type: str, model: type
) -> list[ConsentProblem]:
    """Events with no row, and later copies of an event for the same record (ignored)."""
    member = CONSENT_EVENTS[event_type]
    seen: set[Any] = set()
    out = []
    for event in view.events_of(event_type):
        record_id = event.payload.get(member)
        if record_id in seen:
            out.append(
                ConsentProblem(kind, str(record_id), f"a second {event_type} event (ledger row {event.seq}) is ignored")
            )
            continue
        seen.add(record_id)
        if session.get(model, record_id) is None:
            out.append(
                ConsentProblem(
                    kind, str(record_id), f"{event_type} on ledger row {event.seq} has no {kind} row (deleted)"
                )
            )
    return out


def _organisation_problems(session: Session, view: LedgerConsent) -> list[ConsentProblem]:
    out = []
    for org in session.scalars(select(Organisation).order_by(Organisation.slug)):
        key = view.org_created_key(org.id)  # (whether the workspace pins it: _unpinned_orgs)
        if key is None:
            out.append(ConsentProblem("organisation", org.id, f"organisation '{org.slug}' has no org.created event"))
        elif key[0] != org.key_fingerprint or _fingerprint_of(org.public_key) != key[0]:
            out.append(
                ConsentProblem(
                    "organisation",
                    org.id,
                    f"organisation '{org.slug}': its key in the database is not the key on the ledger",
                )
            )
        altered = org_identity_problem(view, org) if key is not None else None
        if altered:
            out.append(ConsentProblem("organisation", org.id, f"organisation '{org.slug}': {altered.detail}"))
    return out + _unpinned_orgs(view) + _missing_rows(session, view, "organisation", "org.created", Organisation)


def _unpinned_orgs(view: LedgerConsent) -> list[ConsentProblem]:
    """Each ``org.created`` whose key the workspace's key files do not pin (e.g. one a database
    editor appended with a key of their own): nothing it signs counts."""
    out = []
    for org_id in dict.fromkeys(str(e.payload.get("org_id")) for e in view.events_of("org.created")):
        why = view.org_key_problem(org_id)
        if why:
            out.append(ConsentProblem("organisation", org_id, f"{why}; no signature by it counts"))
    return out


def _named_enroller(created: LedgerEvent) -> str | None:
    """The organisation a ``subject.created`` event names as enrolling the subject (``org_id``,
    else its owner ``owner_org_id``); ``None`` for events written before they named one."""
    for member in ("org_id", "owner_org_id"):
        if isinstance(created.payload.get(member), str) and created.payload[member]:
            return str(created.payload[member])
    return None


def _holder_problems(session: Session, view: LedgerConsent) -> list[ConsentProblem]:
    out = []
    for holder in session.scalars(select(RightsHolder).order_by(RightsHolder.slug)):
        history = view.holder_keys(holder.id)
        problem = holder_key_problem(history, holder)
        if problem:
            out.append(ConsentProblem("holder", holder.id, f"rights holder '{holder.slug}': {problem}"))
        altered = holder_identity_problem(view, holder)
        if altered:
            out.append(ConsentProblem("holder", holder.id, f"rights holder '{holder.slug}': {altered}"))
        unsealed = view.holder_seal_problem(holder.id)
        if unsealed:
            out.append(ConsentProblem("holder", holder.id, f"rights holder '{holder.slug}': {unsealed}"))
        out.extend(ConsentProblem("holder", holder.id, f"rights holder '{holder.slug}': {p}") for p in history.problems)
        out.extend(
            ConsentProblem("holder", holder.id, f"rights holder '{holder.slug}': {p}")
            for p in view.passkey_problems(holder.id)
        )
        out.extend(
            ConsentProblem("holder", holder.id, f"rights holder '{holder.slug}': {p}")
            for p in [*passkey_row_problems(session, view, holder.id), *view.adoption_problems(holder.id)]
        )
    return out + _missing_rows(session, view, "holder", "holder.created", RightsHolder)


def passkey_row_problems(session: Session, view: LedgerConsent, holder_id: str) -> list[str]:
    """``holder_passkeys`` rows that are not the passkeys the ledger registered for the holder
    (planted, or their key, rpId or origin edited): nothing uses them, audit names them."""
    registered = {b64url(p.credential_id): p for p in view.passkeys(holder_id)}
    out = []
    for row in session.scalars(select(HolderPasskey).where(HolderPasskey.holder_id == holder_id)):
        passkey = registered.get(row.credential_id)
        if passkey is None:
            out.append(f"passkey row {row.id} ({row.label}) has no registration on the ledger; it is not used")
        elif (bytes(row.public_key), row.rp_id, row.origin) != (passkey.public_key, passkey.rp_id, passkey.origin):
            out.append(
                f"passkey row {row.id} ({row.label}) differs from its registration (ledger row {passkey.seq}); "
                "the ledger's key is used"
            )
    return out


def _subject_problems(session: Session, view: LedgerConsent) -> list[ConsentProblem]:
    out = []
    for subject in session.scalars(select(Subject).order_by(Subject.slug)):
        ledger_holder = view.subject_holder(subject.id)
        if ledger_holder is None:
            out.append(ConsentProblem("subject", subject.id, f"subject '{subject.slug}' has no subject.created event"))
        elif ledger_holder != subject.holder_id:
            out.append(
                ConsentProblem(
                    "subject", subject.id, f"subject '{subject.slug}': its rights holder differs from the ledger"
                )
            )
        altered = subject_identity_problem(view, subject) if ledger_holder is not None else None
        if altered:
            out.append(ConsentProblem("subject", subject.id, f"subject '{subject.slug}': {altered.detail}"))
        enrolment = view.subject_enrolment_problem(subject.id)
        if enrolment:
            out.append(ConsentProblem("subject", subject.id, f"subject '{subject.slug}': {enrolment}"))
    return out + _missing_rows(session, view, "subject", "subject.created", Subject)


def _record_problems(
    session: Session,
    view: LedgerConsent,
    kind: str,
    model: type[Any],  # Grant or Release
    check: Callable[[Session, LedgerConsent, Any], Finding | None],
) -> list[ConsentProblem]:
    out = []
    for row in session.scalars(select(model).order_by(model.issued_at, model.id)):
        finding = check(session, view, row)
        if finding:
            out.append(ConsentProblem(kind, row.id, f"{kind} {row.id}: {finding.detail} ({finding.reason})"))
    return out + _missing_rows(session, view, kind, f"{kind}.issued", model)


def _revocation_problems(
    session: Session,
    view: LedgerConsent,
    kind: str,
    model: type[Any],  # Grant or Release
    revocation_model: type[GrantRevocation] | type[ReleaseRevocation],
) -> list[ConsentProblem]:
    rows: dict[Any, Any] = {getattr(r, f"{kind}_id"): r for r in session.scalars(select(revocation_model))}
    targets = list(rows) + [
        e.payload.get(f"{kind}_id")
        for e in view.events_of(f"{kind}.revoked")
        if e.payload.get(f"{kind}_id") not in rows
    ]
    out: list[ConsentProblem] = []
    for target_id in dict.fromkeys(targets):
        record = session.get(model, target_id)
        issued = view.issued(kind, str(target_id))
        holder_id = issued.payload.get("holder_id") if issued else (record.holder_id if record else None)
        status = view.revocation(kind, str(target_id), holder_id, rows.get(target_id))
        label = f"{kind}_revocation"
        out.extend(ConsentProblem(label, str(target_id), f"{kind} {target_id}: {p}") for p in status.problems)
        if target_id not in rows and status.revoked_at:
            out.append(
                ConsentProblem(
                    label,
                    str(target_id),
                    f"{kind} {target_id}: revoked on the ledger at {status.revoked_at}, "
                    f"but its revocation row is missing (deleted)",
                )
            )
    return out


__all__ = [
    "CONSENT_EVENTS",
    "ConsentProblem",
    "Finding",
    "HolderKey",
    "KeyHistory",
    "LedgerConsent",
    "RevocationStatus",
    "consent_row_problems",
    "forged_refund_problems",
    "marker_pin_problems",
    "reference_problems",
    "grant_problem",
    "holder_identity_problem",
    "holder_key_problem",
    "org_identity_problem",
    "release_problem",
    "subject_identity_problem",
    "subject_unsealed",
]
