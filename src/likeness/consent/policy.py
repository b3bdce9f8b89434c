"""The policy engine: the only place that issues authorizations for synthesis.

``PolicyEngine.authorize`` checks, at the moment of use, that a grant exists for exactly this
(subject, use, grantee), that its row is what the rights holder signed and put on the ledger
(digest and signature, with the holder's key as the ledger records it:
``likeness.consent.integrity``), that it is inside its validity window, not revoked (on the
ledger, whether or not the revocation row is still there), and within its render limit. Every
decision goes on the ledger.

``Authorization`` and ``ReleaseAuthorization`` cannot be constructed, subclassed, copied or
pickled outside this module. The engine keeps, for each object it issued, a digest of every
field, and refuses an object it did not issue (``not_issued_here``) or one whose fields changed
since (``authorization_altered``, e.g. through ``object.__setattr__``).

Render slots live on the ledger (``render.reserved`` / ``render.refunded`` events) and are
reserved atomically: the count and the reservation are one transaction that holds the grant
(``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on the grant on PostgreSQL,
where the application role may only SELECT and INSERT, so it cannot ``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any, Self, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from likeness import strict_json
from likeness.consent.anchor import LedgerCheck
from likeness.consent.canonical import canonical_sha256, now_utc, parse_utc, utc_iso
from likeness.consent.integrity import (
    Finding,
    LedgerConsent,
    grant_problem,
    org_identity_problem,
    release_problem,
    subject_identity_problem,
    subject_unsealed,
)
from likeness.consent.ledger import Ledger, LedgerEvent, begin_serialized, find_events
from likeness.consent.registry import find_by_id_or_slug, keys_sha
from likeness.consent.tables import (
    AuthorizationRow,
    Grant,
    GrantRevocation,
    Organisation,
    Release,
    ReleaseRevocation,
    RenderConsumption,
    Subject,
)
from likeness.consent.vocabulary import FINAL_MEDIA_USES, check_use_for_step, normalise_use
from likeness.errors import ConsentError

logger = logging.getLogger(__name__)

_SEAL = object()  # module-private capability: only this module can finish building an Authorization

# When several grants exist and all fail, the reported reason is the most specific one.
_REASON_ORDER = (
    "holder_key_altered",
    "subject_altered",
    "org_altered",
    "grant_not_on_ledger",
    "grant_altered",
    "signature_invalid",
    "assertion_replayed",
    "credential_not_holders",
    "wrong_origin",
    "wrong_rp",
    "user_not_verified",
    "counter_regressed",
    "revocation_invalid",
    "revoked",
    "render_limit_reached",
    "expired",
    "not_yet_valid",
)
# Reasons that say the record itself cannot be trusted (reported whatever its uses say).
_RECORD_REASONS = frozenset(_REASON_ORDER[: _REASON_ORDER.index("revoked")])
# A grant that fails only for these is in force (standing checked: on the ledger, signed, not
# revoked, in its window); one that fails for _STALE_REASONS is history once another is in force.
_IN_FORCE_REASONS = frozenset({"use_not_granted", "render_limit_reached"})
_STALE_REASONS = frozenset({"revoked", "expired"})

_STATES = {
    None: "active",
    "revoked": "revoked",
    "release_revoked": "revoked",
    "expired": "expired",
    "release_expired": "expired",
    "not_yet_valid": "not_yet_valid",
    "release_not_yet_valid": "not_yet_valid",
}


def state_of_reason(reason: str | None) -> str:
    """The state ``consent list`` shows for a standing's reason: ``active``, ``revoked``,
    ``expired``, ``not_yet_valid``, or ``altered`` for anything that breaks the ledger binding."""
    return _STATES.get(reason, "altered")


def _signer_id(view: LedgerConsent, kind: str, record_id: str, row_holder_id: str) -> str:
    """The holder who signed a grant or release, per its ledger event (else its row)."""
    signed = view.issued(kind, record_id)
    holder_id = signed.payload.get("holder_id") if signed else None
    return holder_id if isinstance(holder_id, str) else row_holder_id


def grant_standing(session: Session, view: LedgerConsent, grant: Grant, moment: datetime) -> Finding | None:
    """``None`` if ``grant`` is in force at ``moment`` (ledger-bound, not revoked, in its
    window), else why not. Uses and the render limit are the caller's.

    A verified revocation comes first: it is checked with the holder (per the grant's ledger
    event) and keys on the ledger alone, so whatever else was done to the rows, it is revoked.
    """
    return _standing(session, view, "grant", grant, GrantRevocation, grant_problem, moment)


def release_standing(session: Session, view: LedgerConsent, release: Release, moment: datetime) -> Finding | None:
    """As ``grant_standing`` for a performer release (``release_*`` reasons)."""
    return _standing(session, view, "release", release, ReleaseRevocation, release_problem, moment)


def _standing(
    session: Session,
    view: LedgerConsent,
    kind: str,
    record: Grant | Release,
    revocation_model: type,
    problem_of: Callable[[Session, LedgerConsent, Any], Finding | None],
    moment: datetime,
) -> Finding | None:
    prefix = "" if kind == "grant" else f"{kind}_"  # grant reasons are bare: revoked, expired, ...
    revocation = view.revocation(
        kind,
        record.id,
        _signer_id(view, kind, record.id, record.holder_id),
        session.scalar(select(revocation_model).where(getattr(revocation_model, f"{kind}_id") == record.id)),
    )
    if revocation.revoked_at:
        return Finding(f"{prefix}revoked", revocation.revoked_at)
    problem = problem_of(session, view, record)
    if problem:
        return problem
    if revocation.problems:
        return Finding(f"{prefix}revocation_invalid", revocation.problems[0])
    if moment < parse_utc(record.valid_from):
        return Finding(f"{prefix}not_yet_valid", record.valid_from)
    if moment >= parse_utc(record.valid_until):
        return Finding(f"{prefix}expired", record.valid_until)
    return None


def render_slots(session: Session, grant_id: str) -> frozenset[str]:
    """Job ids holding one of ``grant_id``'s render slots.

    A job holds a slot when it has a ``render.completed`` event (a render that completed always
    counts, whatever refund events follow it: such a refund is forged, see
    ``integrity.forged_refund_problems``), or when its last ``render.reserved`` /
    ``render.refunded`` event is ``render.reserved``; and reservation rows from before slots
    were on the ledger. Deleting rows gives nothing back.
    """
    last: dict[str, str] = {}
    completed: set[str] = set()
    events = find_events(session, ("render.reserved", "render.refunded", "render.completed"), {"grant_id": grant_id})
    for event in events:
        job = str(event.payload.get("job_id"))
        if event.event_type == "render.completed":
            completed.add(job)
        else:
            last[job] = event.event_type
    rows = session.scalars(select(RenderConsumption.job_id).where(RenderConsumption.grant_id == grant_id))
    return frozenset(
        completed
        | {job for job, kind in last.items() if kind == "render.reserved"}
        | {job for job in rows if job not in last}
    )


def renders_used(session: Session, grant_id: str) -> int:
    """How many of ``grant_id``'s render slots are in use (``render_slots``)."""
    return len(render_slots(session, grant_id))


def check_grant_integrity(session: Session, grant: Grant) -> str | None:
    """``None`` if the grant row is exactly what its subject's rights holder signed and put on
    the ledger, else the refusal reason (see ``integrity.grant_problem``)."""
    finding = grant_problem(session, LedgerConsent(session), grant)
    return finding.reason if finding else None


_MESSAGES = {
    "no_grant": "no consent grant exists for subject '{subject}'",
    "wrong_grantee": "subject '{subject}' has grants, but none names organisation '{org}' as grantee",
    "use_not_granted": "no grant of subject '{subject}' to '{org}' covers the use '{use}'{detail}",
    "grant_altered": "grant {grant} was altered after it was signed ({detail}); it is refused",
    "grant_not_on_ledger": "grant {grant} is not on the ledger ({detail}); it is not in force",
    "holder_key_altered": "consent record {grant} is refused: {detail}",
    "subject_altered": "subject '{subject}' is refused: its record was altered ({detail})",
    "org_altered": "organisation '{org}' is refused: its record was altered ({detail})",
    "ledger_rewritten": "consent decisions are refused: the ledger no longer holds anchor {anchor} ({detail})",
    "signature_invalid": "grant {grant} is not signed by the rights holder of subject '{subject}' ({detail})",
    "assertion_replayed": "grant {grant} carries a passkey assertion made for another record ({detail})",
    "credential_not_holders": "grant {grant} is not signed by a passkey of the rights holder of '{subject}' ({detail})",
    "wrong_origin": "grant {grant} was signed with a passkey on another origin ({detail})",
    "wrong_rp": "grant {grant} was signed for another relying party ({detail})",
    "user_not_verified": "grant {grant} was signed without user verification ({detail})",
    "counter_regressed": "grant {grant} was signed by a passkey whose counter went back ({detail})",
    "revocation_invalid": "grant {grant} has a revocation that does not verify ({detail}); "
    "it is refused until this is resolved",
    "revoked": "grant {grant} was revoked at {detail}",
    "expired": "grant {grant} expired at {valid_until}",
    "not_yet_valid": "grant {grant} is not valid before {valid_from}",
    "render_limit_reached": "grant {grant} allows {max_renders} renders and all have been used",
    "no_release": "performer '{subject}' has no release for organisation '{org}'",
    "release_altered": "release {grant} was altered after it was signed ({detail}); it is refused",
    "release_not_on_ledger": "release {grant} is not on the ledger ({detail}); it is not in force",
    "release_signature_invalid": "release {grant} is not signed by performer '{subject}' ({detail})",
    "release_revocation_invalid": "release {grant} has a revocation that does not verify ({detail}); "
    "it is refused until this is resolved",
    "release_revoked": "release {grant} was revoked at {detail}",
    "release_expired": "release {grant} expired at {valid_until}",
    "release_not_yet_valid": "release {grant} is not valid before {valid_from}",
}


def _stale_note(stale: list[tuple[Finding, Grant]]) -> str:
    """What became of the newest grant that covered the use (``stale`` newest first), for the
    end of a ``use_not_granted`` message; empty when there is none."""
    if not stale:
        return ""
    finding, grant = stale[0]
    ended = _MESSAGES[finding.reason].format(grant=grant.id, detail=finding.detail, valid_until=grant.valid_until)
    return f" (the one that did: {ended}; only a new grant from the rights holder covers it: likeness consent request)"


class _SealedBase:
    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:  # never returns: see _build
        raise TypeError(f"{cls.__name__} objects are issued only by PolicyEngine; they cannot be constructed")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if cls.__module__ != __name__:
            raise TypeError("authorization types cannot be subclassed")
        super().__init_subclass__(**kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce_ex__(self, protocol: object):
        raise TypeError(f"{type(self).__name__} cannot be pickled or copied")

    def __copy__(self):
        raise TypeError(f"{type(self).__name__} cannot be copied")

    def __deepcopy__(self, memo: object):
        raise TypeError(f"{type(self).__name__} cannot be copied")


class Authorization(_SealedBase):
    """Permission, issued by the policy engine, for one (subject, use, grantee) under one grant."""

    __slots__ = (
        "authorization_id",
        "grant_id",
        "subject_id",
        "subject_slug",
        "subject_name",
        "subject_kind",
        "use",
        "org_id",
        "org_slug",
        "holder_fingerprint",
        "grant_signature_sha256",
        "allow_unlabelled",
        "valid_until",
        "issued_at",
        "__weakref__",
    )
    # The slots' types (set once, by _build).
    authorization_id: str
    grant_id: str
    subject_id: str
    subject_slug: str
    subject_name: str
    subject_kind: str
    use: str
    org_id: str
    org_slug: str
    holder_fingerprint: str
    grant_signature_sha256: str
    allow_unlabelled: bool
    valid_until: str
    issued_at: str

    def recheck(self, *, at: datetime | None = None) -> None:
        """Re-verify through the issuing engine (fields as issued, ledger binding, signature,
        revocation, validity window)."""
        _issuer(self).recheck(self, at=at)

    def consume_render(self, job_id: str) -> None:
        """Reserve one render slot of the grant's limit for ``job_id`` (refused when the limit
        is reached; a resumed job with the same id counts once)."""
        _issuer(self).consume_render(self, job_id)

    def refund_render(self, job_id: str, reason: str) -> bool:
        """Give back ``job_id``'s render slot (a render that failed or swapped no face), with a
        ``render.refunded`` ledger event. True if a slot was freed, False if the job held none
        (never reserved, or already refunded). A completed render is never refunded."""
        return _issuer(self).refund_render(self, job_id, reason)

    def record(self, event_type: str, payload: dict[str, Any]) -> LedgerEvent:
        """Append an event tagged with this authorization's grant, subject, use and grantee."""
        engine = _issuer(self)
        engine.recheck(self)
        tagged = {
            "authorization_id": self.authorization_id,
            "grant_id": self.grant_id,
            "subject_id": self.subject_id,
            "org_id": self.org_id,
            "use": self.use,
            **payload,
        }
        return engine.ledger.append(event_type, tagged)

    def __repr__(self) -> str:
        return (
            f"Authorization(subject={self.subject_slug!r}, use={self.use!r}, org={self.org_slug!r}, "
            f"grant={self.grant_id[:8]})"
        )


class ReleaseAuthorization(_SealedBase):
    """Permission, issued by the policy engine, to use a performer's footage as a swap target."""

    __slots__ = (
        "authorization_id",
        "release_id",
        "performer_id",
        "performer_slug",
        "performer_name",
        "org_id",
        "org_slug",
        "holder_fingerprint",
        "valid_until",
        "issued_at",
        "__weakref__",
    )
    # The slots' types (set once, by _build).
    authorization_id: str
    release_id: str
    performer_id: str
    performer_slug: str
    performer_name: str
    org_id: str
    org_slug: str
    holder_fingerprint: str
    valid_until: str
    issued_at: str

    def recheck(self, *, at: datetime | None = None) -> None:
        _issuer(self).recheck_release(self, at=at)

    def record(self, event_type: str, payload: dict[str, Any]) -> LedgerEvent:
        engine = _issuer(self)
        engine.recheck_release(self)
        tagged = {
            "authorization_id": self.authorization_id,
            "release_id": self.release_id,
            "performer_id": self.performer_id,
            "org_id": self.org_id,
            **payload,
        }
        return engine.ledger.append(event_type, tagged)

    def __repr__(self) -> str:
        return f"ReleaseAuthorization(performer={self.performer_slug!r}, org={self.org_slug!r})"


# Who issued each live authorization, and the digest of its fields at issue. Module-private and
# keyed by the object itself, so neither a copy of the fields nor an edited slot passes.
_ISSUED: weakref.WeakKeyDictionary[Any, tuple[PolicyEngine, str | None]] = weakref.WeakKeyDictionary()


def _fields_digest(authz: object) -> str | None:
    """Digest of every field of an authorization (``None`` if one is not plain data)."""
    slots: tuple[str, ...] = getattr(type(authz), "__slots__", ())
    fields = {name: getattr(authz, name, "\0unset") for name in slots if name != "__weakref__"}
    try:
        return canonical_sha256(fields)
    except Exception:  # rfc8785 raises its own types for values that are not JSON
        return None


_Sealed = TypeVar("_Sealed", bound=_SealedBase)


def _build(cls: type[_Sealed], seal: object, engine: PolicyEngine, **fields: Any) -> _Sealed:
    if seal is not _SEAL:
        raise TypeError("authorizations are issued only by PolicyEngine")
    obj = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
    _ISSUED[obj] = (engine, _fields_digest(obj))
    return obj


def _issuer(authz: object) -> PolicyEngine:
    """The engine that issued ``authz``, once its fields are checked against what it issued."""
    entry = _ISSUED.get(authz) if type(authz) in (Authorization, ReleaseAuthorization) else None
    if entry is None:
        raise ConsentError("not_issued_here", "this authorization was not issued by a policy engine")
    engine, digest = entry
    if _fields_digest(authz) != digest:
        error = ConsentError(
            "authorization_altered",
            f"authorization {getattr(authz, 'authorization_id', '?')} was changed after it was issued; it is refused",
        )
        engine.ledger.append(
            "authorization.refused",
            {
                "authorization_id": str(getattr(authz, "authorization_id", "?")),
                "kind": "altered",
                "reason": error.reason,
                "message": str(error),
                "at": utc_iso(now_utc()),
            },
        )
        raise error
    return engine


def _store_authorization(
    session: Session,
    kind: str,
    record_id: str,
    subject: Subject,
    org: Organisation,
    *,
    use: str | None,
    moment: datetime,
) -> str:
    """Record an authorization issued under grant or release ``record_id`` (``kind``); its new id."""
    authorization_id = uuid.uuid4().hex
    session.add(
        AuthorizationRow(
            id=authorization_id,
            kind=kind,
            grant_id=record_id if kind == "grant" else None,
            release_id=record_id if kind == "release" else None,
            subject_id=subject.id,
            use=use,
            org_id=org.id,
            issued_at=utc_iso(moment),
        )
    )
    session.commit()
    return authorization_id


def _revoked_after_deletion(view: LedgerConsent, kind: str, record_id: str) -> str | None:
    """When a grant's or release's (``kind``) row was deleted, the ledger still knows whether its
    holder revoked it: the time of the revocation, else ``None``."""
    signed = view.issued(kind, record_id)
    return view.revocation(kind, record_id, signed.payload.get("holder_id") if signed else None, None).revoked_at


class PolicyEngine:
    """Issues and re-checks authorizations against the registry and the ledger; logs every
    decision."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        ledger: Ledger,
        *,
        ledger_check: LedgerCheck | None = None,
    ) -> None:
        """``ledger_check``: asked before every decision whether the ledger still holds its
        anchors (``anchor.AnchoredLedgerCheck``; ``None``: no anchors are kept)."""
        self._session_factory = session_factory
        self.ledger = ledger
        self.ledger_check = ledger_check

    def _ledger_refusal(self, context: dict[str, Any], *, fresh: bool) -> ConsentError | None:
        """``ledger_rewritten`` when the ledger no longer holds what was anchored outside the
        workspace: its consent events cannot be trusted, e.g. a revocation may be gone."""
        problem = self.ledger_check(fresh=fresh) if self.ledger_check is not None else None
        if problem is None:
            return None
        return self._refusal(
            "ledger_rewritten", context, detail=f"{problem.kind}: {problem.message}", anchor=problem.subject
        )

    # --- grants --------------------------------------------------------------------------
    def authorize(self, subject: str, use: str, grantee: str, *, at: datetime | None = None) -> Authorization:
        """Authorize ``use`` of ``subject``'s likeness by organisation ``grantee`` at ``at``."""
        moment = at or now_utc()
        context = {"subject": subject, "use": use, "org": grantee}
        try:
            use_key = normalise_use(use)
            context["use"] = use_key
            rewritten = self._ledger_refusal(context, fresh=True)
            if rewritten is not None:
                raise rewritten
            with self._session_factory() as session:
                view = LedgerConsent(session)
                subject_row, org_row = self._parties(session, view, subject, grantee, context)
                grant = self._choose_grant(session, view, subject_row, org_row, use_key, moment, context)
                signed = view.issued("grant", grant.id)
                assert signed is not None  # a chosen grant matched its grant.issued event
                authorization_id = _store_authorization(
                    session, "grant", grant.id, subject_row, org_row, use=use_key, moment=moment
                )
                authz = _build(
                    Authorization,
                    _SEAL,
                    self,
                    authorization_id=authorization_id,
                    grant_id=grant.id,
                    subject_id=subject_row.id,
                    subject_slug=subject_row.slug,
                    subject_name=subject_row.name,
                    subject_kind=subject_row.kind,
                    use=use_key,
                    org_id=org_row.id,
                    org_slug=org_row.slug,
                    holder_fingerprint=signed.payload["holder_fingerprint"],
                    grant_signature_sha256=keys_sha(grant.signature),
                    allow_unlabelled=bool(grant.allow_unlabelled),
                    valid_until=grant.valid_until,
                    issued_at=utc_iso(moment),
                )
        except ConsentError as exc:
            logger.info("authorization refused (%s): %s", exc.reason, exc)
            self._log_issue_refusal("grant", context, exc, moment)
            raise
        self.ledger.append(
            "authorization.issued",
            {
                "authorization_id": authorization_id,
                "kind": "grant",
                "grant_id": authz.grant_id,
                "subject_id": authz.subject_id,
                "use": use_key,
                "org_id": authz.org_id,
                "at": utc_iso(moment),
            },
        )
        return authz

    def _parties(
        self, session: Session, view: LedgerConsent, subject: str, org: str, context: dict[str, Any]
    ) -> tuple[Subject, Organisation]:
        """The subject and the organisation of a decision, each checked against its ledger
        event; from here on ``context`` (what a refusal says) names them by slug."""
        subject_row = self._subject(session, view, subject)
        org_row = self._org(session, view, org)
        context.update(subject=subject_row.slug, org=org_row.slug)
        return subject_row, org_row

    def _subject(self, session: Session, view: LedgerConsent, subject: str) -> Subject:
        """The subject with id ``subject``, else with that slug (an exact id wins over a slug
        shaped like an id), refused (``subject_altered``) when its row's slug, kind or owning
        organisation is not what its ``subject.created`` event recorded, or that event is not
        its organisation's (``subject_unsealed``)."""
        row = find_by_id_or_slug(session, Subject, subject)
        if row is None:
            raise ConsentError("unknown_subject", f"no subject '{subject}' is enrolled")
        altered = subject_identity_problem(view, row) or subject_unsealed(view, row)
        if altered:
            raise self._refusal(altered.reason, {"subject": subject}, detail=altered.detail)
        return row

    def _org(self, session: Session, view: LedgerConsent, org: str) -> Organisation:
        """The organisation with id ``org``, else with that slug, refused (``org_altered``)
        when its row's slug or name is not what its ``org.created`` event recorded."""
        row = find_by_id_or_slug(session, Organisation, org)
        if row is None:
            raise ConsentError("unknown_org", f"no organisation '{org}' is registered")
        altered = org_identity_problem(view, row)
        if altered:
            raise self._refusal(altered.reason, {"org": org}, detail=altered.detail)
        return row

    def _grant_failure(
        self,
        session: Session,
        view: LedgerConsent,
        grant: Grant,
        use: str | None,
        moment: datetime,
        *,
        for_render: bool,
    ) -> Finding | None:
        finding = grant_standing(session, view, grant, moment)
        if finding:
            return finding
        if use is not None and use not in strict_json.loads(grant.uses):
            return Finding("use_not_granted", use)
        if for_render and grant.max_renders is not None and renders_used(session, grant.id) >= grant.max_renders:
            return Finding("render_limit_reached", str(grant.max_renders))
        return None

    def _choose_grant(
        self,
        session: Session,
        view: LedgerConsent,
        subject: Subject,
        org: Organisation,
        use: str,
        moment: datetime,
        context: dict[str, Any],
    ) -> Grant:
        grants = list(session.scalars(select(Grant).where(Grant.subject_id == subject.id)))
        if not grants:
            raise self._refusal("no_grant", context)
        mine = [g for g in grants if g.org_id == org.id]
        if not mine:
            raise self._refusal("wrong_grantee", context)
        failures: list[tuple[Finding, Grant]] = []
        for grant in sorted(mine, key=lambda g: g.issued_at, reverse=True):
            finding = self._grant_failure(session, view, grant, use, moment, for_render=use in FINAL_MEDIA_USES)
            if finding is None:
                return grant
            failures.append((finding, grant))
        # Report the failure of a grant that (as signed) covers this use, most specific first.
        covering = [
            (f, g)
            for f, g in failures
            if f.reason != "use_not_granted" and (f.reason in _RECORD_REASONS or use in strict_json.loads(g.uses))
        ]
        stale: list[tuple[Finding, Grant]] = []
        if any(f.reason in _IN_FORCE_REASONS for f, _ in failures):
            # A grant is in force: its own reason is the one that matters, not that an older
            # grant which covered the use was revoked or has expired; the message still says
            # so, or an operator whose list shows that grant is left guessing.
            stale = [(f, g) for f, g in covering if f.reason in _STALE_REASONS]
            covering = [(f, g) for f, g in covering if f.reason not in _STALE_REASONS]
        if not covering:
            raise self._refusal("use_not_granted", context, detail=_stale_note(stale))
        finding, grant = min(covering, key=lambda fg: _REASON_ORDER.index(fg[0].reason))
        raise self._grant_refusal(finding, grant, context)

    def _grant_refusal(self, finding: Finding, grant: Grant, context: dict[str, Any]) -> ConsentError:
        return self._refusal(
            finding.reason,
            context,
            grant=grant.id,
            valid_from=grant.valid_from,
            valid_until=grant.valid_until,
            max_renders=grant.max_renders,
            detail=finding.detail,
        )

    @staticmethod
    def _refusal(reason: str, context: dict[str, Any], **extra: Any) -> ConsentError:
        fields = {"grant": "?", "detail": "", **context, **extra}
        return ConsentError(reason, _MESSAGES[reason].format(**fields))

    def _log_issue_refusal(self, kind: str, context: dict[str, Any], error: ConsentError, moment: datetime) -> None:
        """The ledger's ``authorization.refused`` event for an authorization of ``kind`` (grant
        or release) that was not issued."""
        self.ledger.append(
            "authorization.refused",
            {**context, "kind": kind, "reason": error.reason, "message": str(error), "at": utc_iso(moment)},
        )

    def _log_recheck_refusal(
        self, authz: Authorization | ReleaseAuthorization, kind: str, error: ConsentError, moment: datetime
    ) -> None:
        record = {"grant_id": authz.grant_id} if isinstance(authz, Authorization) else {"release_id": authz.release_id}
        self.ledger.append(
            "authorization.refused",
            {
                "authorization_id": authz.authorization_id,
                "kind": kind,
                **record,
                "reason": error.reason,
                "message": str(error),
                "at": utc_iso(moment),
            },
        )

    def _check_issued(self, authz: object, kind: type) -> None:
        if type(authz) is not kind or _issuer(authz) is not self:
            raise ConsentError("not_issued_here", "this authorization was not issued by this policy engine")

    def recheck(self, authz: Authorization, *, at: datetime | None = None) -> None:
        self._check_issued(authz, Authorization)
        moment = at or now_utc()
        context = {"subject": authz.subject_slug, "use": authz.use, "org": authz.org_slug}
        error = self._ledger_refusal(context, fresh=False)
        if error is not None:
            self._log_recheck_refusal(authz, "recheck", error, moment)
            raise error
        with self._session_factory() as session:
            view = LedgerConsent(session)
            grant = session.get(Grant, authz.grant_id)
            finding: Finding | None
            if grant is None:  # a deleted row: the ledger still knows whether it was revoked
                revoked = _revoked_after_deletion(view, "grant", authz.grant_id)
                finding = Finding("revoked", revoked) if revoked else Finding("grant_altered", "its row was deleted")
                error = self._refusal(finding.reason, context, grant=authz.grant_id, detail=finding.detail)
            else:
                finding = self._grant_failure(session, view, grant, authz.use, moment, for_render=False)
                if finding is None and keys_sha(grant.signature) != authz.grant_signature_sha256:
                    finding = Finding("grant_altered", "it is not the grant this authorization was issued under")
                if finding is None:
                    return
                error = self._grant_refusal(finding, grant, context)
        self._log_recheck_refusal(authz, "recheck", error, moment)
        raise error

    # --- render slots --------------------------------------------------------------------
    def consume_render(self, authz: Authorization, job_id: str) -> None:
        """Reserve a render slot for ``job_id`` under ``authz``'s grant. The count and the
        ``render.reserved`` event are one transaction holding the grant, so N parallel renders
        against a limit of K get exactly K slots; a job that holds a slot keeps it (a resumed
        render counts once)."""
        self._check_issued(authz, Authorization)
        check_use_for_step(authz.use, "render")
        if not isinstance(job_id, str) or not job_id:
            raise ValueError(f"job_id must be a non-empty string, got {job_id!r}")
        self.recheck(authz)
        refusal: ConsentError | None = None
        with self._session_factory() as session:
            begin_serialized(session, f"likeness.grant.{authz.grant_id}")
            grant = session.get(Grant, authz.grant_id)
            if grant is None:
                session.rollback()
                raise ConsentError("grant_altered", f"grant {authz.grant_id} no longer exists")
            counted_under = session.scalar(select(RenderConsumption.grant_id).where(RenderConsumption.job_id == job_id))
            if counted_under is not None and counted_under != grant.id:
                session.rollback()
                raise ConsentError("render_limit_reached", f"render job {job_id} was counted under another grant")
            slots = render_slots(session, grant.id)
            if job_id in slots:
                session.rollback()
                return
            if grant.max_renders is not None and len(slots) >= grant.max_renders:
                session.rollback()
                refusal = self._refusal(
                    "render_limit_reached",
                    {"subject": authz.subject_slug},
                    grant=grant.id,
                    max_renders=grant.max_renders,
                )
            else:
                if counted_under is None:
                    session.add(
                        RenderConsumption(
                            grant_id=grant.id,
                            authorization_id=authz.authorization_id,
                            job_id=job_id,
                            consumed_at=utc_iso(now_utc()),
                        )
                    )
                Ledger.append_in(
                    session,
                    "render.reserved",
                    {
                        "authorization_id": authz.authorization_id,
                        "grant_id": grant.id,
                        "subject_id": authz.subject_id,
                        "org_id": authz.org_id,
                        "use": authz.use,
                        "job_id": job_id,
                    },
                )
                session.commit()
        if refusal is not None:  # logged once the grant is released (SQLite: one writer at a time)
            self.ledger.append(
                "authorization.refused",
                {
                    "authorization_id": authz.authorization_id,
                    "kind": "render",
                    "grant_id": authz.grant_id,
                    "job_id": job_id,
                    "reason": refusal.reason,
                    "message": str(refusal),
                },
            )
            raise refusal

    def refund_render(self, authz: Authorization, job_id: str, reason: str) -> bool:
        """Give back ``job_id``'s slot under ``authz``'s grant (see ``Authorization.refund_render``)."""
        self._check_issued(authz, Authorization)
        with self._session_factory() as session:
            begin_serialized(session, f"likeness.grant.{authz.grant_id}")
            # Checked inside the transaction that holds the grant: a render that completes
            # meanwhile is never refunded.
            completed = find_events(session, "render.completed", {"job_id": job_id, "grant_id": authz.grant_id})
            if completed:
                session.rollback()
                raise ConsentError(
                    "render_completed",
                    f"render job {job_id} completed (ledger row {completed[0].seq}); its slot is not refunded",
                )
            if job_id not in render_slots(session, authz.grant_id):
                session.rollback()
                return False
            Ledger.append_in(
                session,
                "render.refunded",
                {
                    "authorization_id": authz.authorization_id,
                    "grant_id": authz.grant_id,
                    "subject_id": authz.subject_id,
                    "org_id": authz.org_id,
                    "job_id": job_id,
                    "reason": str(reason),
                },
            )
            session.commit()
        return True

    # --- performer releases --------------------------------------------------------------
    def authorize_release(self, performer: str, grantee: str, *, at: datetime | None = None) -> ReleaseAuthorization:
        """Authorize use of ``performer``'s footage as a swap target by ``grantee``."""
        moment = at or now_utc()
        context = {"subject": performer, "org": grantee}
        try:
            rewritten = self._ledger_refusal(context, fresh=True)
            if rewritten is not None:
                raise rewritten
            with self._session_factory() as session:
                view = LedgerConsent(session)
                subject_row, org_row = self._parties(session, view, performer, grantee, context)
                releases = list(
                    session.scalars(
                        select(Release).where(Release.performer_id == subject_row.id, Release.org_id == org_row.id)
                    )
                )
                if not releases:
                    raise self._refusal("no_release", context)
                failures: list[tuple[Finding, Release]] = []
                chosen = None
                for release in sorted(releases, key=lambda r: r.issued_at, reverse=True):
                    finding = release_standing(session, view, release, moment)
                    if finding is None:
                        chosen = release
                        break
                    failures.append((finding, release))
                if chosen is None:
                    finding, release = failures[0]
                    raise self._release_refusal(finding, release, context)
                signed = view.issued("release", chosen.id)
                assert signed is not None  # a chosen release matched its release.issued event
                authorization_id = _store_authorization(
                    session, "release", chosen.id, subject_row, org_row, use=None, moment=moment
                )
                authz = _build(
                    ReleaseAuthorization,
                    _SEAL,
                    self,
                    authorization_id=authorization_id,
                    release_id=chosen.id,
                    performer_id=subject_row.id,
                    performer_slug=subject_row.slug,
                    performer_name=subject_row.name,
                    org_id=org_row.id,
                    org_slug=org_row.slug,
                    holder_fingerprint=signed.payload["holder_fingerprint"],
                    valid_until=chosen.valid_until,
                    issued_at=utc_iso(moment),
                )
        except ConsentError as exc:
            logger.info("release authorization refused (%s): %s", exc.reason, exc)
            self._log_issue_refusal("release", context, exc, moment)
            raise
        self.ledger.append(
            "authorization.issued",
            {
                "authorization_id": authorization_id,
                "kind": "release",
                "release_id": authz.release_id,
                "performer_id": authz.performer_id,
                "org_id": authz.org_id,
                "at": utc_iso(moment),
            },
        )
        return authz

    def _release_refusal(self, finding: Finding, release: Release, context: dict[str, Any]) -> ConsentError:
        return self._refusal(
            finding.reason,
            context,
            grant=release.id,
            valid_from=release.valid_from,
            valid_until=release.valid_until,
            detail=finding.detail,
        )

    def recheck_release(self, authz: ReleaseAuthorization, *, at: datetime | None = None) -> None:
        self._check_issued(authz, ReleaseAuthorization)
        moment = at or now_utc()
        context = {"subject": authz.performer_slug, "org": authz.org_slug}
        error = self._ledger_refusal(context, fresh=False)
        if error is not None:
            self._log_recheck_refusal(authz, "release-recheck", error, moment)
            raise error
        with self._session_factory() as session:
            view = LedgerConsent(session)
            release = session.get(Release, authz.release_id)
            finding: Finding | None
            if release is None:  # a deleted row: the ledger still knows whether it was revoked
                revoked = _revoked_after_deletion(view, "release", authz.release_id)
                finding = (
                    Finding("release_revoked", revoked)
                    if revoked
                    else Finding("release_altered", "its row was deleted")
                )
                error = self._refusal(finding.reason, context, grant=authz.release_id, detail=finding.detail)
            else:
                finding = release_standing(session, view, release, moment)
                if finding is None:
                    return
                error = self._release_refusal(finding, release, context)
        self._log_recheck_refusal(authz, "release-recheck", error, moment)
        raise error


def require_authorization(authz: object, *, step: str) -> Authorization:
    """The one consent guard of every synthesis step (``extract``, ``train``, ``export``,
    ``render``): ``authz`` must be an Authorization a policy engine issued, unchanged since,
    still in force now (``recheck``), for a use the step accepts (``vocabulary.STEP_USES``).

    Raises ``ConsentError`` with ``not_issued_here`` (anything else, forged or foreign),
    ``authorization_altered`` (a field changed after issue), ``use_not_for_step`` (e.g. a
    ``training`` authorization at render), or the recheck's reason.
    """
    if type(authz) is not Authorization:
        raise ConsentError(
            "not_issued_here",
            f"the {step} step needs an Authorization issued by the policy engine, got {type(authz).__name__}",
        )
    engine = _issuer(authz)
    check_use_for_step(authz.use, step)
    engine.recheck(authz)
    return authz


def require_release(authz: object, *, step: str) -> ReleaseAuthorization:
    """Guard for a performer's footage: a live, unchanged ReleaseAuthorization an engine issued."""
    if authz is None:
        raise ConsentError("no_release", f"the {step} step needs the target performer's release")
    if type(authz) is not ReleaseAuthorization:
        raise ConsentError(
            "not_issued_here",
            f"the {step} step needs a performer ReleaseAuthorization issued by the policy engine, "
            f"got {type(authz).__name__}",
        )
    _issuer(authz).recheck_release(authz)
    return authz


def require_extraction_consent(authz: object) -> Authorization | ReleaseAuthorization:
    """Extraction takes a ``training`` Authorization (an artist's faceset) or a performer's
    ReleaseAuthorization (the target faceset)."""
    if type(authz) is ReleaseAuthorization:
        return require_release(authz, step="extract")
    return require_authorization(authz, step="extract")


__all__ = [
    "Authorization",
    "PolicyEngine",
    "ReleaseAuthorization",
    "check_grant_integrity",
    "grant_standing",
    "release_standing",
    "render_slots",
    "renders_used",
    "require_authorization",
    "require_extraction_consent",
    "require_release",
    "state_of_reason",
]
