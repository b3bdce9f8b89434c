"""The rights holder's side of consent: invitations, passkeys, grant requests, passkey-signed
grants and revocations, and what was made under each grant.

The organisation invites a rights holder (a one-time, expiring token) and drafts grant
requests; only the holder, on their own device, signs: the passkey's challenge is the digest of
the exact grant payload the policy engine re-verifies at every use (``integrity.LedgerConsent.
passkey_problem``). Nothing here holds or makes a holder's private key.

Example::

    portal = HolderPortal(workspace)
    invitation_id, token = portal.invite("mina-holder", "studio", created_by="admin")
    # ... the holder registers a passkey through /portal/invite/TOKEN (likeness.service.portal)
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from likeness import strict_json
from likeness.consent import keys
from likeness.consent.canonical import canonical_bytes, now_utc, parse_utc, utc_iso
from likeness.consent.grant_requests import (
    REQUESTED_EVENT,
    GrantRequest,
    Parties,
    check_uses_for_holder_kind,
    grant_payload_for,
    request_from_payload,
    request_sha256,
    signing_challenge,
)
from likeness.consent.integrity import (
    RECOVERY_PURPOSE,
    LedgerConsent,
    grant_problem,
    holder_identity_problem,
    holder_key_problem,
)
from likeness.consent.ledger import LedgerEvent, find_events, find_events_page
from likeness.consent.passkeys import (
    PASSKEY_ONLY,
    PASSKEY_REGISTERED,
    Assertion,
    b64url,
    passkey_fingerprint,
    registration_payload,
    unb64url,
    vouch_statement,
)
from likeness.consent.passkeys import assertion_problem as _assertion_problem
from likeness.consent.registry import (
    RecoveryAttestation,
    check_slug,
    grant_row,
    holder_created_event,
    new_attestation_problem,
    requested_grant,
    requested_of_subject,
    revocation_payload,
)
from likeness.consent.tables import (
    Grant,
    GrantRequestRow,
    GrantRevocation,
    HolderInvitation,
    HolderPasskey,
    HolderSession,
    PasskeyChallenge,
    RightsHolder,
    Subject,
)
from likeness.consent.vocabulary import HOLDER_KINDS
from likeness.durable import write_atomic
from likeness.errors import ConsentError, RegistryError

INVITATION_TTL = timedelta(days=7)
CEREMONY_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(hours=12)
#: Ledger events of one grant that the holder sees (every use of their likeness under it).
USE_EVENTS = (
    "authorization.issued",
    "authorization.refused",
    "faceset.created",
    "model.trained",
    "model.exported",
    "preview.written",
    "render.reserved",
    "render.refunded",
    "render.completed",
)
#: What was made with the holder's likeness: the portal's one list across all their grants.
MADE_EVENTS = ("model.trained", "preview.written", "render.completed")
#: Rows of that list per page: a holder may have thousands.
MADE_PAGE = 50
EXPORT_TYPE = "likeness.holder-audit-export.v1"


@dataclass(frozen=True)
class MadePage:
    """One page of what was made with a holder's likeness, newest first, and the count in all."""

    events: list[LedgerEvent]
    total: int


@dataclass(frozen=True)
class RelyingParty:
    """Where passkeys are made and used: the rpId (a host name) and the exact web origin."""

    rp_id: str
    origin: str
    name: str = "likeness"


@dataclass(frozen=True)
class PendingRequest:
    """A grant request with its state (pending, signed, declined), the grant it became, and its
    parties as the ledger names them: the names the page shows are those the passkey signs."""

    request: GrantRequest
    state: str
    grant_id: str | None
    parties: Parties

    @property
    def org_name(self) -> str:
        return self.parties.org_name

    @property
    def subject_name(self) -> str:
        return self.parties.subject_name

    @property
    def holder_kind(self) -> str:
        return self.parties.holder_kind


def _new_id() -> str:
    return uuid.uuid4().hex


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _holder_row_problem(session: Session, holder_id: str) -> str | None:
    """Why ``holder_id``'s row is not the holder the ledger enrolled (``None``: it is): removed,
    or its name, kind or key edited; a link for them must not greet or register anyone else."""
    row = session.get(RightsHolder, holder_id)
    if row is None:
        return "is no longer in the workspace (their row was removed)"
    view = LedgerConsent(session)
    why = holder_identity_problem(view, row) or holder_key_problem(view.holder_keys(holder_id), row)
    return f"differs from the ledger: {why}" if why else None


class HolderPortal:
    """Invitations, passkeys, requests and passkey signatures over one workspace."""

    def __init__(self, workspace: Any) -> None:
        self.workspace = workspace
        self.registry = workspace.registry
        self.ledger = workspace.ledger

    def _session(self) -> Session:
        return self.workspace.session()  # (carries the organisation keys the workspace pins)

    @property
    def previews_dir(self) -> Path:
        return Path(self.workspace.home) / "portal" / "previews"

    # --- holders ---------------------------------------------------------------------------
    def add_passkey_holder(self, slug: str, name: str, *, kind: str, org: str | None = None) -> RightsHolder:
        """A rights holder who signs with passkeys only: no Ed25519 key is made or kept
        anywhere (its ``holder.created`` event names ``passkey-only``), so nothing in the
        workspace can sign in their name. ``org``, the organisation enrolling them (default: the
        only one; ``Registry.enrolling_org``), is the only one that may invite them to a passkey
        (``LedgerConsent.holder_owner``), and signs their ``holder.created``
        (``registry.holder_created_event``)."""
        check_slug(slug, "rights holder")
        owner = self.registry.enrolling_org(slug, org)
        if kind not in HOLDER_KINDS:
            raise RegistryError(f"holder kind '{kind}': expected one of {', '.join(HOLDER_KINDS)}")
        name = self.registry.new_name("rights holder", name)
        org_key = self.registry.org_signing_key(owner)  # (before anything is written)
        with self._session() as session:
            if session.scalar(select(RightsHolder).where(RightsHolder.slug == slug)):
                raise RegistryError(f"rights holder '{slug}' already exists")
            holder = RightsHolder(
                id=_new_id(),
                slug=slug,
                name=name,
                kind=kind,
                public_key="",
                key_fingerprint=PASSKEY_ONLY,
                created_at=utc_iso(now_utc()),
            )
            session.add(holder)
            session.commit()
        self.ledger.append("holder.created", holder_created_event(holder, owner, org_key))
        return holder

    # --- invitations -----------------------------------------------------------------------
    def invite(
        self, holder: str, org: str, *, created_by: str, ttl: timedelta = INVITATION_TTL, at: datetime | None = None
    ) -> tuple[str, str]:
        """A one-time invitation for ``holder`` to register a passkey; returns ``(invitation
        id, token)``. Only the token's digest is stored; the token travels in the link."""
        row = self.registry.get_holder(holder)
        self._refuse_invitation_to(row, self.registry.get_org(org).id)
        return self._new_invitation(row, org, created_by=created_by, ttl=ttl, at=at)

    def invite_to_vouch(
        self, holder: str, org: str, *, created_by: str, ttl: timedelta = INVITATION_TTL, at: datetime | None = None
    ) -> tuple[str, str]:
        """A one-time link for a holder who signs offline to make a passkey on their device and
        take away its registration statement (``vouch_by_invitation``); the passkey counts only
        once they vouch for it with their key and the organisation imports that. The link
        registers nothing: ``register_passkey`` refuses such a holder (``invitation_refused``)."""
        row = self.registry.get_holder(holder)
        if row.key_fingerprint == PASSKEY_ONLY:
            raise ConsentError(
                "invitation_refused",
                f"holder {row.slug} signs with passkeys only: they have no key to vouch with (invite them to a "
                "passkey instead)",
            )
        return self._new_invitation(row, org, created_by=created_by, ttl=ttl, at=at, purpose="vouch")

    def invite_to_recover(
        self,
        holder: str,
        org: str,
        *,
        created_by: str,
        attestation: RecoveryAttestation,
        passkeys_lost: bool = False,
        ttl: timedelta = INVITATION_TTL,
        at: datetime | None = None,
    ) -> tuple[str, str]:
        """A one-time *recovery* link for a passkey-only holder who lost their passkeys: the
        organisation that onboards them signs, as ``recover-key`` does, who checked the
        holder's identity and how (``attestation``). From its ledger row the holder's earlier
        passkeys sign nothing (what they signed before stays valid), and the link registers one
        new passkey. Refused (``invitation_refused``) for a holder who signs with an offline key
        (``recover-key``, then vouch), one with no passkey yet (an ordinary invitation), one
        another organisation onboards, and one who still has a passkey in force unless
        ``passkeys_lost`` states it lost. Returns ``(invitation id, token)``."""
        row = self.registry.get_holder(holder)
        organisation = self.registry.get_org(org)
        problem = new_attestation_problem(attestation)
        if problem:
            raise RegistryError(f"rights holder '{row.slug}': {problem}")
        if row.key_fingerprint != PASSKEY_ONLY:
            raise ConsentError(
                "invitation_refused",
                f"holder {row.slug} signs with an offline key: recover it with 'consent recover-key', then they "
                "vouch for a passkey with the new key",
            )
        self._refuse_not_owner(row, organisation.id)
        with self._session() as session:
            view = LedgerConsent(session)
            ever, in_force = view.passkeys(row.id), view.passkeys_in_force(row.id)
        if not ever:
            raise ConsentError(
                "invitation_refused", f"holder {row.slug} has no passkey to recover: send an ordinary invitation"
            )
        if in_force and not passkeys_lost:
            raise ConsentError(
                "invitation_refused",
                f"holder {row.slug} still has {len(in_force)} passkey(s) in force: a recovery retires them all, so "
                "state them lost (--passkeys-lost) only when the holder says so",
            )
        extra = {"attestation": attestation.as_payload(), "passkeys_lost": bool(in_force)}
        return self._new_invitation(
            row, organisation.slug, created_by=created_by, ttl=ttl, at=at, purpose=RECOVERY_PURPOSE, extra=extra
        )

    def _new_invitation(
        self,
        row: Any,
        org: str,
        *,
        created_by: str,
        ttl: timedelta,
        at: datetime | None,
        purpose: str = "register",
        extra: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        organisation = self.registry.get_org(org)
        self._refuse_not_owner(row, organisation.id)  # every kind of link, before anything is written
        token = secrets.token_urlsafe(32)
        moment = at or now_utc()
        invitation = HolderInvitation(
            id=_new_id(),
            holder_id=row.id,
            org_id=organisation.id,
            token_sha256=token_sha256(token),
            created_by=created_by,
            created_at=utc_iso(moment),
            expires_at=utc_iso(moment + ttl),
        )
        org_key = keys.load_private_key(self.registry.org_key_path(organisation.slug))
        event = {
            "invitation_id": invitation.id,
            "holder_id": row.id,
            "org_id": organisation.id,
            "org_fingerprint": keys.fingerprint(keys.public_raw(org_key)),
            "token_sha256": invitation.token_sha256,
            "created_by": created_by,
            "expires_at": invitation.expires_at,
            **({"purpose": purpose} if purpose != "register" else {}),
            **(extra or {}),
        }
        with self._session() as session:
            session.add(invitation)
            session.commit()
        # signed, so that a row a database editor inserts cannot pass for an invitation
        self.ledger.append("holder.invited", {**event, "signature": keys.sign(org_key, canonical_bytes(event))})
        return invitation.id, token

    def _refuse_invitation_to(self, row: Any, org_id: str) -> None:
        """``invitation_refused`` unless ``row`` is a passkey-only holder with no passkey yet,
        onboarded by ``org_id``: an invitation is signed by the organisation alone, so it may only
        give a holder their first passkey, and only from the organisation that enrolled them (the
        ledger ignores any other; ``LedgerConsent._registration_problem``)."""
        if row.key_fingerprint != PASSKEY_ONLY:
            raise ConsentError(
                "invitation_refused",
                f"holder {row.slug} signs with an offline key: the organisation cannot invite them to a passkey "
                "(their own key is their consent)",
            )
        with self._session() as session:
            has_passkey = bool(LedgerConsent(session).passkeys(row.id))
        if has_passkey:
            raise ConsentError(
                "invitation_refused",
                f"holder {row.slug} already has a passkey (or had one): a further one is added by the holder with a "
                "passkey they have (recovery passkey), never by invitation; one who lost every passkey gets a "
                "recovery invitation (consent recover-passkey)",
            )
        self._refuse_not_owner(row, org_id)

    def _refuse_not_owner(self, row: Any, org_id: str) -> None:
        """``invitation_refused`` unless ``org_id`` onboards holder ``row``
        (``LedgerConsent.owner_problem``): the ledger ignores another organisation's invitation,
        and its signed ``holder.invited`` would still be a claim on the holder (one a keyless
        rewrite of the sealing markers could make count) and fail every audit."""
        with self._session() as session:
            not_owner = LedgerConsent(session).owner_problem(row.id, org_id)
        if not_owner:
            raise ConsentError("invitation_refused", f"holder {row.slug}: {not_owner}")

    def invitation_purpose(self, invitation_id: str) -> str:
        """``register``, ``vouch`` or ``recovery``, as the invitation's ``holder.invited`` event says."""
        found = self.ledger.find("holder.invited", invitation_id=invitation_id)
        return str(found[0].payload.get("purpose") or "register") if found else "register"

    def _refuse_recovery_to(self, row: Any, invitation_id: str) -> None:
        """``invitation_unknown`` unless the recovery invitation counts on the ledger (signed by
        the holder's organisation, with its attestation); ``invitation_superseded`` unless it is
        the holder's latest and no passkey was registered since (its own code so the link's page
        can say so to the holder)."""
        with self._session() as session:
            view = LedgerConsent(session)
            recoveries = [str(e.payload.get("invitation_id")) for e in view.passkey_recoveries(row.id)]
            in_force = view.passkeys_in_force(row.id)
        if invitation_id not in recoveries:
            raise ConsentError("invitation_unknown", "this recovery invitation does not count on the ledger")
        if recoveries[-1] != invitation_id:
            raise ConsentError(
                "invitation_superseded",
                f"a later recovery link was sent to holder {row.slug}: only the newest one makes a passkey",
            )
        if in_force:
            raise ConsentError(
                "invitation_superseded", f"holder {row.slug} already has a passkey since this recovery was sent"
            )

    def passkey_recoveries(self, holder_id: str) -> list[tuple[str, str]]:
        """``(ledger time, organisation name)`` of each passkey recovery that counts, in order:
        what the holder is shown after signing in."""
        with self._session() as session:
            found = LedgerConsent(session).passkey_recoveries(holder_id)
        return [(e.created_at, self.registry.org_display_name(str(e.payload.get("org_id")))) for e in found]

    def open_invitation(self, token: str, *, at: datetime | None = None) -> HolderInvitation:
        """The live invitation of ``token``; ``ConsentError`` ``invitation_unknown``,
        ``holder_altered`` (its holder's row was removed or edited), ``invitation_used`` (a
        passkey was registered with it), ``invitation_expired``, or for a
        recovery link ``invitation_superseded`` when a later recovery or a passkey since made it
        useless (said on the page, not after the holder made a passkey)."""
        moment = at or now_utc()
        with self._session() as session:
            invitation = session.scalar(
                select(HolderInvitation).where(HolderInvitation.token_sha256 == token_sha256(token or ""))
            )
            if invitation is None:
                raise ConsentError("invitation_unknown", "this invitation link is not valid")
            forged = LedgerConsent(session).invitation_problem(
                invitation.id,
                holder_id=invitation.holder_id,
                org_id=invitation.org_id,
                row=invitation,
                require_signature=True,
            )
            if forged:
                raise ConsentError("invitation_unknown", f"this invitation link is not valid ({forged})")
            altered = _holder_row_problem(session, invitation.holder_id)
            if altered:
                raise ConsentError("holder_altered", f"this invitation's rights holder {altered}")
            used = invitation.used_at is not None or bool(
                find_events(session, PASSKEY_REGISTERED, {"invitation_id": invitation.id})
            )
            session.expunge(invitation)
        if used:
            raise ConsentError("invitation_used", "this invitation was already used to register a passkey")
        if moment >= parse_utc(invitation.expires_at):
            raise ConsentError("invitation_expired", f"this invitation expired at {invitation.expires_at}")
        if self.invitation_purpose(invitation.id) == RECOVERY_PURPOSE:
            self._refuse_recovery_to(self.registry.get_holder(invitation.holder_id), invitation.id)
        return invitation

    # --- WebAuthn ceremonies ---------------------------------------------------------------
    def new_ceremony(
        self,
        purpose: str,
        *,
        holder_id: str | None = None,
        invitation_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> PasskeyChallenge:
        """A pending ceremony. Signing ceremonies (``grant``, ``revoke``) take the payload's
        digest as challenge; the others a random one."""
        challenge = signing_challenge(payload) if payload is not None else secrets.token_bytes(32)
        moment = now_utc()
        row = PasskeyChallenge(
            id=_new_id(),
            purpose=purpose,
            holder_id=holder_id,
            invitation_id=invitation_id,
            challenge=challenge.hex(),
            payload=canonical_bytes(payload).decode("utf-8") if payload is not None else None,
            created_at=utc_iso(moment),
            expires_at=utc_iso(moment + CEREMONY_TTL),
        )
        with self._session() as session:
            if not _reused_expired(session, row):
                session.add(row)
            session.commit()
        return row

    def take_ceremony(self, ceremony_id: str, purpose: str, *, holder_id: str | None = None) -> PasskeyChallenge:
        """Use a pending ceremony once (``RegistryError`` if unknown, used, expired or not this
        holder's)."""
        moment = utc_iso(now_utc())
        with self._session() as session:
            taken = session.execute(
                update(PasskeyChallenge)
                .where(
                    PasskeyChallenge.id == ceremony_id,
                    PasskeyChallenge.purpose == purpose,
                    PasskeyChallenge.used_at.is_(None),
                    PasskeyChallenge.expires_at > moment,
                )
                .values(used_at=moment)
            )
            session.commit()
            row = session.get(PasskeyChallenge, ceremony_id)
        if not getattr(taken, "rowcount", 0) or row is None or (holder_id is not None and row.holder_id != holder_id):
            raise RegistryError("this passkey request is unknown, already used or expired; start again")
        return row

    # --- passkeys ----------------------------------------------------------------------------
    def register_passkey(
        self,
        *,
        holder_id: str,
        credential_id: bytes,
        public_key: bytes,
        sign_count: int,
        rp: RelyingParty,
        invitation_id: str,
    ) -> HolderPasskey:
        """Record a verified registration through an invitation: the invitation is spent (once,
        atomically) and the organisation that sent it signs the ``holder.passkey_registered``
        event with its key (what makes the passkey count, see ``LedgerConsent.passkeys``)."""
        with self._session() as session:
            invitation = session.get(HolderInvitation, invitation_id)
            if invitation is None or invitation.holder_id != holder_id:
                raise ConsentError("invitation_unknown", "this invitation is not for this rights holder")
            forged = LedgerConsent(session).invitation_problem(
                invitation_id, holder_id=holder_id, org_id=invitation.org_id, row=invitation, require_signature=True
            )
            if forged:
                raise ConsentError("invitation_unknown", f"this invitation is not valid ({forged})")
            org_id = invitation.org_id
            holder_row = session.get(RightsHolder, holder_id)
            spent = invitation.used_at is not None
        if not spent:  # a spent link says so (invitation_used, when it is stored)
            if self.invitation_purpose(invitation_id) == RECOVERY_PURPOSE:
                self._refuse_recovery_to(holder_row, invitation_id)
            else:
                self._refuse_invitation_to(holder_row, org_id)  # invited before the holder got a key or a passkey
        organisation = self.registry.get_org(org_id)
        org_key = keys.load_private_key(self.registry.org_key_path(organisation.slug))
        payload = registration_payload(
            holder_id=holder_id,
            credential_id=credential_id,
            public_key=public_key,
            rp_id=rp.rp_id,
            origin=rp.origin,
            sign_count=sign_count,
            label="primary",
            invitation_id=invitation_id,
            org_id=organisation.id,
            org_fingerprint=keys.fingerprint(keys.public_raw(org_key)),
            registered_at=utc_iso(now_utc()),
        )
        row = self._store_passkey(payload, public_key, spend=invitation_id)
        self.ledger.append(PASSKEY_REGISTERED, {**payload, "signature": keys.sign(org_key, canonical_bytes(payload))})
        return row

    def recovery_to_sign(
        self, *, holder_id: str, credential_id: bytes, public_key: bytes, sign_count: int, rp: RelyingParty
    ) -> dict[str, Any]:
        """The registration of a second (recovery) passkey, for a passkey the holder already
        has to sign (the payload's digest is the challenge)."""
        if self.passkey(credential_id) is not None:
            raise RegistryError("this passkey is already registered")
        return registration_payload(
            holder_id=holder_id,
            credential_id=credential_id,
            public_key=public_key,
            rp_id=rp.rp_id,
            origin=rp.origin,
            sign_count=sign_count,
            label="recovery",
            invitation_id=None,
            org_id=None,
            org_fingerprint=None,
            registered_at=utc_iso(now_utc()),
        )

    def vouch_to_sign(
        self, *, holder_id: str, credential_id: bytes, public_key: bytes, sign_count: int, rp: RelyingParty
    ) -> dict[str, Any]:
        """The registration statement of a passkey (verified by ``verify_registration``) for a
        holder who signs offline: they vouch for it with their key on their own machine
        (``likeness holder vouch-passkey``) and the organisation imports the signed statement
        (``likeness consent import``). Until then the passkey counts for nothing, and the
        organisation's key can never make it count (``LedgerConsent.passkeys``)."""
        holder = self.registry.get_holder(holder_id)
        if holder.key_fingerprint == PASSKEY_ONLY:
            raise ConsentError(
                "invitation_refused",
                f"holder {holder.slug} has no offline key to vouch with: their first passkey comes by invitation, "
                "a further one is vouched for by a passkey they have",
            )
        if self.passkey(credential_id) is not None:
            raise RegistryError("this passkey is already registered")
        with self._session() as session:
            has_passkey = bool(LedgerConsent(session).passkeys(holder.id))
        return vouch_statement(
            holder_id=holder.id,
            holder_fingerprint=self.registry.holder_fingerprint(holder.id),
            credential_id=credential_id,
            public_key=public_key,
            rp_id=rp.rp_id,
            origin=rp.origin,
            sign_count=sign_count,
            label="recovery" if has_passkey else "primary",
            created_at=utc_iso(now_utc()),
            nonce=secrets.token_hex(16),
        )

    def vouch_by_invitation(
        self,
        *,
        invitation_id: str,
        holder_id: str,
        credential_id: bytes,
        public_key: bytes,
        sign_count: int,
        rp: RelyingParty,
    ) -> dict[str, Any]:
        """Spend a holder's invitation (once, atomically) on the registration statement of the
        passkey they just made (``vouch_to_sign``); nothing is registered."""
        statement = self.vouch_to_sign(
            holder_id=holder_id, credential_id=credential_id, public_key=public_key, sign_count=sign_count, rp=rp
        )
        with self._session() as session:
            spent = session.execute(
                update(HolderInvitation)
                .where(
                    HolderInvitation.id == invitation_id,
                    HolderInvitation.holder_id == holder_id,
                    HolderInvitation.used_at.is_(None),
                )
                .values(used_at=statement["created_at"])
            )
            session.commit()
        if not getattr(spent, "rowcount", 0):
            raise ConsentError("invitation_used", "this invitation was already used to make a passkey")
        return statement

    def add_recovery_passkey(self, holder_id: str, payload: dict[str, Any], assertion: Assertion) -> HolderPasskey:
        """Record a recovery passkey whose registration ``assertion`` (by a passkey the holder
        has) signs; ``credential_not_holders`` and the other assertion refusals otherwise."""
        if payload.get("holder_id") != holder_id or payload.get("label") != "recovery":
            raise ConsentError("grant_altered", "the passkey registration to sign is not this holder's")
        self._check_assertion(holder_id, assertion, payload)
        row = self._store_passkey(payload, unb64url(str(payload["public_key"])), spend=None)
        self.ledger.append(
            PASSKEY_REGISTERED, {**payload, "signature": assertion.digest(), "passkey": assertion.as_payload()}
        )
        self.note_sign_count(assertion.credential_id, assertion.sign_count())
        return row

    def _store_passkey(self, payload: dict[str, Any], public_key: bytes, *, spend: str | None) -> HolderPasskey:
        moment = str(payload["registered_at"])
        with self._session() as session:
            if spend is not None:
                spent = session.execute(
                    update(HolderInvitation)
                    .where(HolderInvitation.id == spend, HolderInvitation.used_at.is_(None))
                    .values(used_at=moment)
                )
                if not getattr(spent, "rowcount", 0):
                    session.rollback()
                    raise ConsentError("invitation_used", "this invitation was already used to register a passkey")
            if session.scalar(select(HolderPasskey).where(HolderPasskey.credential_id == payload["credential_id"])):
                session.rollback()
                raise RegistryError("this passkey is already registered")
            row = HolderPasskey(
                id=_new_id(),
                holder_id=str(payload["holder_id"]),
                credential_id=str(payload["credential_id"]),
                public_key=public_key,
                rp_id=str(payload["rp_id"]),
                origin=str(payload["origin"]),
                sign_count=int(payload["sign_count"]),
                label=str(payload["label"]),
                created_at=moment,
            )
            session.add(row)
            session.commit()
        return row

    def passkey(self, credential_id: bytes) -> HolderPasskey | None:
        with self._session() as session:
            row = session.scalar(select(HolderPasskey).where(HolderPasskey.credential_id == b64url(credential_id)))
            if row is not None:
                session.expunge(row)
            return row

    def passkeys_of(self, holder_id: str, *, in_force: bool = False) -> list[HolderPasskey]:
        """The holder's passkey rows; ``in_force``: only those the ledger lets sign now (not
        retired by a passkey recovery, nor planted)."""
        with self._session() as session:
            rows = list(
                session.scalars(
                    select(HolderPasskey).where(HolderPasskey.holder_id == holder_id).order_by(HolderPasskey.created_at)
                )
            )
            usable = {b64url(p.credential_id) for p in LedgerConsent(session).passkeys_in_force(holder_id)}
            for row in rows:
                session.expunge(row)
        return [r for r in rows if r.credential_id in usable] if in_force else rows

    def note_sign_count(self, credential_id: bytes, sign_count: int) -> None:
        with self._session() as session:
            session.execute(
                update(HolderPasskey)
                .where(HolderPasskey.credential_id == b64url(credential_id))
                .values(sign_count=sign_count, last_used_at=utc_iso(now_utc()))
            )
            session.commit()

    # --- holder sessions -----------------------------------------------------------------------
    def open_session(self, holder_id: str, credential_id: bytes) -> tuple[str, HolderSession]:
        """A portal session after a passkey sign-in; returns ``(cookie token, row)``."""
        token = secrets.token_urlsafe(32)
        moment = now_utc()
        row = HolderSession(
            id=_new_id(),
            token_sha256=token_sha256(token),
            holder_id=holder_id,
            credential_id=b64url(credential_id),
            csrf_token=secrets.token_urlsafe(24),
            created_at=utc_iso(moment),
            expires_at=utc_iso(moment + SESSION_TTL),
        )
        with self._session() as session:
            session.add(row)
            session.commit()
        return token, row

    def session_for(self, token: str) -> HolderSession | None:
        if not token:
            return None
        with self._session() as session:
            row = session.scalar(select(HolderSession).where(HolderSession.token_sha256 == token_sha256(token)))
            if row is None or row.revoked_at is not None or now_utc() >= parse_utc(row.expires_at):
                return None
            in_force = {b64url(p.credential_id) for p in LedgerConsent(session).passkeys_in_force(row.holder_id)}
            if row.credential_id not in in_force:  # signed in with a passkey a recovery retired since
                return None
            session.expunge(row)
            return row

    def end_session(self, token: str) -> None:
        with self._session() as session:
            session.execute(
                update(HolderSession)
                .where(HolderSession.token_sha256 == token_sha256(token))
                .values(revoked_at=utc_iso(now_utc()))
            )
            session.commit()

    # --- grant requests ------------------------------------------------------------------------
    def draft_request(
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
        previews: Iterable[bytes] = (),
        created_by: str,
    ) -> GrantRequest:
        """Draft a request for the subject's rights holder to sign (``Registry.draft_grant``, the
        one drafting both signing paths share: a prohibited use is refused, on the ledger as
        ``grant.refused``, as are uses an estate cannot grant). Preview stills are kept by
        digest under ``HOME/portal/previews``."""
        return self.registry.draft_grant(
            subject,
            org,
            uses,
            valid_until=valid_until,
            valid_from=valid_from,
            max_renders=max_renders,
            allow_unlabelled=allow_unlabelled,
            purpose=purpose,
            preview_sha256=[self._keep_preview(p) for p in previews],
            created_by=created_by,
        )

    def _keep_preview(self, image: bytes) -> str:
        digest = hashlib.sha256(image).hexdigest()
        self.previews_dir.mkdir(parents=True, exist_ok=True)
        path = self.previews_dir / f"{digest}.png"
        if not path.exists():
            write_atomic(path, image)
        return digest

    def preview_path(self, digest: str) -> Path | None:
        path = self.previews_dir / f"{digest}.png"
        if len(digest) != 64 or not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            return None
        return path

    def request(self, request_id: str) -> PendingRequest:
        with self._session() as session:
            row = session.get(GrantRequestRow, request_id)
            if row is None:
                raise RegistryError(f"no grant request '{request_id}'")
            request = request_from_payload(strict_json.loads(row.payload))
            drafted = requested_grant(session, request_id)
            if drafted is None or request_sha256(request) != request_sha256(drafted.terms):
                # the holder reads and signs only what the organisation put on the ledger
                raise ConsentError("grant_altered", f"grant request {request_id} differs from what was drafted")
            subject = session.get(Subject, row.subject_id)
            if subject is None:
                raise ConsentError("subject_altered", f"grant request {request_id}: its subject row is missing")
            state, grant_id, org_id, holder_id = row.state, row.grant_id, row.org_id, subject.holder_id
        parties = self.registry.signed_parties(org_id, subject.id, holder_id)
        return PendingRequest(request=request, state=state, grant_id=grant_id, parties=parties)

    def requests_for_holder(self, holder_id: str) -> list[PendingRequest]:
        with self._session() as session:
            ids = list(
                session.scalars(
                    select(GrantRequestRow.id)
                    .join(Subject, Subject.id == GrantRequestRow.subject_id)
                    .where(Subject.holder_id == holder_id)
                    .order_by(GrantRequestRow.created_at.desc(), GrantRequestRow.id)
                )
            )
        pending = []
        for request_id in ids:
            try:
                pending.append(self.request(request_id))
            except ConsentError:  # edited after drafting: unsignable, and it must not hide the rest
                continue
        return pending

    def holder_request(self, request_id: str, holder_id: str) -> PendingRequest:
        pending = self.request(request_id)
        with self._session() as session:
            subject = session.get(Subject, pending.request.subject_id)
        if subject is None or subject.holder_id != holder_id:
            raise ConsentError("credential_not_holders", "this request is for another rights holder")
        return pending

    # --- signing -----------------------------------------------------------------------------
    def grant_to_sign(self, request_id: str, holder_id: str, credential_id: bytes) -> dict[str, Any]:
        """The grant payload the holder's passkey ``credential_id`` is asked to sign for a
        pending request (a new grant id; ``holder_fingerprint`` names the passkey)."""
        pending = self.holder_request(request_id, holder_id)
        if pending.state != "pending":
            raise RegistryError(f"grant request {request_id} was already {pending.state}")
        self._not_answered(request_id)
        passkey = self.registered_passkey(holder_id, credential_id)
        check_uses_for_holder_kind(pending.request.uses, pending.holder_kind)
        return grant_payload_for(
            pending.request,
            grant_id=pending.request.request_id,  # one request, one grant, whichever way it is signed
            holder_id=holder_id,
            holder_fingerprint=passkey_fingerprint(passkey.public_key),
            issued_at=utc_iso(now_utc()),
            parties=pending.parties,
        )

    def _not_answered(self, request_id: str) -> None:
        """Refuse a request whose grant is already on the ledger (signed the other way, even if
        its row was set back to pending)."""
        if self.ledger.find("grant.issued", grant_id=request_id):
            raise RegistryError(f"grant request {request_id} was already signed")

    def registered_passkey(self, holder_id: str, credential_id: bytes) -> Any:
        """The holder's passkey in force as the ledger registered it (its row may have been
        edited); one a passkey recovery retired signs and signs in no more."""
        with self._session() as session:
            for passkey in LedgerConsent(session).passkeys(holder_id):
                if passkey.credential_id == credential_id and passkey.retired_seq is not None:
                    raise ConsentError(
                        "credential_not_holders",
                        f"this passkey was retired when the holder's passkeys or key were recovered (ledger row "
                        f"{passkey.retired_seq})",
                    )
                if passkey.credential_id == credential_id:
                    return passkey
        raise ConsentError("credential_not_holders", "this passkey is not one the rights holder registered")

    def _check_assertion(self, holder_id: str, assertion: Assertion, payload: dict[str, Any]) -> None:
        """The checks the policy engine makes at use, made before anything is stored, plus the
        counter against the highest count seen (sign-ins included)."""
        passkey = self.registered_passkey(holder_id, assertion.credential_id)
        found = _assertion_problem(assertion, passkey, signing_challenge(payload))
        if found is not None and found.reason == "challenge_mismatch":
            with self._session() as session:
                replayed = LedgerConsent(session).signed_elsewhere(assertion, -1)
            raise ConsentError(
                "assertion_replayed" if replayed else "grant_altered",
                "the passkey signed another payload than the one shown",
            )
        if found is not None:
            raise ConsentError(found.reason, found.detail)
        row = self.passkey(assertion.credential_id)
        count = assertion.sign_count()
        if row is not None and (count > 0 or row.sign_count > 0) and count <= row.sign_count:
            raise ConsentError(
                "counter_regressed", f"the passkey's counter {count} is not above {row.sign_count} (a cloned key?)"
            )

    def sign_grant(self, request_id: str, holder_id: str, payload: dict[str, Any], assertion: Assertion) -> str:
        """Store a grant the holder signed with a passkey: the row (its ``signature`` column:
        the assertion's digest) and its ``grant.issued`` event with the whole assertion. The
        request's terms must be exactly the payload's; returns the grant id."""
        pending = self.holder_request(request_id, holder_id)
        if pending.state != "pending":
            raise RegistryError(f"grant request {request_id} was already {pending.state}")
        self._not_answered(request_id)
        expected = grant_payload_for(
            pending.request,
            grant_id=request_id,  # one request, one grant
            holder_id=holder_id,
            holder_fingerprint=str(payload.get("holder_fingerprint")),
            issued_at=str(payload.get("issued_at")),
            parties=pending.parties,
        )
        if expected != payload:
            raise ConsentError("grant_altered", "the payload to sign is not the request's terms")
        check_uses_for_holder_kind(pending.request.uses, pending.holder_kind)
        self._check_assertion(holder_id, assertion, payload)
        grant = grant_row(payload, assertion.digest())
        with self._session() as session:
            decided = session.execute(
                update(GrantRequestRow)
                .where(GrantRequestRow.id == request_id, GrantRequestRow.state == "pending")
                .values(state="signed", grant_id=grant.id, decided_at=utc_iso(now_utc()))
            )
            if not getattr(decided, "rowcount", 0):
                session.rollback()
                raise RegistryError(f"grant request {request_id} was already decided")
            session.add(grant)
            session.commit()
        self.ledger.append(
            "grant.issued",
            {
                **payload,
                "payload_sha256": grant.payload_sha256,
                "signature": grant.signature,
                "passkey": {**assertion.as_payload(), "signed_as": pending.holder_kind, "request_id": request_id},
            },
        )
        self.note_sign_count(assertion.credential_id, assertion.sign_count())
        with self._session() as session:  # what the engine will check at every use, once now
            stored = session.get(Grant, grant.id)
            finding = grant_problem(session, LedgerConsent(session), stored) if stored else None
        if finding is not None:
            raise ConsentError(finding.reason, f"grant {grant.id} does not verify: {finding.detail}")
        return grant.id

    def decline(self, request_id: str, holder_id: str, *, reason: str = "") -> None:
        self.holder_request(request_id, holder_id)
        with self._session() as session:
            decided = session.execute(
                update(GrantRequestRow)
                .where(GrantRequestRow.id == request_id, GrantRequestRow.state == "pending")
                .values(state="declined", decided_at=utc_iso(now_utc()))
            )
            session.commit()
        if not getattr(decided, "rowcount", 0):
            raise RegistryError(f"grant request {request_id} was already decided")
        self.ledger.append("grant.declined", {"request_id": request_id, "holder_id": holder_id, "reason": reason})

    def revocation_to_sign(self, grant_id: str, holder_id: str, *, reason: str = "") -> dict[str, Any]:
        self._holders_grant(grant_id, holder_id)
        return revocation_payload("grant", grant_id, utc_iso(now_utc()), reason)

    def _holders_grant(self, grant_id: str, holder_id: str) -> None:
        with self._session() as session:
            signed = LedgerConsent(session).issued("grant", grant_id)
        if signed is None or signed.payload.get("holder_id") != holder_id:
            raise ConsentError("credential_not_holders", f"grant {grant_id} is not this rights holder's")

    def revoke_grant(self, grant_id: str, holder_id: str, payload: dict[str, Any], assertion: Assertion) -> None:
        """Revoke a grant with a passkey-signed revocation; in force for every later check (a
        running job stops at its next checkpoint)."""
        self._holders_grant(grant_id, holder_id)
        if payload != revocation_payload("grant", grant_id, str(payload.get("revoked_at")), str(payload.get("reason"))):
            raise ConsentError("grant_altered", "the revocation to sign is malformed")
        if self.registry.grant_state(grant_id) == "revoked":
            raise RegistryError(f"grant '{grant_id}' is already revoked")
        self._check_assertion(holder_id, assertion, payload)
        signature = assertion.digest()
        self.ledger.append("grant.revoked", {**payload, "signature": signature, "passkey": assertion.as_payload()})
        self.note_sign_count(assertion.credential_id, assertion.sign_count())
        with self._session() as session:
            if session.scalar(select(GrantRevocation).where(GrantRevocation.grant_id == grant_id)) is None:
                session.add(
                    GrantRevocation(
                        id=_new_id(),
                        grant_id=grant_id,
                        revoked_at=payload["revoked_at"],
                        reason=payload["reason"],
                        signature=signature,
                    )
                )
                session.commit()

    # --- transparency ----------------------------------------------------------------------------
    def grants_of_holder(self, holder_id: str) -> list[Any]:
        with self._session() as session:
            ids = list(session.scalars(select(Grant.id).where(Grant.holder_id == holder_id).order_by(Grant.issued_at)))
        return [self.registry.grant_record(i) for i in ids]

    def uses_of_grant(self, grant_id: str) -> list[LedgerEvent]:
        """Every authorization, faceset, model, preview and render made under ``grant_id``,
        live from the ledger, in order; and every attempt refused since it was signed to use
        its subject for its organisation (a refusal before a grant is chosen names the subject
        and organisation, not a grant)."""
        with self._session() as session:
            found = find_events(session, USE_EVENTS, {"grant_id": grant_id})
            issued = LedgerConsent(session).issued("grant", grant_id)
            subject = session.get(Subject, issued.payload.get("subject_id")) if issued else None
            if issued is not None and subject is not None:
                org = self.registry.get_org(str(issued.payload.get("org_id")))
                found += [
                    e
                    for e in find_events(session, "authorization.refused", {"subject": subject.slug, "org": org.slug})
                    if e.seq > issued.seq and "grant_id" not in e.payload
                ]
        return sorted(found, key=lambda e: e.seq)

    def made_for_holder(self, holder_id: str, *, offset: int = 0, limit: int = MADE_PAGE) -> MadePage:
        """One page of every model, preview and render made under any of the holder's grants,
        newest first, and how many there are: the ``MADE_EVENTS`` rows of ``uses_of_grant`` for
        each of their grants, filtered, counted and paged by the database (a holder may have
        thousands; a page reads its own rows)."""
        with self._session() as session:
            grants = list(session.scalars(select(Grant.id).where(Grant.holder_id == holder_id)))
            try:
                events, total = find_events_page(session, MADE_EVENTS, "grant_id", grants, offset=offset, limit=limit)
                return MadePage(events, total)
            except DatabaseError:  # a payload the database cannot parse: find_events names it
                session.rollback()
            made = sorted(
                (e for g in grants for e in find_events(session, MADE_EVENTS, {"grant_id": g})),
                key=lambda e: e.seq,
                reverse=True,
            )
        return MadePage(made[offset : offset + limit], len(made))

    def holder_events(self, holder_id: str) -> list[LedgerEvent]:
        """The holder's own trail: enrolment, invitations, passkeys, requests for their
        subjects, their grants and revocations, and every use under their grants."""
        with self._session() as session:
            subjects = list(session.scalars(select(Subject.id).where(Subject.holder_id == holder_id)))
            grants = list(session.scalars(select(Grant.id).where(Grant.holder_id == holder_id)))
            found = [
                *find_events(
                    session, ("holder.created", "holder.invited", PASSKEY_REGISTERED), {"holder_id": holder_id}
                ),
                *find_events(session, "grant.declined", {"holder_id": holder_id}),
                *(
                    e
                    for r in {q.request_id for s in subjects for q in requested_of_subject(session, s)}
                    for e in find_events(session, REQUESTED_EVENT, {"request_id": r})
                    + find_events(session, REQUESTED_EVENT, {"grant_id": r})
                ),
                *(
                    e
                    for g in grants
                    for e in find_events(session, ("grant.issued", "grant.revoked", *USE_EVENTS), {"grant_id": g})
                ),
            ]
        return sorted({e.seq: e for e in found}.values(), key=lambda e: e.seq)

    def audit_export(self, holder_id: str, org: str | None = None) -> dict[str, Any]:
        """The holder's trail (``holder_events``) with each event's chain hashes, signed with
        the organisation's key as the ledger records it: the organisation cannot later deny
        this is what its ledger said."""
        organisation = self.registry.default_org(org)
        key = keys.load_private_key(self.registry.org_key_path(organisation.slug))
        body = {
            "type": EXPORT_TYPE,
            "holder_id": holder_id,
            "org_id": organisation.id,
            "key_fingerprint": keys.fingerprint(keys.public_raw(key)),
            "public_key": keys.public_raw(key).hex(),
            "exported_at": utc_iso(now_utc()),
            "events": [e.as_dict() for e in self.holder_events(holder_id)],
        }
        return {**body, "signature": keys.sign(key, canonical_bytes(body))}


def verify_export(export: dict[str, Any]) -> bool:
    """Whether a holder audit export is intact and signed by the key it names."""
    body = {k: v for k, v in export.items() if k != "signature"}
    try:
        public = bytes.fromhex(str(body.get("public_key")))
        return body.get("key_fingerprint") == keys.fingerprint(public) and keys.verify(
            public, canonical_bytes(body), str(export.get("signature"))
        )
    except ValueError:
        return False


# --- WebAuthn responses (the ``webauthn`` package verifies registrations and sign-ins) -------


@dataclass(frozen=True)
class VerifiedPasskey:
    credential_id: bytes
    public_key: bytes
    sign_count: int


def verify_registration(credential: dict[str, Any], challenge: bytes, rp: RelyingParty) -> VerifiedPasskey:
    """A ``navigator.credentials.create()`` response for ``challenge`` on ``rp``, user verified;
    ``ConsentError`` naming the failure (``wrong_origin``, ``wrong_rp``, ``user_not_verified``,
    ``signature_invalid``)."""
    from webauthn import verify_registration_response
    from webauthn.helpers.exceptions import InvalidRegistrationResponse, WebAuthnException

    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except InvalidRegistrationResponse as exc:
        raise ConsentError(webauthn_reason(str(exc)), f"the passkey registration is refused: {exc}") from None
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise ConsentError("signature_invalid", f"the passkey registration cannot be read: {exc}") from None
    return VerifiedPasskey(verified.credential_id, verified.credential_public_key, verified.sign_count)


def assertion_from_response(credential: dict[str, Any], public_key: bytes) -> Assertion:
    """An ``Assertion`` from a ``navigator.credentials.get()`` response (as JSON, base64url)."""
    from likeness.consent.passkeys import unb64url

    try:
        response = credential["response"]
        return Assertion(
            credential_id=unb64url(credential["rawId"]),
            authenticator_data=unb64url(response["authenticatorData"]),
            client_data_json=unb64url(response["clientDataJSON"]),
            signature=unb64url(response["signature"]),
            public_key=public_key,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConsentError("signature_invalid", f"the passkey response cannot be read ({exc})") from None


def webauthn_reason(message: str) -> str:
    lowered = message.lower()
    if "origin" in lowered:
        return "wrong_origin"
    if "rp id" in lowered:
        return "wrong_rp"
    if "verif" in lowered and "user" in lowered:
        return "user_not_verified"
    if "sign count" in lowered:
        return "counter_regressed"
    return "signature_invalid"


def _reused_expired(session: Session, row: PasskeyChallenge) -> bool:
    """Write the new ceremony ``row`` over one that has expired, if any: the table then holds at
    most the ceremonies of one ``CEREMONY_TTL``, however often anyone asks for sign-in options.
    An UPDATE, not a DELETE, which the PostgreSQL application role may not do on portal rows
    (``consent.privileges``). The expired ceremony's id no longer exists, so it stays unusable."""
    expired = select(PasskeyChallenge.id).where(PasskeyChallenge.expires_at <= row.created_at).limit(1)
    stale = session.scalar(expired)
    if stale is None:
        return False
    columns = ("id", "purpose", "holder_id", "invitation_id", "challenge", "payload", "created_at", "expires_at")
    reused = session.execute(
        update(PasskeyChallenge)
        .where(PasskeyChallenge.id == stale, PasskeyChallenge.expires_at <= row.created_at)
        .values(**{c: getattr(row, c) for c in columns}, used_at=None)
    )
    return bool(getattr(reused, "rowcount", 0))
