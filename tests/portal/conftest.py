"""A workspace where a rights holder signs with passkeys (a software authenticator)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import pytest

from likeness.config import Settings
from likeness.consent.canonical import now_utc
from likeness.consent.grant_requests import GrantRequest, signing_challenge
from likeness.consent.holder_portal import HolderPortal, RelyingParty, verify_registration
from likeness.workspace import Workspace
from tests.browser import ARTIFACTS, free_port, serving, shoot
from tests.portal.softauthn import ORIGIN, RP_ID, SoftAuthenticator

RP = RelyingParty(RP_ID, ORIGIN)
#: The browser tests' console password (admin and legal) and their screenshots' folder.
PASSWORD = "a long legal password"
SHOTS = ARTIFACTS.parent / "portal"
#: A CDP virtual authenticator like a phone's: discoverable passkeys, user verified, touched at once.
AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


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


@pytest.fixture
def portal_service(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A workspace (org, a released performer, no artist yet), the app on localhost, accounts."""
    from likeness.faceset import enroll_reference_photos
    from likeness.media.synthetic import grace_hopper
    from likeness.service.accounts import Accounts
    from likeness.service.app import create_app
    from likeness.service.roles import Role
    from tests.conftest import add_subject, issue_release
    from tests.service.conftest import cheap_hasher

    port = free_port()
    settings = Settings(home=tmp_path / "home", portal_origin=f"http://localhost:{port}")
    workspace = Workspace.init(settings)
    registry = workspace.registry
    registry.add_org("studio", "Haneul Entertainment")
    add_subject(registry, "jun", "Jun", kind="performer")  # the performer signs on their own machine
    issue_release(registry, "jun", "studio", valid_until=now_utc() + timedelta(days=365))
    jun = tmp_path / "jun.png"
    cv2.imwrite(str(jun), cv2.cvtColor(grace_hopper(), cv2.COLOR_RGB2BGR))
    assert enroll_reference_photos(workspace, "jun", [jun]).added == 1
    accounts = Accounts(workspace, hasher=cheap_hasher())
    tokens = {}
    for role in (Role.ADMIN, Role.LEGAL):
        user = accounts.add_user(role.value, PASSWORD, role, display_name=f"{role.value.title()} user")
        tokens[role] = accounts.create_token(user, "portal test")[0]
    app = create_app(settings, workspace=workspace, accounts=accounts)
    with serving(app, port):
        yield {"url": f"http://localhost:{port}", "workspace": workspace, "tokens": tokens, "tmp": tmp_path}
    workspace.close()


def ask_for_a_birthday_message(portal: HolderPortal, *, days: int, max_renders: int, **extra: Any) -> GrantRequest:
    """The agency's legal user asks sora's holder for a fan-club birthday message, for ``days``."""
    return portal.draft_request(
        "sora",
        "studio",
        ["fan_message"],
        valid_until=now_utc() + timedelta(days=days),
        max_renders=max_renders,
        purpose="Birthday message for the fan club",
        created_by="legal",
        **extra,
    )


def with_authenticator(context: Any, page: Any) -> tuple[Any, str]:
    """WebAuthn on ``page`` through a CDP session, with one virtual ``AUTHENTICATOR``; returns
    (the session, the authenticator's id)."""
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    return cdp, added["authenticatorId"]


def shots_folder(size: str, language: str) -> Path:
    folder = SHOTS / f"{size}-{language}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def portal_shot(page: Any, name: str, size: str, language: str) -> None:
    shoot(page, shots_folder(size, language) / f"{name}.png", size, (name, size))
