"""A workspace where a rights holder signs with passkeys (a software authenticator)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from likeness.config import Settings
from likeness.consent.canonical import now_utc
from likeness.consent.grant_requests import GrantRequest, signing_challenge
from likeness.consent.holder_portal import HolderPortal, RelyingParty, verify_registration
from likeness.workspace import Workspace
from tests.portal.softauthn import ORIGIN, RP_ID, SoftAuthenticator

RP = RelyingParty(RP_ID, ORIGIN)


@dataclass
class PasskeyWorld:
    workspace: Workspace
    portal: HolderPortal
    holder_id: str
    authenticator: SoftAuthenticator
    others: dict[str, tuple[str, SoftAuthenticator]] = field(default_factory=dict)

    def enrol(self, slug: str, *, kind: str = "artist", subject: str | None = None) -> tuple[str, SoftAuthenticator]:
        """A passkey-only holder (and their subject) with one registered passkey."""
        holder = self.portal.add_passkey_holder(slug, f"{slug} name", kind=kind)
        if subject:
            self.workspace.registry.add_subject(subject, subject.title(), kind="artist", holder=slug)
        invitation_id, token = self.portal.invite(slug, "studio", created_by="admin")
        self.portal.open_invitation(token)
        authenticator = SoftAuthenticator()
        register(self.portal, holder.id, authenticator, invitation_id=invitation_id)
        return holder.id, authenticator

    def request(self, uses=("music_video", "training"), subject: str = "haneul", **extra) -> GrantRequest:
        fields = dict(valid_until=now_utc() + timedelta(days=30), max_renders=20, purpose="music videos")
        fields.update(extra)
        return self.portal.draft_request(subject, "studio", uses, created_by="legal", **fields)

    def sign(self, request: GrantRequest, authenticator: SoftAuthenticator | None = None, holder_id: str | None = None):
        authenticator = authenticator or self.authenticator
        holder_id = holder_id or self.holder_id
        payload = self.portal.grant_to_sign(request.request_id, holder_id, authenticator.credential_id)
        return self.portal.sign_grant(
            request.request_id, holder_id, payload, authenticator.sign(signing_challenge(payload))
        )


def register(portal: HolderPortal, holder_id: str, authenticator: SoftAuthenticator, *, invitation_id: str) -> None:
    """Register ``authenticator``'s passkey through an invitation (the organisation signs it)."""
    ceremony = portal.new_ceremony("register", holder_id=holder_id)
    challenge = bytes.fromhex(ceremony.challenge)
    verified = verify_registration(authenticator.register(challenge), challenge, RP)
    portal.register_passkey(
        holder_id=holder_id,
        credential_id=verified.credential_id,
        public_key=verified.public_key,
        sign_count=verified.sign_count,
        rp=RP,
        invitation_id=invitation_id,
    )


def add_recovery(portal: HolderPortal, holder_id: str, current: SoftAuthenticator, new: SoftAuthenticator) -> None:
    """Register ``new`` as a recovery passkey, its registration signed by ``current``."""
    ceremony = portal.new_ceremony("register", holder_id=holder_id)
    challenge = bytes.fromhex(ceremony.challenge)
    verified = verify_registration(new.register(challenge), challenge, RP)
    payload = portal.recovery_to_sign(
        holder_id=holder_id,
        credential_id=verified.credential_id,
        public_key=verified.public_key,
        sign_count=verified.sign_count,
        rp=RP,
    )
    portal.add_recovery_passkey(holder_id, payload, current.sign(signing_challenge(payload)))


def vouch_statement_for(portal: HolderPortal, holder_id: str, authenticator: SoftAuthenticator) -> dict[str, Any]:
    """A verified registration of ``authenticator``'s passkey for a holder who signs offline, as
    the statement they vouch for with their key (``likeness holder vouch-passkey``)."""
    ceremony = portal.new_ceremony("register", holder_id=holder_id)
    challenge = bytes.fromhex(ceremony.challenge)
    verified = verify_registration(authenticator.register(challenge), challenge, RP)
    return portal.vouch_to_sign(
        holder_id=holder_id,
        credential_id=verified.credential_id,
        public_key=verified.public_key,
        sign_count=verified.sign_count,
        rp=RP,
    )


def vouch_passkey(portal: HolderPortal, holder_id: str, authenticator: SoftAuthenticator, key: Any) -> None:
    """Register ``authenticator``'s passkey, vouched for with the holder's Ed25519 ``key`` (on
    their machine) and imported by the organisation."""
    from likeness.consent.holder import sign_vouch

    statement = vouch_statement_for(portal, holder_id, authenticator)
    portal.registry.import_signed(sign_vouch(statement, key))


@pytest.fixture
def passkey_world(tmp_path: Path) -> Iterator[PasskeyWorld]:
    workspace = Workspace.init(Settings(home=tmp_path / "home"))
    workspace.registry.add_org("studio", "Haneul Entertainment")
    portal = HolderPortal(workspace)
    world = PasskeyWorld(workspace, portal, "", SoftAuthenticator())
    world.holder_id, world.authenticator = world.enrol("haneul-holder", subject="haneul")
    yield world
    workspace.close()
