"""An invitation is signed by the organisation alone, so it may only give a passkey-only holder
their first passkey. Found by trying the portal as an attacker: the organisation invited a holder
who signs offline with their own Ed25519 key, registered a passkey of its own with the link, and
signed an advertising grant the policy engine accepted; the offline key protected nothing."""

from __future__ import annotations

import pytest

from likeness.consent import keys
from likeness.consent.canonical import canonical_bytes, now_utc, utc_iso
from likeness.consent.integrity import LedgerConsent
from likeness.consent.passkeys import PASSKEY_REGISTERED, registration_payload
from likeness.errors import ConsentError
from tests.conftest import add_subject
from tests.portal.conftest import RP, register
from tests.portal.softauthn import SoftAuthenticator


def test_an_offline_key_holder_cannot_be_invited_to_a_passkey(passkey_world) -> None:
    add_subject(passkey_world.workspace.registry, "yuna", "Yuna")  # yuna-holder signs with an offline key
    with pytest.raises(ConsentError) as refused:
        passkey_world.portal.invite("yuna-holder", "studio", created_by="admin")
    assert refused.value.reason == "invitation_refused" and "offline key" in str(refused.value)


def test_a_holder_with_a_passkey_is_not_invited_to_another(passkey_world) -> None:
    portal = passkey_world.portal
    holder = portal.add_passkey_holder("sora-holder", "Sora's holder", kind="artist")
    first, _ = portal.invite("sora-holder", "studio", created_by="admin")
    spare, _ = portal.invite("sora-holder", "studio", created_by="admin")  # two links before any passkey
    register(portal, holder.id, SoftAuthenticator(), invitation_id=first)
    with pytest.raises(ConsentError) as refused:
        register(portal, holder.id, SoftAuthenticator(), invitation_id=spare)
    assert refused.value.reason == "invitation_refused"
    with pytest.raises(ConsentError, match="already has a passkey"):
        portal.invite("sora-holder", "studio", created_by="admin")


def test_an_organisation_signed_registration_for_an_offline_key_holder_does_not_count(passkey_world) -> None:
    """Whoever holds the organisation's key can append a registration event directly; the ledger
    reading ignores it for a holder who signs with their own key, and says why."""
    workspace = passkey_world.workspace
    subject = add_subject(workspace.registry, "yuna", "Yuna")
    org = workspace.registry.get_org("studio")
    org_key = keys.load_private_key(workspace.registry.org_key_path("studio"))
    authenticator = SoftAuthenticator()
    payload = registration_payload(
        holder_id=subject.holder_id,
        credential_id=authenticator.credential_id,
        public_key=authenticator.cose_key,
        rp_id=RP.rp_id,
        origin=RP.origin,
        sign_count=0,
        label="primary",
        invitation_id="forged",
        org_id=org.id,
        org_fingerprint=keys.fingerprint(keys.public_raw(org_key)),
        registered_at=utc_iso(now_utc()),
    )
    workspace.ledger.append(PASSKEY_REGISTERED, {**payload, "signature": keys.sign(org_key, canonical_bytes(payload))})
    with workspace.session() as session:
        view = LedgerConsent(session)
        assert view.passkeys(subject.holder_id) == []
        assert any("offline key" in problem for problem in view.passkey_problems(subject.holder_id))
