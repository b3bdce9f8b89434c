"""A passkey registration is judged by the organisation that onboarded its holder at the
invitation's ledger row, as key recoveries are: a legacy passkey-only holder (enrolled before
``holder.created`` named an organisation) whose only organisation invited them keeps their
passkey when a second organisation is added, and an invitation written once there were two
registers nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from likeness.config import Settings
from likeness.consent import keys
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes, now_utc, utc_iso
from likeness.consent.grant_requests import signing_challenge
from likeness.consent.holder_portal import HolderPortal, verify_registration
from likeness.consent.integrity import LedgerConsent
from likeness.consent.passkeys import PASSKEY_REGISTERED, registration_payload
from likeness.errors import ConsentError
from likeness.workspace import Workspace
from tests.consent.test_holder_owner import _legacy_holder
from tests.portal.conftest import RP, register
from tests.portal.softauthn import SoftAuthenticator


def _registered_by_appended_invitation(
    ws: Workspace, holder_id: str, org: str, authenticator: SoftAuthenticator, *, signed: bool = False
) -> int:
    """A registration through an invitation of ``org`` written straight onto the ledger,
    unsigned (as invitations were before they were signed) or signed with ``org``'s key, the
    registration signed by ``org``'s key; returns the invitation's ledger row."""
    organisation = ws.registry.get_org(org)
    org_key = keys.load_private_key(ws.registry.org_key_path(org))
    invitation_id = uuid.uuid4().hex
    invitation = {
        "invitation_id": invitation_id,
        "holder_id": holder_id,
        "org_id": organisation.id,
        "org_fingerprint": organisation.key_fingerprint,
        "token_sha256": uuid.uuid4().hex,
        "created_by": "admin",
        "expires_at": utc_iso(now_utc() + timedelta(days=7)),
    }
    if signed:
        invitation["signature"] = keys.sign(org_key, canonical_bytes(invitation))
    invited = ws.ledger.append("holder.invited", invitation)
    portal = HolderPortal(ws)
    challenge = bytes.fromhex(portal.new_ceremony("register", holder_id=holder_id).challenge)
    verified = verify_registration(authenticator.register(challenge), challenge, RP)
    payload = registration_payload(
        holder_id=holder_id,
        credential_id=verified.credential_id,
        public_key=verified.public_key,
        rp_id=RP.rp_id,
        origin=RP.origin,
        sign_count=verified.sign_count,
        label="primary",
        invitation_id=invitation_id,
        org_id=organisation.id,
        org_fingerprint=organisation.key_fingerprint,
        registered_at=utc_iso(now_utc()),
    )
    portal._store_passkey(payload, verified.public_key, spend=None)
    ws.ledger.append(PASSKEY_REGISTERED, {**payload, "signature": keys.sign(org_key, canonical_bytes(payload))})
    return invited.seq


def _legacy_world(tmp_path: Path, *, signed: bool) -> tuple[Workspace, str, SoftAuthenticator]:
    """haneul alone; a legacy passkey-only holder with a subject, invited by haneul (a signed
    or an unsigned invitation) and registered with a passkey."""
    ws = Workspace.init(Settings(home=tmp_path / "home"))
    ws.registry.add_org("haneul", "Haneul Entertainment")
    holder = _legacy_holder(ws, "sora-holder", passkey_only=True)
    ws.registry.add_subject("sora", "Sora", kind="artist", holder="sora-holder")
    authenticator = SoftAuthenticator()
    if signed:
        portal = HolderPortal(ws)
        invitation_id, token = portal.invite("sora-holder", "haneul", created_by="admin")
        portal.open_invitation(token)
        register(portal, holder.id, authenticator, invitation_id=invitation_id)
    else:
        _registered_by_appended_invitation(ws, holder.id, "haneul", authenticator)
    return ws, holder.id, authenticator


def _sign_grant(ws: Workspace, holder_id: str, authenticator: SoftAuthenticator) -> str:
    portal = HolderPortal(ws)
    request = portal.draft_request(
        "sora",
        "haneul",
        ("music_video",),
        created_by="legal",
        valid_until=now_utc() + timedelta(days=30),
        max_renders=5,
        purpose="music videos",
    )
    payload = portal.grant_to_sign(request.request_id, holder_id, authenticator.credential_id)
    return portal.sign_grant(request.request_id, holder_id, payload, authenticator.sign(signing_challenge(payload)))


def _passkey_problems(ws: Workspace, holder_id: str) -> list[str]:
    with ws.session() as session:
        return LedgerConsent(session).passkey_problems(holder_id)


@pytest.mark.parametrize("signed", [True, False], ids=["signed-invitation", "unsigned-invitation"])
def test_a_legacy_passkey_holder_keeps_signing_grants_after_a_second_organisation_is_added(
    before_subjects_sealed, tmp_path, signed
):
    ws, holder_id, authenticator = _legacy_world(tmp_path, signed=signed)
    ws.registry.add_org("byeol", "Byeol Entertainment")
    grant_id = _sign_grant(ws, holder_id, authenticator)
    assert ws.policy.authorize("sora", "music_video", "haneul").grant_id == grant_id
    assert _passkey_problems(ws, holder_id) == []
    report = audit_workspace(ws)
    assert report.ok, report.problems
    ws.close()


@pytest.mark.parametrize(
    ("org", "signed"), [("haneul", False), ("byeol", True)], ids=["unsigned-by-the-first", "signed-by-the-second"]
)
def test_an_invitation_appended_once_a_second_organisation_exists_registers_nothing(
    before_subjects_sealed, tmp_path, org, signed
):
    """Neither an unsigned invitation a database editor appends in the first organisation's
    name nor one the second organisation signs (among several, after holders were bound to
    their organisation) makes the passkey it registers the holder's."""
    ws = Workspace.init(Settings(home=tmp_path / "home"))
    ws.registry.add_org("haneul", "Haneul Entertainment")
    holder = _legacy_holder(ws, "sora-holder", passkey_only=True)
    ws.registry.add_subject("sora", "Sora", kind="artist", holder="sora-holder")
    ws.registry.add_org("byeol", "Byeol Entertainment")
    stolen = SoftAuthenticator()
    invited = _registered_by_appended_invitation(ws, holder.id, org, stolen, signed=signed)
    (problem,) = _passkey_problems(ws, holder.id)
    assert problem.startswith(f"ledger row {invited + 1}: {PASSKEY_REGISTERED} ignored:")
    assert "no organisation that onboarded the holder" in problem
    with ws.session() as session:
        assert LedgerConsent(session).passkeys(holder.id) == []
    with pytest.raises(ConsentError) as refused:
        _sign_grant(ws, holder.id, stolen)
    assert refused.value.reason == "credential_not_holders"
    report = audit_workspace(ws)
    (named,) = [p.message for p in report.problems if f"{PASSKEY_REGISTERED} ignored" in p.message]
    assert f"'sora-holder': ledger row {invited + 1}" in named and "no organisation that onboarded" in named
    assert not report.ok
    ws.close()
