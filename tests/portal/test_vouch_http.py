"""The portal side of a vouched passkey, over HTTP (issue 29): the agency's invitation for a
holder who signs offline leads to a passkey and its registration statement, never to a
registration; the passkey signs the holder in only after they vouch for it with their own key
and the agency imports that."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from likeness.consent.holder import sign_vouch
from likeness.consent.passkeys import passkey_fingerprint
from likeness.errors import ConsentError
from likeness.service.roles import Role
from tests.conftest import holder_machine
from tests.portal.conftest import RP
from tests.portal.softauthn import ORIGIN, SoftAuthenticator
from tests.portal.test_portal_db_editor import _sign_in
from tests.portal.test_portal_http import _challenge
from tests.service.conftest import build_service_world


@pytest.fixture
def world(settings, workspace):
    return build_service_world(settings, workspace)


def _vouch_link(world) -> str:
    """The agency invites mina's holder, who signs offline with their own key."""
    client = world.token_client(Role.ADMIN, base_url=ORIGIN)
    response = client.post("/api/v1/portal/invitations", json={"holder": "mina-holder"})
    assert response.status_code == 201, response.text
    return response.json()["url"].rsplit("/", 1)[1]


def _make_passkey(client: TestClient, token: str, authenticator: SoftAuthenticator):
    options = client.post("/portal/api/register/options", json={"token": token}).json()
    challenge = _challenge(options["publicKey"]["challenge"])
    return client.post(
        "/portal/api/register",
        json={"ceremony_id": options["ceremony_id"], "token": token, "credential": authenticator.register(challenge)},
    )


def test_a_holder_who_signs_offline_takes_the_statement_vouches_and_signs_in(world) -> None:
    token = _vouch_link(world)
    holder_id = world.workspace.registry.get_holder("mina-holder").id
    (invited,) = world.workspace.ledger.find("holder.invited", holder_id=holder_id)
    assert invited.payload["purpose"] == "vouch"  # the holder's trail says what the link was for
    browser = TestClient(world.app, base_url=ORIGIN)
    page = browser.get(f"/portal/invite/{token}", headers={"accept-language": "en"})
    assert page.status_code == 200 and "counts only after you vouch for it with that key" in page.text
    authenticator = SoftAuthenticator()
    made = _make_passkey(browser, token, authenticator)
    assert made.status_code == 200, made.text
    statement = made.json()["statement"]
    assert statement["key_fingerprint"] == passkey_fingerprint(authenticator.cose_key)
    assert statement["holder_fingerprint"] == world.workspace.registry.holder_fingerprint("mina-holder")
    assert "likeness_holder" not in browser.cookies  # no session: the passkey counts for nothing yet
    assert _sign_in(TestClient(world.app, base_url=ORIGIN), authenticator).json()["reason"] == (
        "credential_not_holders"
    )
    # The link is spent.
    again = TestClient(world.app, base_url=ORIGIN).post("/portal/api/register/options", json={"token": token})
    assert again.status_code >= 400 and again.json()["reason"] == "invitation_used"
    # The holder vouches on their machine; the agency imports it; the passkey signs in.
    key = holder_machine(world.workspace.registry).key("mina-holder")
    world.workspace.registry.import_signed(sign_vouch(statement, key))
    signed_in = _sign_in(TestClient(world.app, base_url=ORIGIN), authenticator)
    assert signed_in.status_code == 200, signed_in.text


def test_the_statement_page_reads_in_korean(world) -> None:
    page = TestClient(world.app, base_url=ORIGIN).get(
        f"/portal/invite/{_vouch_link(world)}", headers={"accept-language": "ko"}
    )
    assert page.status_code == 200
    assert "기획사가 대신 추가할 수 없습니다" in page.text and "패스키 확인서 저장" in page.text


def test_a_vouch_link_never_registers_and_an_invitation_never_vouches(world) -> None:
    from likeness.service.portal import portal_of

    class _Request:
        app = world.app

    portal = portal_of(_Request())
    invitation_id, _token = portal.invite_to_vouch("mina-holder", "studio", created_by="admin")
    with pytest.raises(ConsentError) as refused:  # the organisation-signed path stays closed
        portal.register_passkey(
            holder_id=portal.registry.get_holder("mina-holder").id,
            credential_id=b"x" * 16,
            public_key=SoftAuthenticator().cose_key,
            sign_count=0,
            rp=RP,
            invitation_id=invitation_id,
        )
    assert refused.value.reason == "invitation_refused"
    portal.add_passkey_holder("sora-holder", "Sora", kind="artist")
    with pytest.raises(ConsentError) as no_key:
        portal.invite_to_vouch("sora-holder", "studio", created_by="admin")
    assert no_key.value.reason == "invitation_refused"


def test_another_organisation_cannot_invite_a_holder_it_did_not_enrol_to_vouch(world) -> None:
    """Rival's user asked the API for a vouch link for the studio's offline holder: the service
    wrote rival's signed ``holder.invited`` (a dead link, but a claim on the holder), and every
    ``audit verify`` of the workspace failed from then on."""
    from likeness.consent.audit import audit_workspace
    from likeness.consent.holder_portal import HolderPortal

    registry = world.workspace.registry
    registry.add_org("rival", "Rival Entertainment")
    rival_admin = world.accounts.add_user("rival-admin", "a long rival password", Role.ADMIN, org="rival")
    rival = TestClient(world.app, base_url=ORIGIN)
    rival.headers["Authorization"] = f"Bearer {world.accounts.create_token(rival_admin, 't')[0]}"
    answer = rival.post("/api/v1/portal/invitations", json={"holder": "mina-holder"})
    assert answer.status_code == 403 and "invitation_refused" in answer.text, answer.text
    assert "onboarded by another organisation" in answer.text
    with pytest.raises(ConsentError) as refused:  # nor through the library
        HolderPortal(world.workspace).invite_to_vouch("mina-holder", "rival", created_by="rival-admin")
    assert refused.value.reason == "invitation_refused"
    assert world.workspace.ledger.find("holder.invited") == []
    assert audit_workspace(world.workspace).ok
