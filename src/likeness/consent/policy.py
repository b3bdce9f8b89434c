"""The policy engine: the only place that issues authorizations for synthesis.

``PolicyEngine.authorize`` checks, at the moment of use, that a grant exists for exactly this
(subject, use, grantee), that its row still matches what the rights holder signed, that the
signature verifies with the subject's rights-holder key, that it is inside its validity window,
not revoked, and within its render limit. Every decision goes on the ledger.

``Authorization`` and ``ReleaseAuthorization`` cannot be constructed, subclassed, copied or
pickled outside this module, and the engine refuses any object it did not issue itself, so a
forged object (built with ``object.__new__`` tricks) is worthless to later stages.
"""

from __future__ import annotations

import json
import uuid
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from likeness.consent import keys
from likeness.consent.canonical import canonical_bytes, canonical_sha256, now_utc, parse_utc, utc_iso
from likeness.consent.ledger import Ledger, LedgerEvent
from likeness.consent.registry import grant_payload, keys_sha, release_payload
from likeness.consent.tables import (
    AuthorizationRow,
    Grant,
    GrantRevocation,
    Organisation,
    Release,
    ReleaseRevocation,
    RenderConsumption,
    RightsHolder,
    Subject,
)
from likeness.consent.vocabulary import check_use_for_step, normalise_use
from likeness.errors import ConsentError

_SEAL = object()  # module-private capability: only this module can finish building an Authorization

# When several grants exist and all fail, the reported reason is the most specific one.
_REASON_ORDER = (
    "grant_altered",
    "signature_invalid",
    "revoked",
    "render_limit_reached",
    "expired",
    "not_yet_valid",
)


def check_grant_integrity(session: Session, grant: Grant) -> str | None:
    """``None`` if the grant row is exactly what its subject's rights holder signed, else the
    refusal reason (``grant_altered`` or ``signature_invalid``)."""
    holder = session.get(RightsHolder, grant.holder_id)
    subject = session.get(Subject, grant.subject_id)
    if holder is None or subject is None:
        return "grant_altered"
    try:
        payload = grant_payload(grant, holder.key_fingerprint)
    except (ValueError, TypeError):
        return "grant_altered"
    if canonical_sha256(payload) != grant.payload_sha256:
        return "grant_altered"
    if subject.holder_id != holder.id:
        return "signature_invalid"
    if keys.fingerprint(bytes.fromhex(holder.public_key)) != holder.key_fingerprint:
        return "signature_invalid"
    if not keys.verify(bytes.fromhex(holder.public_key), canonical_bytes(payload), grant.signature):
        return "signature_invalid"
    return None


def check_release_integrity(session: Session, release: Release) -> str | None:
    holder = session.get(RightsHolder, release.holder_id)
    performer = session.get(Subject, release.performer_id)
    if holder is None or performer is None:
        return "release_altered"
    payload = release_payload(release, holder.key_fingerprint)
    if canonical_sha256(payload) != release.payload_sha256:
        return "release_altered"
    if performer.holder_id != holder.id or not keys.verify(
        bytes.fromhex(holder.public_key), canonical_bytes(payload), release.signature
    ):
        return "release_signature_invalid"
    return None


_MESSAGES = {
    "no_grant": "no consent grant exists for subject '{subject}'",
    "wrong_grantee": "subject '{subject}' has grants, but none names organisation '{org}' as grantee",
    "use_not_granted": "no grant of subject '{subject}' to '{org}' covers the use '{use}'",
    "grant_altered": "grant {grant} was altered after it was signed; it is refused",
    "signature_invalid": "grant {grant} is not signed by the rights holder of subject '{subject}'",
    "revoked": "grant {grant} was revoked at {revoked_at}",
    "expired": "grant {grant} expired at {valid_until}",
    "not_yet_valid": "grant {grant} is not valid before {valid_from}",
    "render_limit_reached": "grant {grant} allows {max_renders} renders and all have been used",
    "no_release": "performer '{subject}' has no release for organisation '{org}'",
    "release_altered": "release {grant} was altered after it was signed; it is refused",
    "release_signature_invalid": "release {grant} is not signed by performer '{subject}'",
    "release_revoked": "release {grant} was revoked at {revoked_at}",
    "release_expired": "release {grant} expired at {valid_until}",
    "release_not_yet_valid": "release {grant} is not valid before {valid_from}",
}


def _sealed_init(cls_name: str):
    def __new__(cls, *args: Any, **kwargs: Any):  # noqa: N807
        raise TypeError(f"{cls_name} objects are issued only by PolicyEngine; they cannot be constructed")

    return __new__


class _SealedBase:
    __slots__ = ()

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
        "authorization_id", "grant_id", "subject_id", "subject_slug", "subject_name",
        "subject_kind", "use", "org_id", "org_slug", "holder_fingerprint",
        "grant_signature_sha256", "allow_unlabelled", "valid_until", "issued_at", "_engine",
        "__weakref__",
    )
    __new__ = _sealed_init("Authorization")

    def recheck(self, *, at: datetime | None = None) -> None:
        """Re-verify through the engine (signature, integrity, revocation, validity window)."""
        self._engine.recheck(self, at=at)

    def consume_render(self, job_id: str) -> None:
        """Count one render against the grant's limit (refused when the limit is reached)."""
        self._engine.consume_render(self, job_id)

    def record(self, event_type: str, payload: dict[str, Any]) -> LedgerEvent:
        """Append an event tagged with this authorization's grant, subject, use and grantee."""
        self._engine.recheck(self)
        tagged = {
            "authorization_id": self.authorization_id, "grant_id": self.grant_id,
            "subject_id": self.subject_id, "org_id": self.org_id, "use": self.use, **payload,
        }
        return self._engine.ledger.append(event_type, tagged)

    def __repr__(self) -> str:
        return (
            f"Authorization(subject={self.subject_slug!r}, use={self.use!r}, org={self.org_slug!r}, "
            f"grant={self.grant_id[:8]})"
        )


class ReleaseAuthorization(_SealedBase):
    """Permission, issued by the policy engine, to use a performer's footage as a swap target."""

    __slots__ = (
        "authorization_id", "release_id", "performer_id", "performer_slug", "performer_name",
        "org_id", "org_slug", "holder_fingerprint", "valid_until", "issued_at", "_engine",
        "__weakref__",
    )
    __new__ = _sealed_init("ReleaseAuthorization")

    def recheck(self, *, at: datetime | None = None) -> None:
        self._engine.recheck_release(self, at=at)

    def record(self, event_type: str, payload: dict[str, Any]) -> LedgerEvent:
        self._engine.recheck_release(self)
        tagged = {
            "authorization_id": self.authorization_id, "release_id": self.release_id,
            "performer_id": self.performer_id, "org_id": self.org_id, **payload,
        }
        return self._engine.ledger.append(event_type, tagged)

    def __repr__(self) -> str:
        return f"ReleaseAuthorization(performer={self.performer_slug!r}, org={self.org_slug!r})"


def _build(cls: type, seal: object, **fields: Any):
    if seal is not _SEAL:
        raise TypeError("authorizations are issued only by PolicyEngine")
    obj = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
    return obj


class PolicyEngine:
    """Issues and re-checks authorizations against the registry; logs every decision."""

    def __init__(self, session_factory: Callable[[], Session], ledger: Ledger) -> None:
        self._session_factory = session_factory
        self.ledger = ledger
        self._issued: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()

    # --- grants --------------------------------------------------------------------------
    def authorize(
        self, subject: str, use: str, grantee: str, *, at: datetime | None = None
    ) -> Authorization:
        """Authorize ``use`` of ``subject``'s likeness by organisation ``grantee`` at ``at``."""
        moment = at or now_utc()
        context = {"subject": subject, "use": use, "org": grantee}
        try:
            use_key = normalise_use(use)
            context["use"] = use_key
            with self._session_factory() as session:
                subject_row = self._subject(session, subject)
                org_row = self._org(session, grantee)
                context.update(subject=subject_row.slug, org=org_row.slug)
                grant = self._choose_grant(session, subject_row, org_row, use_key, moment, context)
                authorization_id = uuid.uuid4().hex
                session.add(
                    AuthorizationRow(
                        id=authorization_id, kind="grant", grant_id=grant.id, release_id=None,
                        subject_id=subject_row.id, use=use_key, org_id=org_row.id,
                        issued_at=utc_iso(moment),
                    )
                )
                session.commit()
                holder = session.get(RightsHolder, grant.holder_id)
                authz = _build(
                    Authorization, _SEAL, authorization_id=authorization_id, grant_id=grant.id,
                    subject_id=subject_row.id, subject_slug=subject_row.slug,
                    subject_name=subject_row.name, subject_kind=subject_row.kind, use=use_key,
                    org_id=org_row.id, org_slug=org_row.slug,
                    holder_fingerprint=holder.key_fingerprint,
                    grant_signature_sha256=keys_sha(grant.signature),
                    allow_unlabelled=bool(grant.allow_unlabelled), valid_until=grant.valid_until,
                    issued_at=utc_iso(moment), _engine=self,
                )
        except ConsentError as exc:
            self.ledger.append(
                "authorization.refused", {**context, "kind": "grant", "reason": exc.reason,
                                          "message": str(exc), "at": utc_iso(moment)},
            )
            raise
        self._issued[authorization_id] = authz
        self.ledger.append(
            "authorization.issued",
            {"authorization_id": authorization_id, "kind": "grant", "grant_id": authz.grant_id,
             "subject_id": authz.subject_id, "use": use_key, "org_id": authz.org_id,
             "at": utc_iso(moment)},
        )
        return authz

    def _subject(self, session: Session, subject: str) -> Subject:
        row = session.scalar(select(Subject).where((Subject.slug == subject) | (Subject.id == subject)))
        if row is None:
            raise ConsentError("unknown_subject", f"no subject '{subject}' is enrolled")
        return row

    def _org(self, session: Session, org: str) -> Organisation:
        row = session.scalar(
            select(Organisation).where((Organisation.slug == org) | (Organisation.id == org))
        )
        if row is None:
            raise ConsentError("unknown_org", f"no organisation '{org}' is registered")
        return row

    def _grant_failure(
        self, session: Session, grant: Grant, use: str | None, moment: datetime, *, for_render: bool
    ) -> str | None:
        integrity = check_grant_integrity(session, grant)
        if integrity:
            return integrity
        if session.scalar(select(GrantRevocation.id).where(GrantRevocation.grant_id == grant.id)):
            return "revoked"
        if moment < parse_utc(grant.valid_from):
            return "not_yet_valid"
        if moment >= parse_utc(grant.valid_until):
            return "expired"
        if use is not None and use not in json.loads(grant.uses):
            return "use_not_granted"
        if for_render and grant.max_renders is not None:
            used = session.scalar(
                select(func.count()).select_from(RenderConsumption)
                .where(RenderConsumption.grant_id == grant.id)
            ) or 0
            if used >= grant.max_renders:
                return "render_limit_reached"
        return None

    def _choose_grant(
        self, session: Session, subject: Subject, org: Organisation, use: str,
        moment: datetime, context: dict[str, Any],
    ) -> Grant:
        grants = list(session.scalars(select(Grant).where(Grant.subject_id == subject.id)))
        if not grants:
            raise self._refusal("no_grant", context)
        mine = [g for g in grants if g.org_id == org.id]
        if not mine:
            raise self._refusal("wrong_grantee", context)
        failures: list[tuple[str, Grant]] = []
        for grant in sorted(mine, key=lambda g: g.issued_at, reverse=True):
            reason = self._grant_failure(
                session, grant, use, moment, for_render=use != "training"
            )
            if reason is None:
                return grant
            failures.append((reason, grant))
        # Report the failure of a grant that (as signed) covers this use, most specific first.
        covering = [(r, g) for r, g in failures if r != "use_not_granted"]
        covering = [
            (r, g) for r, g in covering
            if r in ("grant_altered", "signature_invalid") or use in json.loads(g.uses)
        ]
        if not covering:
            raise self._refusal("use_not_granted", context)
        reason, grant = min(covering, key=lambda rg: _REASON_ORDER.index(rg[0]))
        revocation = session.scalar(select(GrantRevocation).where(GrantRevocation.grant_id == grant.id))
        raise self._refusal(
            reason, context, grant=grant.id, valid_from=grant.valid_from,
            valid_until=grant.valid_until, max_renders=grant.max_renders,
            revoked_at=revocation.revoked_at if revocation else "?",
        )

    @staticmethod
    def _refusal(reason: str, context: dict[str, Any], **extra: Any) -> ConsentError:
        fields = {"grant": "?", **context, **extra}
        return ConsentError(reason, _MESSAGES[reason].format(**fields))

    def _check_issued(self, authz: object, kind: type) -> None:
        if type(authz) is not kind or self._issued.get(getattr(authz, "authorization_id", "")) is not authz:
            raise ConsentError(
                "not_issued_here", "this authorization was not issued by this policy engine"
            )

    def recheck(self, authz: Authorization, *, at: datetime | None = None) -> None:
        self._check_issued(authz, Authorization)
        moment = at or now_utc()
        with self._session_factory() as session:
            grant = session.get(Grant, authz.grant_id)
            reason = (
                "grant_altered" if grant is None
                else self._grant_failure(session, grant, authz.use, moment, for_render=False)
            )
            if reason is None:
                return
            revocation = session.scalar(
                select(GrantRevocation).where(GrantRevocation.grant_id == authz.grant_id)
            )
            error = self._refusal(
                reason, {"subject": authz.subject_slug, "use": authz.use, "org": authz.org_slug},
                grant=authz.grant_id, valid_from=grant.valid_from if grant else "?",
                valid_until=grant.valid_until if grant else "?",
                max_renders=grant.max_renders if grant else "?",
                revoked_at=revocation.revoked_at if revocation else "?",
            )
        self.ledger.append(
            "authorization.refused",
            {"authorization_id": authz.authorization_id, "kind": "recheck", "grant_id": authz.grant_id,
             "reason": reason, "message": str(error), "at": utc_iso(moment)},
        )
        raise error

    def consume_render(self, authz: Authorization, job_id: str) -> None:
        self._check_issued(authz, Authorization)
        self.recheck(authz)
        with self._session_factory() as session:
            grant = session.get(Grant, authz.grant_id)
            already = session.scalar(
                select(RenderConsumption.grant_id).where(RenderConsumption.job_id == job_id)
            )
            if already == grant.id:
                return  # a resumed job is one render, counted once
            if already is not None:
                raise ConsentError(
                    "render_limit_reached", f"render job {job_id} was counted under another grant"
                )
            if grant.max_renders is not None:
                used = session.scalar(
                    select(func.count()).select_from(RenderConsumption)
                    .where(RenderConsumption.grant_id == grant.id)
                ) or 0
                if used >= grant.max_renders:
                    error = self._refusal(
                        "render_limit_reached", {"subject": authz.subject_slug},
                        grant=grant.id, max_renders=grant.max_renders,
                    )
                    self.ledger.append(
                        "authorization.refused",
                        {"authorization_id": authz.authorization_id, "kind": "render",
                         "grant_id": grant.id, "reason": error.reason, "message": str(error)},
                    )
                    raise error
            session.add(
                RenderConsumption(
                    grant_id=grant.id, authorization_id=authz.authorization_id, job_id=job_id,
                    consumed_at=utc_iso(now_utc()),
                )
            )
            try:
                session.commit()
            except IntegrityError:
                raise ConsentError("render_limit_reached", f"render job {job_id} was already counted") from None

    # --- performer releases --------------------------------------------------------------
    def authorize_release(
        self, performer: str, grantee: str, *, at: datetime | None = None
    ) -> ReleaseAuthorization:
        """Authorize use of ``performer``'s footage as a swap target by ``grantee``."""
        moment = at or now_utc()
        context = {"subject": performer, "org": grantee}
        try:
            with self._session_factory() as session:
                subject_row = self._subject(session, performer)
                org_row = self._org(session, grantee)
                context.update(subject=subject_row.slug, org=org_row.slug)
                releases = list(
                    session.scalars(
                        select(Release).where(
                            Release.performer_id == subject_row.id, Release.org_id == org_row.id
                        )
                    )
                )
                if not releases:
                    raise self._refusal("no_release", context)
                failures = []
                chosen = None
                for release in sorted(releases, key=lambda r: r.issued_at, reverse=True):
                    reason = self._release_failure(session, release, moment)
                    if reason is None:
                        chosen = release
                        break
                    failures.append((reason, release))
                if chosen is None:
                    reason, release = failures[0]
                    raise self._release_refusal(session, reason, release, context)
                authorization_id = uuid.uuid4().hex
                session.add(
                    AuthorizationRow(
                        id=authorization_id, kind="release", grant_id=None, release_id=chosen.id,
                        subject_id=subject_row.id, use=None, org_id=org_row.id,
                        issued_at=utc_iso(moment),
                    )
                )
                session.commit()
                holder = session.get(RightsHolder, chosen.holder_id)
                authz = _build(
                    ReleaseAuthorization, _SEAL, authorization_id=authorization_id,
                    release_id=chosen.id, performer_id=subject_row.id,
                    performer_slug=subject_row.slug, performer_name=subject_row.name,
                    org_id=org_row.id, org_slug=org_row.slug,
                    holder_fingerprint=holder.key_fingerprint, valid_until=chosen.valid_until,
                    issued_at=utc_iso(moment), _engine=self,
                )
        except ConsentError as exc:
            self.ledger.append(
                "authorization.refused", {**context, "kind": "release", "reason": exc.reason,
                                          "message": str(exc), "at": utc_iso(moment)},
            )
            raise
        self._issued[authorization_id] = authz
        self.ledger.append(
            "authorization.issued",
            {"authorization_id": authorization_id, "kind": "release", "release_id": authz.release_id,
             "performer_id": authz.performer_id, "org_id": authz.org_id, "at": utc_iso(moment)},
        )
        return authz

    def _release_failure(self, session: Session, release: Release, moment: datetime) -> str | None:
        integrity = check_release_integrity(session, release)
        if integrity:
            return integrity
        if session.scalar(
            select(ReleaseRevocation.id).where(ReleaseRevocation.release_id == release.id)
        ):
            return "release_revoked"
        if moment < parse_utc(release.valid_from):
            return "release_not_yet_valid"
        if moment >= parse_utc(release.valid_until):
            return "release_expired"
        return None

    def _release_refusal(
        self, session: Session, reason: str, release: Release, context: dict[str, Any]
    ) -> ConsentError:
        revocation = session.scalar(
            select(ReleaseRevocation).where(ReleaseRevocation.release_id == release.id)
        )
        return self._refusal(
            reason, context, grant=release.id, valid_from=release.valid_from,
            valid_until=release.valid_until, revoked_at=revocation.revoked_at if revocation else "?",
        )

    def recheck_release(self, authz: ReleaseAuthorization, *, at: datetime | None = None) -> None:
        self._check_issued(authz, ReleaseAuthorization)
        moment = at or now_utc()
        with self._session_factory() as session:
            release = session.get(Release, authz.release_id)
            if release is None:
                raise ConsentError("release_altered", f"release {authz.release_id} no longer exists")
            reason = self._release_failure(session, release, moment)
            if reason is None:
                return
            error = self._release_refusal(
                session, reason, release, {"subject": authz.performer_slug, "org": authz.org_slug}
            )
        self.ledger.append(
            "authorization.refused",
            {"authorization_id": authz.authorization_id, "kind": "release-recheck",
             "release_id": authz.release_id, "reason": reason, "message": str(error),
             "at": utc_iso(moment)},
        )
        raise error


def require_authorization(authz: object, *, step: str) -> Authorization:
    """The one consent guard of every synthesis step (``extract``, ``train``, ``export``,
    ``render``): ``authz`` must be an Authorization this process's engine issued, still in force
    now (``recheck``), for a use the step accepts (``vocabulary.STEP_USES``).

    Raises ``ConsentError`` with ``not_issued_here`` (anything else, forged or foreign),
    ``use_not_for_step`` (e.g. a ``training`` authorization at render), or the recheck's reason.
    """
    if type(authz) is not Authorization:
        raise ConsentError(
            "not_issued_here",
            f"the {step} step needs an Authorization issued by the policy engine, got {type(authz).__name__}",
        )
    check_use_for_step(authz.use, step)
    authz.recheck()
    return authz


def require_release(authz: object, *, step: str) -> ReleaseAuthorization:
    """Guard for a performer's footage: a live ReleaseAuthorization issued by this engine."""
    if authz is None:
        raise ConsentError("no_release", f"the {step} step needs the target performer's release")
    if type(authz) is not ReleaseAuthorization:
        raise ConsentError(
            "not_issued_here",
            f"the {step} step needs a performer ReleaseAuthorization issued by the policy engine, "
            f"got {type(authz).__name__}",
        )
    authz.recheck()
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
    "require_authorization",
    "require_extraction_consent",
    "require_release",
]

