"""A passkey-only holder who lost every passkey gets back in through a *recovery invitation*: the
organisation that onboards them signs, as ``recover-key`` does, who checked their identity and
how. From that ledger row their old passkeys sign nothing (a thief holding the lost phone
cannot sign after the recovery); grants signed before stay valid. Found as an attacker: a
database editor's recovery row or event, another organisation's recovery, an old passkey after
the recovery, and an ordinary invitation for a holder who has passkeys must all open nothing."""

from __future__ import annotations

import secrets
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from likeness.consent import keys
from likeness.consent.audit import audit_workspace
from likeness.consent.canonical import canonical_bytes, now_utc, utc_iso
from likeness.consent.grant_requests import grant_payload_for, signing_challenge
from likeness.consent.holder_portal import INVITATION_TTL, token_sha256
from likeness.consent.integrity import LedgerConsent, grant_problem
from likeness.consent.ledger import find_events
from likeness.consent.passkeys import PASSKEY_REGISTERED, passkey_fingerprint, registration_payload
from likeness.consent.registry import RecoveryAttestation, grant_row
from likeness.consent.tables import Grant, HolderInvitation
from likeness.errors import ConsentError
from tests.portal.conftest import RP, PasskeyWorld, register
from tests.portal.softauthn import SoftAuthenticator

CHECKED = RecoveryAttestation(
    statement="identity checked against passport M1234567",
    verified_by="J. Park, rights team",
    method="in_person",
    evidence_sha256=None,
)


def _recover(world: PasskeyWorld, org: str = "studio") -> tuple[str, str]:
    return world.portal.invite_to_recover(
        "haneul-holder", org, created_by="legal", attestation=CHECKED, passkeys_lost=True
    )


def _recovered(world: PasskeyWorld) -> SoftAuthenticator:
    """The holder's passkeys recovered: a new passkey registered through a recovery invitation."""
    invitation_id, token = _recover(world)
    world.portal.open_invitation(token)
    new_phone = SoftAuthenticator()
    register(world.portal, world.holder_id, new_phone, invitation_id=invitation_id)
    return new_phone


def _in_force(world: PasskeyWorld) -> list[bytes]:
    with world.workspace.session() as session:
        return [p.credential_id for p in LedgerConsent(session).passkeys_in_force(world.holder_id)]


def _signed_outside_the_portal(world: PasskeyWorld, authenticator: SoftAuthenticator) -> str:
    """A grant signed by ``authenticator`` and written straight to the database and ledger (what
    a thief with the lost phone and write access could do), bypassing the portal's own checks."""
    request = world.request(uses=("advertising",))
    pending = world.portal.holder_request(request.request_id, world.holder_id)
    payload = grant_payload_for(
        pending.request,
        grant_id=request.request_id,
        holder_id=world.holder_id,
        holder_fingerprint=passkey_fingerprint(authenticator.cose_key),
        issued_at=utc_iso(now_utc()),
        parties=pending.parties,
    )
    assertion = authenticator.sign(signing_challenge(payload))
    grant = grant_row(payload, assertion.digest())
    with Session(world.workspace.engine, expire_on_commit=False) as session:
        session.add(grant)
        session.commit()
    world.workspace.ledger.append(
        "grant.issued",
        {
            **payload,
            "payload_sha256": grant.payload_sha256,
            "signature": grant.signature,
            "passkey": {**assertion.as_payload(), "signed_as": "artist", "request_id": request.request_id},
        },
    )
    return grant.id


def _grant_problem(world: PasskeyWorld, grant_id: str):
    with world.workspace.session() as session:
        return grant_problem(session, LedgerConsent(session), session.get(Grant, grant_id))


def test_a_recovered_holder_signs_with_the_new_passkey_and_the_old_one_is_retired(passkey_world) -> None:
    world = passkey_world
    before = world.sign(world.request())
    lost_phone = world.authenticator
    new_phone = _recovered(world)
    assert _in_force(world) == [new_phone.credential_id]
    # the grant signed before the recovery stays valid, the new passkey signs
    assert _grant_problem(world, before) is None
    assert world.workspace.policy.authorize("haneul", "music_video", "studio").grant_id == before
    after = world.sign(world.request(uses=("fan_message",)), new_phone)
    assert _grant_problem(world, after) is None
    # the portal refuses the lost phone, at signing and at sign-in
    with pytest.raises(ConsentError) as refused:
        world.portal.grant_to_sign(world.request().request_id, world.holder_id, lost_phone.credential_id)
    assert refused.value.reason == "credential_not_holders" and "recovered" in str(refused.value)
    assert world.portal.passkey_recoveries(world.holder_id)[0][1] == "Haneul Entertainment"


def test_an_old_passkeys_grant_signed_after_the_recovery_is_refused(passkey_world) -> None:
    world = passkey_world
    lost_phone = world.authenticator
    control = _signed_outside_the_portal(world, lost_phone)
    assert _grant_problem(world, control) is None  # the same forgery before the recovery counts
    _recovered(world)
    forged = _signed_outside_the_portal(world, lost_phone)
    found = _grant_problem(world, forged)
    assert found is not None and found.reason == "credential_not_holders" and "retired" in found.detail
    assert _grant_problem(world, control) is None
    # the policy engine uses the grant signed before, never the one signed after
    assert world.workspace.policy.authorize("haneul", "advertising", "studio").grant_id == control


def test_the_cut_off_is_the_recovery_invitations_ledger_row(passkey_world) -> None:
    """Between the recovery invitation and the new passkey, the lost phone signs nothing either."""
    world = passkey_world
    _recover(world)
    assert _in_force(world) == []
    forged = _signed_outside_the_portal(world, world.authenticator)
    assert _grant_problem(world, forged).reason == "credential_not_holders"


def test_a_database_editors_recovery_row_or_event_opens_nothing(passkey_world) -> None:
    world = passkey_world
    holder_id = world.holder_id
    org = world.workspace.registry.get_org("studio")
    token = secrets.token_urlsafe(32)
    invitation = HolderInvitation(
        id=uuid.uuid4().hex,
        holder_id=holder_id,
        org_id=org.id,
        token_sha256=token_sha256(token),
        created_by="editor",
        created_at=utc_iso(now_utc()),
        expires_at="2999-01-01T00:00:00Z",
    )
    with Session(world.workspace.engine, expire_on_commit=False) as session:
        session.add(invitation)
        session.commit()
    with pytest.raises(ConsentError) as refused:  # a row alone
        world.portal.open_invitation(token)
    assert refused.value.reason == "invitation_unknown"
    event = {
        "invitation_id": invitation.id,
        "holder_id": holder_id,
        "org_id": org.id,
        "org_fingerprint": org.key_fingerprint,
        "token_sha256": invitation.token_sha256,
        "created_by": "editor",
        "expires_at": invitation.expires_at,
        "purpose": "recovery",
        "attestation": CHECKED.as_payload(),
        "passkeys_lost": True,
    }
    stranger = Ed25519PrivateKey.generate()
    world.workspace.ledger.append("holder.invited", {**event, "signature": keys.sign(stranger, canonical_bytes(event))})
    with pytest.raises(ConsentError) as refused:  # with an event no organisation key signed
        world.portal.open_invitation(token)
    assert refused.value.reason == "invitation_unknown"
    with pytest.raises(ConsentError):
        register(world.portal, holder_id, SoftAuthenticator(), invitation_id=invitation.id)
    assert _in_force(world) == [world.authenticator.credential_id]  # nothing retired
    with world.workspace.session() as session:
        view = LedgerConsent(session)
        assert view.passkey_recoveries(holder_id) == []
        assert any("passkey recovery ignored" in p for p in view.passkey_problems(holder_id))
    assert any("passkey recovery ignored" in p.message for p in audit_workspace(world.workspace).problems)


def test_another_organisation_cannot_recover_the_holders_passkeys(passkey_world, monkeypatch) -> None:
    world = passkey_world
    world.workspace.registry.add_org("rival", "Rival Entertainment")
    with pytest.raises(ConsentError) as refused:
        _recover(world, org="rival")
    assert refused.value.reason == "invitation_refused"
    # the rival's own signed event, written past the check, retires and opens nothing
    row = world.workspace.registry.get_holder("haneul-holder")
    extra = {"attestation": CHECKED.as_payload(), "passkeys_lost": True}
    monkeypatch.setattr(world.portal, "_refuse_not_owner", lambda *_: None)  # (a rival's own copy of the code)
    invitation_id, token = world.portal._new_invitation(
        row, "rival", created_by="rival", ttl=INVITATION_TTL, at=None, purpose="recovery", extra=extra
    )
    with pytest.raises(ConsentError) as refused:
        world.portal.open_invitation(token)
    assert refused.value.reason == "invitation_unknown"
    assert _in_force(world) == [world.authenticator.credential_id]
    with world.workspace.session() as session:
        assert LedgerConsent(session).passkey_recoveries(world.holder_id) == []


def test_recovery_needs_the_passkeys_stated_lost_and_an_attestation(passkey_world) -> None:
    world = passkey_world
    with pytest.raises(ConsentError) as refused:
        world.portal.invite_to_recover("haneul-holder", "studio", created_by="legal", attestation=CHECKED)
    assert refused.value.reason == "invitation_refused" and "lost" in str(refused.value)
    unattested = RecoveryAttestation(statement=" ", verified_by="J. Park", method="in_person", evidence_sha256=None)
    with pytest.raises(Exception, match="statement"):
        world.portal.invite_to_recover(
            "haneul-holder", "studio", created_by="legal", attestation=unattested, passkeys_lost=True
        )
    fresh = world.portal.add_passkey_holder("sora-holder", "Sora's holder", kind="artist", org="studio")
    with pytest.raises(ConsentError, match="ordinary invitation"):
        world.portal.invite_to_recover(fresh.slug, "studio", created_by="legal", attestation=CHECKED)


def test_an_ordinary_invitation_still_gives_no_passkey_to_a_holder_who_had_one(passkey_world) -> None:
    world = passkey_world
    _recover(world)  # every passkey retired, the recovery link not used yet
    with pytest.raises(ConsentError) as refused:
        world.portal.invite("haneul-holder", "studio", created_by="admin")
    assert refused.value.reason == "invitation_refused"
    # an ordinary invitation the organisation writes past the check registers nothing either
    row = world.workspace.registry.get_holder("haneul-holder")
    ordinary, _ = world.portal._new_invitation(row, "studio", created_by="admin", ttl=INVITATION_TTL, at=None)
    with pytest.raises(ConsentError) as refused:
        register(world.portal, world.holder_id, SoftAuthenticator(), invitation_id=ordinary)
    assert refused.value.reason == "invitation_refused"
    _append_registration(world, ordinary)
    assert _in_force(world) == []


def _append_registration(world: PasskeyWorld, invitation_id: str) -> None:
    """A new passkey's registration through ``invitation_id``, signed with the organisation's key
    and appended straight to the ledger, past the portal's checks."""
    org = world.workspace.registry.get_org("studio")
    org_key = keys.load_private_key(world.workspace.registry.org_key_path("studio"))
    planted = SoftAuthenticator()
    payload = registration_payload(
        holder_id=world.holder_id,
        credential_id=planted.credential_id,
        public_key=planted.cose_key,
        rp_id=RP.rp_id,
        origin=RP.origin,
        sign_count=0,
        label="primary",
        invitation_id=invitation_id,
        org_id=org.id,
        org_fingerprint=keys.fingerprint(keys.public_raw(org_key)),
        registered_at=utc_iso(now_utc()),
    )
    world.workspace.ledger.append(
        PASSKEY_REGISTERED, {**payload, "signature": keys.sign(org_key, canonical_bytes(payload))}
    )


def test_a_recovery_link_a_later_recovery_superseded_opens_nothing(passkey_world) -> None:
    """A recovery link that was never used (left in a mailbox, or read by someone else) opened
    again each time a later recovery retired the holder's passkeys, until its week was out: after
    the holder came back through a second link and lost their phone again, the first link made
    a passkey (trial 26). Only the newest recovery's link registers a passkey."""
    world = passkey_world
    stale, stale_token = _recover(world)
    _recovered(world)  # a second recovery, and the holder's new passkey through its link
    newest, _ = _recover(world)  # lost again: every passkey retired
    for use in (  # still within its week and never used: the page says so, and nothing registers
        lambda: world.portal.open_invitation(stale_token),
        lambda: register(world.portal, world.holder_id, SoftAuthenticator(), invitation_id=stale),
    ):
        with pytest.raises(ConsentError, match="a later recovery link was sent") as refused:
            use()
        assert refused.value.reason == "invitation_superseded"
    _append_registration(world, stale)  # nor does the ledger count it, written past the portal
    assert _in_force(world) == []
    register(world.portal, world.holder_id, SoftAuthenticator(), invitation_id=newest)
    assert len(_in_force(world)) == 1


def test_a_recovery_link_gives_one_passkey_and_audit_lists_the_recovery(passkey_world) -> None:
    world = passkey_world
    invitation_id, _ = _recover(world)
    register(world.portal, world.holder_id, SoftAuthenticator(), invitation_id=invitation_id)
    with pytest.raises(ConsentError):
        register(world.portal, world.holder_id, SoftAuthenticator(), invitation_id=invitation_id)
    report = audit_workspace(world.workspace)
    assert report.ok, report.problems
    assert any("haneul-holder" in r and "J. Park" in r for r in report.recoveries)


def test_cli_recover_passkey_asks_for_the_loss_and_audit_verify_lists_it(passkey_world) -> None:
    from typer.testing import CliRunner

    from likeness.cli import app

    home = str(passkey_world.workspace.home)
    attested = ["--statement", "identity checked", "--verified-by", "J. Park (legal)", "--method", "in_person"]
    runner = CliRunner()
    refused = runner.invoke(app, ["--home", home, "consent", "recover-passkey", "haneul-holder", *attested])
    assert refused.exit_code == 1 and "invitation_refused" in refused.output and "Traceback" not in refused.output
    blank = ["--statement", " ", *attested[2:], "--passkeys-lost"]
    unattested = runner.invoke(app, ["--home", home, "consent", "recover-passkey", "haneul-holder", *blank])
    assert unattested.exit_code == 1 and "has no statement" in unattested.output, unattested.output
    assert _in_force(passkey_world) == [passkey_world.authenticator.credential_id]
    sent = runner.invoke(
        app, ["--home", home, "consent", "recover-passkey", "haneul-holder", *attested, "--passkeys-lost"]
    )
    assert sent.exit_code == 0, sent.output
    assert "/portal/invite/" in sent.output and _in_force(passkey_world) == []
    audited = runner.invoke(app, ["--home", home, "audit", "verify"])
    assert audited.exit_code == 0, audited.output
    assert "recovery:" in audited.output and "passkeys recovered by Haneul Entertainment" in audited.output


def _append_a_copy(world: PasskeyWorld, invitation_id: str) -> int:
    """Append the organisation-signed ``holder.invited`` event of ``invitation_id`` once more,
    unchanged (what a database editor can do without any key); its ledger row."""
    with world.workspace.session() as session:
        (invited,) = find_events(session, "holder.invited", {"invitation_id": invitation_id})
    return world.workspace.ledger.append("holder.invited", dict(invited.payload)).seq


def test_a_copy_of_the_recovery_appended_by_a_database_editor_gives_back_no_lost_phone(passkey_world) -> None:
    """A copy of the signed recovery event voided the recovery itself ("its invitation is on the
    ledger twice"): the lost phone's passkey was back in force, the new one ignored, and a grant
    the thief signed with the lost phone authorized renders."""
    world = passkey_world
    lost_phone = world.authenticator
    new_phone = _recovered(world)
    recovery = world.portal.passkey_recoveries(world.holder_id)
    with world.workspace.session() as session:
        (first,) = LedgerConsent(session).passkey_recoveries(world.holder_id)
    copy_seq = _append_a_copy(world, first.payload["invitation_id"])
    assert _in_force(world) == [new_phone.credential_id]
    assert world.portal.passkey_recoveries(world.holder_id) == recovery
    forged = _signed_outside_the_portal(world, lost_phone)
    found = _grant_problem(world, forged)
    assert found is not None and found.reason == "credential_not_holders" and "retired" in found.detail
    with pytest.raises(ConsentError):
        world.workspace.policy.authorize("haneul", "advertising", "studio")
    after = world.sign(world.request(uses=("fan_message",)), new_phone)
    assert _grant_problem(world, after) is None
    named = [p.message for p in audit_workspace(world.workspace).problems]
    assert any(f"ledger row {copy_seq}: passkey recovery ignored: it repeats the invitation" in m for m in named), named


def test_a_copy_of_the_first_invitation_leaves_the_holders_passkey_in_force(passkey_world) -> None:
    world = passkey_world
    with world.workspace.session() as session:
        (registered,) = find_events(session, PASSKEY_REGISTERED, {"holder_id": world.holder_id})
    _append_a_copy(world, registered.payload["invitation_id"])
    assert _in_force(world) == [world.authenticator.credential_id]
    assert _grant_problem(world, world.sign(world.request())) is None
