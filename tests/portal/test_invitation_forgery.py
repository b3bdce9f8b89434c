"""Invitations only the organisation that enrols a holder can make (found by an attacker's
trial): a ``holder_invitations`` row a database editor inserts is not an invitation, and a second
organisation in the same workspace cannot invite another's holder to a passkey. Either way the
attacker's passkey would have signed grants the policy engine accepted, with ``audit verify``
clean."""

from __future__ import annotations

import secrets

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from likeness.consent.holder_portal import token_sha256
from likeness.errors import ConsentError
from likeness.service.roles import Role
from tests.portal.softauthn import ORIGIN, SoftAuthenticator
from tests.portal.test_portal_http import _challenge, _invite, _register
from tests.service.conftest import build_service_world


@pytest.fixture
def world(settings, workspace):
    return build_service_world(settings, workspace)


def _try_register(client: TestClient, token: str, authenticator: SoftAuthenticator):
    options = client.post("/portal/api/register/options", json={"token": token})
    if options.status_code != 200:
        return options
    started = options.json()
    return client.post(
        "/portal/api/register",
        json={
            "ceremony_id": started["ceremony_id"],
            "token": token,
            "credential": authenticator.register(_challenge(started["publicKey"]["challenge"])),
        },
    )


def test_an_invitation_row_inserted_in_the_database_registers_nothing(world):
    _invite(world)  # the real invitation, still pending
    workspace = world.workspace
    holder = workspace.registry.get_holder("haneul-holder")
    token = secrets.token_urlsafe(32)
    with workspace.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO holder_invitations (id, holder_id, org_id, token_sha256, created_by, created_at, "
                "expires_at) VALUES (:id, :holder, :org, :digest, 'x', '2026-01-01T00:00:00Z', '2030-01-01T00:00:00Z')"
            ),
            {
                "id": secrets.token_hex(16),
                "holder": holder.id,
                "org": workspace.registry.get_org("studio").id,
                "digest": token_sha256(token),
            },
        )
    refused = _try_register(TestClient(world.app, base_url=ORIGIN), token, SoftAuthenticator())
    assert refused.status_code in (400, 403, 404), refused.text
    assert "invitation_unknown" in refused.text and "not on the ledger" in refused.text
    assert workspace.ledger.find("holder.passkey_registered") == []
    from likeness.consent.integrity import consent_row_problems

    (named,) = [p for p in consent_row_problems(workspace) if p.kind == "invitation"]
    assert "not on the ledger" in named.problem


def test_an_invitation_row_whose_expiry_was_extended_is_refused(world):
    token = _invite(world)
    with world.workspace.engine.begin() as connection:
        connection.execute(text("UPDATE holder_invitations SET expires_at = '2099-01-01T00:00:00Z'"))
    refused = _try_register(TestClient(world.app, base_url=ORIGIN), token, SoftAuthenticator())
    assert "invitation_unknown" in refused.text and "differs from its holder.invited event" in refused.text


def test_another_organisation_cannot_invite_a_holder_it_did_not_enrol(world):
    studio_token = _invite(world)
    registry = world.workspace.registry
    registry.add_org("rival", "Rival Entertainment")
    rival_admin = world.accounts.add_user("rival-admin", "a long rival password", Role.ADMIN, org="rival")
    rival = TestClient(world.app, base_url=ORIGIN)
    rival.headers["Authorization"] = f"Bearer {world.accounts.create_token(rival_admin, 't')[0]}"
    answer = rival.post("/api/v1/portal/invitations", json={"holder": "haneul-holder"})
    assert answer.status_code == 403 and "invitation_refused" in answer.text, answer.text
    assert "another organisation" in answer.text
    # nor through the library
    from likeness.consent.holder_portal import HolderPortal

    with pytest.raises(ConsentError) as refused:
        HolderPortal(world.workspace).invite("haneul-holder", "rival", created_by="rival-admin")
    assert refused.value.reason == "invitation_refused"
    # the real holder still onboards with the studio's link
    _register(TestClient(world.app, base_url=ORIGIN), studio_token, SoftAuthenticator())
    assert len(world.workspace.ledger.find("holder.passkey_registered")) == 1


def test_the_ledger_ignores_a_registration_through_another_organisations_invitation(world, tmp_path):
    """Suppose the rival's server signed one anyway (an older version, or a rival with its own
    copy of the code): the ledger does not count a passkey onboarded by an organisation other
    than the holder's, so nothing it signs is accepted, and audit names it."""
    from likeness.consent import keys
    from likeness.consent.canonical import canonical_bytes, now_utc, utc_iso
    from likeness.consent.holder_portal import HolderPortal
    from likeness.consent.integrity import LedgerConsent
    from likeness.consent.passkeys import PASSKEY_REGISTERED, registration_payload

    _invite(world)
    registry = world.workspace.registry
    registry.add_org("rival", "Rival Entertainment")
    rival = registry.get_org("rival")
    holder = registry.get_holder("haneul-holder")
    rival_key = keys.load_private_key(registry.org_key_path("rival"))
    invitation = {
        "invitation_id": "rival-invitation",
        "holder_id": holder.id,
        "org_id": rival.id,
        "org_fingerprint": keys.fingerprint(keys.public_raw(rival_key)),
        "token_sha256": token_sha256("x"),
        "created_by": "rival-admin",
        "expires_at": "2099-01-01T00:00:00Z",
    }
    world.workspace.ledger.append(
        "holder.invited", {**invitation, "signature": keys.sign(rival_key, canonical_bytes(invitation))}
    )
    authenticator = SoftAuthenticator()
    registration = registration_payload(
        holder_id=holder.id,
        credential_id=authenticator.credential_id,
        public_key=authenticator.cose_key,
        rp_id="localhost",
        origin=ORIGIN,
        sign_count=0,
        label="primary",
        invitation_id="rival-invitation",
        org_id=rival.id,
        org_fingerprint=invitation["org_fingerprint"],
        registered_at=utc_iso(now_utc()),
    )
    world.workspace.ledger.append(
        PASSKEY_REGISTERED, {**registration, "signature": keys.sign(rival_key, canonical_bytes(registration))}
    )
    portal = HolderPortal(world.workspace)
    with portal._session() as session:
        view = LedgerConsent(session)
        assert view.passkeys(holder.id) == []
        (problem,) = view.passkey_problems(holder.id)
    assert "onboarded by another organisation" in problem
